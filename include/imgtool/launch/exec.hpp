// `imgtool exec`: one more process in a running container, made the way the container's own was.
//
// run records the container's process settings (ProcessRecord, as JSON in the container's record);
// exec turns them and its own flags into an ExecSpec (pure, below), and exec_in_container performs it:
//   imgtool exec (non-dumpable) ── setns(pidfd of the container's PID 1: user if it has its own, mnt,
//   pid, uts, ipc, net) ── fork ──> the process: into the container's cgroups (fds opened on the host
//   side before setns) and cgroup namespace -> new session (the pty as its controlling terminal with
//   -t) -> user lookup in the container's /etc/passwd and /etc/group -> seccomp filter -> capabilities
//   and user -> no_new_privs -> every fd >= 3 close-on-exec -> chdir -> exec.
// The parent relays the pty (or pipes, when the container may use TIOCSTI), forwards signals and
// returns docker's statuses (the command's, 128+N for signal N, 126/127 when exec fails, 125 for
// imgtool's own failures).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/launch/container.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::launch {

// What exec needs to know of the container's own process, as run set it up.
struct ProcessRecord {
    std::vector<std::string> env;
    std::string user;     // docker --user syntax, as run resolved it in the image's files
    std::string workdir;
    std::uint64_t capabilities = 0;
    bool privileged = false;
    bool seccomp = true;
    bool seccomp_profile = false;  // a profile from a file (exec refuses: it cannot rebuild that filter)
    bool no_new_privileges = false;
    bool init = false;  // PID 1 is imgtool's init (else the command, whose parent is the supervisor)
};

ProcessRecord process_record_of(const LaunchSpec& spec);
std::string process_record_json(const ProcessRecord& record);
// Throws Errc::InvalidArgument on anything but what process_record_json writes.
ProcessRecord parse_process_record(std::string_view json);

// exec's flags.
struct ExecOptions {
    std::vector<std::string> command;   // required
    std::vector<std::string> env;       // -e KEY=VALUE or -e KEY (from host_env)
    std::vector<std::string> host_env;
    std::string user;                   // -u; empty: the container's
    std::string workdir;                // -w; empty: the container's
    bool interactive = false;
    bool tty = false;
};

struct ExecSpec {
    pid_t target = 0;   // host pid of the container's PID 1
    int target_fd = -1;  // its pidfd
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string user;
    std::string workdir;
    std::uint64_t capabilities = 0;
    bool tty = false;
    bool interactive = false;
    bool privileged = false;
    bool seccomp = true;
    bool no_new_privileges = false;
};

// docker exec's rules: the container's environment with -e on top (and TERM=xterm with -t where
// unset), -u else the container's user, -w (absolute) else the container's working directory, the
// container's capabilities, seccomp and no_new_privs. Throws Errc::InvalidArgument.
ExecSpec exec_spec(const ProcessRecord& container, const ExecOptions& options);

// The container's PID 1, given the live process run recorded (open as `recorded_fd`: the supervisor,
// or --init's PID 1): its host pid and a pidfd, or an empty fd when the container is gone. Reads /proc.
sys::UniqueFd container_init_process(pid_t recorded, int recorded_fd, bool init, pid_t& pid);

RunOutcome exec_in_container(const ExecSpec& spec);

}  // namespace imgtool::launch
