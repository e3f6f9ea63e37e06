#include "imgtool/launch/runtime_spec.hpp"

#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/devices.hpp"

namespace imgtool::launch {

using nlohmann::ordered_json;

const std::vector<std::string>& docker_masked_paths() {
    static const std::vector<std::string> paths = {
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
        // docker >= 28.0.2 (GHSA-6fw5-f8r9-fgfm): the host's interrupt counters leak activity across
        // containers.
        "/proc/interrupts"};
    return paths;
}

const std::vector<std::string>& docker_readonly_paths() {
    static const std::vector<std::string> paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                   "/proc/sysrq-trigger"};
    return paths;
}

namespace {

// runtime-spec's names for libseccomp's actions (SCMP_ACT_KILL is the thread, as libseccomp's).
std::string action_name(const SyscallAction& action) {
    switch (action.kind) {
        case SyscallAction::Kind::allow: return "SCMP_ACT_ALLOW";
        case SyscallAction::Kind::error: return "SCMP_ACT_ERRNO";
        case SyscallAction::Kind::kill_thread: return "SCMP_ACT_KILL";
        case SyscallAction::Kind::kill_process: return "SCMP_ACT_KILL_PROCESS";
        case SyscallAction::Kind::trap: return "SCMP_ACT_TRAP";
        case SyscallAction::Kind::log: return "SCMP_ACT_LOG";
    }
    throw Error(Errc::InvalidArgument, "seccomp: an action the runtime-spec cannot express");
}

std::string op_name(SyscallArg::Op op) {
    switch (op) {
        case SyscallArg::Op::eq: return "SCMP_CMP_EQ";
        case SyscallArg::Op::ne: return "SCMP_CMP_NE";
        case SyscallArg::Op::lt: return "SCMP_CMP_LT";
        case SyscallArg::Op::le: return "SCMP_CMP_LE";
        case SyscallArg::Op::ge: return "SCMP_CMP_GE";
        case SyscallArg::Op::gt: return "SCMP_CMP_GT";
        case SyscallArg::Op::masked_eq: return "SCMP_CMP_MASKED_EQ";
    }
    throw Error(Errc::InvalidArgument, "seccomp: a comparison the runtime-spec cannot express");
}

ordered_json seccomp_object(const SyscallPolicy& policy) {
    ordered_json out;
    out["defaultAction"] = action_name(policy.default_action);
    if (policy.default_action.kind == SyscallAction::Kind::error) out["defaultErrnoRet"] = policy.default_action.error;
    out["architectures"] = policy.architectures;
    ordered_json syscalls = ordered_json::array();
    for (std::size_t i = 0; i < policy.rules.size();) {
        const SyscallRule& rule = policy.rules[i];
        ordered_json entry;
        std::vector<std::string> names{rule.name};
        std::size_t next = i + 1;
        if (rule.when.empty()) {
            // Consecutive argument-free rules with one action: one entry, as docker's profile groups them.
            while (next < policy.rules.size() && policy.rules[next].when.empty() && policy.rules[next].action == rule.action) {
                names.push_back(policy.rules[next++].name);
            }
        }
        entry["names"] = names;
        entry["action"] = action_name(rule.action);
        if (rule.action.kind == SyscallAction::Kind::error) entry["errnoRet"] = rule.action.error;
        if (!rule.when.empty()) {
            ordered_json args = ordered_json::array();
            for (const SyscallArg& a : rule.when) {
                ordered_json arg{{"index", a.index}, {"value", a.value}};
                // libseccomp's masked_eq: (arg & value) == valueTwo; the others ignore valueTwo.
                if (a.op == SyscallArg::Op::masked_eq) arg["valueTwo"] = a.value_two;
                arg["op"] = op_name(a.op);
                args.push_back(std::move(arg));
            }
            entry["args"] = std::move(args);
        }
        syscalls.push_back(std::move(entry));
        i = next;
    }
    out["syscalls"] = std::move(syscalls);
    return out;
}

std::vector<std::string> capability_names(std::uint64_t set) {
    std::vector<std::string> names;
    for (int c = 0; c <= kLastKnownCap; ++c) {
        if (set & (1ULL << c)) names.push_back(capability_name(c));
    }
    return names;
}

ordered_json mount(const std::string& destination, const std::string& type, const std::string& source,
                   std::vector<std::string> options) {
    return {{"destination", destination}, {"type", type}, {"source", source}, {"options", std::move(options)}};
}

std::string access_of(unsigned bits) {
    std::string access;
    if (bits & kDeviceRead) access += 'r';
    if (bits & kDeviceWrite) access += 'w';
    if (bits & kDeviceMknod) access += 'm';
    return access;
}

}  // namespace

std::string seccomp_json(const SyscallPolicy& policy) { return seccomp_object(policy).dump(1); }

std::string runtime_spec_json(const LaunchSpec& spec, const RuntimeSpecInputs& inputs) {
    ordered_json process;
    process["terminal"] = spec.tty;
    ordered_json user{{"uid", inputs.user.uid}, {"gid", inputs.user.gid}};
    if (!inputs.user.groups.empty()) user["additionalGids"] = inputs.user.groups;
    process["user"] = std::move(user);
    process["args"] = spec.argv;
    std::vector<std::string> env = spec.env;
    if (!env_value(env, "HOME")) env.push_back("HOME=" + inputs.user.home);  // as run adds it
    process["env"] = std::move(env);
    process["cwd"] = spec.workdir;
    // run: the bounding set is the container's set; setuid to a non-root user clears effective and
    // permitted (docker's behaviour); inheritable and ambient stay empty (CVE-2022-24769).
    const auto caps = capability_names(spec.capabilities);
    const auto held = inputs.user.uid == 0 ? caps : std::vector<std::string>{};
    process["capabilities"] = {{"bounding", caps}, {"effective", held}, {"permitted", held}};
    process["noNewPrivileges"] = spec.no_new_privileges;

    ordered_json config;
    config["ociVersion"] = "1.0.2";
    config["process"] = std::move(process);
    config["root"] = {{"path", inputs.root_path}, {"readonly", spec.read_only_root}};
    config["hostname"] = spec.hostname;

    // moby's default mounts (defaults.go), /dev/shm with docker's ShmSize of 64 MiB.
    ordered_json mounts = ordered_json::array({
        mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
        mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
        mount("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
        mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", {"ro", "nosuid", "noexec", "nodev"}),
        mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
        mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=67108864"}),
    });
    // run's order: the init files, then volumes (which may cover them), then --tmpfs.
    for (const FileBind& f : spec.own_files) mounts.push_back(mount(f.container, "bind", f.host, {"rbind", "rprivate"}));
    for (const VolumeSpec& v : spec.volumes) {
        std::vector<std::string> options{"rbind", "rprivate", "nodev"};
        if (v.read_only) options.push_back("ro");
        mounts.push_back(mount(v.container, "bind", v.host, std::move(options)));
    }
    for (const TmpfsSpec& t : spec.tmpfs) {
        std::vector<std::string> options{"nodev"};
        if (!t.suid) options.push_back("nosuid");
        if (!t.exec) options.push_back("noexec");
        if (t.read_only) options.push_back("ro");
        for (const auto& [key, value] : t.options) options.push_back(key + "=" + value);
        mounts.push_back(mount(t.path, "tmpfs", "tmpfs", std::move(options)));
    }
    config["mounts"] = std::move(mounts);

    ordered_json linux;
    ordered_json namespaces = ordered_json::array();
    for (const char* type : {"pid", "ipc", "uts", "mount", "cgroup"}) namespaces.push_back({{"type", type}});
    if (spec.new_network) namespaces.push_back({{"type", "network"}});
    linux["namespaces"] = std::move(namespaces);
    ordered_json resources;
    if (spec.privileged) {
        resources["devices"] = ordered_json::array({{{"allow", true}, {"access", "rwm"}}});
    } else {
        ordered_json devices = ordered_json::array({{{"allow", false}, {"access", "rwm"}}});
        for (const DeviceRule& rule : default_device_rules()) {
            ordered_json d{{"allow", true}, {"type", std::string(1, rule.type)}};
            if (rule.major != kAnyDevice) d["major"] = rule.major;  // absent: any, as the spec says
            if (rule.minor != kAnyDevice) d["minor"] = rule.minor;
            d["access"] = access_of(rule.access);
            devices.push_back(std::move(d));
        }
        resources["devices"] = std::move(devices);
    }
    const ResourceLimits& limits = spec.limits;
    if (limits.memory != 0) {
        resources["memory"] = {{"limit", limits.memory}};
        if (limits.memory_swap != 0) resources["memory"]["swap"] = limits.memory_swap;
    }
    if (limits.cpu_quota != 0) resources["cpu"] = {{"quota", limits.cpu_quota}, {"period", limits.cpu_period}};
    if (limits.pids != 0) resources["pids"] = {{"limit", limits.pids}};
    linux["resources"] = std::move(resources);
    if (!spec.privileged) {
        std::vector<std::string> masked = docker_masked_paths();
        masked.insert(masked.end(), inputs.extra_masked.begin(), inputs.extra_masked.end());
        linux["maskedPaths"] = std::move(masked);
        linux["readonlyPaths"] = docker_readonly_paths();
        if (spec.seccomp) {
            linux["seccomp"] = seccomp_object(spec.seccomp_policy ? *spec.seccomp_policy
                                                                  : default_syscall_policy(spec.capabilities, inputs.platform));
        }
    }
    config["linux"] = std::move(linux);
    return config.dump(1) + "\n";
}

}  // namespace imgtool::launch
