#include "cgroup.hpp"

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

CgroupLayout discover_cgroups(bool limits) {
    CgroupLayout layout = parse_cgroup_layout(sys::read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16),
                                              sys::read_mountinfo(), in_initial_user_namespace());
    if (limits) read_v2_parents(layout);
    return layout;
}

void read_v2_parents(CgroupLayout& layout) {
    for (auto& h : layout.hierarchies) {
        if (!h.v2) continue;
        CgroupV2Parent parent;
        parent.path = v2_limits_parent(h);
        auto words = [&parent](const char* file) {
            std::vector<std::string> out;
            const std::string path = parent.path + "/" + file;
            int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (raw < 0) return out;  // not a v2 cgroup directory after all, or out of reach: offers nothing
            UniqueFd fd(raw);
            std::istringstream in(sys::read_fd(fd.get(), path, 1 << 16));
            for (std::string w; in >> w;) out.push_back(w);
            return out;
        };
        parent.controllers = words("cgroup.controllers");
        parent.subtree_control = words("cgroup.subtree_control");
        // Rootless, the kernel decides by the files' owners: delegation (systemd's Delegate=yes) chowns
        // the directory and these two files to the user.
        parent.writable = ::access(parent.path.c_str(), W_OK) == 0 &&
                          ::access((parent.path + "/cgroup.subtree_control").c_str(), W_OK) == 0 &&
                          ::access((parent.path + "/cgroup.procs").c_str(), W_OK) == 0;
        h.parent = std::move(parent);
    }
}

ContainerCgroup ContainerCgroup::create(const CgroupPlan& plan, const std::vector<DeviceRule>& allow) {
    ContainerCgroup cg;  // removes what it made if a later step throws
    cg.why_ = plan.no_devices;
    auto note = [&cg](const std::string& why) { cg.why_ += (cg.why_.empty() ? "" : "; ") + why; };
    for (const PlannedCgroup& planned : plan.cgroups) {
        const std::string what = planned.v2 ? "cgroup v2" : "cgroup v1 " + (planned.controllers.empty() ? "" : planned.controllers[0]);
        const std::string path = planned.path();
        // For a limit, the first flag it carries names the failure; device rules alone are best effort.
        const std::string flag = planned.writes.empty() ? "" : planned.writes.front().flag + ": ";
        int raw = ::open(planned.parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (raw < 0) {
            if (planned.required) throw_errno(flag + "open", planned.parent);
            note(what + ": " + errno_text("open", planned.parent, errno));
            continue;
        }
        UniqueFd parent_fd(raw);
        remove_stale(parent_fd.get(), planned.parent);
        if (!planned.enable.empty()) {
            std::string line;
            for (const auto& c : planned.enable) line += (line.empty() ? "+" : " +") + c;
            if (int err = write_control(parent_fd.get(), "cgroup.subtree_control", line)) {
                std::string shown = planned.parent + "/cgroup.subtree_control";
                // EBUSY: the parent holds processes itself (v2's no-internal-processes rule).
                throw Error(std::error_code(err, std::system_category()),
                            flag + errno_text("write " + line + " to", shown, err) +
                                (err == EBUSY ? " (it holds processes, so cgroup v2 lets it enable no controller)" : ""),
                            shown);
            }
        }
        // EROFS (read-only cgroupfs), EACCES/EPERM (not ours to manage): fatal only for a limit.
        if (::mkdirat(parent_fd.get(), planned.name.c_str(), 0755) != 0) {
            if (planned.required) throw_errno(flag + "mkdir", path);
            note(what + ": " + errno_text("mkdir", path, errno));
            continue;
        }
        cg.made_.push_back(planned);
        UniqueFd dir = sys::open_at(parent_fd.get(), planned.name, O_RDONLY | O_DIRECTORY, 0, path);
        if (planned.devices && !planned.v2) {
            restrict_v1(dir.get(), path, allow);
            cg.devices_ = true;
        } else if (planned.devices) {
            std::string failure = attach_device_filter(dir.get(), allow);
            if (failure.empty()) {
                cg.devices_ = true;
            } else {
                note("cgroup v2 " + path + ": " + failure);
                if (!planned.required) {
                    cg.made_.pop_back();
                    ::unlinkat(parent_fd.get(), planned.name.c_str(), AT_REMOVEDIR);
                }
            }
        }
        for (const CgroupWrite& w : planned.writes) {
            int err = write_control(dir.get(), w.file.c_str(), w.value);
            if (err == ENOENT && w.optional) continue;  // docker's implicit swap limit, where swap is not accounted
            if (err == ENOENT) {
                throw Error(Errc::Unsupported, w.flag + ": this kernel has no " + w.file + " in " + path +
                                                   (w.file.find("swap") != std::string::npos || w.file.find("memsw") != std::string::npos
                                                        ? " (swap is not accounted: swapaccount=1 on the kernel command line)"
                                                        : ""));
            }
            if (err) throw_errno(err, w.flag + ": write " + w.value + " to", path + "/" + w.file);
        }
    }
    return cg;
}

void ContainerCgroup::add(pid_t pid) const {
    for (const auto& cg : made_) {
        const std::string dir = cg.path();
        UniqueFd fd = sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0, dir);
        if (int err = write_control(fd.get(), "cgroup.procs", std::to_string(pid))) {
            throw_errno(err, "move the container into", dir);
        }
    }
}

ContainerCgroup::~ContainerCgroup() {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
        const std::string dir = it->path();
        // The container's processes are reaped by now; EBUSY can still be seen for a moment while the
        // kernel finishes taking the last one out of the cgroup.
        for (int attempt = 0; attempt < 200; ++attempt) {
            if (::rmdir(dir.c_str()) == 0 || errno != EBUSY) break;
            ::usleep(5000);
        }
    }
}

}  // namespace imgtool::launch
