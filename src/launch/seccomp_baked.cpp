// SeccompFilter::docker_default: the program generated at build time (seccomp_bake.cpp) when it fits.
#include <cstring>
#include <iterator>

#include "imgtool/launch/seccomp_filter.hpp"

namespace imgtool::launch {
namespace {
#include "seccomp_baked.inc"
}  // namespace

SeccompFilter SeccompFilter::docker_default(std::uint64_t capabilities, const SeccompPlatform& platform) {
    const SeccompProfile& profile = docker_default_profile();
    const std::vector<bool> decisions = rule_decisions(profile, capabilities, platform);
    bool baked = std::size(kBakedProgram) > 0 && platform.scmp_arch == kBakedArch &&
                 decisions.size() == std::strlen(kBakedDecisions);
    for (std::size_t i = 0; baked && i < decisions.size(); ++i) baked = decisions[i] == (kBakedDecisions[i] == '1');
    if (baked) return SeccompFilter(std::vector<sock_filter>(std::begin(kBakedProgram), std::end(kBakedProgram)));
    return compile(resolve_profile(profile, capabilities, platform));
}

}  // namespace imgtool::launch
