#include "imgtool/sys/mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

#include "imgtool/core/error.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

MountGuard& MountGuard::operator=(MountGuard&& o) noexcept {
    if (this != &o) {
        if (!target_.empty()) ::umount2(target_.c_str(), MNT_DETACH);
        target_ = std::exchange(o.target_, {});
    }
    return *this;
}

MountGuard::~MountGuard() {
    if (!target_.empty()) ::umount2(target_.c_str(), MNT_DETACH);
}

namespace {

// A mount just attached under a shared parent joins its peer group: make it private at once, so that
// nothing mounted on or below it later travels to other namespaces (the fd still names the mount).
void make_attached_private(int mount_fd) {
    struct mount_attr attr {};
    attr.propagation = MS_PRIVATE;
    ::mount_setattr(mount_fd, "", AT_EMPTY_PATH, &attr, sizeof attr);
}

// The kernel queues "e overlay: ..." lines on the fs context fd explaining why fsconfig failed.
std::string drain_kernel_messages(int fsfd) {
    std::string all;
    char buf[512];
    while (true) {
        ssize_t n = ::read(fsfd, buf, sizeof buf - 1);
        if (n <= 0) break;
        std::string line(buf, static_cast<std::size_t>(n));
        if (line.size() > 2 && line[1] == ' ') line = line.substr(2);
        all += (all.empty() ? "" : "; ") + line;
    }
    return all;
}

}  // namespace

bool try_mount_fs_at(const std::string& fstype, const std::vector<FsParameter>& parameters, unsigned attributes,
                     int target_fd, FsMountError& failure) {
    auto fail = [&](int fd, const std::string& step) {
        failure.error = errno;
        failure.step = step;
        failure.kernel_message = fd >= 0 ? drain_kernel_messages(fd) : "";
        return false;
    };
    int raw = ::fsopen(fstype.c_str(), FSOPEN_CLOEXEC);
    if (raw < 0) return fail(-1, "fsopen");
    UniqueFd fs(raw);
    for (const auto& [key, value] : parameters) {
        int rc = value.empty() ? ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
                               : ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
        if (rc != 0) return fail(fs.get(), key);
    }
    if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) return fail(fs.get(), "create");
    int mnt = ::fsmount(fs.get(), FSMOUNT_CLOEXEC, attributes);
    if (mnt < 0) return fail(fs.get(), "fsmount");
    UniqueFd mount_fd(mnt);
    if (::move_mount(mount_fd.get(), "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        return fail(-1, "move_mount");
    }
    make_attached_private(mount_fd.get());
    return true;
}

void throw_mount_failure(const std::string& fstype, const FsMountError& failure, const std::string& shown) {
    std::string step = failure.step + (failure.kernel_message.empty() ? "" : ": " + failure.kernel_message);
    throw_errno(failure.error, "mount " + fstype + " (" + step + ") on", shown);
}

void mount_fs_at(const std::string& fstype, const std::vector<FsParameter>& parameters, unsigned attributes,
                 int target_fd, const std::string& shown) {
    FsMountError failure;
    if (!try_mount_fs_at(fstype, parameters, attributes, target_fd, failure)) throw_mount_failure(fstype, failure, shown);
}

void bind_at(int source_fd, int target_fd, bool read_only, const std::string& shown) {
    bind_at_with(source_fd, target_fd, read_only ? MOUNT_ATTR_RDONLY : 0, shown);
}

namespace {

UniqueFd clone_tree(int source_fd, unsigned attributes, const std::string& shown) {
    int raw = ::open_tree(source_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (raw < 0) throw_errno("bind (open_tree)", shown);
    UniqueFd tree(raw);
    // Set on the detached clone, before it is attached: it is never visible without them.
    if (attributes) set_mount_attributes(tree.get(), attributes, true, shown);
    return tree;
}

}  // namespace

void bind_at_with(int source_fd, int target_fd, unsigned attributes, const std::string& shown) {
    UniqueFd tree = clone_tree(source_fd, attributes, shown);
    if (::move_mount(tree.get(), "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        throw_errno("bind (move_mount)", shown);
    }
    make_attached_private(tree.get());
}

void set_mount_attributes(int fd, unsigned attributes, bool recursive, const std::string& shown) {
    struct mount_attr attr {};
    attr.attr_set = attributes;
    if (::mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) != 0) {
        throw_errno("mount_setattr", shown);
    }
}

MountGuard mount_legacy(const std::string& fstype, const std::string& source, const std::string& target,
                        unsigned long flags, const std::string& data) {
    if (::mount(source.c_str(), target.c_str(), fstype.c_str(), flags, data.empty() ? nullptr : data.c_str()) != 0) {
        throw_errno("mount " + fstype + " on", target);
    }
    return MountGuard(target);
}

void make_private(const std::string& target) {
    if (::mount(nullptr, target.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) throw_errno("make private", target);
}

int try_unmount(const std::string& target, int flags) {
    return ::umount2(target.c_str(), flags) == 0 ? 0 : errno;
}

void unmount(const std::string& target, int flags) {
    if (::umount2(target.c_str(), flags) != 0) throw_errno("umount", target);
}

}  // namespace imgtool::sys

namespace imgtool::sys {

int probe_fs_parameter(const std::string& fstype, const std::string& key, const std::string& value) {
    // A filesystem context that is never created nor mounted: closing it discards it, so the probe
    // leaves nothing behind.
    int raw = ::fsopen(fstype.c_str(), FSOPEN_CLOEXEC);
    if (raw < 0) return errno;
    UniqueFd fs(raw);
    if (key.empty()) return 0;
    int rc = ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    int err = rc == 0 ? 0 : errno;
    drain_kernel_messages(fs.get());
    return err;
}

int probe_idmapped_mounts() {
    // mount_setattr(2) with MOUNT_ATTR_IDMAP on no file at all: a kernel without the call says ENOSYS,
    // one with it rejects the fd (EBADF) before looking at anything.
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = ~std::uint64_t{0};
    if (::mount_setattr(-1, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0) return 0;
    return errno == ENOSYS ? ENOSYS : 0;
}

}  // namespace imgtool::sys
