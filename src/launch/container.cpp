#include "imgtool/launch/container.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <grp.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <string>

#include "cgroup.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/launch/cgroup_plan.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/devices.hpp"
#include "imgtool/launch/exec.hpp"
#include "imgtool/launch/runtime_spec.hpp"
#include "imgtool/launch/seccomp.hpp"
#include "imgtool/launch/seccomp_filter.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mountinfo.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/process.hpp"

#if defined(IMGTOOL_COVERAGE)
extern "C" void __gcov_dump(void);
extern "C" void __gcov_reset(void);
#endif

namespace imgtool::launch {
namespace {

using sys::UniqueFd;

// What imgtool (and the supervisor, to the container's PID 1) passes on.
constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// ---- coverage builds -----------------------------------------------------------------------------
// gcov writes its counters when a process calls exit(); the clone child and --init's processes end in
// execve or _exit and never get there. IMGTOOL_COVERAGE builds write them out at those points, and a
// new process first forgets the counts it inherited (its parent writes those). No-ops otherwise.
void coverage_flush() {
#if defined(IMGTOOL_COVERAGE)
    __gcov_dump();
    __gcov_reset();  // so a later flush (an execve that failed, then _exit) writes only what followed
#endif
}
void coverage_forget_inherited() {
#if defined(IMGTOOL_COVERAGE)
    __gcov_reset();
#endif
}
// The clone child: after pivot_root the .gcda files' absolute paths name nothing, so it keeps the
// host's root open and points GCOV_PREFIX at it through /proc/self/fd (close-on-exec: the command
// never has it; --init's PID 1 keeps it, non-dumpable). A coverage build is for measuring imgtool,
// never for running untrusted images.
void coverage_child_start() {
    coverage_forget_inherited();
#if defined(IMGTOOL_COVERAGE)
    int fd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) ::setenv("GCOV_PREFIX", ("/proc/self/fd/" + std::to_string(fd)).c_str(), 1);
#endif
}

// ---- failure reporting from the child -----------------------------------------------------------
// The child writes "<status> <message>" to a close-on-exec pipe and exits; a successful exec closes the
// pipe with nothing written.
[[noreturn]] void child_fail(int pipe_fd, int status, const std::string& message) {
    std::string line = std::to_string(status) + " " + message;
    (void)!::write(pipe_fd, line.data(), line.size());
    coverage_flush();
    ::_exit(status);
}

// ---- paths inside the new root -------------------------------------------------------------------

int last_cap() {
    // The running kernel may know more capabilities than our table.
    std::string text;
    try {
        text = sys::read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 64);
    } catch (const Error&) {
        return kLastKnownCap;
    }
    return std::atoi(text.c_str());
}

// Mount targets: opened (created as needed) inside the root, so a symlink in the image can never make
// one a host path.
UniqueFd ensure_dir_in_root(int root_fd, const std::string& path) {
    return sys::open_dirs_in_root(root_fd, path, O_PATH);
}

// Like ensure_dir_in_root for a file mount target (a bind of a host file).
// The directory that holds `path` inside the root (made if missing), open for *at() calls, and the
// path's last component.
std::pair<UniqueFd, std::string> parent_in_root(int root_fd, const std::string& path) {
    auto slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
    UniqueFd dir = ensure_dir_in_root(root_fd, parent.empty() ? "/" : parent);
    return {sys::open_at(dir.get(), ".", O_RDONLY | O_DIRECTORY), path.substr(slash + 1)};
}

// A file to mount on: made empty if missing (never through a symlink), returned open O_PATH. With
// `directory_ok`, a directory already there is returned as it is.
UniqueFd mount_point_file(int dir_fd, const std::string& name, mode_t mode, const std::string& shown,
                          bool directory_ok = false) {
    // One already there is used as it is: opening it for writing would copy it (and its directory) up
    // into the container's writable layer, for nothing (the mount covers it).
    int existing = ::openat(dir_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (existing >= 0) {
        UniqueFd found(existing);
        struct stat st = sys::fstat_fd(found.get(), shown);
        if (S_ISREG(st.st_mode) || (directory_ok && S_ISDIR(st.st_mode))) return found;
    }
    // O_NONBLOCK: a FIFO the image put there fails to open instead of blocking the set-up.
    int fd = ::openat(dir_fd, name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0 && !(directory_ok && errno == EISDIR)) throw_errno("create", shown);
    if (fd >= 0) ::close(fd);
    return sys::open_at(dir_fd, name, O_PATH | O_NOFOLLOW, 0, shown);
}

UniqueFd ensure_file_in_root(int root_fd, const std::string& path) {
    auto [dir, name] = parent_in_root(root_fd, path);
    return mount_point_file(dir.get(), name, 0644, path, true);
}

// The mount point for one of the container's own files (/etc/hosts...): a regular file. A symlink
// there (Debian's /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf) is replaced in the
// container's writable layer, never followed, as docker's init layer replaces it.
UniqueFd own_file_in_root(int root_fd, const std::string& path) {
    auto [dir, name] = parent_in_root(root_fd, path);
    auto [st, err] = sys::try_lstat_at(dir.get(), name);
    if (err && err != ENOENT) throw_errno(err, "stat", path);
    if (!err && S_ISDIR(st.st_mode)) throw Error(Errc::UnsafePath, path + " in the image is a directory");
    if (!err && !S_ISREG(st.st_mode) && ::unlinkat(dir.get(), name.c_str(), 0) != 0) throw_errno("replace", path);
    return mount_point_file(dir.get(), name, 0644, path);
}

// A new network namespace starts with lo down: up, as every runtime does, so 127.0.0.1 works.
void bring_up_loopback() {
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) throw_errno("socket", "lo");
    struct ifreq request {};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &request) != 0) throw_errno("get flags", "lo");
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &request) != 0) throw_errno("bring up", "lo");
}

// The system directories (/proc, /sys, /dev) must be real directories in the image: a symlink there is
// an attack on the runtime (runc CVE-2019-19921, CVE-2023-27561), refused rather than followed.
UniqueFd system_dir(int root_fd, const std::string& name) {
    auto [st, err] = sys::try_lstat_at(root_fd, name);
    if (err && err != ENOENT) throw_errno(err, "stat", "/" + name);
    if (!err && !S_ISDIR(st.st_mode)) {
        throw Error(Errc::UnsafePath, "/" + name + " in the image is not a directory (refusing to mount over it)");
    }
    if (err == ENOENT && ::mkdirat(root_fd, name.c_str(), 0755) != 0) throw_errno("mkdir", "/" + name);
    return sys::open_beneath(root_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
}

// ---- /dev ------------------------------------------------------------------------------------------

void setup_dev(int root_fd, bool privileged) {
    UniqueFd dev = system_dir(root_fd, "dev");
    // nodev: a node the container makes here (CAP_MKNOD is in docker's default set) opens nothing, so
    // `mknod /dev/x b 8 0` is not the host's disk. --privileged lifts it, as docker's does.
    // exec stays allowed, as in docker (nosuid, mode 755): some programs run helpers from /dev/shm's
    // neighbours or map /dev/zero executable.
    // strictatime as docker's /dev.
    unsigned attributes = MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME | (privileged ? 0 : MOUNT_ATTR_NODEV);
    sys::mount_fs_at("tmpfs", {{"source", "tmpfs"}, {"mode", "755"}, {"size", "65536k"}}, attributes, dev.get(), "/dev");
    UniqueFd devdir = sys::open_beneath(root_fd, "dev", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    // The standard nodes are the host's, bind-mounted onto empty files: a bind mount keeps the flags of
    // its source mount (the host's /dev), so they work on a nodev /dev. Read-only, because the bind
    // shares the host's inode: a writable one would let the container chmod, chown or touch the host's
    // /dev/null. Reading and writing a device node is not a write to its filesystem and still works.
    for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
        const std::string shown = std::string("/dev/") + name;
        UniqueFd target = mount_point_file(devdir.get(), name, 0666, shown);
        UniqueFd host = sys::open_at(AT_FDCWD, shown, O_PATH);
        sys::bind_at(host.get(), target.get(), true, shown);
    }
    // /dev/null is checked to be 1:3 where it is used, in mask_paths: volumes come later and may cover it.
    for (const char* d : {"pts", "shm", "mqueue"}) sys::mkdir_at(devdir.get(), d, 0755, true);
    UniqueFd pts = sys::open_beneath(devdir.get(), "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    // newinstance: the container's ptys are its own, not the host's.
    // gid=5: a pty belongs to the tty group, as docker's devpts says (write(1) and wall use it). A
    // rootless namespace without subordinate ids maps no gid 5: then without it, as runc does.
    const std::vector<sys::FsParameter> devpts{{"source", "devpts"}, {"newinstance", ""}, {"ptmxmode", "0666"}, {"mode", "0620"}};
    std::vector<sys::FsParameter> with_tty_group = devpts;
    with_tty_group.emplace_back("gid", "5");
    sys::FsMountError no_tty_group;
    if (!sys::try_mount_fs_at("devpts", with_tty_group, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, pts.get(), no_tty_group)) {
        sys::mount_fs_at("devpts", devpts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, pts.get(), "/dev/pts");
    }
    UniqueFd shm = sys::open_beneath(devdir.get(), "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    sys::mount_fs_at("tmpfs", {{"source", "shm"}, {"mode", "1777"}, {"size", "65536k"}},
                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, shm.get(), "/dev/shm");
    UniqueFd mq = sys::open_beneath(devdir.get(), "mqueue", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    // Optional: some kernels lack POSIX message queues.
    sys::FsMountError no_mqueue;
    sys::try_mount_fs_at("mqueue", {{"source", "mqueue"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                         mq.get(), no_mqueue);
    struct Link {
        const char* name;
        const char* target;
    };
    for (const Link& l : {Link{"ptmx", "pts/ptmx"}, Link{"fd", "/proc/self/fd"}, Link{"stdin", "/proc/self/fd/0"},
                          Link{"stdout", "/proc/self/fd/1"}, Link{"stderr", "/proc/self/fd/2"}}) {
        if (::symlinkat(l.target, devdir.get(), l.name) != 0) throw_errno("symlink", std::string("/dev/") + l.name);
    }
}

// Returns whether /sys is the host's own, bound (then so are the host's cgroup mounts under it).
bool setup_sys(int root_fd, bool new_network) {
    UniqueFd sysdir = system_dir(root_fd, "sys");
    const unsigned ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    sys::FsMountError failure;
    if (sys::try_mount_fs_at("sysfs", {{"source", "sysfs"}}, ro, sysdir.get(), failure)) return false;
    if (new_network) sys::throw_mount_failure("sysfs", failure, "/sys");
    // sysfs refuses a fresh mount when we share the host's network namespace from a user namespace:
    // bind the host's, read-only.
    UniqueFd host = sys::open_at(AT_FDCWD, "/sys", O_PATH | O_DIRECTORY);
    sys::bind_at(host.get(), sysdir.get(), true, "/sys");
    return true;
}

// /sys/fs/cgroup: the container's own cgroups, seen through its cgroup namespace (cgroup_plan.hpp's
// plan_cgroup_fs), read-only. A bound host /sys brings the host's hierarchies along: an empty
// read-only tmpfs covers them when the container has no cgroup of its own to show.
void setup_sys_fs_cgroup(int root_fd, const CgroupFsPlan& plan, bool host_sys) {
    if (plan.mounts.empty() && !host_sys) return;  // the default cost: nothing
    const std::string shown = "/sys/fs/cgroup";
    // Made by the kernel in sysfs; a sysfs without it (no cgroup support) gets nothing.
    auto [target, err] = sys::try_open_beneath(root_fd, "sys/fs/cgroup", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (err == ENOENT) return;
    if (err) throw_errno(err, "open", shown);
    const unsigned ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if (plan.mounts.empty()) {
        sys::mount_fs_at("tmpfs", {{"source", "tmpfs"}, {"size", "0"}}, ro, target.get(), shown);
        return;
    }
    if (!plan.tmpfs()) {
        const CgroupFsMount& m = plan.mounts.front();
        sys::mount_fs_at(m.fstype, m.parameters, ro, target.get(), shown);
        return;
    }
    // Writable while it is filled, then read-only.
    sys::mount_fs_at("tmpfs", plan.mounts.front().parameters, ro & ~MOUNT_ATTR_RDONLY, target.get(), shown);
    UniqueFd tmpfs = sys::open_beneath(root_fd, "sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    for (std::size_t i = 1; i < plan.mounts.size(); ++i) {
        const CgroupFsMount& m = plan.mounts[i];
        sys::mkdir_at(tmpfs.get(), m.dir, 0755, false);
        UniqueFd dir = sys::open_beneath(tmpfs.get(), m.dir, O_PATH | O_DIRECTORY | O_NOFOLLOW);
        sys::mount_fs_at(m.fstype, m.parameters, ro, dir.get(), shown + "/" + m.dir);
    }
    for (const auto& [name, to] : plan.links) {
        if (::symlinkat(to.c_str(), tmpfs.get(), name.c_str()) != 0) throw_errno("symlink", shown + "/" + name);
    }
    sys::set_mount_attributes(tmpfs.get(), MOUNT_ATTR_RDONLY, false, shown);
}

// ---- after pivot_root: masks and read-only paths (runc's defaults) --------------------------------

void mask_paths() {
    // docker's lists (runtime_spec.hpp): one copy for run and for bundle's config.json.
    const std::vector<std::string>& read_only = docker_readonly_paths();
    UniqueFd root = sys::open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
    // CVE-2025-31133: what is bound over the masked paths must really be the null device, not whatever
    // a volume (-v FILE:/dev/null) or the image put there; checked on the very fd that is bound.
    UniqueFd null_dev = sys::open_at(AT_FDCWD, "/dev/null", O_PATH | O_NOFOLLOW);
    struct stat nst = sys::fstat_fd(null_dev.get(), "/dev/null");
    if (!S_ISCHR(nst.st_mode) || nst.st_rdev != makedev(1, 3)) {
        throw Error(Errc::UnsafePath, "/dev/null in the container is not the null device");
    }
    // No exceptions for the expected absences here: this runs on the child's own clone stack.
    std::vector<std::string> paths = docker_masked_paths();
    // Each CPU's thermal_throttle too (docker >= 28.0.2).
    if (DIR* cpus = ::opendir("/sys/devices/system/cpu")) {
        while (struct dirent* e = ::readdir(cpus)) {
            std::string name = e->d_name;
            if (name.size() > 3 && name.compare(0, 3, "cpu") == 0 && std::isdigit(static_cast<unsigned char>(name[3]))) {
                paths.push_back("/sys/devices/system/cpu/" + name + "/thermal_throttle");
            }
        }
        ::closedir(cpus);
    }
    for (const std::string& path_text : paths) {
        const char* path = path_text.c_str();
        auto [target, err] = sys::try_open_beneath(root.get(), path + 1, O_PATH | O_NOFOLLOW);
        if (err == ENOENT) continue;  // absent on this kernel
        if (err) throw_errno(err, "open", path);
        struct stat st = sys::fstat_fd(target.get(), path);
        if (S_ISDIR(st.st_mode)) {
            sys::mount_fs_at("tmpfs", {{"source", "tmpfs"}, {"size", "0"}}, MOUNT_ATTR_RDONLY, target.get(), path);
        } else {
            sys::bind_at(null_dev.get(), target.get(), false, path);
        }
    }
    for (const std::string& path_text : read_only) {
        const char* path = path_text.c_str();
        auto [target, err] = sys::try_open_beneath(root.get(), path + 1, O_PATH | O_NOFOLLOW);
        if (err == ENOENT) continue;
        if (err) throw_errno(err, "open", path);
        sys::bind_at(target.get(), target.get(), true, path);
    }
}

// Without -i the command's stdin is the container's own /dev/null (its read-only bind of the null
// device, checked to be 1:3), never an fd of the host's: through /proc/self/fd/0 a host /dev/null could
// be chmod-ed, and the host's devtmpfs would take it (attacker pass).
void stdin_from_container_null() {
    UniqueFd root = sys::open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
    UniqueFd null_dev = sys::open_beneath(root.get(), "dev/null", O_RDONLY | O_NONBLOCK);
    struct stat st = sys::fstat_fd(null_dev.get(), "/dev/null");
    if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) throw Error(Errc::UnsafePath, "/dev/null in the container is not the null device");
    // Non-blocking only to open it (a FIFO planted there must not hang us); the command gets a plain one.
    if (::fcntl(null_dev.get(), F_SETFL, 0) != 0) throw_errno("fcntl", "/dev/null");
    if (::dup2(null_dev.get(), 0) < 0) throw_errno("dup2", "/dev/null");
}

// ---- identity and privileges ---------------------------------------------------------------------

bool setgroups_denied() {
    int raw = ::open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
    if (raw < 0) return false;
    UniqueFd fd(raw);
    char buf[16] = {};
    return ::read(fd.get(), buf, sizeof buf - 1) > 0 && std::string_view(buf).substr(0, 4) == "deny";
}

void drop_privileges(const User& user, std::uint64_t caps, int cap_last) {
    // capset refuses bits the kernel does not know or that we do not hold ourselves.
    struct __user_cap_header_struct header {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct held[2] {};
    if (::syscall(SYS_capget, &header, held) != 0) throw_errno("capget", "");
    caps &= all_capabilities(cap_last) & (held[0].permitted | (static_cast<std::uint64_t>(held[1].permitted) << 32));
    // Bounding set first: whatever is not in it can never come back, even through setuid binaries.
    for (int c = 0; c <= cap_last; ++c) {
        if (!(caps & (1ULL << c)) && ::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
            throw_errno("drop capability", capability_name(c));
        }
    }
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    // A user namespace mapped without newgidmap has setgroups denied for good: keep the groups we have.
    if (::setgroups(user.groups.size(), user.groups.data()) != 0 && !(errno == EPERM && setgroups_denied())) {
        throw_errno("setgroups", "");
    }
    // EINVAL: the id has no mapping in this (rootless) user namespace.
    auto unmapped = [](const char* what, unsigned id) {
        throw Error(Errc::InvalidArgument, std::string(what) + " " + std::to_string(id) +
                                               " has no mapping in imgtool's user namespace (as an ordinary user, "
                                               "only ids within your ranges in /etc/subuid and /etc/subgid exist)");
    };
    if (::setresgid(user.gid, user.gid, user.gid) != 0) {
        if (errno == EINVAL) unmapped("gid", user.gid);
        throw_errno("setgid", std::to_string(user.gid));
    }
    if (::setresuid(user.uid, user.uid, user.uid) != 0) {
        if (errno == EINVAL) unmapped("uid", user.uid);
        throw_errno("setuid", std::to_string(user.uid));
    }
    // For uid 0 the kernel kept every capability: narrow effective/permitted/inheritable to the set.
    // For other users setuid already cleared them, as docker does for non-root users.
    if (user.uid == 0) {
        struct __user_cap_data_struct data[2] {};
        // Inheritable stays empty (docker >= 20.10.14, CVE-2022-24769): otherwise a process that drops to
        // another user could regain capabilities through files with inheritable file capabilities.
        data[0].effective = data[0].permitted = static_cast<std::uint32_t>(caps);
        data[1].effective = data[1].permitted = static_cast<std::uint32_t>(caps >> 32);
        if (::syscall(SYS_capset, &header, data) != 0) throw_errno("capset", "");
    }
}

std::string read_image_file(int root_fd, const std::string& path) {
    // O_NONBLOCK: a FIFO planted in the image must not hang the launch (read_fd refuses non-files).
    // Whatever keeps it from opening (absent, a dangling link), the image has no such file.
    auto [fd, err] = sys::try_open_in_root(root_fd, path, O_RDONLY | O_NONBLOCK);
    if (err) return {};
    return sys::read_fd(fd.get(), path, 4 << 20);
}

// exec's /etc/passwd or /etc/group for resolving `user_spec`. A numeric uid[:gid] needs neither: then a
// file the container has made unreadable (a FIFO, a directory, 5 MiB) counts as absent, so a container
// cannot lock the operator out of `exec -u 0:0` (attacker pass). A name still needs the file. (run stays
// strict: an image with such files is refused, the hostile corpus's expectation.)
std::string read_account_file(int root_fd, const std::string& path, const std::string& user_spec) {
    try {
        return read_image_file(root_fd, path);
    } catch (const Error&) {
        if (!user_spec_is_numeric(user_spec)) throw;
        return {};
    }
}

// ---- the child ------------------------------------------------------------------------------------

// A cgroup's cgroup.procs, open for writing, and the cgroup's directory for messages.
struct CgroupProcs {
    int fd;
    std::string dir;
};

struct ChildArgs {
    const LaunchSpec* spec = nullptr;
    int error_pipe = -1;
    int console_socket = -1;  // -t: the child sends its pty master here; -1 otherwise
    int null_fd = -1;
    // The parent writes one byte here once the child is in its cgroups, and keeps its end open
    // (never writing again) for as long as it lives: hung up means imgtool is gone.
    int go_read = -1;
    int go_write = -1;  // the parent's end, closed in the child
    int cap_last = 0;
    int stdio[3] = {-1, -1, -1};  // pipes to put on fds 0..2 instead of the user's terminal (StdioRelay)
    const SeccompFilter* seccomp = nullptr;  // none with --privileged
    const CgroupFsPlan* cgroup_fs = nullptr;  // the container's /sys/fs/cgroup
    // The container's PID 1 reads one byte here once it is in its cgroups: go_read for --init's (the
    // parent moves it), the supervisor's socket otherwise (the supervisor moves it).
    int cgroup_go = -1;
    // Supervisor: cgroup.procs of each cgroup the container goes into, opened by the parent.
    const std::vector<CgroupProcs>* cgroup_procs = nullptr;
    int namespaces = 0;                      // the clone flags of the container's PID 1
    bool supervised = false;  // the container's PID 1 is the supervisor's child, which had the go-ahead
    sigset_t signal_mask {};  // supervised: the mask the container starts with (the supervisor blocks some)
    void* stack = nullptr;  // the clone stack the child runs on
    std::size_t stack_size = 0;
};

// Coverage: a new process forgets the counts it inherited, and writes its own before _exit.
[[noreturn]] void exit_now(int status) {
    coverage_flush();
    ::_exit(status);
}

// The process a supervisor or an init waits for ended: end the same way, as far as a PID 1 can (a
// namespace's first process cannot kill itself with a signal): the status, or 128+N for signal N.
[[noreturn]] void exit_like(int status) {
    exit_now(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

void tell_sanitizer_about_stack([[maybe_unused]] const ChildArgs* args) {
#if defined(__SANITIZE_ADDRESS__)
    // ASan still believes this process runs on the parent's main stack; a call to a noreturn function
    // (exec_command) would then warn about a "stack switch". Tell it about the clone stack.
    __sanitizer_start_switch_fiber(nullptr, args->stack, args->stack_size);
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

// Waits for the one byte that lets a child go on. End of file instead: the process that was to send
// it failed (and says why itself) or died.
bool wait_for_byte(int fd) {
    char go = 0;
    ssize_t got;
    while ((got = ::read(fd, &go, 1)) < 0 && errno == EINTR) {
    }
    return got == 1;
}

// -t: the pty comes from the container's own devpts instance (so `tty` and /dev/pts/N work inside),
// and its master goes to the parent over a unix socket, as runc's console socket does.
// One byte of payload plus room for one SCM_RIGHTS fd: what both ends of the console socket use.
struct FdMessage {
    char byte = 'm';
    struct iovec iov {&byte, 1};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] {};
    struct msghdr msg {};
    FdMessage() {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
    FdMessage(const FdMessage&) = delete;  // msg points into this object
    FdMessage& operator=(const FdMessage&) = delete;
};

void send_fd(int socket, int fd) {
    FdMessage m;
    struct cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (::sendmsg(socket, &m.msg, MSG_NOSIGNAL) < 0) throw_errno("send pty master", "");
}

UniqueFd receive_fd(int socket) {
    FdMessage m;
    ssize_t n;
    do {
        n = ::recvmsg(socket, &m.msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return {};  // the child failed before sending
    struct cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return {};
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return UniqueFd(fd);
}

void attach_container_tty(int root_fd, int console_socket) {
    UniqueFd master = sys::open_beneath(root_fd, "dev/pts/ptmx", O_RDWR | O_NOCTTY);
    if (::unlockpt(master.get()) != 0) throw_errno("unlockpt", "/dev/pts/ptmx");
    int slave = ::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_CLOEXEC);
    if (slave < 0) throw_errno("open pty peer", "/dev/pts");
    UniqueFd slave_fd(slave);
    // docker binds the pty onto /dev/console: programs that write to the console (init systems,
    // getty) reach the user's terminal.
    UniqueFd devdir = sys::open_beneath(root_fd, "dev", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    UniqueFd console = mount_point_file(devdir.get(), "console", 0600, "/dev/console");
    sys::bind_at(slave_fd.get(), console.get(), false, "/dev/console");
    if (::ioctl(slave_fd.get(), TIOCSCTTY, 0) != 0) throw_errno("TIOCSCTTY", "");
    for (int fd = 0; fd < 3; ++fd) ::dup2(slave_fd.get(), fd);
    send_fd(console_socket, master.get());
}

[[noreturn]] void exec_command(const std::vector<std::string>& command, const std::vector<std::string>& env, int error_pipe) {
    std::vector<char*> argv;
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    std::string path = env_value(env, "PATH").value_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    int first_error = 0;  // the first candidate that exists but cannot be run (execvp's rule)
    ::umask(022);  // the container's processes get docker's umask, not imgtool's working 0
    for (const auto& candidate : exec_candidates(command[0], path)) {
        coverage_flush();
        ::execve(candidate.c_str(), argv.data(), envp.data());
        if (errno != ENOENT && errno != ENOTDIR) {
            if (first_error == 0) first_error = errno;
        } else if (first_error == 0 && command[0].find('/') != std::string::npos) {
            first_error = errno;  // a path: ENOTDIR is its own answer
        }
    }
    ExecFailure failure = exec_failure(command[0], first_error);
    child_fail(error_pipe, failure.status, "exec " + command[0] + ": " + failure.reason);
}

// The supervisor's and --init's PID 1: signals for the container go to this child.
pid_t g_forward_to = 0;
void forward_to_child(int sig) {
    if (g_forward_to > 0) ::kill(g_forward_to, sig);
}

// --init's PID 1 is imgtool itself, not an exec'd program: /proc/1/cmdline, readable by everything in
// the container, would show the host's command line (the binary's path, the store, the image). It is
// rewritten in place, as setproctitle does, to "imgtool-init -- COMMAND...", as much as fits; the rest
// of the area is zeroed.
void hide_host_command_line(const std::vector<std::string>& argv) {
    // arg_start and arg_end are fields 48 and 49. The container's own /proc, and its pid there.
    std::vector<std::string> fields = sys::process_stat_fields(::getpid());
    if (fields.size() < 47) return;  // no /proc: nothing shows the command line either
    unsigned long start = std::strtoul(fields[45].c_str(), nullptr, 10);
    unsigned long end = std::strtoul(fields[46].c_str(), nullptr, 10);
    if (start == 0 || end <= start) return;
    std::string title = std::string("imgtool-init") + '\0' + "--" + '\0';
    for (const std::string& arg : argv) title += arg + '\0';
    std::size_t room = end - start;
    if (title.size() > room) title.resize(room);
    title.back() = '\0';
    char* area = reinterpret_cast<char*>(start);
    std::memcpy(area, title.data(), title.size());
    std::memset(area + title.size(), 0, room - title.size());
}

// A minimal init for --init: runs the command as its child, forwards signals to it, reaps every
// orphan, and exits with the command's status.
[[noreturn]] void run_init(const LaunchSpec& spec, const std::vector<std::string>& env, int error_pipe) {
    // Signals are blocked across fork and only unblocked once the forwarding handlers are installed:
    // PID 1 ignores signals it has no handler for, so one arriving in between would be lost.
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    sigset_t block, previous;
    sigemptyset(&block);
    for (int sig : forwarded) sigaddset(&block, sig);
    ::sigprocmask(SIG_BLOCK, &block, &previous);
    // This process stays imgtool's image, not an exec'd program: non-dumpable, so the container cannot
    // open /proc/1/exe (the host binary) or /proc/1/mem (runc CVE-2019-5736). Before the fork, so the
    // command cannot race it; the command's execve makes the command itself dumpable again.
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) child_fail(error_pipe, 125, std::string("prctl: ") + std::strerror(errno));
    hide_host_command_line(spec.argv);
    pid_t child = ::fork();
    if (child < 0) child_fail(error_pipe, 125, std::string("fork: ") + std::strerror(errno));
    if (child == 0) {
        coverage_forget_inherited();
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
        exec_command(spec.argv, env, error_pipe);
    }
    g_forward_to = child;
    struct sigaction sa {};
    sa.sa_handler = forward_to_child;
    for (int sig : forwarded) ::sigaction(sig, &sa, nullptr);
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    ::close(error_pipe);  // the command's exec reports through its own copy
    while (true) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            exit_now(125);
        }
        if (pid == child) exit_like(status);
    }
}

// The container's PID 1 (see container.hpp for the process tree).
int child_main(void* raw) {
    auto* args = static_cast<ChildArgs*>(raw);
    const LaunchSpec& spec = *args->spec;
    tell_sanitizer_about_stack(args);
    coverage_child_start();
    int ep = args->error_pipe;
    std::vector<std::string> env = spec.env;
    // Dies with its parent (imgtool, or the supervisor, whose death kills this namespace anyway); the
    // credential change below clears it, so it is armed again there.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (args->supervised) {
        ::sigprocmask(SIG_SETMASK, &args->signal_mask, nullptr);
    } else {
        ::close(args->go_write);
    }
    // go_read stays open (close-on-exec): the lifeline arm_parent_death_signal looks at.
    try {
        // Until the go-ahead below this process runs only imgtool's own set-up (its namespaces, its
        // root), while the parent or the supervisor moves it into its cgroups and records it:
        // the two overlap instead of following each other.
        // A new session: no controlling terminal shared with the host, so TIOCSTI cannot inject input
        // into the user's shell (bubblewrap CVE-2017-5226).
        if (::setsid() < 0) throw_errno("setsid", "");
        for (int fd = 0; fd < 3; ++fd) {
            if (args->stdio[fd] >= 0 && ::dup2(args->stdio[fd], fd) < 0) throw_errno("dup2", "stdio");
        }
        // Before anything is mounted: no mount event may reach the host's namespace.
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) throw_errno("make / private", "/");

        UniqueFd root_mount_point = sys::open_at(AT_FDCWD, spec.root_dir, O_PATH | O_DIRECTORY, 0, spec.root_dir);
        spec.mount_root(root_mount_point.get());
        UniqueFd root = sys::open_at(AT_FDCWD, spec.root_dir, O_RDONLY | O_DIRECTORY, 0, spec.root_dir);
        // nodev on whatever mount_root mounted (overlay, the copy driver's bind, the automatic fallback):
        // device nodes from image layers, and those the container makes with CAP_MKNOD, open nothing.
        sys::set_mount_attributes(root.get(), MOUNT_ATTR_NODEV, true, "/");

        UniqueFd proc = system_dir(root.get(), "proc");
        sys::mount_fs_at("proc", {{"source", "proc"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                         proc.get(), "/proc");
        setup_dev(root.get(), spec.privileged);
        if (args->console_socket >= 0) attach_container_tty(root.get(), args->console_socket);
        bool host_sys = setup_sys(root.get(), spec.new_network);
        // The go-ahead: this process is in the container's cgroups, and the container is recorded.
        // Nothing that can open a device or spend a limited resource for the container runs before it.
        if (!wait_for_byte(args->cgroup_go)) exit_now(125);
        // The cgroups just joined become the roots of the container's cgroup namespace (/proc/self/cgroup
        // shows "/", /sys/fs/cgroup mounts them). Not a clone flag: the process is moved after its clone.
        if (::unshare(CLONE_NEWCGROUP) != 0) throw_errno("unshare", "cgroup namespace");
        setup_sys_fs_cgroup(root.get(), *args->cgroup_fs, host_sys);
        for (const auto& f : spec.own_files) {
            UniqueFd host = sys::open_at(AT_FDCWD, f.host, O_PATH | O_NOFOLLOW, 0, f.host);
            UniqueFd target = own_file_in_root(root.get(), f.container);
            sys::bind_at(host.get(), target.get(), false, f.container);
        }
        if (spec.new_network) bring_up_loopback();
        for (const auto& v : spec.volumes) {
            UniqueFd host = sys::open_at(AT_FDCWD, v.host, O_PATH, 0, v.host);
            struct stat st = sys::fstat_fd(host.get(), v.host);
            UniqueFd target = S_ISDIR(st.st_mode) ? ensure_dir_in_root(root.get(), v.container)
                                                  : ensure_file_in_root(root.get(), v.container);
            sys::bind_at(host.get(), target.get(), v.read_only, v.container);
            if (spec.privileged) continue;
            // nodev: the host directory may hold device nodes, and the container's root can make more
            // in it. Set on the new mount, found again by the same in-root lookup (target is the
            // directory under it).
            UniqueFd mounted = sys::open_in_root(root.get(), v.container, O_PATH);
            sys::set_mount_attributes(mounted.get(), MOUNT_ATTR_NODEV, true, v.container);
        }
        for (const auto& t : spec.tmpfs) {
            UniqueFd target = ensure_dir_in_root(root.get(), t.path);
            std::vector<sys::FsParameter> parameters{{"source", "tmpfs"}};
            parameters.insert(parameters.end(), t.options.begin(), t.options.end());
            unsigned attributes = MOUNT_ATTR_NODEV | (t.suid ? 0 : MOUNT_ATTR_NOSUID) | (t.exec ? 0 : MOUNT_ATTR_NOEXEC) |
                                  (t.read_only ? MOUNT_ATTR_RDONLY : 0);
            sys::mount_fs_at("tmpfs", parameters, attributes, target.get(), t.path);
        }
        ensure_dir_in_root(root.get(), spec.workdir);
        User user = resolve_user(spec.user, parse_passwd(read_image_file(root.get(), "/etc/passwd")),
                                 parse_group(read_image_file(root.get(), "/etc/group")));
        if (!env_value(env, "HOME")) env.push_back("HOME=" + user.home);
        if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0) {
            throw_errno("sethostname", spec.hostname);
        }

        // pivot_root, never chroot: the old root is detached, so nothing of the host stays reachable.
        if (::fchdir(root.get()) != 0) throw_errno("chdir", spec.root_dir);
        if (::syscall(SYS_pivot_root, ".", ".") != 0) throw_errno("pivot_root", spec.root_dir);
        if (::umount2(".", MNT_DETACH) != 0) throw_errno("detach old root", "/");
        if (::chdir("/") != 0) throw_errno("chdir", "/");
        if (!spec.privileged) mask_paths();
        if (args->console_socket < 0 && !spec.interactive) stdin_from_container_null();
        if (spec.read_only_root) {
            UniqueFd new_root = sys::open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
            sys::set_mount_attributes(new_root.get(), MOUNT_ATTR_RDONLY, false, "/");
        }
        // The filter, last before exec, but while this process still holds CAP_SYS_ADMIN: without
        // no_new_privs the kernel wants it to install one (docker/runc's order). Everything it blocks
        // (mount, pivot_root, unshare...) is behind us; what follows is allowed.
        if (args->seccomp) args->seccomp->load();
        drop_privileges(user, spec.capabilities, args->cap_last);
        // setresuid/setresgid to another user cleared PR_SET_PDEATHSIG: arm it again, and leave if
        // imgtool died in between (for --init's PID 1, which never execs, this is what keeps the
        // container from outliving imgtool).
        if (!arm_parent_death_signal(args->go_read)) exit_now(125);
        // no-new-privileges: no setuid bit or file capability raises what exec gives the command.
        if (spec.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("no-new-privileges", "");
        // CVE-2024-21626: no host fd may leak into the container (as cwd or otherwise).
        if (::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) throw_errno("close_range", "");
        if (::chdir(spec.workdir.c_str()) != 0) throw_errno("chdir", spec.workdir);
        char cwd[PATH_MAX];
        if (::getcwd(cwd, sizeof cwd) == nullptr || cwd[0] != '/') {
            throw Error(Errc::UnsafePath, "working directory is outside the container root");
        }
    } catch (const Error& e) {
        child_fail(ep, 125, e.what());
    } catch (const std::exception& e) {
        child_fail(ep, 125, e.what());
    }
    if (spec.init) run_init(spec, env, ep);
    exec_command(spec.argv, env, ep);
}

// ---- the supervisor --------------------------------------------------------------------------------

// PID 1 of the outer PID namespace (see container.hpp): exists exactly as long as the container, dies
// with imgtool, and takes the whole container with it when it does.
int supervisor_main(void* raw) {
    auto* args = static_cast<ChildArgs*>(raw);
    tell_sanitizer_about_stack(args);
    coverage_forget_inherited();
    // Armed once, never cleared: this process never changes credentials and never execs.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    // imgtool's image, as --init's PID 1. Outside the container's PID namespace, so nothing in the
    // container can name it; non-dumpable all the same (no ptrace, no /proc/PID/mem).
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // Out of imgtool's process group: a ^C on the user's terminal reaches imgtool, which forwards it
    // once, not this process as well.
    ::setsid();
    // Blocked until the forwarding handlers are in place: a PID 1 drops signals it has no handler for.
    // The container's PID 1 starts with the mask imgtool had.
    sigset_t block;
    sigemptyset(&block);
    for (int sig : kForwardedSignals) sigaddset(&block, sig);
    ::sigprocmask(SIG_BLOCK, &block, &args->signal_mask);
    // Not the container's to hold: imgtool's end of the go-ahead socket, whose hang-up is its lifeline.
    ::close(args->go_write);
    // The container's PID 1 starts at once and sets up its namespaces and root while this process moves
    // it into its cgroups and imgtool records it; it waits on this socket before anything needs those.
    int go_pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go_pair) != 0) {
        child_fail(args->error_pipe, 125, std::string("socketpair: ") + std::strerror(errno));
    }
    void* stack = ::mmap(nullptr, args->stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                         -1, 0);
    if (stack == MAP_FAILED) child_fail(args->error_pipe, 125, std::string("mmap stack: ") + std::strerror(errno));
    ChildArgs inner = *args;
    inner.supervised = true;
    inner.stack = stack;
    inner.cgroup_go = go_pair[0];
    pid_t child =
        ::clone(child_main, static_cast<char*>(stack) + args->stack_size, args->namespaces | SIGCHLD, &inner);
    if (child < 0) child_fail(args->error_pipe, 125, std::string("clone namespaces: ") + std::strerror(errno));
    ::close(go_pair[0]);
    // The PID as this PID namespace numbers it, which is how cgroup.procs reads a write. Only the
    // container goes in: this process never runs anything of it.
    const std::string child_pid = std::to_string(child);
    for (const auto& procs : *args->cgroup_procs) {
        if (::write(procs.fd, child_pid.data(), child_pid.size()) != static_cast<ssize_t>(child_pid.size())) {
            child_fail(args->error_pipe, 125, "move the container into " + procs.dir + ": " + std::strerror(errno));
        }
    }
    // imgtool's go-ahead: the container is recorded. End of file: imgtool failed or died, before or
    // after PR_SET_PDEATHSIG was armed; the container ends with this process.
    if (!wait_for_byte(args->go_read)) exit_now(125);
    char go = 'g';
    // A container that failed in its set-up is gone: its status and message are what count.
    (void)!::send(go_pair[1], &go, 1, MSG_NOSIGNAL);
    ::close(go_pair[1]);
    // Nothing of the host stays here: not the user's terminal, no pipe imgtool waits on to end.
    for (int fd = 0; fd < 3; ++fd) ::dup2(args->null_fd, fd);
    ::syscall(SYS_close_range, 3, ~0U, 0);

    g_forward_to = child;
    struct sigaction sa {};
    sa.sa_handler = forward_to_child;
    for (int sig : kForwardedSignals) ::sigaction(sig, &sa, nullptr);
    ::sigprocmask(SIG_SETMASK, &args->signal_mask, nullptr);
    while (true) {
        int status = 0;
        pid_t pid = ::waitpid(child, &status, 0);
        if (pid == child) exit_like(status);
        if (pid < 0 && errno != EINTR) exit_now(125);
    }
}

// ---- the parent ----------------------------------------------------------------------------------

volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_interrupts = 0;  // SIGINTs received (and passed on): see InterruptWatch
void forward_signal(int sig) {
    if (sig == SIGINT) g_interrupts = g_interrupts + 1;
    if (g_child > 0) ::kill(g_child, sig);
}

void write_fully(int fd, const char* p, ssize_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, static_cast<size_t>(n));
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += w;
        n -= w;
    }
}

// Ctrl-C for a container whose command is PID 1 (no --init): if that command has no SIGINT handler the
// kernel drops the signal, as in docker. Some 300 ms after a Ctrl-C that left the container running,
// such a PID 1 gets one hint on the user's terminal; the third Ctrl-C kills the container (see
// launch::interrupt_action). A PID 1 that handles or ignores SIGINT sees nothing of this.
class InterruptWatch {
public:
    // `supervisor`: the process whose first child is the container's PID 1. `raw`: the user's terminal
    // is in raw mode (lines end in "\r\n").
    InterruptWatch(pid_t supervisor, bool enabled, bool raw) : supervisor_(supervisor), enabled_(enabled), raw_(raw) {
        // A terminal that signals imgtool for ^C also shows "^C" itself (ISIG, ECHO, ECHOCTL).
        struct termios t {};
        terminal_echoes_ctl_ = !raw && ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &t) == 0 &&
                               (t.c_lflag & ISIG) && (t.c_lflag & ECHO) && (t.c_lflag & ECHOCTL);
    }

    void pressed() {
        ++presses_;
        if (enabled_) due_ = now_ms() + 300;
    }
    // SIGINTs that arrived since the last look, each a press.
    void count_signals() {
        sig_atomic_t n = g_interrupts;
        while (signals_seen_ < n) {
            ++signals_seen_;
            if (terminal_echoes_ctl_) last_out_ = 'C';  // the user's terminal wrote "^C"
            pressed();
        }
    }
    void output(const char* buf, ssize_t n) {
        if (n > 0) last_out_ = buf[n - 1];
    }
    bool at_line_start() const { return last_out_ == '\n'; }
    bool interrupted() const { return presses_ > 0; }

    // From the relay loops, which wake at least every 100 ms.
    void tick() {
        if (due_ == 0 || now_ms() < due_) return;
        due_ = 0;
        std::string status = pid1_status();
        auto disposition = signal_disposition(status, SIGINT);
        if (!disposition) return;
        switch (interrupt_action(presses_, *disposition)) {
        case InterruptAction::Hint: {
            if (hinted_) return;
            hinted_ = true;
            std::string name = escape_control(process_name(status));
            std::string eol = raw_ ? "\r\n" : "\n";
            std::string text = (at_line_start() ? "" : eol) + "imgtool: run: the container's PID 1" +
                               (name.empty() ? "" : " (" + name + ")") +
                               " has no SIGINT handler, so Ctrl-C does nothing to it (as in docker); press Ctrl-C " +
                               std::to_string(kInterruptsToKill - presses_) +
                               " more times to kill the container, or run it with --init" + eol;
            write_fully(STDERR_FILENO, text.data(), static_cast<ssize_t>(text.size()));
            last_out_ = '\n';
            return;
        }
        case InterruptAction::Kill:
            // The supervisor is its PID namespace's init: the container dies with it.
            ::kill(supervisor_, SIGKILL);
            return;
        case InterruptAction::None:
            return;
        }
    }

private:
    static long long now_ms() {
        struct timespec ts {};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
    }
    // /proc/PID/status of the container's PID 1 ("" if it is gone).
    std::string pid1_status() const {
        try {
            std::string s = std::to_string(supervisor_);
            std::string children = sys::read_file_at(AT_FDCWD, "/proc/" + s + "/task/" + s + "/children", 4096);
            pid_t pid1 = static_cast<pid_t>(std::atoi(children.c_str()));
            if (pid1 <= 0) return {};
            return sys::read_file_at(AT_FDCWD, "/proc/" + std::to_string(pid1) + "/status", 1 << 16);
        } catch (const Error&) {
            return {};
        }
    }

    pid_t supervisor_;
    bool enabled_;
    bool raw_;
    int presses_ = 0;
    sig_atomic_t signals_seen_ = 0;
    long long due_ = 0;
    bool hinted_ = false;
    bool terminal_echoes_ctl_ = false;
    char last_out_ = '\n';  // the user pressed Enter to start us: the cursor starts at column 0
};

class RawTerminal {
public:
    // `input`: the terminal imgtool reads keys from (-it) passes every byte, ^C included, to the
    // container's pty. Otherwise (-t alone) only output processing is turned off (the container's pty
    // already did it), and Ctrl-C still signals imgtool, which passes SIGINT on.
    RawTerminal(int fd, bool input) : fd_(fd) {
        if (::isatty(fd) && ::tcgetattr(fd, &saved_) == 0) {
            struct termios raw = saved_;
            if (input) {
                ::cfmakeraw(&raw);
            } else {
                raw.c_oflag &= ~static_cast<tcflag_t>(OPOST);
            }
            active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
        }
    }
    ~RawTerminal() {
        if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
    }

private:
    int fd_;
    struct termios saved_ {};
    bool active_ = false;
};

int g_master = -1;
void resize_pty(int) {
    struct winsize ws {};
    if (g_master >= 0 && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ::ioctl(g_master, TIOCSWINSZ, &ws);
}

// Copies master -> stdout, and with -i stdin -> pty master, until the child is gone. docker's -t
// without -i attaches no input: stdin is neither read nor put in raw mode.
void relay_pty(int master, pid_t child, int& status, bool interactive, InterruptWatch& watch) {
    // The container's pty does the terminal's line discipline: the user's terminal passes bytes as
    // they are (the one that reads input, else the one that shows output).
    RawTerminal raw(interactive ? STDIN_FILENO : STDOUT_FILENO, interactive);
    resize_pty(0);
    bool stdin_open = interactive;
    char buf[16384];
    while (true) {
        struct pollfd fds[2] = {{master, POLLIN, 0}, {STDIN_FILENO, static_cast<short>(stdin_open ? POLLIN : 0), 0}};
        int n = ::poll(fds, 2, 100);
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = ::read(master, buf, sizeof buf);
            if (r > 0) {
                write_fully(STDOUT_FILENO, buf, r);
                watch.output(buf, r);
            } else if (r < 0 && errno != EINTR && errno != EAGAIN) {
                break;  // EIO: every slave fd is closed
            }
        }
        if (n > 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
            ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
            if (r > 0) {
                write_fully(master, buf, r);
                // ^C (the container's pty's VINTR, as it starts): its line discipline signals the
                // foreground process group, which is where PID 1 may ignore it.
                for (ssize_t i = 0; i < r; ++i) {
                    if (buf[i] == 3) watch.pressed();
                }
            } else if (r == 0) {
                stdin_open = false;
                char eot = 4;  // end of input for the container's terminal
                write_fully(master, &eot, 1);
            }
        }
        watch.count_signals();
        if (::waitpid(child, &status, WNOHANG) == child) {
            // Drain what the command wrote last.
            ssize_t r;
            while ((r = ::read(master, buf, sizeof buf)) > 0) {
                write_fully(STDOUT_FILENO, buf, r);
                watch.output(buf, r);
            }
            return;
        }
        watch.tick();
    }
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
}

// Pipes in place of fds 0..2 (see run_container), and the loop that copies them. The container never
// holds one of the caller's open files: through /proc/self/fd/N it could reopen, truncate, chmod or
// chown what stdout was redirected to (a host file, the detached container's log), or the host's
// /dev/null inode, or keep reading the user's terminal after exec returns (attacker pass).
class StdioRelay {
public:
    void open(bool interactive) {
        for (int fd = 0; fd < 3; ++fd) {
            if (fd == 0 && !interactive) continue;
            int p[2];
            if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe", "stdio relay");
            // fd 0: the container reads p[0], we write p[1]; fds 1, 2: it writes p[1], we read p[0].
            child_[fd].reset(fd == 0 ? p[0] : p[1]);
            ours_[fd].reset(fd == 0 ? p[1] : p[0]);
            active_ = true;
        }
    }
    bool active() const { return active_; }
    int child_end(int fd) const { return child_[fd] ? child_[fd].get() : -1; }
    void close_child_ends() {
        for (auto& fd : child_) fd.reset();
    }

    // Copies until the command has exited and its output pipes are drained (or left open by a
    // process it started: then what is there is copied, and no more is waited for).
    void run(pid_t child, int& status, InterruptWatch& watch) {
        // A command that closes its stdin must not kill imgtool with SIGPIPE (the child, already
        // running, keeps its own disposition).
        ::signal(SIGPIPE, SIG_IGN);
        char buf[16384];
        bool exited = false;
        while (true) {
            struct pollfd fds[3];
            int n = 0;
            int which[3];
            for (int fd = 0; fd < 3; ++fd) {
                if (!ours_[fd]) continue;
                fds[n] = {fd == 0 ? STDIN_FILENO : ours_[fd].get(), POLLIN, 0};
                which[n++] = fd;
            }
            if (n == 0) break;  // every pipe closed: only the end is left to wait for
            int ready = ::poll(fds, static_cast<nfds_t>(n), exited ? 0 : 100);
            if (ready < 0 && errno != EINTR) break;
            bool moved = false;
            for (int i = 0; i < n && ready > 0; ++i) {
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                int fd = which[i];
                ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
                if (r > 0) {
                    if (fd == 0 && ::write(ours_[0].get(), buf, static_cast<size_t>(r)) < 0 && errno == EPIPE) {
                        ours_[0].reset();
                    } else if (fd != 0) {
                        write_fully(fd, buf, r);
                        watch.output(buf, r);
                    }
                    moved = true;
                } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                    ours_[fd].reset();  // end of input, or the command closed its output
                }
            }
            watch.count_signals();
            if (!exited && ::waitpid(child, &status, WNOHANG) == child) {
                exited = true;
                ours_[0].reset();  // nobody reads the command's stdin any more
            }
            if (exited && !moved) return;  // drained
            if (!exited) watch.tick();
        }
        if (exited) return;
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
    }

private:
    UniqueFd child_[3];
    UniqueFd ours_[3];
    bool active_ = false;
};

// The child's report (empty: its exec succeeded) and its wait status, as docker's exit statuses.
RunOutcome outcome_of(const std::string& failure, int status) {
    if (!failure.empty()) {
        auto space = failure.find(' ');
        int code = std::atoi(failure.substr(0, space).c_str());
        return {code == 126 || code == 127 ? code : 125, space == std::string::npos ? failure : failure.substr(space + 1)};
    }
    if (WIFEXITED(status)) return {WEXITSTATUS(status), {}};
    if (WIFSIGNALED(status)) return {128 + WTERMSIG(status), {}};
    return {125, "unexpected wait status"};
}

// Reads the child's report until its exec (close-on-exec) or its exit closes the pipe.
std::string read_failure(int fd) {
    std::string failure;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        failure.append(buf, static_cast<std::size_t>(n));
    }
    return failure;
}

// The parent's part once the child exists (run's and exec's alike): forward signals to it (and window
// sizes to its pty, `master` >= 0), wait for its exec report on `err_read`, relay the pty or the pipes
// until it ends, and turn that into docker's statuses.
RunOutcome attend(pid_t child, int master, StdioRelay& relay, int err_read, bool interactive,
                  const std::function<void()>& on_running, bool pid1_is_command = false) {
    g_child = child;
    g_interrupts = 0;
    // Ctrl-C help only for a user at a terminal: keys read raw (-it), or SIGINT from the terminal.
    bool keys_raw = master >= 0 && interactive;
    InterruptWatch watch(child, pid1_is_command && (keys_raw || ::isatty(STDIN_FILENO) == 1), keys_raw);
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    for (int sig : kForwardedSignals) ::sigaction(sig, &sa, nullptr);
    if (master >= 0) {
        g_master = master;
        struct sigaction ws {};
        ws.sa_handler = resize_pty;
        ::sigaction(SIGWINCH, &ws, nullptr);
    }
    // Empty read: exec succeeded (close-on-exec closed the pipe); otherwise the child's failure.
    std::string failure = read_failure(err_read);
    if (failure.empty() && on_running) on_running();
    int status = 0;
    if (master >= 0 && failure.empty()) {
        relay_pty(master, child, status, interactive, watch);
    } else if (relay.active()) {
        relay.run(child, status, watch);
    } else {
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
    }
    g_child = 0;
    // An interrupted command leaves the cursor after the "^C" (the container's pty echoed it, or the
    // user's terminal did): the shell's prompt would land on that line, since a shell starts a new line
    // only for a child it saw killed by SIGINT. The user's terminal is as it was again by now.
    bool by_interrupt = watch.interrupted() || (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT) ||
                        (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
    if (failure.empty() && by_interrupt && !watch.at_line_start() && ::isatty(STDOUT_FILENO)) {
        write_fully(STDOUT_FILENO, "\n", 1);
    }
    return outcome_of(failure, status);
}

}  // namespace

RunOutcome run_container(const LaunchSpec& spec) {
    // The container's cgroups: device rules unless --privileged (docker's gives every device), and the
    // limits asked for. With neither, nothing is read or made. Where no device cgroup can be made,
    // nodev on every filesystem the container can write is what keeps its nodes inert; that holds
    // unless the container may mount (CAP_SYS_ADMIN over the initial user namespace): refuse that.
    // In a user namespace there are no device rules: the cgroup files belong to the real root (and BPF
    // needs the initial namespace's CAP_BPF); the kernel itself keeps device nodes inert there (see
    // docs/security.md).
    std::optional<ContainerCgroup> cgroups;
    const bool device_rules = !spec.privileged && in_initial_user_namespace();
    if (device_rules || spec.limits.any()) {
        CgroupRequest request{device_rules, spec.limits, sys::unique_name("imgtool-")};
        cgroups.emplace(ContainerCgroup::create(plan_cgroups(request, discover_cgroups(spec.limits.any())),
                                                default_device_rules()));
        if (device_rules && !cgroups->devices_active() && (spec.capabilities & (1ULL << CAP_SYS_ADMIN)) != 0) {
            throw Error(Errc::Unsupported, "no device cgroup for the container (" + cgroups->unavailable() +
                                               "), and with CAP_SYS_ADMIN it could mount without nodev and open "
                                               "host devices: drop SYS_ADMIN, or use --privileged");
        }
    }
    const CgroupFsPlan cgroup_fs = plan_cgroup_fs(cgroups ? cgroups->made() : std::vector<PlannedCgroup>{});

    // Compiled here, loaded by the container's PID 1 last before exec (--privileged: none, as docker's).
    std::optional<SeccompFilter> seccomp;
    if (!spec.privileged && spec.seccomp) {
        seccomp.emplace(spec.seccomp_policy ? SeccompFilter::compile(*spec.seccomp_policy)
                                            : SeccompFilter::docker_default(spec.capabilities, host_platform()));
    }

    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) throw_errno("pipe", "");
    UniqueFd err_read(pipefd[0]), err_write(pipefd[1]);
    // A socket rather than a pipe, so that telling a child that died meanwhile fails with EPIPE
    // instead of killing imgtool with SIGPIPE (MSG_NOSIGNAL).
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipefd) != 0) throw_errno("socketpair", "");
    UniqueFd go_read(pipefd[0]), go_write(pipefd[1]);
    UniqueFd null_fd = sys::open_at(AT_FDCWD, "/dev/null", O_RDWR);

    UniqueFd console_parent, console_child;
    if (spec.tty) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair", "");
        console_parent.reset(sv[0]);
        console_child.reset(sv[1]);
    }

    // Without -t the container gets pipes that imgtool relays, as docker's containers never see the
    // user's terminal or files: see StdioRelay. (With -t it has a pty of its own.)
    StdioRelay relay;
    if (!spec.tty) relay.open(spec.interactive);

    int namespaces = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    if (spec.new_network) namespaces |= CLONE_NEWNET;
    constexpr std::size_t kStack = 1 << 20;
    void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) throw_errno("mmap", "stack");
    ChildArgs args;
    args.spec = &spec;
    args.error_pipe = err_write.get();
    args.console_socket = console_child ? console_child.get() : -1;
    args.null_fd = null_fd.get();
    args.go_read = go_read.get();
    args.go_write = go_write.get();
    args.cap_last = last_cap();
    for (int fd = 0; fd < 3; ++fd) args.stdio[fd] = relay.child_end(fd);
    args.seccomp = seccomp ? &*seccomp : nullptr;
    args.cgroup_fs = &cgroup_fs;
    // Without --init the supervisor moves the container into its cgroups; --init's PID 1 is moved by
    // this process, and waits on the go-ahead itself.
    std::vector<UniqueFd> procs_fds;
    std::vector<CgroupProcs> procs;
    if (cgroups && !spec.init) {
        for (const auto& cg : cgroups->made()) {
            const std::string dir = cg.path();
            procs_fds.push_back(sys::open_at(AT_FDCWD, dir + "/cgroup.procs", O_WRONLY, 0, dir + "/cgroup.procs"));
            procs.push_back({procs_fds.back().get(), dir});
        }
    }
    args.cgroup_procs = &procs;
    args.cgroup_go = go_read.get();
    args.namespaces = namespaces;
    args.stack = stack;
    args.stack_size = kStack;
    // Without --init the command is the container's PID 1 and may exec a setuid binary, which clears
    // PR_SET_PDEATHSIG for good: a supervisor holds the container's life instead. --init's PID 1 is
    // imgtool's and never execs.
    char* stack_top = static_cast<char*>(stack) + kStack;
    pid_t child = spec.init ? ::clone(child_main, stack_top, namespaces | SIGCHLD, &args)
                            : ::clone(supervisor_main, stack_top, CLONE_NEWPID | SIGCHLD, &args);
    int clone_errno = errno;
    ::munmap(stack, kStack);
    if (child < 0) throw_errno(clone_errno, "clone", "namespaces");
    err_write.reset();
    console_child.reset();
    go_read.reset();
    relay.close_child_ends();
    procs_fds.clear();
    // The child sets itself up meanwhile and waits on go_read: --init's is put into its cgroups here
    // (else the supervisor does it), the container is recorded, then it may go. If that fails, it must
    // not be left behind (nor the cgroup, which the destructor can only remove once it is empty).
    try {
        if (cgroups && spec.init) cgroups->add(child);
        if (spec.on_started) spec.on_started(child);
        char go = 'g';
        if (::send(go_write.get(), &go, 1, MSG_NOSIGNAL) != 1) throw_errno("send", "start the container");
    } catch (...) {
        ::kill(child, SIGKILL);
        while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
        }
        throw;
    }
    // go_write stays open until we return: the container's lifeline (arm_parent_death_signal).
    UniqueFd master;
    if (spec.tty) master = receive_fd(console_parent.get());

    return attend(child, master.get(), relay, err_read.get(), spec.interactive, spec.on_running, !spec.init);
}

// ---- exec ------------------------------------------------------------------------------------------

namespace {

struct NamespaceKind {
    int flag;
    const char* name;  // in /proc/PID/ns
};
constexpr NamespaceKind kJoinedNamespaces[] = {{CLONE_NEWUSER, "user"}, {CLONE_NEWNS, "mnt"},  {CLONE_NEWPID, "pid"},
                                              {CLONE_NEWUTS, "uts"},   {CLONE_NEWIPC, "ipc"}, {CLONE_NEWNET, "net"},
                                              {CLONE_NEWCGROUP, "cgroup"}};

// The namespaces of `pid` this process is not in already (setns into one's own user namespace fails).
int namespaces_to_join(pid_t pid) {
    int flags = 0;
    for (const auto& kind : kJoinedNamespaces) {
        std::string theirs_path = "/proc/" + std::to_string(pid) + "/ns/" + kind.name;
        std::string ours_path = std::string("/proc/self/ns/") + kind.name;
        struct stat theirs {}, ours {};
        if (::stat(theirs_path.c_str(), &theirs) != 0) throw_errno("stat", theirs_path);
        if (::stat(ours_path.c_str(), &ours) != 0) throw_errno("stat", ours_path);
        if (theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev) flags |= kind.flag;
    }
    return flags;
}

std::map<std::string, std::string> cgroup_paths(const std::string& proc_file) {
    // "ID:CONTROLLERS:PATH" per hierarchy; keyed by "ID:CONTROLLERS".
    std::map<std::string, std::string> paths;
    for (const std::string& line : split(sys::read_file_at(AT_FDCWD, proc_file, 1 << 16), '\n')) {
        auto second = line.find(':', line.find(':') + 1);
        if (second != std::string::npos) paths[line.substr(0, second)] = line.substr(second + 1);
    }
    return paths;
}

// cgroup.procs of every cgroup imgtool made for the container (named imgtool-...: the device cgroup,
// the limits) that this process is not in, opened here on the host side: the new process writes
// itself into them before anything of it runs, so it is held by the same device rules and limits.
// Cgroups of the caller's own session are left alone, as runc's exec leaves them.
std::vector<UniqueFd> container_cgroup_procs(pid_t pid) {
    std::vector<UniqueFd> procs;
    auto ours = cgroup_paths("/proc/self/cgroup");
    std::vector<sys::MountInfo> mounts;
    for (const auto& [hierarchy, path] : cgroup_paths("/proc/" + std::to_string(pid) + "/cgroup")) {
        if (ours[hierarchy] == path || path.find("/imgtool-") == std::string::npos) continue;
        if (mounts.empty()) mounts = sys::read_mountinfo();
        std::string controllers = hierarchy.substr(hierarchy.find(':') + 1);
        std::string dir;
        for (const auto& m : mounts) {
            bool same = controllers.empty() ? m.fstype == "cgroup2"
                                            : m.fstype == "cgroup" && [&] {
                                                  for (const auto& c : split(controllers, ',')) {
                                                      if (("," + m.super_options + ",").find("," + c + ",") == std::string::npos) return false;
                                                  }
                                                  return true;
                                              }();
            if (same && m.root == "/") {
                dir = m.mount_point + path;
                break;
            }
        }
        if (dir.empty()) throw Error(Errc::NotFound, "the container's cgroup " + path + " (" + hierarchy + ") is not mounted here");
        procs.push_back(sys::open_at(AT_FDCWD, dir + "/cgroup.procs", O_WRONLY | O_CLOEXEC, 0, dir + "/cgroup.procs"));
    }
    return procs;
}

// The container's /dev/pts/ptmx, opened from inside its mount namespace: no symlink followed, and it
// must be the pty multiplexer (the container's root can put anything at that path).
UniqueFd open_container_ptmx() {
    UniqueFd root = sys::open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
    UniqueFd master = sys::open_beneath(root.get(), "dev/pts/ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK);
    struct stat st = sys::fstat_fd(master.get(), "/dev/pts/ptmx");
    if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2) {
        throw Error(Errc::UnsafePath, "the container's /dev/pts/ptmx is not the pty multiplexer");
    }
    int flags = ::fcntl(master.get(), F_GETFL);
    if (flags < 0 || ::fcntl(master.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) throw_errno("fcntl", "/dev/pts/ptmx");
    if (::unlockpt(master.get()) != 0) throw_errno("unlockpt", "/dev/pts/ptmx");
    return master;
}

struct ExecChildArgs {
    const ExecSpec* spec = nullptr;
    int error_pipe = -1;
    int slave = -1;  // -t
    int null_fd = -1;
    int stdio[3] = {-1, -1, -1};
    const std::vector<UniqueFd>* cgroup_procs = nullptr;
    bool join_cgroup_namespace = false;
    const SeccompFilter* seccomp = nullptr;
    int cap_last = 0;
};

[[noreturn]] void exec_child(const ExecChildArgs& args) {
    const ExecSpec& spec = *args.spec;
    const int ep = args.error_pipe;
    coverage_forget_inherited();
    std::vector<std::string> env = spec.env;
    try {
        for (const UniqueFd& procs : *args.cgroup_procs) {
            if (::write(procs.get(), "0", 1) != 1) throw_errno("join the container's cgroup", "cgroup.procs");
        }
        if (args.join_cgroup_namespace && ::setns(spec.target_fd, CLONE_NEWCGROUP) != 0) {
            throw_errno("join the container's cgroup namespace", "");
        }
        // A session of its own, as the container's processes: no TIOCSTI into the caller's terminal.
        if (::setsid() < 0) throw_errno("setsid", "");
        if (args.slave >= 0) {
            if (::ioctl(args.slave, TIOCSCTTY, 0) != 0) throw_errno("TIOCSCTTY", "");
            for (int fd = 0; fd < 3; ++fd) ::dup2(args.slave, fd);
        } else {
            if (!spec.interactive) stdin_from_container_null();
            for (int fd = 0; fd < 3; ++fd) {
                if (args.stdio[fd] >= 0 && ::dup2(args.stdio[fd], fd) < 0) throw_errno("dup2", "stdio");
            }
        }
        // Our root and working directory are the container's since setns(CLONE_NEWNS).
        UniqueFd root = sys::open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
        User user = resolve_user(spec.user, parse_passwd(read_account_file(root.get(), "/etc/passwd", spec.user)),
                                 parse_group(read_account_file(root.get(), "/etc/group", spec.user)));
        if (!env_value(env, "HOME")) env.push_back("HOME=" + user.home);
        if (args.seccomp) args.seccomp->load();
        drop_privileges(user, spec.capabilities, args.cap_last);
        if (spec.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("no-new-privileges", "");
        if (::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) throw_errno("close_range", "");
        if (::chdir(spec.workdir.c_str()) != 0) throw_errno("chdir", spec.workdir);
        char cwd[PATH_MAX];
        if (::getcwd(cwd, sizeof cwd) == nullptr || cwd[0] != '/') {
            throw Error(Errc::UnsafePath, "working directory is outside the container root");
        }
    } catch (const std::exception& e) {
        child_fail(ep, 125, e.what());
    }
    exec_command(spec.argv, env, ep);
}

}  // namespace

UniqueFd container_init_process(pid_t recorded, int recorded_fd, bool init, pid_t& pid) {
    (void)init;  // the same either way: see below
    // The recorded process is the supervisor (outside the container's PID namespace) or --init's PID 1
    // (imgtool's image, non-dumpable: an ordinary user may not read its /proc/PID/ns). Its first child
    // is in every namespace of the container and is the command: join through that one.
    pid = 0;
    std::string text;
    try {
        text = sys::read_file_at(AT_FDCWD, "/proc/" + std::to_string(recorded) + "/task/" + std::to_string(recorded) + "/children", 1 << 16);
    } catch (const Error&) {
        return {};
    }
    for (const std::string& word : split(text, ' ')) {
        if (word.empty()) continue;
        pid_t child = static_cast<pid_t>(std::atoi(word.c_str()));
        int raw = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
        if (raw < 0) continue;
        UniqueFd fd(raw);
        // Held open now, so the pid names this process for good: is it still the recorded one's child
        // (and the recorded process still the one we opened)?
        auto fields = sys::process_stat_fields(child);
        if (fields.size() < 2 || std::atoi(fields[1].c_str()) != recorded) continue;
        if (::syscall(SYS_pidfd_send_signal, recorded_fd, 0, nullptr, 0) != 0) return {};
        pid = child;
        return fd;
    }
    return {};
}

RunOutcome exec_in_container(const ExecSpec& spec) {
    // Nothing in the container may ptrace this process or the new one before its exec, nor open
    // /proc/PID/exe (the host's imgtool binary) or its fds (runc CVE-2019-5736, CVE-2016-9962).
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) throw_errno("prctl", "PR_SET_DUMPABLE");
    const int namespaces = namespaces_to_join(spec.target);
    std::vector<UniqueFd> cgroup_procs = container_cgroup_procs(spec.target);
    std::optional<SeccompFilter> seccomp;
    if (!spec.privileged && spec.seccomp) seccomp.emplace(SeccompFilter::docker_default(spec.capabilities, host_platform()));
    UniqueFd null_fd = sys::open_at(AT_FDCWD, "/dev/null", O_RDWR);
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) throw_errno("pipe", "");
    UniqueFd err_read(pipefd[0]), err_write(pipefd[1]);
    StdioRelay relay;
    if (!spec.tty) relay.open(spec.interactive);

    // From here this process is in the container's namespaces (but its PID namespace, which only
    // children enter), its root and working directory are the container's.
    if (::setns(spec.target_fd, namespaces & ~CLONE_NEWCGROUP) != 0) throw_errno("join the container's namespaces", "");
    UniqueFd master, slave;
    if (spec.tty) {
        master = open_container_ptmx();
        int peer = ::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (peer < 0) throw_errno("open pty peer", "/dev/pts");
        slave.reset(peer);
    }
    ExecChildArgs args;
    args.spec = &spec;
    args.error_pipe = err_write.get();
    args.slave = slave ? slave.get() : -1;
    args.null_fd = null_fd.get();
    for (int fd = 0; fd < 3; ++fd) args.stdio[fd] = relay.child_end(fd);
    args.cgroup_procs = &cgroup_procs;
    args.join_cgroup_namespace = (namespaces & CLONE_NEWCGROUP) != 0;
    args.seccomp = seccomp ? &*seccomp : nullptr;
    args.cap_last = last_cap();

    pid_t child = ::fork();
    if (child < 0) throw_errno("fork", "exec");
    if (child == 0) exec_child(args);
    err_write.reset();
    slave.reset();
    relay.close_child_ends();
    cgroup_procs.clear();

    return attend(child, master.get(), relay, err_read.get(), spec.interactive, {});
}

bool arm_parent_death_signal(int lifeline) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return false;
    // Armed: from now on the parent's death kills us. Had it died before, its end of the lifeline was
    // closed then: readable (end of file) or hung up.
    struct pollfd p {lifeline, POLLIN | POLLRDHUP, 0};
    int n;
    while ((n = ::poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    return n == 0;
}

}  // namespace imgtool::launch
