// Which storage driver makes a view or a container's root: one rule for `mount` and `run`, as data.
#pragma once

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

}  // namespace imgtool::overlay
