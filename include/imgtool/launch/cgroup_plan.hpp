// The container's cgroups as a plan: plain data, built by pure functions from what was read off the
// host, unit-tested against a directory tree standing in for cgroupfs. The launcher (src/launch/
// cgroup.hpp) reads the host, performs the plan before the container's first process runs, and
// removes the cgroups after its last one is gone.
//
// Where the container's cgroups go, per mounted hierarchy in which imgtool's own cgroup is visible
// (each named "imgtool-<pid>-<random>", the pid imgtool's, so a killed imgtool's leftovers are known):
//   - cgroup v1: a child of imgtool's cgroup on each hierarchy that carries something the container
//     needs: the devices controller (device rules, unless --privileged), memory, cpu or pids (only when
//     that limit is asked). v1 lets inner cgroups hold processes, so a child is always possible.
//   - cgroup v2: one cgroup for everything. Without limits it is a child of imgtool's cgroup: the BPF
//     device program needs no controller. With limits, the controllers must be enabled in the parent's
//     cgroup.subtree_control, which the kernel refuses for a cgroup that holds processes (v2's "no
//     internal processes" rule, which exempts only the root) - and imgtool's own cgroup holds at least
//     imgtool. So the container's cgroup is then a child of the root when imgtool sits in the root, else
//     a sibling of imgtool's cgroup, in its parent (crun's cgroupfs manager falls back to the same
//     sibling). Only controllers the parent's cgroup.controllers lists can be enabled: as delegated.
// A limit that no hierarchy can enforce is an error (Errc::Unsupported) naming what is missing, never
// dropped. Rootless (imgtool in a user namespace) a v1 hierarchy is never delegated, and v2 only where
// the parent's directory, cgroup.subtree_control and cgroup.procs are writable.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgtool/launch/container.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/mountinfo.hpp"

namespace imgtool::launch {

// ---- what the host has ---------------------------------------------------------------------------

// A v2 cgroup that a container's cgroup with controllers would be made in, read only when limits are
// asked (read_v2_parents): the default run reads none of this.
struct CgroupV2Parent {
    std::string path;                          // host path
    std::vector<std::string> controllers;      // its cgroup.controllers: what it may enable below it
    std::vector<std::string> subtree_control;  // what it enables already
    bool writable = false;  // directory, cgroup.subtree_control and cgroup.procs writable by imgtool
};

// One mounted hierarchy in which imgtool's own cgroup is visible.
struct CgroupHierarchy {
    bool v2 = false;
    std::vector<std::string> controllers;  // v1: as /proc/self/cgroup names them ("cpu", "name=systemd")
    std::string mount_point;               // host path of the (first) mount
    std::string own;                       // imgtool's cgroup, host path
    bool own_is_root = false;              // imgtool's cgroup is the hierarchy's root ("/")
    std::optional<CgroupV2Parent> parent;  // v2 with limits asked: see v2_limits_parent
};

struct CgroupLayout {
    std::vector<CgroupHierarchy> hierarchies;
    bool initial_user_namespace = true;  // false: rootless
};

// From the text of /proc/self/cgroup and the mount table: each hierarchy imgtool is in, where it is
// mounted (the first mount through which imgtool's cgroup is visible) and imgtool's cgroup there.
// Hierarchies not mounted, or mounted so that imgtool's cgroup is out of view, are left out.
CgroupLayout parse_cgroup_layout(std::string_view proc_self_cgroup, const std::vector<sys::MountInfo>& mounts,
                                 bool initial_user_namespace);

// Fills `parent` of each v2 hierarchy (v2_limits_parent) from its files: cgroup.controllers,
// cgroup.subtree_control, and whether imgtool may write there. Unlike the rest of this header it
// reads the host (defined in cgroup.cpp); missing files read as empty.
void read_v2_parents(CgroupLayout& layout);

// The v2 cgroup a container's cgroup with controllers goes in: imgtool's own if it is the root, else
// its parent (see the header comment).
std::string v2_limits_parent(const CgroupHierarchy& h);

// ---- the plan ------------------------------------------------------------------------------------

struct CgroupRequest {
    bool devices = false;  // a device cgroup (not --privileged)
    ResourceLimits limits;
    std::string name;  // of every cgroup made: "imgtool-<pid>-<random>"
};

// One control file to write in a container's cgroup before the container joins it.
struct CgroupWrite {
    std::string file;
    std::string value;
    std::string flag;       // the run option it enforces, for errors
    bool optional = false;  // docker's implicit swap limit: skipped where the kernel has no such file
};

struct PlannedCgroup {
    std::string parent;  // existing cgroup directory (host path) it is made in
    std::string name;
    bool v2 = false;
    bool devices = false;   // the device rules go here (v1 devices controller, or v2 BPF program)
    bool required = false;  // carries a limit: failing to make it fails the launch
    std::vector<std::string> enable;  // v2: controllers to enable in parent/cgroup.subtree_control first
    std::vector<CgroupWrite> writes;  // in order (v1 memory: the limit before memory+swap)
    std::vector<std::string> controllers;  // v1: the hierarchy's, to mount it again in the container
    std::string mount_name;  // its directory under the container's /sys/fs/cgroup; "": that itself
    std::string path() const { return parent + "/" + name; }
};

struct CgroupPlan {
    std::vector<PlannedCgroup> cgroups;
    std::string no_devices;  // devices asked but no hierarchy can take them: why
};

// Throws Errc::Unsupported when a limit asked for has no controller to enforce it here, naming the
// option and what is missing (the controller, its delegation, rootless).
CgroupPlan plan_cgroups(const CgroupRequest& request, const CgroupLayout& layout);

// ---- the container's /sys/fs/cgroup -----------------------------------------------------------------

// Mounted in the container's own cgroup namespace (made once it is in its cgroups), so every
// hierarchy shows the container's cgroup as its root, read-only, as docker's --cgroupns private does:
//   - only its own v2 cgroup, and the host mounts v2 on /sys/fs/cgroup: cgroup2 there;
//   - otherwise (v1, hybrid): a tmpfs, one cgroup mount per hierarchy in which the container has a
//     cgroup of its own (named as on the host: "devices", "unified", "cpu,cpuacct" with links "cpu" and
//     "cpuacct" to it), then the tmpfs made read-only; runc's v1 layout, without the hierarchies where
//     the container has no cgroup of its own (there its namespace's root is imgtool's cgroup, which
//     is not the container's to see);
//   - no cgroup of its own anywhere (--privileged, rootless without limits): nothing.
struct CgroupFsMount {
    std::string dir;     // below /sys/fs/cgroup; "" for /sys/fs/cgroup itself
    std::string fstype;  // tmpfs, cgroup or cgroup2
    std::vector<sys::FsParameter> parameters;
};

struct CgroupFsPlan {
    std::vector<CgroupFsMount> mounts;  // in order; a tmpfs first, at "", when there is one
    std::vector<std::pair<std::string, std::string>> links;  // name -> target, in the tmpfs
    bool tmpfs() const { return !mounts.empty() && mounts.front().fstype == "tmpfs"; }
};

CgroupFsPlan plan_cgroup_fs(const std::vector<PlannedCgroup>& made);

}  // namespace imgtool::launch
