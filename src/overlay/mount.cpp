#include "imgtool/overlay/mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "imgtool/core/error.hpp"
#include "imgtool/overlay/driver.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::overlay {
namespace {

unsigned long legacy_flags(unsigned attributes) {
    return ((attributes & MOUNT_ATTR_RDONLY) ? MS_RDONLY : 0) | ((attributes & MOUNT_ATTR_NOSUID) ? MS_NOSUID : 0) |
           ((attributes & MOUNT_ATTR_NODEV) ? MS_NODEV : 0) | ((attributes & MOUNT_ATTR_NOEXEC) ? MS_NOEXEC : 0);
}

}  // namespace

void mount_at(const MountSpec& spec, int target_fd, unsigned attributes) {
    auto params = fsconfig_parameters(spec);
    if (spec.read_only) attributes |= MOUNT_ATTR_RDONLY;
    sys::FsMountError failure;
    if (sys::try_mount_fs_at(spec.fstype, params, attributes, target_fd, failure)) return;
    // Kernels before 6.8 reject "lowerdir+" (EINVAL at that parameter), and kernels without the new API
    // fail fsopen with ENOSYS: use mount(2), whose data must fit in a page.
    bool old_kernel = failure.error == ENOSYS || (failure.error == EINVAL && failure.step == "lowerdir+");
    auto data = legacy_mount_data(spec);
    if (!old_kernel) sys::throw_mount_failure(spec.fstype, failure, "root filesystem");
    if (!data) {
        throw Error(Errc::Unsupported, std::to_string(spec.lowers.size()) + " layers do not fit in mount(2) options "
                                       "on this kernel (Linux >= 6.8 is needed for this many)");
    }
    // Through the fd's /proc path, which names exactly that directory.
    sys::mount_legacy(spec.fstype, spec.source, "/proc/self/fd/" + std::to_string(target_fd), legacy_flags(attributes),
                      *data)
        .release();
}

}  // namespace imgtool::overlay

namespace imgtool::overlay {

DriverFacts probe_driver_facts(bool rootless, bool fresh_user_namespace) {
    DriverFacts facts;
    facts.rootless = rootless;
    facts.fresh_user_namespace = fresh_user_namespace;
    try {
        std::string filesystems = sys::read_file_at(AT_FDCWD, "/proc/filesystems", 1 << 20);
        facts.overlay_filesystem = filesystems.find("\toverlay\n") != std::string::npos;
    } catch (const Error&) {
    }
    // "/" as a lower: any existing directory; the context is never created.
    facts.lowerdir_plus = sys::probe_fs_parameter("overlay", "lowerdir+", "/");
    struct utsname u {};
    if (::uname(&u) == 0) {
        unsigned major = 0, minor = 0;
        if (std::sscanf(u.release, "%u.%u", &major, &minor) == 2) facts.kernel_6_8 = major > 6 || (major == 6 && minor >= 8);
    }
    return facts;
}

}  // namespace imgtool::overlay
