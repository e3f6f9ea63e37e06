// The copy driver: materialises the merged tree of an image's layer directories into a target
// directory, for filesystems or kernels where overlayfs is unavailable. Layers are applied bottom first;
// whiteouts (0/0 character devices) and opaque directories are applied by deletion. Types, modes
// (setuid/sticky too), owners, xattrs (except overlay-internal ones), hardlink groups, device nodes and
// times are preserved. File data is reflinked (FICLONE) where the filesystem allows, else copied in
// the kernel with copy_file_range.
//
// Everything is created fd-relative below target_fd; directories are re-resolved without symlinks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imgtool/sys/space.hpp"

namespace imgtool::overlay {

struct CopyStats {
    std::uint64_t entries = 0;
    std::uint64_t reflinked = 0;
    std::uint64_t copied_bytes = 0;
};

// Placeholder until the copy driver grows them (reserve, setuid stripping, device skipping).
struct CopyOptions {
    sys::SpaceReserve* reserve = nullptr;
    bool strip_setid = false;
    bool skip_devices = false;
};

CopyStats materialize(const std::vector<std::string>& layer_dirs_bottom_first, int target_fd,
                      const CopyOptions& options = {});

}  // namespace imgtool::overlay
