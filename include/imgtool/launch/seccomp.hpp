// Which system calls a container may make, as data. Pure: nothing here touches the system
// (seccomp_profile.hpp parses docker's JSON format into the same data; seccomp_filter.hpp compiles a
// resolved policy with libseccomp and loads it).
//
// Two levels, both docker's shapes:
// - a SeccompProfile is a profile as docker writes it: rules that apply only for some capabilities,
//   architectures or kernels (includes/excludes), and an archMap from the native architecture to the
//   others its kernel runs. docker_default_profile() is moby's profiles/seccomp/default.json as our
//   own table.
// - resolve_profile() decides those conditions for one container (its capability set, the machine's
//   architecture and kernel) and leaves a SyscallPolicy: a default action, the architectures the
//   filter covers, and unconditional rules, each one system call by name, optionally narrowed by
//   comparisons on its arguments (all must hold).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace imgtool::launch {

// What a matching call (or any call no rule matches) does. Docker's SCMP_ACT_TRACE and
// SCMP_ACT_NOTIFY need a tracer or a listener imgtool does not have: the parser refuses them.
struct SyscallAction {
    enum class Kind { allow, error, kill_thread, kill_process, trap, log };
    Kind kind = Kind::allow;
    int error = 0;  // the errno returned, for Kind::error
    static SyscallAction allowed() { return {Kind::allow, 0}; }
    static SyscallAction fail(int error) { return {Kind::error, error}; }
    static SyscallAction of(Kind kind) { return {kind, 0}; }
    friend bool operator==(const SyscallAction&, const SyscallAction&) = default;
};

// Argument `index` (0-based) of the call compared with `value`, as libseccomp's SCMP_CMP_* (docker's
// "op"). masked_eq, in docker's order: (arg & value) == value_two.
struct SyscallArg {
    enum class Op { eq, ne, lt, le, ge, gt, masked_eq };
    unsigned index = 0;
    Op op = Op::eq;
    std::uint64_t value = 0;
    std::uint64_t value_two = 0;
    friend bool operator==(const SyscallArg&, const SyscallArg&) = default;
};

struct SyscallRule {
    std::string name;  // the kernel's name ("clone", "keyctl"), as libseccomp spells it
    SyscallAction action;
    std::vector<SyscallArg> when;  // all must hold; empty: every call
    friend bool operator==(const SyscallRule&, const SyscallRule&) = default;
};

struct SyscallPolicy {
    SyscallAction default_action;
    // The system call ABIs the filter accepts calls from, in docker's names ("SCMP_ARCH_X86_64"); the
    // native one is always among them. A call from any other ABI kills the process (libseccomp's
    // "bad arch" action), so none slips past the table by another entry (int $0x80).
    std::vector<std::string> architectures;
    std::vector<SyscallRule> rules;
    friend bool operator==(const SyscallPolicy&, const SyscallPolicy&) = default;
};

// The machine a profile is resolved for.
struct SeccompPlatform {
    std::string arch;       // docker's name for the native architecture: "amd64", "arm64", "x86"...
    std::string scmp_arch;  // the same in libseccomp's terms: "SCMP_ARCH_X86_64"
    unsigned kernel = 0;    // the running kernel's version, 6.1 -> {6, 1}, for minKernel
    unsigned kernel_major = 0;
};

// ---- docker's profile format, unresolved ----
struct ProfileCondition {
    std::vector<std::string> caps;    // "CAP_SYS_ADMIN"
    std::vector<std::string> arches;  // docker's names ("amd64")
    std::optional<std::pair<unsigned, unsigned>> min_kernel;
    friend bool operator==(const ProfileCondition&, const ProfileCondition&) = default;
};

struct ProfileRule {
    std::vector<std::string> names;
    SyscallAction action;
    std::vector<SyscallArg> args;
    // Docker's semantics: the rule applies if the architecture is one of includes.arches, the
    // container holds every one of includes.caps and the kernel is at least includes.min_kernel (each
    // when given), and none of excludes' conditions holds (any one of excludes.caps held excludes).
    ProfileCondition includes, excludes;
};

struct SeccompProfile {
    SyscallAction default_action;
    std::vector<std::string> architectures;  // "architectures": used as they are
    // "archMap": native -> the ABIs its kernel also runs; the entry of the native architecture is used.
    std::vector<std::pair<std::string, std::vector<std::string>>> arch_map;
    std::vector<ProfileRule> rules;
};

// moby's profiles/seccomp/default.json (moby 25 and later): default EPERM; an allow-list of the calls
// a container needs; socket except AF_ALG and AF_VSOCK, personality with the values programs use,
// clone without namespace flags, clone3 ENOSYS (its flags live in memory a filter cannot read, ENOSYS
// makes libc fall back to clone) unless CAP_SYS_ADMIN; groups each capability unlocks; per-arch calls.
const SeccompProfile& docker_default_profile();

// The profile's conditions decided for a container holding `capabilities` (bit N = CAP_N) on
// `platform`. Rules whose conditions fail are dropped; a rule naming several calls becomes one rule
// per call; a rule with two comparisons on the same argument becomes one rule per comparison (runc
// turns it into alternatives, libseccomp cannot AND them). Architectures: the archMap entry of the
// native one, else "architectures", always with the native one.
SyscallPolicy resolve_profile(const SeccompProfile& profile, std::uint64_t capabilities,
                              const SeccompPlatform& platform);

// Which of the profile's rules apply (one entry per rule, in order): resolve_profile's decisions, the
// only part of a resolved policy that depends on the container. Equal decisions on one profile and
// architecture give equal policies.
std::vector<bool> rule_decisions(const SeccompProfile& profile, std::uint64_t capabilities,
                                 const SeccompPlatform& platform);

// docker_default_profile() resolved.
SyscallPolicy default_syscall_policy(std::uint64_t capabilities, const SeccompPlatform& platform);

// clone(2)'s namespace flags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (docker's
// mask 0x7E020000). CLONE_NEWTIME is not among them: its bit is part of clone(2)'s exit-signal byte
// (CSIGNAL), so the kernel accepts it only from clone3 and unshare, which are refused without
// CAP_SYS_ADMIN.
std::uint64_t clone_namespace_flags();

}  // namespace imgtool::launch
