#include "imgtool/view/container_root.hpp"

#include <fcntl.h>
#include <sys/mount.h>

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/overlay/copy.hpp"
#include "imgtool/overlay/mount.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/user_path.hpp"

namespace imgtool::view {

ContainerUpper open_container_upper(const std::string& path) {
    sys::UserPath opened = sys::open_user_directory(path, O_RDONLY, true);
    if (!opened.private_to_caller) {
        throw Error(Errc::UnsafePath, opened.resolved +
                                          ": --upper must be a directory other users cannot reach (make a directory "
                                          "above it mode 0700): the container writes there as root, and its setuid "
                                          "files and device nodes would work for them");
    }
    return {opened.resolved, sys::fstat_fd(opened.fd.get(), opened.resolved)};
}

std::function<void(int)> container_root(ContainerRootPlan plan) {
    return [plan](int target_fd) {
        LayerStack here = plan.layers->reopened();
        overlay::UpperDirs dirs = plan.upper;
        sys::UniqueFd user_upper;
        if (plan.user_upper) {
            const std::string& path = plan.user_upper->path;
            user_upper = sys::open_at(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, path);
            struct stat now = sys::fstat_fd(user_upper.get(), path);
            if (now.st_dev != plan.user_upper->identity.st_dev || now.st_ino != plan.user_upper->identity.st_ino) {
                throw Error(Errc::UnsafePath, path + ": changed while the container was being set up");
            }
            dirs.upper = "/proc/self/fd/" + std::to_string(user_upper.get());
        }
        overlay::MountSpec root = overlay::plan_overlay(here.refs, dirs, here.empty_dir);
        root.user_xattr = plan.user_xattr;
        // nodev: device nodes in image layers are inert; only the fresh /dev works.
        if (plan.driver.first == overlay::Driver::Overlay) {
            try {
                overlay::mount_at(root, target_fd, MOUNT_ATTR_NODEV);
                return;
            } catch (const Error& e) {
                if (!plan.driver.fall_back_to_copy) throw;
                log::notice(std::string("overlayfs unavailable (") + e.what() + "); using the copy driver");
            }
        }
        sys::UniqueFd dir = sys::open_at(target_fd, ".", O_RDONLY | O_DIRECTORY);
        overlay::materialize(overlay::visible_layer_dirs(here.refs), dir.get());
        sys::bind_at_with(dir.get(), dir.get(), MOUNT_ATTR_NODEV, "root filesystem");  // pivot_root needs a mount
    };
}

}  // namespace imgtool::view
