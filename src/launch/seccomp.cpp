#include "imgtool/launch/seccomp.hpp"

#include <linux/capability.h>
#include <sched.h>

#include <cerrno>

namespace imgtool::launch {
namespace {

constexpr std::uint64_t cap(int number) { return 1ULL << number; }

// One line of docker's profile turned around: these calls fail unless the container holds one of
// `unless_any` (0: always).
struct Block {
    std::vector<const char*> names;
    int error;
    std::uint64_t unless_any;
};

const std::vector<Block>& blocks() {
    static const std::vector<Block> table = {
        // Kernel keyrings are per uid, not per namespace: the container's root would read and replace
        // the host root's keys.
        {{"keyctl", "add_key", "request_key"}, EPERM, 0},
        // Replace the running kernel, page faults handled by user space (a classic exploit aid), swap
        // and, as in docker, pivot_root (the launcher's own use comes before the filter).
        {{"kexec_load", "kexec_file_load", "userfaultfd", "swapon", "swapoff", "pivot_root"}, EPERM, 0},
        // io_uring: a large kernel surface open to every process, and the source of a long run of
        // privilege escalations; docker's profile has refused it since 2023 (moby 25).
        {{"io_uring_setup", "io_uring_enter", "io_uring_register"}, EPERM, 0},
        // New namespaces (a nested user namespace gives a full capability set to play with) and every
        // way to mount.
        {{"unshare", "setns", "mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
          "open_tree", "mount_setattr", "lookup_dcookie", "quotactl", "quotactl_fd"},
         EPERM,
         cap(CAP_SYS_ADMIN)},
        // open_by_handle_at reaches any inode of a filesystem by number, bind mounts notwithstanding
        // (the "shocker" escape).
        {{"open_by_handle_at"}, EPERM, cap(CAP_DAC_READ_SEARCH)},
        {{"perf_event_open"}, EPERM, cap(CAP_SYS_ADMIN) | cap(CAP_PERFMON)},
        {{"bpf"}, EPERM, cap(CAP_SYS_ADMIN) | cap(CAP_BPF)},
        {{"acct"}, EPERM, cap(CAP_SYS_PACCT)},
    };
    return table;
}

}  // namespace

std::uint64_t clone_namespace_flags() {
    return CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
}

SyscallPolicy default_syscall_policy(std::uint64_t capabilities) {
    SyscallPolicy policy;
    policy.default_action = SyscallAction::allowed();
    for (const Block& block : blocks()) {
        if (capabilities & block.unless_any) continue;
        for (const char* name : block.names) policy.rules.push_back({name, SyscallAction::fail(block.error), {}});
    }
    if (!(capabilities & cap(CAP_SYS_ADMIN))) {
        // A deny-list cannot say "any of these bits" in one comparison (MASKED_EQ tests for equality):
        // one rule per flag, any of which matching fails the call.
        const std::uint64_t flags = clone_namespace_flags();
        for (int bit = 0; bit < 64; ++bit) {
            const std::uint64_t flag = 1ULL << bit;
            if (flags & flag) policy.rules.push_back({"clone", SyscallAction::fail(EPERM), {{0, flag, flag}}});
        }
        policy.rules.push_back({"clone3", SyscallAction::fail(ENOSYS), {}});
    }
    return policy;
}

}  // namespace imgtool::launch
