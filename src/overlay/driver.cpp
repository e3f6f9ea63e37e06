#include "imgtool/overlay/driver.hpp"

#include <cerrno>
#include <string>

#include "imgtool/core/error.hpp"

namespace imgtool::overlay {

DriverPlan plan_driver(std::string_view requested, bool separate_upper) {
    if (requested == "copy") {
        if (separate_upper) {
            throw Error(Errc::InvalidArgument, "--upper needs the overlay driver (a copy has no separate upper "
                                               "layer; --writable gives a writable copy, discarded at the end)");
        }
        return {Driver::Copy, false};
    }
    if (requested == "overlay") return {Driver::Overlay, false};
    if (!requested.empty()) throw Error(Errc::InvalidArgument, "unknown driver \"" + std::string(requested) + "\"");
    return {Driver::Overlay, !separate_upper};
}

}  // namespace imgtool::overlay

namespace imgtool::overlay {

DriverChoice explain_default_driver(const DriverFacts& facts) {
    DriverChoice c;
    if (facts.fresh_user_namespace) {
        c.driver = Driver::Copy;
        c.reason = "an ordinary user's overlay mount exists only inside `imgtool unshare`: outside it `mount` needs "
                   "--driver copy (inside it: overlay with userxattr)";
        return c;
    }
    if (!facts.overlay_filesystem) {
        c.driver = Driver::Copy;
        c.reason = "this kernel has no overlayfs: the copy driver (a private copy of the layers)";
        return c;
    }
    c.user_xattr = facts.rootless;
    bool plus = facts.lowerdir_plus == 0 || (facts.lowerdir_plus == EPERM && facts.kernel_6_8);
    c.lowers = plus ? "lowerdir+" : "mount-data";
    c.reason = std::string("overlayfs") +
               (plus ? ", layers passed one by one (fsconfig lowerdir+, Linux >= 6.8): no limit below 500 layers"
                     : ", layers in mount(2) options (no lowerdir+ before Linux 6.8): as many as fit in one page") +
               (facts.rootless ? "; userxattr (rootless: layers carry user.overlay.* xattrs)" : "") +
               "; falls back to the copy driver if the mount fails";
    return c;
}

}  // namespace imgtool::overlay
