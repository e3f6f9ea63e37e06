// What this kernel offers the launcher and the mounter, for `imgtool info`: read off /proc and /sys
// and by probes that leave nothing behind (no mount, no cgroup, no file is made). The summaries are
// pure functions of what was read, unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/launch/cgroup_plan.hpp"

namespace imgtool::launch {

struct CgroupSummary {
    std::string version;  // "v1", "v2", "hybrid" (v1 controllers beside a v2 hierarchy) or "none"
    std::vector<std::string> v1_controllers;  // hierarchies' controllers (sorted; "name=..." left out)
    std::string v2_mount;                     // where the v2 hierarchy is mounted, if any
    std::vector<std::string> v2_controllers;  // its root's cgroup.controllers
};
// `v2_controllers`: the text of the v2 root's cgroup.controllers (empty if none).
CgroupSummary summarize_cgroups(const CgroupLayout& layout, std::string_view v2_controllers);

struct KernelFeatures {
    std::string kernel;             // uname release
    bool new_mount_api = false;     // fsopen/fsconfig/fsmount
    std::string new_mount_api_note; // why not, or "not permitted here"
    bool idmapped_mounts = false;   // mount_setattr MOUNT_ATTR_IDMAP
    bool seccomp = false;           // seccomp filters (SECCOMP_SET_MODE_FILTER)
    std::vector<std::string> seccomp_actions;  // /proc/sys/kernel/seccomp/actions_avail
    bool user_namespaces = false;
    std::uint64_t max_user_namespaces = 0;
    CgroupSummary cgroups;
};

// The "yes"/"no" of a probe's errno: 0 and EPERM (present, not allowed here) are yes.
bool probe_says_present(int error);

KernelFeatures detect_features();

}  // namespace imgtool::launch
