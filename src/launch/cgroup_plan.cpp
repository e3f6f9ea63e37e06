#include "imgtool/launch/cgroup_plan.hpp"

#include <algorithm>
#include <map>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::launch {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

std::string join(const std::vector<std::string>& list, std::string_view separator) {
    std::string out;
    for (const auto& item : list) out += (out.empty() ? "" : std::string(separator)) + item;
    return out;
}

// Cgroup `path` (as /proc/self/cgroup names it) seen through mount `m`, which may mount a subtree of
// the hierarchy; "" when it is out of that mount's view.
std::string path_under(const sys::MountInfo& m, const std::string& path) {
    if (m.root == "/") return m.mount_point + (path == "/" ? "" : path);
    if (path == m.root) return m.mount_point;
    if (path.compare(0, m.root.size() + 1, m.root + "/") == 0) return m.mount_point + path.substr(m.root.size());
    return {};
}

// A v1 mount's super options name its controllers among other options ("rw,cpu,cpuacct").
bool mounts_controllers(const sys::MountInfo& m, const std::vector<std::string>& controllers) {
    auto options = split(m.super_options, ',');
    return !controllers.empty() &&
           std::all_of(controllers.begin(), controllers.end(), [&](const auto& c) { return contains(options, c); });
}

// The directory name a hierarchy gets under the container's /sys/fs/cgroup: its host mount point's, if
// that is /sys/fs/cgroup/NAME; "" if the host mounts it on /sys/fs/cgroup itself (pure v2).
std::string mount_name(const CgroupHierarchy& h) {
    const std::string base = "/sys/fs/cgroup";
    if (h.mount_point == base) return "";
    auto [dir, name] = split_parent(h.mount_point);
    if (dir == base && !name.empty() && name != "." && name != "..") return name;
    return h.v2 ? "unified" : join(h.controllers, ",");
}

// The limits a controller enforces, and the option that asked for them (for errors).
struct Need {
    const char* controller;
    const char* flag;
};

}  // namespace

CgroupLayout parse_cgroup_layout(std::string_view proc_self_cgroup, const std::vector<sys::MountInfo>& mounts,
                                 bool initial_user_namespace) {
    CgroupLayout layout;
    layout.initial_user_namespace = initial_user_namespace;
    for (const auto& line : split(proc_self_cgroup, '\n')) {
        // "ID:CONTROLLERS:PATH"; cgroup v2 is "0::PATH".
        auto first = line.find(':');
        auto second = first == std::string::npos ? first : line.find(':', first + 1);
        if (second == std::string::npos) continue;
        CgroupHierarchy h;
        std::string controllers = line.substr(first + 1, second - first - 1);
        std::string path = line.substr(second + 1);
        h.v2 = line.substr(0, first) == "0" && controllers.empty();
        if (!h.v2) h.controllers = split(controllers, ',');
        for (const auto& m : mounts) {
            bool match = h.v2 ? m.fstype == "cgroup2" : m.fstype == "cgroup" && mounts_controllers(m, h.controllers);
            if (!match) continue;
            h.own = path_under(m, path);
            if (h.own.empty()) continue;
            h.mount_point = m.mount_point;
            break;
        }
        if (h.own.empty()) continue;
        h.own_is_root = path == "/";
        layout.hierarchies.push_back(std::move(h));
    }
    return layout;
}

std::string v2_limits_parent(const CgroupHierarchy& h) {
    if (h.own_is_root) return h.own;
    return h.own.substr(0, h.own.rfind('/'));
}

CgroupPlan plan_cgroups(const CgroupRequest& request, const CgroupLayout& layout) {
    const ResourceLimits& limits = request.limits;
    const bool rootless = !layout.initial_user_namespace;
    const CgroupHierarchy* v2 = nullptr;
    for (const auto& h : layout.hierarchies) {
        if (h.v2 && v2 == nullptr) v2 = &h;
    }

    // Which hierarchy enforces each limit asked for: v2 where its parent offers the controller (and,
    // rootless, is delegated), else the v1 hierarchy that has it (never rootless).
    std::vector<Need> needs;
    if (limits.memory != 0) needs.push_back({"memory", "--memory"});
    if (limits.cpu_quota != 0) needs.push_back({"cpu", "--cpus"});
    if (limits.pids != 0) needs.push_back({"pids", "--pids-limit"});
    std::map<const CgroupHierarchy*, std::vector<std::string>> assigned;
    for (const Need& need : needs) {
        const CgroupV2Parent* parent = v2 && v2->parent ? &*v2->parent : nullptr;
        if (parent && contains(parent->controllers, need.controller) && (!rootless || parent->writable)) {
            assigned[v2].push_back(need.controller);
            continue;
        }
        const CgroupHierarchy* v1 = nullptr;
        for (const auto& h : layout.hierarchies) {
            if (!h.v2 && !v1 && contains(h.controllers, need.controller)) v1 = &h;
        }
        if (v1 && !rootless) {
            assigned[v1].push_back(need.controller);
            continue;
        }
        // Say everything that is missing, in one line.
        std::vector<std::string> why;
        if (!v2) {
            why.push_back("no cgroup v2 hierarchy is mounted");
        } else if (!parent || !contains(parent->controllers, need.controller)) {
            std::string offered = parent ? join(parent->controllers, " ") : "";
            why.push_back("cgroup v2 " + (parent ? parent->path : v2->own) + " offers " +
                          (offered.empty() ? std::string("no controllers") : "only " + offered));
        } else {
            why.push_back("cgroup v2 " + parent->path + " is not delegated to you (its directory, cgroup.subtree_control "
                          "and cgroup.procs must be writable)");
        }
        if (!v1) {
            why.push_back(std::string("no cgroup v1 ") + need.controller + " hierarchy is mounted");
        } else {
            why.push_back(std::string("cgroup v1 ") + need.controller + " is never delegated to rootless imgtool");
        }
        throw Error(Errc::Unsupported, std::string(need.flag) + ": no cgroup controller can enforce it here: " + join(why, "; "));
    }

    const bool devices = request.devices && !rootless;
    CgroupPlan plan;
    if (request.devices && rootless) plan.no_devices = "imgtool runs in a user namespace";
    bool placed_devices = false;
    for (const auto& h : layout.hierarchies) {
        auto it = assigned.find(&h);
        const std::vector<std::string> controllers = it == assigned.end() ? std::vector<std::string>{} : it->second;
        const bool device_rules = devices && (h.v2 || contains(h.controllers, "devices"));
        if (controllers.empty() && !device_rules) continue;
        PlannedCgroup cg;
        cg.name = request.name;
        cg.v2 = h.v2;
        cg.devices = device_rules;
        cg.required = !controllers.empty();
        cg.parent = h.own;
        cg.mount_name = mount_name(h);
        if (!h.v2) cg.controllers = h.controllers;
        if (h.v2 && cg.required) {
            cg.parent = h.parent->path;
            for (const auto& c : controllers) {
                if (!contains(h.parent->subtree_control, c)) cg.enable.push_back(c);
            }
        }
        for (const auto& c : controllers) {
            if (c == "memory") {
                cg.writes.push_back({h.v2 ? "memory.max" : "memory.limit_in_bytes", std::to_string(limits.memory), "--memory"});
                // memory_swap is memory plus swap (docker); v2 limits swap alone.
                std::string swap = h.v2 ? (limits.memory_swap < 0 ? "max" : std::to_string(limits.memory_swap - limits.memory))
                                        : std::to_string(limits.memory_swap < 0 ? -1 : limits.memory_swap);
                cg.writes.push_back({h.v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes", swap, "--memory-swap",
                                     !limits.memory_swap_given});
            } else if (c == "cpu") {
                if (h.v2) {
                    cg.writes.push_back({"cpu.max", std::to_string(limits.cpu_quota) + " " + std::to_string(limits.cpu_period), "--cpus"});
                } else {
                    // The period first: the quota is checked against it.
                    cg.writes.push_back({"cpu.cfs_period_us", std::to_string(limits.cpu_period), "--cpus"});
                    cg.writes.push_back({"cpu.cfs_quota_us", std::to_string(limits.cpu_quota), "--cpus"});
                }
            } else if (c == "pids") {
                cg.writes.push_back({"pids.max", std::to_string(limits.pids), "--pids-limit"});
            }
        }
        placed_devices = placed_devices || device_rules;
        plan.cgroups.push_back(std::move(cg));
    }
    if (devices && !placed_devices) plan.no_devices = "no cgroup v1 devices or cgroup v2 hierarchy is mounted";
    return plan;
}

CgroupFsPlan plan_cgroup_fs(const std::vector<PlannedCgroup>& made) {
    CgroupFsPlan plan;
    if (made.empty()) return plan;
    if (made.size() == 1 && made[0].v2 && made[0].mount_name.empty()) {
        plan.mounts.push_back({"", "cgroup2", {{"source", "cgroup2"}}});
        return plan;
    }
    plan.mounts.push_back({"", "tmpfs", {{"source", "tmpfs"}, {"mode", "755"}, {"size", "64k"}}});
    for (const auto& cg : made) {
        std::string dir = cg.mount_name.empty() ? (cg.v2 ? "unified" : join(cg.controllers, ",")) : cg.mount_name;
        if (cg.v2) {
            plan.mounts.push_back({dir, "cgroup2", {{"source", "cgroup2"}}});
            continue;
        }
        // The hierarchy is named by all its controllers together (the kernel refuses a subset), and
        // "name=systemd" is a key with a value.
        std::vector<sys::FsParameter> parameters{{"source", "cgroup"}};
        for (const auto& c : cg.controllers) {
            auto eq = c.find('=');
            parameters.emplace_back(c.substr(0, eq), eq == std::string::npos ? "" : c.substr(eq + 1));
        }
        plan.mounts.push_back({dir, "cgroup", std::move(parameters)});
        // A hierarchy of several controllers ("cpu,cpuacct") is also reachable by each name, as on the host.
        if (cg.controllers.size() > 1) {
            for (const auto& c : cg.controllers) {
                if (c != dir && c.find('=') == std::string::npos) plan.links.emplace_back(c, dir);
            }
        }
    }
    return plan;
}

}  // namespace imgtool::launch
