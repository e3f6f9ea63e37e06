#include "device_cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <sstream>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mountinfo.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::launch {
namespace {

using sys::UniqueFd;

constexpr const char* kPrefix = "imgtool-";

std::string errno_text(const std::string& operation, const std::string& path, int err) {
    return operation + " `" + path + "`: " + std::strerror(err);
}

// Where imgtool's own cgroup is on the devices-capable hierarchies ("" where there is none).
struct OwnCgroups {
    std::string v1_devices;
    std::string v2;
};

bool has_token(const std::string& list, std::string_view token) {
    for (const auto& t : split(list, ',')) {
        if (t == token) return true;
    }
    return false;
}

// Our cgroup `path` seen through mount `m` (which may mount a subtree of the hierarchy).
std::string path_under(const sys::MountInfo& m, const std::string& path) {
    if (m.root == "/") return m.mount_point + (path == "/" ? "" : path);
    if (path == m.root) return m.mount_point;
    if (path.compare(0, m.root.size() + 1, m.root + "/") == 0) return m.mount_point + path.substr(m.root.size());
    return {};  // our cgroup is not visible through this mount
}

OwnCgroups own_cgroups() {
    std::string v1_path, v2_path;
    std::istringstream lines(sys::read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16));
    for (std::string line; std::getline(lines, line);) {
        // "ID:CONTROLLERS:PATH"; cgroup v2 is "0::PATH".
        auto first = line.find(':');
        auto second = first == std::string::npos ? first : line.find(':', first + 1);
        if (second == std::string::npos) continue;
        std::string id = line.substr(0, first), controllers = line.substr(first + 1, second - first - 1);
        std::string path = line.substr(second + 1);
        if (id == "0" && controllers.empty()) {
            v2_path = path;
        } else if (has_token(controllers, "devices")) {
            v1_path = path;
        }
    }
    OwnCgroups own;
    for (const auto& m : sys::read_mountinfo()) {
        if (own.v2.empty() && !v2_path.empty() && m.fstype == "cgroup2") own.v2 = path_under(m, v2_path);
        if (own.v1_devices.empty() && !v1_path.empty() && m.fstype == "cgroup" && has_token(m.super_options, "devices")) {
            own.v1_devices = path_under(m, v1_path);
        }
    }
    return own;
}

// An imgtool killed with SIGKILL cannot remove its cgroup (its container died with it, through the
// supervisor's or --init's PR_SET_PDEATHSIG and the end of its PID namespace, so the cgroup is empty). Its name carries the creator's pid: remove those whose
// creator is gone. rmdir only ever removes an empty cgroup, so a live container's is safe anyway.
void remove_stale(int parent_fd, const std::string& parent) {
    for (const auto& name : sys::list_directory(parent_fd, parent)) {
        if (name.compare(0, std::strlen(kPrefix), kPrefix) != 0) continue;
        long pid = std::atol(name.c_str() + std::strlen(kPrefix));
        if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
            ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR);
        }
    }
}

// mkdir PARENT/NAME; an empty fd (and `why`) when the hierarchy does not let us.
UniqueFd make_cgroup(const std::string& parent, const std::string& name, std::string& why) {
    int raw = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (raw < 0) {
        why = errno_text("open", parent, errno);
        return {};
    }
    UniqueFd parent_fd(raw);
    remove_stale(parent_fd.get(), parent);
    // EROFS (read-only cgroupfs), EACCES/EPERM (not ours to manage): the caller decides what that means.
    if (::mkdirat(parent_fd.get(), name.c_str(), 0755) != 0) {
        why = errno_text("mkdir", parent + "/" + name, errno);
        return {};
    }
    return sys::open_at(parent_fd.get(), name, O_RDONLY | O_DIRECTORY, 0, parent + "/" + name);
}

// Writes one control file of the cgroup open as dir_fd; 0 or the errno.
int write_control(int dir_fd, const char* file, const std::string& text) {
    int raw = ::openat(dir_fd, file, O_WRONLY | O_CLOEXEC);
    if (raw < 0) return errno;
    UniqueFd fd(raw);
    return ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno;
}

void restrict_v1(int dir_fd, const std::string& dir, const std::vector<DeviceRule>& allow) {
    // "a" in devices.deny: deny by default and forget the allow-all inherited from the parent.
    if (int err = write_control(dir_fd, "devices.deny", "a")) throw_errno(err, "write a to", dir + "/devices.deny");
    for (const auto& rule : allow) {
        std::string line = device_rule_line(rule);
        // EPERM: the parent cgroup does not allow it either (imgtool itself runs in a restricted
        // cgroup), so the container would not get it anyway.
        int err = write_control(dir_fd, "devices.allow", line);
        if (err != 0 && err != EPERM) throw_errno(err, "write " + line + " to", dir + "/devices.allow");
    }
}

// Loads the allow list as a BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to the cgroup open as
// cgroup_fd. Returns "" or why the kernel refused (then nothing is attached).
std::string attach_device_filter(int cgroup_fd, const std::vector<DeviceRule>& allow) {
    std::vector<struct bpf_insn> prog = device_filter_program(allow);
    // The license only decides which kernel helpers a program may call; this one calls none.
    static const char license[] = "GPL";
    union bpf_attr load {};
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = reinterpret_cast<std::uintptr_t>(prog.data());
    load.insn_cnt = static_cast<std::uint32_t>(prog.size());
    load.license = reinterpret_cast<std::uintptr_t>(license);
    int raw = static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load));
    if (raw < 0) return std::string("load the BPF device filter: ") + std::strerror(errno);
    UniqueFd prog_fd(raw);
    union bpf_attr attach {};
    attach.target_fd = static_cast<std::uint32_t>(cgroup_fd);
    attach.attach_bpf_fd = static_cast<std::uint32_t>(prog_fd.get());
    attach.attach_type = BPF_CGROUP_DEVICE;
    // ALLOW_MULTI: a filter a system manager attached above us keeps applying as well.
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    if (::syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach) != 0) {
        return std::string("attach the BPF device filter: ") + std::strerror(errno);
    }
    return {};  // the cgroup holds the program now: closing our fd does not detach it
}

}  // namespace

bool in_initial_user_namespace() {
    std::string map;
    try {
        map = sys::read_file_at(AT_FDCWD, "/proc/self/uid_map", 4096);
    } catch (const Error&) {
        return true;  // no /proc: assume the worst case for the caller, the initial namespace
    }
    // The initial namespace maps every id onto itself, in one line: "0 0 4294967295".
    std::istringstream in(map);
    unsigned long inside = 1, outside = 1, count = 0, more = 0;
    in >> inside >> outside >> count;
    return in && inside == 0 && outside == 0 && count == 4294967295UL && !(in >> more);
}

DeviceCgroup DeviceCgroup::create(const std::vector<DeviceRule>& allow) {
    DeviceCgroup cg;
    auto note = [&cg](const std::string& why) { cg.why_ += (cg.why_.empty() ? "" : "; ") + why; };
    // In a user namespace the cgroup files belong to the real root (and BPF needs the initial
    // namespace's CAP_BPF); the kernel itself keeps device nodes inert there (see docs/security.md).
    if (!in_initial_user_namespace()) {
        note("imgtool runs in a user namespace");
        return cg;
    }
    OwnCgroups own = own_cgroups();
    if (own.v1_devices.empty() && own.v2.empty()) note("no cgroup v1 devices or cgroup v2 hierarchy is mounted");
    const std::string name = sys::unique_name(kPrefix);
    std::string why;
    if (!own.v1_devices.empty()) {
        if (UniqueFd dir = make_cgroup(own.v1_devices, name, why)) {
            cg.dirs_.push_back(own.v1_devices + "/" + name);
            restrict_v1(dir.get(), cg.dirs_.back(), allow);
        } else {
            note("cgroup v1 devices: " + why);
        }
    }
    if (!own.v2.empty()) {
        if (UniqueFd dir = make_cgroup(own.v2, name, why)) {
            std::string path = own.v2 + "/" + name;
            std::string failure = attach_device_filter(dir.get(), allow);
            if (failure.empty()) {
                cg.dirs_.push_back(path);
            } else {
                ::rmdir(path.c_str());
                note("cgroup v2 " + path + ": " + failure);
            }
        } else {
            note("cgroup v2: " + why);
        }
    }
    return cg;
}

void DeviceCgroup::add(pid_t pid) const {
    for (const auto& dir : dirs_) {
        UniqueFd fd = sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0, dir);
        if (int err = write_control(fd.get(), "cgroup.procs", std::to_string(pid))) {
            throw_errno(err, "move the container into", dir);
        }
    }
}

DeviceCgroup::~DeviceCgroup() {
    for (const auto& dir : dirs_) {
        // The container's processes are reaped by now; EBUSY can still be seen for a moment while the
        // kernel finishes taking the last one out of the cgroup.
        for (int attempt = 0; attempt < 200; ++attempt) {
            if (::rmdir(dir.c_str()) == 0 || errno != EBUSY) break;
            ::usleep(5000);
        }
    }
}

}  // namespace imgtool::launch
