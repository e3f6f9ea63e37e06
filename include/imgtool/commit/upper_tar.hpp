// An overlayfs upper directory (a container's writable layer) as a layer tar, the way docker and
// containers/storage turn one into a layer: whiteouts (0/0 character devices) become `.wh.NAME`, opaque
// directories a `.wh..wh..opq` entry, overlayfs's own xattrs are dropped, redirect and metacopy
// (renamed directories, metadata-only copy-ups) are refused: the tar cannot say what they mean.
//
// The upper is hostile (the container's root wrote it): it is walked with *at() calls from one
// directory fd, never following a symlink, each entry's type checked on the fd that is read (a file
// swapped for a FIFO, device or symlink mid-walk is an error, never a blocking open or a host path),
// never leaving its filesystem. Device nodes other than whiteouts and names the tar format would read
// as whiteouts (`.wh.*`) are refused; sockets are left out (a tar cannot hold them), FIFOs kept.
// The runtime's own files (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/console and the empty
// /dev, /proc, /sys mount points) are left out, as docker's init layer keeps them out of commits.
//
// Output is deterministic: entries in byte order of names, parents first; ustar headers (PAX records
// only where ustar cannot say it: long names and links, big numbers, xattrs); times in whole seconds;
// no user or group names.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace imgtool::commit {

// One tar entry, as the header says it.
struct TarEntry {
    std::string path;  // relative, no leading "/"; a directory without trailing "/" (added when written)
    char type = '0';   // '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' directory, '6' FIFO
    std::uint32_t mode = 0;  // permission bits with setuid/setgid/sticky (07777)
    std::uint64_t uid = 0, gid = 0;
    std::uint64_t size = 0;
    std::int64_t mtime = 0;
    std::string link;  // hard link target path or symlink target
    std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
};

// The header block(s) for `e`: a PAX 'x' header with its records when needed, then the ustar header.
std::string tar_header(const TarEntry& e);
// Zero padding after `size` bytes of data, and the end-of-archive marker.
std::string tar_padding(std::uint64_t size);
std::string tar_trailer();

// Whiteout and opaque-marker names for a path of the upper ("a/b" -> "a/.wh.b"; "a" -> "a/.wh..wh..opq").
std::string whiteout_name(std::string_view path);
std::string opaque_marker_name(std::string_view dir);

// A runtime path `run` creates that is left out of commits: the init-layer files (non-directories
// at these paths) and, when empty, the mount-point directories.
bool is_runtime_file(std::string_view path);
bool is_runtime_mount_dir(std::string_view path);

// What an overlay xattr of the store's kind means for commit.
enum class OverlayXattr { None, Opaque, Refused, Ignored };
// `rootless` selects user.overlay.* (mounts with userxattr) over trusted.overlay.*. Overlay xattrs of
// the other kind are Ignored (dropped, as the unpacker would drop them anyway), as are origin, impure,
// nlink, upper and the like; opaque with "y" is Opaque; redirect and metacopy (and an opaque other
// than "y") are Refused.
OverlayXattr classify_overlay_xattr(std::string_view name, std::string_view value, bool rootless);

struct UpperOptions {
    bool rootless = false;
    unsigned max_depth = 256;  // directories deeper than this are refused (each level holds an fd)
};

struct UpperStats {
    std::uint64_t entries = 0;
    std::uint64_t whiteouts = 0;
    std::uint64_t opaque_dirs = 0;
    std::uint64_t hardlinks = 0;
    std::uint64_t left_out = 0;         // runtime files and mount points
    std::uint64_t skipped_sockets = 0;
    std::uint64_t dropped_xattrs = 0;   // overlayfs's own
};

// Writes the tar of the upper directory `upper_fd` (open O_RDONLY|O_DIRECTORY) to `sink`. Throws
// imgtool::Error naming the entry ("upper etc/x: ...") on anything refused or unreadable.
UpperStats write_upper_tar(int upper_fd, const std::function<void(const void*, std::size_t)>& sink,
                           const UpperOptions& options);

}  // namespace imgtool::commit
