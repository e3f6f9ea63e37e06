// Mount syscalls, and nothing else: callers build what to mount as data (overlay::MountSpec) and hand
// it here. MountGuard detaches its mount on destruction unless released.
// Errors follow sys/files.hpp's rule: everything throws, except the try_ calls, which report an
// FsMountError (errno, failing step, the kernel's message) for callers that have a fallback.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace imgtool::sys {

class MountGuard {
public:
    MountGuard() = default;
    explicit MountGuard(std::string target) : target_(std::move(target)) {}
    MountGuard(MountGuard&& o) noexcept : target_(std::exchange(o.target_, {})) {}
    MountGuard& operator=(MountGuard&& o) noexcept;
    MountGuard(const MountGuard&) = delete;
    MountGuard& operator=(const MountGuard&) = delete;
    ~MountGuard();
    // Keeps the mount (the caller records it and unmounts it later).
    std::string release() { return std::exchange(target_, {}); }
    const std::string& target() const { return target_; }

private:
    std::string target_;
};

// A filesystem parameter for fsconfig(2): keys may repeat ("lowerdir+" once per layer).
using FsParameter = std::pair<std::string, std::string>;

struct FsMountError {
    int error = 0;             // errno of the failing step
    std::string step;          // "fsopen", "fsconfig lowerdir+", "create", "fsmount", "move_mount"
    std::string kernel_message;  // what the kernel logged on the fs context, if anything
};

// Same, but attaches the new mount on the file or directory open as `target_fd` (resolved earlier with
// openat2 inside a root, or through sys::open_user_directory, so the mount can never land elsewhere:
// runc CVE-2021-30465). The new mount is made private once attached. Throws.
// `attributes` are MOUNT_ATTR_* flags (nodev, nosuid, noexec, rdonly).
void mount_fs_at(const std::string& fstype, const std::vector<FsParameter>& parameters, unsigned attributes,
                 int target_fd, const std::string& shown);
// The same without throwing, for callers that have a fallback: false with `failure` filled. (The
// launcher's child runs on its own clone stack, where an exception that is caught again confuses ASan.)
bool try_mount_fs_at(const std::string& fstype, const std::vector<FsParameter>& parameters, unsigned attributes,
                     int target_fd, FsMountError& failure);
// Throws the error mount_fs_at would have thrown for `failure`.
[[noreturn]] void throw_mount_failure(const std::string& fstype, const FsMountError& failure, const std::string& shown);
// Bind-mounts the tree at source_fd (recursively) onto target_fd, optionally read-only.
void bind_at(int source_fd, int target_fd, bool read_only, const std::string& shown);
// The same with MOUNT_ATTR_* attributes set on the new mount (and below it).
void bind_at_with(int source_fd, int target_fd, unsigned attributes, const std::string& shown);

// Makes the mount at fd (and below) read-only or sets other MOUNT_ATTR_* flags.
void set_mount_attributes(int fd, unsigned attributes, bool recursive, const std::string& shown);
// Classic mount(2) with a data string (throws with errno on failure).
MountGuard mount_legacy(const std::string& fstype, const std::string& source, const std::string& target,
                        unsigned long flags, const std::string& data);
// Stops mount events below `target` from propagating to or from peers.
void make_private(const std::string& target);
// umount2(2); throws with errno (EBUSY: in use).
void unmount(const std::string& target, int flags = 0);
// The same, returning 0 or the errno (EBUSY: in use, or something mounted below).
int try_unmount(const std::string& target, int flags = 0);

// Probes, for `imgtool info`: side-effect free (nothing is created, mounted or left behind).
// Whether `fstype` takes the parameter key=value on a new filesystem context (fsopen + fsconfig, never
// created): 0, or the errno of fsopen (ENOSYS: no new mount API; EPERM: not allowed here; ENODEV: no
// such filesystem) or of fsconfig (EINVAL: an unknown parameter). An empty key probes fsopen alone.
int probe_fs_parameter(const std::string& fstype, const std::string& key, const std::string& value);
// 0 if the kernel has idmapped mounts (mount_setattr with MOUNT_ATTR_IDMAP), else ENOSYS.
int probe_idmapped_mounts();

}  // namespace imgtool::sys
