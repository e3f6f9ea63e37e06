// A LaunchSpec (what `imgtool run` would do) rendered as an OCI runtime-spec 1.0.2 config.json, for
// runtimes such as crun and runc (`imgtool bundle`). Pure: the values only the disk or the image's
// files can give (the resolved user, the bundle's init files, extra masked paths) are passed in.
//
// The mapping, in docker's terms (moby daemon/pkg/oci/defaults.go, daemon/oci_linux.go), is the same
// as run's own launch (container.hpp) where the runtime-spec can say it:
// - process: argv, env (plus HOME from the image's passwd where unset, as run adds it), cwd, the user
//   as numbers with the primary group first among additionalGids, noNewPrivileges; the capability set
//   as bounding, and as effective/permitted for uid 0 only (setuid to another user clears them in
//   run); inheritable and ambient empty;
// - namespaces pid, ipc, uts, mount, cgroup, and network only for --net none;
// - docker's mounts (/proc, /dev tmpfs, /dev/pts gid=5, /dev/shm 64 MiB, /dev/mqueue, /sys and
//   /sys/fs/cgroup read-only), then the init files (/etc/hosts...), volumes and --tmpfs, in run's order;
// - docker's masked and read-only paths, the device cgroup (deny all, docker's allow list), resource
//   limits when given, and the seccomp policy resolved for the capability set (docker's default, or
//   --security-opt seccomp=FILE; none with seccomp=unconfined). --privileged: none of those walls.
// run sets no rlimits (the caller's are inherited), so neither does the rendering.
#pragma once

#include <string>
#include <vector>

#include "imgtool/launch/config.hpp"
#include "imgtool/launch/container.hpp"
#include "imgtool/launch/seccomp.hpp"

namespace imgtool::launch {

// docker's masked paths (null device or an empty read-only tmpfs over them) and read-only paths,
// as run applies them. docker also masks each /sys/devices/system/cpu/cpuN/thermal_throttle present.
const std::vector<std::string>& docker_masked_paths();
const std::vector<std::string>& docker_readonly_paths();

struct RuntimeSpecInputs {
    User user;                               // spec.user resolved in the image's /etc/passwd and /etc/group
    std::string root_path = "rootfs";        // root.path, relative to the bundle
    std::vector<std::string> extra_masked;   // appended to docker_masked_paths()
    SeccompPlatform platform;                // what docker's default profile is resolved for
};

// The seccomp policy as runtime-spec's linux.seccomp object (JSON text): defaultAction and
// defaultErrnoRet, architectures, one syscalls entry per run of consecutive argument-free rules with
// the same action, one per rule with arguments. Throws Errc::InvalidArgument for what the format
// cannot say.
std::string seccomp_json(const SyscallPolicy& policy);

// config.json's text (indented, ending in a newline). spec.own_files' host paths are written as given
// (the bundle passes absolute paths: runtimes resolve relative sources differently).
std::string runtime_spec_json(const LaunchSpec& spec, const RuntimeSpecInputs& inputs);

}  // namespace imgtool::launch
