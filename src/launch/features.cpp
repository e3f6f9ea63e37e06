#include "imgtool/launch/features.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <linux/seccomp.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <sstream>

#include "cgroup.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mount.hpp"

namespace imgtool::launch {

CgroupSummary summarize_cgroups(const CgroupLayout& layout, std::string_view v2_controllers) {
    CgroupSummary s;
    std::set<std::string> v1;
    bool has_v2 = false;
    for (const auto& h : layout.hierarchies) {
        if (h.v2) {
            if (!has_v2) s.v2_mount = h.mount_point;
            has_v2 = true;
            continue;
        }
        for (const auto& c : h.controllers) {
            if (c.rfind("name=", 0) != 0 && !c.empty()) v1.insert(c);
        }
    }
    s.v1_controllers.assign(v1.begin(), v1.end());
    std::istringstream in{std::string(v2_controllers)};
    for (std::string word; in >> word;) s.v2_controllers.push_back(word);
    std::sort(s.v2_controllers.begin(), s.v2_controllers.end());
    if (!v1.empty() && has_v2) {
        s.version = "hybrid";
    } else if (has_v2) {
        s.version = "v2";
    } else if (!v1.empty()) {
        s.version = "v1";
    } else {
        s.version = "none";
    }
    return s;
}

bool probe_says_present(int error) { return error == 0 || error == EPERM; }

namespace {

std::string read_or_empty(const std::string& path) {
    try {
        return sys::read_file_at(AT_FDCWD, path, 1 << 16);
    } catch (const Error&) {
        return {};
    }
}

}  // namespace

KernelFeatures detect_features() {
    KernelFeatures f;
    struct utsname u {};
    if (::uname(&u) == 0) f.kernel = u.release;

    int api = sys::probe_fs_parameter("tmpfs", "", "");
    f.new_mount_api = probe_says_present(api);
    if (api == EPERM) f.new_mount_api_note = "not permitted in this namespace";
    else if (api == ENOSYS) f.new_mount_api_note = "no fsopen(2) (Linux < 5.2)";
    f.idmapped_mounts = sys::probe_idmapped_mounts() == 0;

    // prctl(PR_GET_SECCOMP) fails with EINVAL on a kernel built without seccomp; the filter mode's
    // actions are listed where filters exist.
    std::string actions = read_or_empty("/proc/sys/kernel/seccomp/actions_avail");
    f.seccomp = ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && !actions.empty();
    std::istringstream words(actions);
    for (std::string w; words >> w;) f.seccomp_actions.push_back(w);

    std::string max = read_or_empty("/proc/sys/user/max_user_namespaces");
    try {
        f.max_user_namespaces = max.empty() ? 0 : std::stoull(max);
    } catch (const std::exception&) {
    }
    // Debian's switch for unprivileged ones, where the kernel has it.
    std::string unprivileged = read_or_empty("/proc/sys/kernel/unprivileged_userns_clone");
    f.user_namespaces = f.max_user_namespaces > 0 && (unprivileged.empty() || unprivileged[0] != '0');

    try {
        CgroupLayout layout = discover_cgroups(false);
        std::string controllers;
        for (const auto& h : layout.hierarchies) {
            if (h.v2) {
                controllers = read_or_empty(h.mount_point + "/cgroup.controllers");
                break;
            }
        }
        f.cgroups = summarize_cgroups(layout, controllers);
    } catch (const Error&) {
        f.cgroups.version = "unknown";
    }
    return f;
}

}  // namespace imgtool::launch
