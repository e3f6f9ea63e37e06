// Runs one command in new mount, PID, UTS, IPC (and optionally network) namespaces, the way runc/crun
// run a default container. Knows nothing about images: the caller supplies a function that mounts the
// root filesystem onto a directory fd inside the new mount namespace.
//
// Processes, and why the container never outlives run_container (nor imgtool killed with SIGKILL):
//   imgtool ── clone(NEWPID) ──> supervisor: PID 1 of an outer PID namespace, imgtool's own image,
//                                 non-dumpable, PR_SET_PDEATHSIG; never changes credentials or execs,
//       └─ clone(NEWNS|NEWPID|NEWUTS|NEWIPC[|NEWNET]) ─> the container's PID 1: set-up, then exec
//   The kernel clears PR_SET_PDEATHSIG whenever credentials change, for good when the container's
//   PID 1 execs a setuid binary; the supervisor's stays armed. When imgtool dies the supervisor gets
//   SIGKILL, and the death of a PID namespace's first process kills every process in it, nested
//   namespaces included. The container sees none of this: its own namespace starts at the command.
//   With --init there is no supervisor: the container's PID 1 is imgtool's init, which never execs,
//   and re-arms PR_SET_PDEATHSIG after its credential change.
//
// Order inside the container's PID 1 (each step's reason is at the step):
//   own cgroup namespace (it is in its cgroups by now) -> propagation private -> mount root -> /proc
//   /dev /dev/pts /dev/shm /sys /sys/fs/cgroup (read-only), volumes, tmpfs (all targets
//   resolved inside the root, mounted through fds) -> user lookup in the image's files -> hostname ->
//   pivot_root + detach old root -> masked / read-only paths -> optional read-only root -> seccomp
//   filter (while CAP_SYS_ADMIN is still held) -> drop capabilities and switch user -> re-arm
//   PR_SET_PDEATHSIG -> mark every fd >= 3 close-on-exec -> chdir + verify -> exec.
// The parent forwards signals, relays a pty for -t, and returns the exit status docker-style:
// the command's status, 128+N if killed by signal N, 125 if imgtool failed, 126 not executable,
// 127 not found.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "imgtool/launch/seccomp.hpp"

namespace imgtool::launch {

struct VolumeSpec {
    std::string host;
    std::string container;
    bool read_only = false;
};

// --tmpfs PATH[:OPTIONS], parsed (spec.hpp's parse_tmpfs).
struct TmpfsSpec {
    std::string path;
    std::vector<std::pair<std::string, std::string>> options;  // tmpfs's own: size, mode, uid, gid, nr_inodes
    bool read_only = false;
    bool exec = false;  // docker's default is noexec, nosuid, nodev
    bool suid = false;
};

// A file of the container's own (docker's init layer: /etc/hosts, /etc/hostname, /etc/resolv.conf),
// bind-mounted read-write over `container` from `host`, replacing whatever the image has there.
struct FileBind {
    std::string host;
    std::string container;
};

// run --memory, --memory-swap, --cpus, --pids-limit, in docker's meaning (spec.hpp's
// parse_resource_limits). All zero: no limit asked, and run makes no cgroup for limits at all.
struct ResourceLimits {
    std::int64_t memory = 0;       // bytes; 0: none
    std::int64_t memory_swap = 0;  // memory plus swap, bytes; -1: swap unlimited; 0: none
    bool memory_swap_given = false;  // false: docker's default (twice memory), kept only where enforceable
    std::int64_t cpu_quota = 0;      // microseconds of CPU time per cpu_period; 0: none
    std::int64_t cpu_period = 100000;
    std::int64_t pids = 0;  // most tasks at once; 0: none
    bool any() const { return memory != 0 || memory_swap != 0 || cpu_quota != 0 || pids != 0; }
};

struct LaunchSpec {
    std::function<void(int target_dir_fd)> mount_root;  // runs in the child, in the new mount namespace
    // Called in the parent with the host pid of the process whose life is the container's (the
    // supervisor, or --init's PID 1) once it exists and before anything of the container runs. Throwing
    // stops the launch.
    std::function<void(pid_t)> on_started;
    // Called in the parent once the command has been exec'd (not when the launch failed).
    std::function<void()> on_running;
    std::string root_dir;                                // empty directory to mount the root on
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string workdir = "/";
    std::string user;      // docker --user syntax, resolved in the image's /etc/passwd and /etc/group
    std::string hostname;
    bool new_network = false;
    bool read_only_root = false;
    bool tty = false;
    bool interactive = false;
    bool init = false;
    bool privileged = false;  // no masked paths, all capabilities, no device cgroup, no seccomp filter
    bool seccomp = true;      // --security-opt seccomp=unconfined: false
    std::optional<SyscallPolicy> seccomp_policy;  // --security-opt seccomp=FILE, resolved; unset: docker's default
    bool no_new_privileges = false;  // --security-opt no-new-privileges: set before exec
    std::uint64_t capabilities = 0;
    std::vector<FileBind> own_files;  // mounted before the volumes, which may cover them
    std::vector<VolumeSpec> volumes;
    std::vector<TmpfsSpec> tmpfs;
    ResourceLimits limits;  // enforced by the container's cgroups, or the launch fails (cgroup_plan.hpp)
};

struct RunOutcome {
    int exit_status = 0;
    std::string error;  // set when imgtool or exec failed (status 125, 126 or 127)
};

RunOutcome run_container(const LaunchSpec& spec);

// Sets PR_SET_PDEATHSIG to SIGKILL on the calling process, then tells whether its parent still holds
// the other end of `lifeline` (a socket the parent never writes to again): false if the parent died
// before the signal was armed. getppid() cannot tell: the first process of a PID namespace sees 0 as
// its parent's pid, dead or alive.
bool arm_parent_death_signal(int lifeline);

}  // namespace imgtool::launch
