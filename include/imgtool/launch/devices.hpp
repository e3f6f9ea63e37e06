// Which device nodes a container may use, as data: docker's default allow list, and its two kernel
// renderings, cgroup v1 `devices.allow` lines and the instructions of a cgroup v2
// BPF_PROG_TYPE_CGROUP_DEVICE program. Pure: nothing here touches the system (the launcher's
// device_cgroup.cpp creates the cgroups, loads and attaches).
//
// Meaning, the same in both renderings: everything is denied unless a rule has the device's type, its
// major (or any), its minor (or any) and every access bit asked for. Rules only allow; order is
// irrelevant.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <vector>

namespace imgtool::launch {

// Access bits: the kernel's BPF_DEVCG_ACC_* values (v1 spells them m, r, w).
inline constexpr unsigned kDeviceMknod = 1;
inline constexpr unsigned kDeviceRead = 2;
inline constexpr unsigned kDeviceWrite = 4;
inline constexpr unsigned kDeviceAll = kDeviceMknod | kDeviceRead | kDeviceWrite;
inline constexpr std::int64_t kAnyDevice = -1;  // a major or minor wildcard ("*")

struct DeviceRule {
    char type = 'c';  // 'c' character or 'b' block device
    std::int64_t major = kAnyDevice;
    std::int64_t minor = kAnyDevice;
    unsigned access = 0;  // kDevice* bits, at least one
};

// What docker gives a container that is not --privileged (moby's default spec plus the rules runc
// appends to every container): mknod of any node; read/write/mknod of null 1:3, zero 1:5, full 1:7,
// random 1:8, urandom 1:9, tty 5:0, console 5:1, ptmx 5:2, the pty slaves 136:* and tun 10:200.
std::vector<DeviceRule> default_device_rules();

// cgroup v1 syntax, as written to devices.allow and shown by devices.list: "c 1:3 rwm", "b *:* m".
// Throws Errc::InvalidArgument for a rule that is not well formed (also below).
std::string device_rule_line(const DeviceRule& rule);

// A BPF_PROG_TYPE_CGROUP_DEVICE program (for BPF_PROG_LOAD) that returns 1 (allow) exactly for the
// accesses the rules allow, 0 otherwise. Layout: read type, access, major and minor from the
// struct bpf_cgroup_dev_ctx into r3, r2, r4, r5; then one block per rule whose failed comparisons
// jump to the next block and whose end returns 1; then return 0.
std::vector<struct bpf_insn> device_filter_program(const std::vector<DeviceRule>& allow);

}  // namespace imgtool::launch
