#include "imgtool/launch/seccomp.hpp"

#include <sched.h>

#include <algorithm>

#include "imgtool/launch/config.hpp"

namespace imgtool::launch {
namespace {

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

// As docker compares the profile's names with the runtime spec's: exactly "CAP_SYS_ADMIN". A name
// imgtool does not know is a capability the container does not hold.
bool holds(std::uint64_t capabilities, const std::string& name) {
    auto number = capability_number(name);
    return number && capability_name(*number) == name && (capabilities >> *number) & 1;
}

bool kernel_at_least(const SeccompPlatform& platform, std::pair<unsigned, unsigned> version) {
    return std::pair(platform.kernel, platform.kernel_major) >= version;
}

bool applies(const ProfileRule& rule, std::uint64_t capabilities, const SeccompPlatform& platform) {
    const ProfileCondition& ex = rule.excludes;
    if (contains(ex.arches, platform.arch)) return false;
    for (const std::string& cap : ex.caps) {
        if (holds(capabilities, cap)) return false;
    }
    if (ex.min_kernel && kernel_at_least(platform, *ex.min_kernel)) return false;
    const ProfileCondition& in = rule.includes;
    if (!in.arches.empty() && !contains(in.arches, platform.arch)) return false;
    for (const std::string& cap : in.caps) {
        if (!holds(capabilities, cap)) return false;
    }
    if (in.min_kernel && !kernel_at_least(platform, *in.min_kernel)) return false;
    return true;
}

}  // namespace

std::uint64_t clone_namespace_flags() {
    return CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
}

std::vector<bool> rule_decisions(const SeccompProfile& profile, std::uint64_t capabilities,
                                 const SeccompPlatform& platform) {
    std::vector<bool> decisions;
    decisions.reserve(profile.rules.size());
    for (const ProfileRule& rule : profile.rules) decisions.push_back(applies(rule, capabilities, platform));
    return decisions;
}

SyscallPolicy resolve_profile(const SeccompProfile& profile, std::uint64_t capabilities,
                              const SeccompPlatform& platform) {
    SyscallPolicy policy;
    policy.default_action = profile.default_action;
    policy.architectures = {platform.scmp_arch};
    auto add_arch = [&](const std::string& arch) {
        if (!contains(policy.architectures, arch)) policy.architectures.push_back(arch);
    };
    if (!profile.arch_map.empty()) {
        for (const auto& [native, others] : profile.arch_map) {
            if (native != platform.scmp_arch) continue;
            for (const std::string& arch : others) add_arch(arch);
        }
    } else {
        for (const std::string& arch : profile.architectures) add_arch(arch);
    }
    const std::vector<bool> decisions = rule_decisions(profile, capabilities, platform);
    for (std::size_t r = 0; r < profile.rules.size(); ++r) {
        if (!decisions[r]) continue;
        const ProfileRule& rule = profile.rules[r];
        // libseccomp ANDs comparisons on distinct arguments only; runc makes comparisons that share
        // one argument alternatives, one rule each.
        bool shared_argument = false;
        for (std::size_t i = 0; i < rule.args.size(); ++i) {
            for (std::size_t j = i + 1; j < rule.args.size(); ++j) shared_argument |= rule.args[i].index == rule.args[j].index;
        }
        for (const std::string& name : rule.names) {
            if (!shared_argument) {
                policy.rules.push_back({name, rule.action, rule.args});
                continue;
            }
            for (const SyscallArg& arg : rule.args) policy.rules.push_back({name, rule.action, {arg}});
        }
    }
    return policy;
}

SyscallPolicy default_syscall_policy(std::uint64_t capabilities, const SeccompPlatform& platform) {
    return resolve_profile(docker_default_profile(), capabilities, platform);
}

}  // namespace imgtool::launch
