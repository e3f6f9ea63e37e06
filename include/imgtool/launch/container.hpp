// Runs one command in new mount, PID, UTS, IPC (and optionally network) namespaces, the way runc/crun
// run a default container. Knows nothing about images: the caller supplies a function that mounts the
// root filesystem onto a directory fd inside the new mount namespace.
//
// Order inside the child (each step's reason is at the step):
//   propagation private -> mount root -> /proc /dev /dev/pts /dev/shm /sys, volumes, tmpfs (all targets
//   resolved inside the root, mounted through fds) -> user lookup in the image's files -> hostname ->
//   pivot_root + detach old root -> masked / read-only paths -> optional read-only root -> drop
//   capabilities and switch user -> mark every fd >= 3 close-on-exec -> chdir + verify -> exec.
// The parent forwards signals, relays a pty for -t, and returns the exit status docker-style:
// the command's status, 128+N if killed by signal N, 125 if imgtool failed, 126 not executable,
// 127 not found.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace imgtool::launch {

struct VolumeSpec {
    std::string host;
    std::string container;
    bool read_only = false;
};

struct LaunchSpec {
    std::function<void(int target_dir_fd)> mount_root;  // runs in the child, in the new mount namespace
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
    bool privileged = false;  // no masked paths, all capabilities
    std::uint64_t capabilities = 0;
    std::vector<VolumeSpec> volumes;
    std::vector<std::string> tmpfs;
};

struct RunOutcome {
    int exit_status = 0;
    std::string error;  // set when imgtool or exec failed (status 125, 126 or 127)
};

RunOutcome run_container(const LaunchSpec& spec);

}  // namespace imgtool::launch
