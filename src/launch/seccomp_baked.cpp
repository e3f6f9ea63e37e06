// SeccompFilter::docker_default: a program generated at build time (seccomp_bake.cpp) when one fits.
#include <cstring>
#include <iterator>

#include "imgtool/launch/seccomp_filter.hpp"

namespace imgtool::launch {
namespace {

// One program of the build, with the rule decisions it was compiled for ('1': the rule applies).
struct BakedFilter {
    const char* decisions;
    const sock_filter* program;
    std::size_t size;
};

#include "seccomp_baked.inc"

}  // namespace

SeccompFilter SeccompFilter::docker_default(std::uint64_t capabilities, const SeccompPlatform& platform) {
    const SeccompProfile& profile = docker_default_profile();
    const std::vector<bool> decisions = rule_decisions(profile, capabilities, platform);
    if (platform.scmp_arch == kBakedArch) {
        for (const BakedFilter& baked : kBaked) {
            bool same = decisions.size() == std::strlen(baked.decisions);
            for (std::size_t i = 0; same && i < decisions.size(); ++i) same = decisions[i] == (baked.decisions[i] == '1');
            if (same) return SeccompFilter(std::vector<sock_filter>(baked.program, baked.program + baked.size));
        }
    }
    return compile(resolve_profile(profile, capabilities, platform));
}

}  // namespace imgtool::launch
