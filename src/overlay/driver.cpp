#include "imgtool/overlay/driver.hpp"

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
