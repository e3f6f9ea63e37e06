// Streaming layer extraction into one layer directory, in overlayfs-native form.
//
// The tar stream is parsed by libarchive (archive_read_*); every entry is then created by us with
// fd-relative syscalls under `root_fd`: parents are resolved with openat2(RESOLVE_IN_ROOT), so no name,
// symlink or hardlink can reach outside the layer directory, and metadata is applied to the entry's own
// fd or with AT_SYMLINK_NOFOLLOW, never through a link. Directory modes and times are applied in one
// final pass, re-resolved without following symlinks (a directory replaced by a symlink is skipped).
//
// Whiteouts: ".wh.NAME" becomes a 0/0 character device NAME; ".wh..wh..opq" sets
// trusted.overlay.opaque=y on its directory (user.overlay.opaque=y when rootless). Overlay xattrs inside the tar and raw 0/0 character devices
// are refused: only ".wh." names create whiteouts.
//
// Nothing here is shared between calls, so layers unpack in parallel threads. Files are created with
// their final permissions: the process umask must be 0 (imgtool's main sets it).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "imgtool/sys/reader.hpp"

namespace imgtool::layer {

struct UnpackStats {
    std::uint64_t entries = 0;
    std::uint64_t file_bytes = 0;  // logical size of regular files written
    std::uint64_t whiteouts = 0;
    std::uint64_t dropped_xattrs = 0;
    std::uint64_t skipped_devices = 0;   // rootless: device nodes cannot be made
    std::uint64_t skipped_xattrs = 0;    // rootless: trusted.* and the like cannot be set
    std::uint64_t squashed_owners = 0;   // entries whose owner was not kept (squash_owners)
    bool root_opaque = false;  // ".wh..wh..opq" at the layer root: this layer hides every layer below it
};

struct UnpackOptions {
    // Rootless (inside a user namespace): opaque directories are marked with user.overlay.opaque (mount
    // with "userxattr"), device nodes are skipped, xattrs the namespace may not set are skipped; all counted.
    bool rootless = false;
    // Only our own id is mapped: entries stay ours and their owners are counted as squashed.
    bool squash_owners = false;
    const std::atomic<bool>* cancel = nullptr;                   // checked between reads
    std::function<void(const UnpackStats&)> progress;            // called every few thousand entries
};

// Reads the tar stream to its end-of-archive marker (the caller drains and hashes the rest).
UnpackStats unpack_layer(sys::ViewReader& tar_stream, int root_fd, const UnpackOptions& options);
// The same over a copying Reader, through a 1 MiB buffer.
UnpackStats unpack_layer(sys::Reader& tar_stream, int root_fd, const UnpackOptions& options);

}  // namespace imgtool::layer
