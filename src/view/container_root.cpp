#include "imgtool/view/container_root.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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

namespace {

// The files the launcher binds the container's own copies on (launch::LaunchSpec::own_files).
constexpr const char* kInitFiles[] = {"hosts", "hostname", "resolv.conf"};

// What /etc is in the image's merged tree: the top-most layer with an entry decides (a whiteout, or a
// layer that replaces the whole root, ends the search: then it is absent).
enum class EtcKind { Absent, Directory, Other };
std::pair<EtcKind, struct stat> image_etc(const LayerStack& layers) {
    for (auto ref = layers.refs.rbegin(); ref != layers.refs.rend(); ++ref) {
        struct stat st {};
        if (::fstatat(AT_FDCWD, (ref->dir + "/etc").c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode)) return {EtcKind::Directory, st};
            if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return {EtcKind::Absent, {}};
            return {EtcKind::Other, st};
        }
        if (errno != ENOENT) throw_errno("stat", ref->dir + "/etc");
        if (ref->root_opaque) break;
    }
    return {EtcKind::Absent, {}};
}

}  // namespace

void add_init_layer(store::Store& store, const store::ImageRecord& image, LayerStack& layers) {
    auto [kind, etc] = image_etc(layers);
    if (kind == EtcKind::Other) return;
    auto fill = [kind, etc](int dir_fd) {
        // /etc as the image has it (the merged directory shows the top-most layer's attributes), or
        // as a container would have made it.
        mode_t mode = kind == EtcKind::Directory ? (etc.st_mode & 07777) : 0755;
        sys::mkdir_at(dir_fd, "etc", mode, false);
        sys::UniqueFd etc_fd = sys::open_beneath(dir_fd, "etc", O_RDONLY | O_DIRECTORY);
        for (const char* name : kInitFiles) {
            int fd = ::openat(etc_fd.get(), name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd < 0) throw_errno("create", std::string("init layer /etc/") + name);
            ::close(fd);
        }
        if (kind == EtcKind::Directory) {
            if (::fchown(etc_fd.get(), etc.st_uid, etc.st_gid) != 0) throw_errno("chown", "init layer /etc");
            struct timespec times[2] = {etc.st_atim, etc.st_mtim};
            if (::futimens(etc_fd.get(), times) != 0) throw_errno("set times of", "init layer /etc");
        }
    };
    try {
        auto [fd, path] = store.image_init_layer(image.id, fill);
        layers.add_top(std::move(fd), path);
    } catch (const Error& e) {
        // Only a cost: each container then makes its mount points itself.
        log::debug(std::string("no init layer: ") + e.what());
    }
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
