#include "imgtool/overlay/mount.hpp"

#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "imgtool/core/error.hpp"

namespace imgtool::overlay {
namespace {

unsigned long legacy_flags(unsigned attributes) {
    return ((attributes & MOUNT_ATTR_RDONLY) ? MS_RDONLY : 0) | ((attributes & MOUNT_ATTR_NOSUID) ? MS_NOSUID : 0) |
           ((attributes & MOUNT_ATTR_NODEV) ? MS_NODEV : 0) | ((attributes & MOUNT_ATTR_NOEXEC) ? MS_NOEXEC : 0);
}

}  // namespace

sys::MountGuard mount(const MountSpec& spec, const std::string& target, unsigned attributes) {
    if (spec.read_only) attributes |= MOUNT_ATTR_RDONLY;
    sys::FsMountError failure;
    sys::MountGuard guard = sys::mount_fs(spec.fstype, fsconfig_parameters(spec), attributes, target, failure);
    if (!guard.target().empty()) return guard;

    // Kernels before 6.8 reject "lowerdir+" (EINVAL at that parameter), and kernels without the new API
    // fail fsopen with ENOSYS: use mount(2), whose data must fit in a page.
    bool old_kernel = (failure.step == "fsopen" && failure.error == ENOSYS) ||
                      (failure.step == "fsconfig lowerdir+" && failure.error == EINVAL);
    if (old_kernel) {
        auto data = legacy_mount_data(spec);
        if (!data) {
            throw Error(Errc::Unsupported, "mount overlay on `" + target + "`: " + std::to_string(spec.lowers.size()) +
                                               " layers do not fit in mount(2) options on this kernel (Linux >= 6.8 "
                                               "is needed for this many)");
        }
        return sys::mount_legacy(spec.fstype, spec.source, target, legacy_flags(attributes), *data);
    }
    std::string reason = std::strerror(failure.error);
    if (!failure.kernel_message.empty()) reason += " (" + failure.kernel_message + ")";
    throw Error(std::error_code(failure.error, std::generic_category()),
                "mount overlay on `" + target + "`: " + failure.step + ": " + reason, target);
}

void mount_at(const MountSpec& spec, int target_fd, unsigned attributes) {
    auto params = fsconfig_parameters(spec);
    if (spec.read_only) attributes |= MOUNT_ATTR_RDONLY;
    try {
        sys::mount_fs_at(spec.fstype, params, attributes, target_fd, "root filesystem");
    } catch (const Error& e) {
        bool old_kernel = e.code() == std::errc::function_not_supported || e.code() == std::errc::invalid_argument;
        auto data = legacy_mount_data(spec);
        if (!old_kernel || !data) throw;
        // Pre-6.8 kernels: mount(2) through the fd's /proc path, which names exactly that directory.
        unsigned long flags = legacy_flags(attributes);
        sys::mount_legacy(spec.fstype, spec.source, "/proc/self/fd/" + std::to_string(target_fd), flags, *data)
            .release();
    }
}

}  // namespace imgtool::overlay
