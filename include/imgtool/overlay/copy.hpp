// The copy driver: materialises the merged tree of an image's layer directories into a target
// directory, for filesystems or kernels where overlayfs is unavailable. Layers are applied bottom first;
// whiteouts (0/0 character devices) and opaque directories are applied by deletion. Types, modes
// (setuid/sticky too), owners, xattrs (except overlay-internal ones), hardlink groups, device nodes and
// times are preserved. File data is reflinked (FICLONE) where the filesystem allows, else its data
// segments are copied (SEEK_DATA/SEEK_HOLE: holes stay holes, the size is set with ftruncate) with
// copy_file_range, or pread/pwrite where the kernel cannot (another filesystem: EXDEV).
//
// Everything is created fd-relative below target_fd, nothing follows a symlink, and directories are
// re-resolved without symlinks. Directories stay 0700 and owned by the caller until the end (finish),
// when their owners, modes and times are applied: while the copy runs, nobody else can change what it
// is writing to.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace imgtool::sys {
class SpaceReserve;
}

namespace imgtool::overlay {

struct CopyStats {
    std::uint64_t entries = 0;          // entries read from the layers
    std::uint64_t reflinked = 0;        // regular files whose extents are shared (FICLONE)
    std::uint64_t copied_bytes = 0;     // data bytes written (holes are not written)
    std::uint64_t skipped_devices = 0;  // block and character devices not created (skip_devices)
};

struct CopyOptions {
    // Charged before writing: every data byte written, one entry per inode created. The copy stops
    // with the reserve's ENOSPC error before the target filesystem falls below it.
    sys::SpaceReserve* reserve = nullptr;
    // Clear setuid and setgid on everything but directories (a rootless copy must not leave setuid
    // files owned by the invoking user on the host). Directories keep setgid: it only passes the group on.
    bool strip_setid = false;
    // Do not create block or character devices; a lower layer's entry at that path is still removed.
    bool skip_devices = false;
};

// `layer_dirs_bottom_first`: paths with no symlink at the end, or "/proc/self/fd/N" of directories the
// caller opened (Store::open_layer).
CopyStats materialize(const std::vector<std::string>& layer_dirs_bottom_first, int target_fd,
                      const CopyOptions& options = {});

namespace detail {
// materialize with a test seam: `created(dir_fd, rel)` is called right after each entry's inode is
// made in the target (mkdir, create, symlink, mknod), before any of its metadata is applied.
using CreatedHook = std::function<void(int dir_fd, const std::string& rel)>;
CopyStats materialize(const std::vector<std::string>& layer_dirs_bottom_first, int target_fd,
                      const CopyOptions& options, const CreatedHook& created);
}  // namespace detail

}  // namespace imgtool::overlay
