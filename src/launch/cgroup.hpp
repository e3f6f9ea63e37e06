// The container's cgroups, made from a CgroupPlan (imgtool/launch/cgroup_plan.hpp says where they go
// and why): device rules, resource limits. (Private to the launcher.)
//
// Device rules, on every cgroup the plan marks for them:
//   - cgroup v1 `devices` controller: "a" written to devices.deny, then one devices.allow line per rule;
//   - cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program (devices.hpp) attached as BPF_CGROUP_DEVICE.
// On a hybrid host both apply (the kernel asks the BPF programs, then the v1 controller).
// Lifecycle: create() before the clone; the container's PID 1 is moved in (by the supervisor through
// each made() cgroup's cgroup.procs, or by add(pid) for --init's) while it sets up its namespaces and
// root, and waits for the go-ahead before anything of the container runs, so nothing does outside them; the destructor, after the container's
// last process is reaped, removes the directories (also when create() fails halfway). Leftovers of an
// imgtool that was killed are removed by the next create() in the same parent.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "imgtool/launch/cgroup_plan.hpp"
#include "imgtool/launch/devices.hpp"

namespace imgtool::launch {

// What the host has: /proc/self/cgroup and the mount table, and with `limits` the v2 parents' files
// (read_v2_parents). Without limits this reads exactly what the device cgroup always read.
CgroupLayout discover_cgroups(bool limits);

class ContainerCgroup {
public:
    // Makes the plan's cgroups. A cgroup only for device rules that cannot be made (read-only cgroupfs,
    // no permission, no BPF) is skipped: devices_active() is then false and unavailable() says why.
    // Anything that fails for a limit throws, naming the option; so does writing device rules to a v1
    // cgroup that was made.
    static ContainerCgroup create(const CgroupPlan& plan, const std::vector<DeviceRule>& allow);

    ContainerCgroup() = default;
    ContainerCgroup(ContainerCgroup&& o) noexcept
        : made_(std::move(o.made_)), devices_(o.devices_), why_(std::move(o.why_)) {
        o.made_.clear();
    }
    ContainerCgroup& operator=(ContainerCgroup&&) = delete;
    ContainerCgroup(const ContainerCgroup&) = delete;
    ContainerCgroup& operator=(const ContainerCgroup&) = delete;
    ~ContainerCgroup();

    bool devices_active() const { return devices_; }
    const std::string& unavailable() const { return why_; }
    // The cgroups made, for the container's /sys/fs/cgroup (plan_cgroup_fs).
    const std::vector<PlannedCgroup>& made() const { return made_; }
    // Moves process `pid` into every cgroup made. Throws.
    void add(pid_t pid) const;

private:
    std::vector<PlannedCgroup> made_;
    bool devices_ = false;
    std::string why_;
};

// False inside a user namespace (rootless imgtool, or imgtool run inside another runtime's userns).
bool in_initial_user_namespace();

}  // namespace imgtool::launch
