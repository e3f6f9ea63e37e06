// The per-container device cgroup: which device nodes the container's processes may open, whatever
// the mount they find a node on. (Private to the launcher.)
//
// On every hierarchy that can restrict devices, a child of imgtool's own cgroup named
// "imgtool-<pid>-<random>" is made and restricted to an allow list:
//   - cgroup v1 `devices` controller: "a" written to devices.deny, then one devices.allow line per rule;
//   - cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program (devices.hpp) attached as BPF_CGROUP_DEVICE.
// On a hybrid host both apply (the kernel asks the BPF programs, then the v1 controller). Lifecycle:
// create() before the clone; add(pid) while the child waits for the go-ahead, so the container never
// runs outside it; the destructor, after the container's last process is reaped, removes the
// directories. Leftovers of an imgtool that was killed are removed by the next create().
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "imgtool/launch/devices.hpp"

namespace imgtool::launch {

class DeviceCgroup {
public:
    // Makes the cgroups where it can. Not being able to (no hierarchy mounted, read-only cgroupfs, no
    // permission, no BPF) is not an error here: active() is then false and unavailable() says why.
    // Other failures (writing the rules of a cgroup it made) throw.
    static DeviceCgroup create(const std::vector<DeviceRule>& allow);

    DeviceCgroup() = default;
    DeviceCgroup(DeviceCgroup&& o) noexcept : dirs_(std::move(o.dirs_)), why_(std::move(o.why_)) { o.dirs_.clear(); }
    DeviceCgroup& operator=(DeviceCgroup&&) = delete;
    DeviceCgroup(const DeviceCgroup&) = delete;
    DeviceCgroup& operator=(const DeviceCgroup&) = delete;
    ~DeviceCgroup();

    bool active() const { return !dirs_.empty(); }
    const std::string& unavailable() const { return why_; }
    const std::vector<std::string>& directories() const { return dirs_; }
    // Moves process `pid` into every cgroup made. Throws.
    void add(pid_t pid) const;

private:
    std::vector<std::string> dirs_;
    std::string why_;
};

// False inside a user namespace (rootless imgtool, or imgtool run inside another runtime's userns).
bool in_initial_user_namespace();

}  // namespace imgtool::launch
