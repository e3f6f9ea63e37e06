// Which system calls a container may make, as data: docker's most important blocks, resolved against
// the container's capability set into a plain policy. Pure: nothing here touches the system
// (seccomp_filter.hpp compiles a policy with libseccomp and loads it).
//
// A policy is a default action plus rules, each rule one system call by name, optionally narrowed by
// conditions on its arguments (all must hold). That is the shape of docker's profile too, so the full
// allow-list (default "fail with EPERM", rules "allow") can later replace the deny-list built here
// (default "allow", rules "fail") without changing the compiler or the launcher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace imgtool::launch {

// What a matching call (or any call no rule matches) does: run, or fail with `error` without running.
struct SyscallAction {
    bool allow = true;
    int error = 0;  // the errno returned when !allow
    static SyscallAction allowed() { return {true, 0}; }
    static SyscallAction fail(int error) { return {false, error}; }
    friend bool operator==(const SyscallAction&, const SyscallAction&) = default;
};

// Argument `index` (0-based) compared as libseccomp's SCMP_CMP_MASKED_EQ: (arg & mask) == value.
struct SyscallArgMaskedEq {
    unsigned index = 0;
    std::uint64_t mask = 0;
    std::uint64_t value = 0;
    friend bool operator==(const SyscallArgMaskedEq&, const SyscallArgMaskedEq&) = default;
};

struct SyscallRule {
    std::string name;  // the kernel's name ("clone", "keyctl"), as libseccomp spells it
    SyscallAction action;
    std::vector<SyscallArgMaskedEq> when;  // all must hold; empty: every call
};

struct SyscallPolicy {
    SyscallAction default_action;
    std::vector<SyscallRule> rules;
};

// clone(2)'s namespace flags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (docker's
// mask 0x7E020000). CLONE_NEWTIME is not among them: its bit is part of clone(2)'s exit-signal byte
// (CSIGNAL), so the kernel accepts it only from clone3 and unshare, which are blocked whole.
std::uint64_t clone_namespace_flags();

// Docker's blocks that matter most, for a container holding `capabilities` (bit N = CAP_N), as in
// moby's profiles/seccomp/default.json:
//   always EPERM: keyctl add_key request_key (the kernel keyring is not namespaced: uid 0 of the
//     container would share the host root's keys), kexec_load kexec_file_load userfaultfd swapon
//     swapoff pivot_root io_uring_setup io_uring_enter io_uring_register;
//   EPERM unless CAP_SYS_ADMIN: unshare setns mount umount umount2 fsopen fsconfig fsmount fspick
//     move_mount open_tree mount_setattr lookup_dcookie quotactl quotactl_fd, and clone with any
//     namespace flag; clone3 fails with ENOSYS instead (its flags live in memory a filter cannot read;
//     ENOSYS makes glibc fall back to clone, whose flags are checked);
//   EPERM unless the capability that grants it in docker's profile: open_by_handle_at
//     (CAP_DAC_READ_SEARCH), perf_event_open (CAP_SYS_ADMIN or CAP_PERFMON), bpf (CAP_SYS_ADMIN or
//     CAP_BPF), acct (CAP_SYS_PACCT).
// Everything else is allowed (the full profile's allow-list is a later step).
SyscallPolicy default_syscall_policy(std::uint64_t capabilities);

}  // namespace imgtool::launch
