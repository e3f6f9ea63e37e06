// Which storage driver makes a view or a container's root: one rule for `mount` and `run`, as data.
#pragma once

#include <string>
#include <string_view>

namespace imgtool::overlay {

enum class Driver { Overlay, Copy };

struct DriverPlan {
    Driver first = Driver::Overlay;
    // When overlayfs cannot mount (no overlayfs, an old kernel, a filesystem it refuses): use a copy.
    bool fall_back_to_copy = false;
};

// `requested`: "" (default), "overlay" or "copy". `separate_upper`: the caller asked for its own upper
// directory (--upper DIR), which only overlayfs has. The rule: the copy driver when asked; overlayfs
// when asked, with no fallback (its failure is the answer); by default overlayfs, falling back to a
// copy unless a separate upper was asked for. A copy with --upper is refused (Errc::InvalidArgument).
DriverPlan plan_driver(std::string_view requested, bool separate_upper);

// What `imgtool info` reports: the driver a default `mount` (no --driver) would use here, and why.
struct DriverFacts {
    bool overlay_filesystem = false;  // the kernel has overlayfs (/proc/filesystems)
    int lowerdir_plus = 0;            // 0: overlayfs takes "lowerdir+" (Linux >= 6.8); else the probe's errno
    bool kernel_6_8 = false;          // the release says >= 6.8 (when the probe was not allowed to run)
    bool rootless = false;            // an ordinary user's store: layers carry user.overlay.* xattrs
    bool fresh_user_namespace = false;  // ordinary user outside `imgtool unshare`: a mount would not outlive the command
};

struct DriverChoice {
    Driver driver = Driver::Overlay;
    bool user_xattr = false;  // overlay mounted with "userxattr"
    std::string lowers;       // overlay: "lowerdir+" (no limit on layers) or "mount-data" (one page of options)
    std::string reason;       // one line
};

DriverChoice explain_default_driver(const DriverFacts& facts);
// Reads the facts off this kernel (probes that leave nothing behind; see sys::probe_fs_parameter).
DriverFacts probe_driver_facts(bool rootless, bool fresh_user_namespace);

}  // namespace imgtool::overlay
