// docker's default seccomp profile as data: the facts of moby's profiles/seccomp/default.json (moby 25
// and later), grouped here by what the calls do. Resolved per container by resolve_profile.
#include <cerrno>

#include "imgtool/launch/seccomp.hpp"

namespace imgtool::launch {
namespace {

using Names = std::vector<std::string>;

ProfileRule allow(Names names) { return {std::move(names), SyscallAction::allowed(), {}, {}, {}}; }

ProfileRule allow_with_cap(const char* cap, Names names) {
    ProfileRule rule = allow(std::move(names));
    rule.includes.caps = {cap};
    return rule;
}

ProfileRule allow_on(Names arches, Names names) {
    ProfileRule rule = allow(std::move(names));
    rule.includes.arches = std::move(arches);
    return rule;
}

ProfileRule allow_when(const char* name, SyscallArg arg) {
    ProfileRule rule = allow({name});
    rule.args = {arg};
    return rule;
}

SeccompProfile build() {
    SeccompProfile p;
    p.default_action = SyscallAction::fail(EPERM);
    p.arch_map = {
        {"SCMP_ARCH_X86_64", {"SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
        {"SCMP_ARCH_AARCH64", {"SCMP_ARCH_ARM"}},
        {"SCMP_ARCH_MIPS64", {"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"}},
        {"SCMP_ARCH_MIPS64N32", {"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"}},
        {"SCMP_ARCH_MIPSEL64", {"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"}},
        {"SCMP_ARCH_MIPSEL64N32", {"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"}},
        {"SCMP_ARCH_S390X", {"SCMP_ARCH_S390"}},
        {"SCMP_ARCH_RISCV64", {}},
    };
    auto& r = p.rules;
    // Files and directories: names, metadata, links, mount information (read-only).
    r.push_back(allow({"access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod", "fchmodat",
                       "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "creat",
                       "open", "openat", "openat2", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "fcntl64",
                       "flock", "link", "linkat", "symlink", "symlinkat", "readlink", "readlinkat", "rename",
                       "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "mknod", "mknodat", "rmdir",
                       "umask", "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate", "stat", "stat64",
                       "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx", "statfs",
                       "statfs64", "fstatfs", "fstatfs64", "getdents", "getdents64", "utime", "utimes", "utimensat",
                       "utimensat_time64", "futimesat", "name_to_handle_at", "statmount", "listmount"}));
    // Reading and writing.
    r.push_back(allow({"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev",
                       "pwritev2", "lseek", "_llseek", "sendfile", "sendfile64", "splice", "tee", "vmsplice",
                       "copy_file_range", "readahead", "fadvise64", "fadvise64_64", "fsync", "fdatasync", "sync",
                       "syncfs", "sync_file_range", "ioctl", "cachestat"}));
    r.push_back(allow({"getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr", "fsetxattr",
                       "setxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat", "removexattr",
                       "lremovexattr", "fremovexattr", "removexattrat"}));
    // Waiting for file descriptors and events (fanotify_init itself needs CAP_SYS_ADMIN, below).
    r.push_back(allow({"poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
                       "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
                       "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
                       "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
                       "timerfd_settime64", "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
                       "fanotify_mark", "pipe", "pipe2"}));
    // Linux AIO (io_uring is not here: refused since moby 25, a large surface with a long run of
    // privilege escalations).
    r.push_back(allow({"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
                       "io_pgetevents_time64"}));
    r.push_back(allow({"brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
                       "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages", "membarrier",
                       "memfd_create", "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect",
                       "map_shadow_stack", "mseal"}));
    // Processes and their own state.
    r.push_back(allow({"execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid", "waitpid",
                       "kill", "tkill", "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp",
                       "getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
                       "restart_syscall", "prctl", "seccomp", "uname", "sysinfo", "getrandom", "getcpu", "getrusage",
                       "getrlimit", "setrlimit", "prlimit64", "ugetrlimit", "times", "pidfd_open",
                       "pidfd_send_signal", "process_mrelease", "capget", "capset", "landlock_create_ruleset",
                       "landlock_add_rule", "landlock_restrict_self", "get_thread_area", "set_thread_area",
                       "uretprobe", "riscv_hwprobe"}));
    r.push_back(allow({"rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
                       "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
                       "sigaltstack", "sigprocmask", "sigreturn", "pause", "alarm", "getitimer", "setitimer"}));
    r.push_back(allow({"futex", "futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue"}));
    r.push_back(allow({"getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
                       "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32", "setuid",
                       "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
                       "setresuid", "setresuid32", "setresgid", "setresgid32", "setgroups", "setgroups32",
                       "setfsuid", "setfsuid32", "setfsgid", "setfsgid32"}));
    r.push_back(allow({"sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
                       "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
                       "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
                       "sched_rr_get_interval_time64", "getpriority", "setpriority", "ioprio_get", "ioprio_set"}));
    // Clocks and timers; adjtimex and clock_adjtime only read without CAP_SYS_TIME (the kernel checks).
    r.push_back(allow({"time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
                       "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
                       "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
                       "timer_settime", "timer_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64"}));
    // Sockets once made (socket itself below).
    r.push_back(allow({"accept", "accept4", "bind", "connect", "listen", "shutdown", "getpeername", "getsockname",
                       "getsockopt", "setsockopt", "socketpair", "send", "sendto", "sendmsg", "sendmmsg", "recv",
                       "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "socketcall"}));
    // System V and POSIX IPC: the container has its own IPC namespace.
    r.push_back(allow({"ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
                       "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "mq_open", "mq_unlink",
                       "mq_getsetattr", "mq_notify", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
                       "mq_timedsend_time64"}));

    // ptrace and reading other processes' memory: the kernel's own checks suffice from 4.8 on (before,
    // ptrace could bypass seccomp).
    ProfileRule ptrace = allow({"process_vm_readv", "process_vm_writev", "ptrace"});
    ptrace.includes.min_kernel = {{4, 8}};
    r.push_back(ptrace);
    // socket(2) of every family but AF_ALG (38: the kernel's crypto API) and AF_VSOCK (40: the
    // hypervisor's sockets, not namespaced).
    r.push_back(allow_when("socket", {0, SyscallArg::Op::lt, 38, 0}));
    r.push_back(allow_when("socket", {0, SyscallArg::Op::eq, 39, 0}));
    r.push_back(allow_when("socket", {0, SyscallArg::Op::gt, 40, 0}));
    // personality(2): PER_LINUX, PER_LINUX32, UNAME26 and their combinations, and the query 0xffffffff;
    // not flags such as ADDR_NO_RANDOMIZE, which turn off protections for whatever the process execs.
    for (std::uint64_t persona : {0x0ULL, 0x8ULL, 0x20000ULL, 0x20008ULL, 0xffffffffULL}) {
        r.push_back(allow_when("personality", {0, SyscallArg::Op::eq, persona, 0}));
    }

    // Calls of one architecture.
    r.push_back(allow_on({"ppc64le"}, {"sync_file_range2", "swapcontext"}));
    r.push_back(allow_on({"arm", "arm64"},
                         {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                          "set_tls"}));
    r.push_back(allow_on({"amd64", "x32"}, {"arch_prctl"}));
    r.push_back(allow_on({"amd64", "x32", "x86"}, {"modify_ldt"}));
    r.push_back(allow_on({"s390", "s390x"}, {"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"}));
    r.push_back(allow_on({"riscv64"}, {"riscv_flush_icache"}));

    // What each capability unlocks (the kernel still checks the capability itself).
    // CAP_DAC_READ_SEARCH: open_by_handle_at reaches any inode of a filesystem by number, bind mounts
    // notwithstanding (the "shocker" escape).
    r.push_back(allow_with_cap("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}));
    // CAP_SYS_ADMIN: namespaces, every way to mount, bpf, perf, the kernel log, host and domain names.
    r.push_back(allow_with_cap("CAP_SYS_ADMIN",
                               {"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                                "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
                                "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
                                "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
                                "umount2", "unshare"}));
    // Without it: clone with no namespace flag (the mask is clone_namespace_flags()); s390 passes the
    // flags second.
    ProfileRule clone = allow_when("clone", {0, SyscallArg::Op::masked_eq, 0x7E020000, 0});
    clone.excludes.caps = {"CAP_SYS_ADMIN"};
    clone.excludes.arches = {"s390", "s390x"};
    r.push_back(clone);
    ProfileRule clone_s390 = allow_when("clone", {1, SyscallArg::Op::masked_eq, 0x7E020000, 0});
    clone_s390.includes.arches = {"s390", "s390x"};
    clone_s390.excludes.caps = {"CAP_SYS_ADMIN"};
    r.push_back(clone_s390);
    ProfileRule clone3 = {{"clone3"}, SyscallAction::fail(ENOSYS), {}, {}, {}};
    clone3.excludes.caps = {"CAP_SYS_ADMIN"};
    r.push_back(clone3);
    r.push_back(allow_with_cap("CAP_SYS_BOOT", {"reboot"}));
    r.push_back(allow_with_cap("CAP_SYS_CHROOT", {"chroot"}));
    r.push_back(allow_with_cap("CAP_SYS_MODULE", {"delete_module", "init_module", "finit_module"}));
    r.push_back(allow_with_cap("CAP_SYS_PACCT", {"acct"}));
    r.push_back(allow_with_cap("CAP_SYS_PTRACE", {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                                                  "process_vm_writev", "ptrace"}));
    r.push_back(allow_with_cap("CAP_SYS_RAWIO", {"iopl", "ioperm"}));
    r.push_back(allow_with_cap("CAP_SYS_TIME", {"settimeofday", "stime", "clock_settime", "clock_settime64"}));
    r.push_back(allow_with_cap("CAP_SYS_TTY_CONFIG", {"vhangup"}));
    r.push_back(allow_with_cap("CAP_SYS_NICE", {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}));
    r.push_back(allow_with_cap("CAP_SYSLOG", {"syslog"}));
    r.push_back(allow_with_cap("CAP_BPF", {"bpf"}));
    r.push_back(allow_with_cap("CAP_PERFMON", {"perf_event_open"}));
    // Never, whatever the capabilities, by omission: the kernel keyring (keyctl, add_key, request_key:
    // per uid, not per namespace), kexec, userfaultfd, swapon/swapoff, pivot_root, io_uring, NUMA page
    // moves (move_pages, migrate_pages), and every call not named here.
    return p;
}

}  // namespace

const SeccompProfile& docker_default_profile() {
    static const SeccompProfile profile = build();
    return profile;
}

}  // namespace imgtool::launch
