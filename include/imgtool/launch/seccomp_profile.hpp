// docker's seccomp profile format (`--security-opt seccomp=PROFILE.json`, moby's profiles/seccomp)
// parsed into a SeccompProfile (seccomp.hpp): defaultAction, defaultErrnoRet, architectures or archMap,
// syscalls[] with name or names, action, errnoRet, args[{index, value, valueTwo, op}], includes and
// excludes {caps, arches, minKernel}. The parser is pure; the profile is user input, so everything it
// cannot honour is one error naming the file and the field, and nothing is silently widened.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "imgtool/launch/seccomp.hpp"

namespace imgtool::launch {

// docker's own default.json is 20 KiB; a profile ten times larger than any real one is refused
// before it is parsed.
inline constexpr std::size_t kMaxSeccompProfileBytes = 1 << 20;

// Throws Errc::InvalidArgument "seccomp profile SOURCE: FIELD: reason" for: text over the cap, JSON
// that does not parse (also duplicate keys, nesting past 64), a missing or unknown action or
// comparison, SCMP_ACT_TRACE / SCMP_ACT_NOTIFY (no tracer or listener here), errnoRet on another
// action or past 4095, an argument index past 5, both name and names, both architectures and archMap,
// a bad minKernel, flags or a listener. Unknown keys are ignored, as docker does.
SeccompProfile parse_seccomp_profile(std::string_view text, const std::string& source);

// Reads PATH on the host (a regular file, at most kMaxSeccompProfileBytes) and parses it.
SeccompProfile read_seccomp_profile(const std::string& path);

}  // namespace imgtool::launch
