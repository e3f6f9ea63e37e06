// runtime_spec_json: run's LaunchSpec as an OCI runtime-spec config.json (imgtool bundle).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgtool/image/types.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/runtime_spec.hpp"
#include "imgtool/launch/spec.hpp"

using imgtool::image::ContainerConfig;
using imgtool::launch::LaunchSpec;
using imgtool::launch::RunOptions;
using imgtool::launch::RuntimeSpecInputs;
using imgtool::launch::SeccompPlatform;
using imgtool::launch::SyscallAction;
using imgtool::launch::SyscallArg;
using imgtool::launch::SyscallPolicy;
using nlohmann::json;
using Strings = std::vector<std::string>;

namespace {

const SeccompPlatform kAmd64{"amd64", "SCMP_ARCH_X86_64", 6, 1};

ContainerConfig busybox_like() {
    ContainerConfig c;
    c.cmd = Strings{"sh"};
    c.env = Strings{"GREETING=hello"};
    c.working_dir = "/srv";
    return c;
}

RunOptions options_with(std::vector<std::string> command = {}) {
    RunOptions o;
    o.command = std::move(command);
    o.default_hostname = "0123456789ab";
    o.seccomp_platform = kAmd64;
    return o;
}

json render(const LaunchSpec& spec, imgtool::launch::User user = {0, 0, {0}, "/root"}) {
    RuntimeSpecInputs inputs;
    inputs.user = std::move(user);
    inputs.platform = kAmd64;
    return json::parse(imgtool::launch::runtime_spec_json(spec, inputs));
}

Strings destinations(const json& config) {
    Strings out;
    for (const auto& m : config["mounts"]) out.push_back(m["destination"]);
    return out;
}

bool has(const json& array, const json& value) { return std::find(array.begin(), array.end(), value) != array.end(); }

}  // namespace

TEST_CASE("runtime spec: the process is run's, with HOME from the resolved user") {
    LaunchSpec spec = imgtool::launch::spec_from_image(busybox_like(), options_with({"id", "-u"}));
    json c = render(spec);
    CHECK(c["ociVersion"] == "1.0.2");
    CHECK(c["process"]["args"] == json(Strings{"id", "-u"}));
    CHECK(c["process"]["cwd"] == "/srv");
    CHECK(c["process"]["env"] == json(Strings{"GREETING=hello", std::string(imgtool::launch::kDefaultPath),
                                              "HOSTNAME=0123456789ab", "HOME=/root"}));
    CHECK(c["process"]["user"] == json{{"uid", 0}, {"gid", 0}, {"additionalGids", {0}}});
    CHECK(c["process"]["terminal"] == false);
    CHECK(c["process"]["noNewPrivileges"] == false);
    CHECK(c["hostname"] == "0123456789ab");
    CHECK(c["root"] == json{{"path", "rootfs"}, {"readonly", false}});
}

TEST_CASE("runtime spec: docker's capabilities; a non-root user holds none but the bounding set") {
    LaunchSpec spec = imgtool::launch::spec_from_image(busybox_like(), options_with());
    json root = render(spec);
    const json& caps = root["process"]["capabilities"];
    CHECK(caps["bounding"].size() == 14);
    CHECK(has(caps["bounding"], "CAP_CHOWN"));
    CHECK(has(caps["bounding"], "CAP_AUDIT_WRITE"));
    CHECK_FALSE(has(caps["bounding"], "CAP_SYS_ADMIN"));
    CHECK(caps["effective"] == caps["bounding"]);
    CHECK(caps["permitted"] == caps["bounding"]);
    CHECK_FALSE(caps.contains("inheritable"));
    CHECK_FALSE(caps.contains("ambient"));

    json user = render(spec, {1000, 1000, {1000, 10}, "/home/user"});
    CHECK(user["process"]["capabilities"]["bounding"] == caps["bounding"]);
    CHECK(user["process"]["capabilities"]["effective"].empty());
    CHECK(user["process"]["capabilities"]["permitted"].empty());
    CHECK(user["process"]["user"]["additionalGids"] == json({1000, 10}));
    CHECK(has(user["process"]["env"], "HOME=/home/user"));

    RunOptions o = options_with();
    o.cap_add = {"NET_ADMIN"};
    o.cap_drop = {"CHOWN"};
    json adjusted = render(imgtool::launch::spec_from_image(busybox_like(), o));
    CHECK(has(adjusted["process"]["capabilities"]["bounding"], "CAP_NET_ADMIN"));
    CHECK_FALSE(has(adjusted["process"]["capabilities"]["bounding"], "CAP_CHOWN"));
}

TEST_CASE("runtime spec: namespaces, a network one only for --net none") {
    json host = render(imgtool::launch::spec_from_image(busybox_like(), options_with()));
    CHECK(host["linux"]["namespaces"] ==
          json::parse(R"([{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}])"));
    RunOptions o = options_with();
    o.net = "none";
    json none = render(imgtool::launch::spec_from_image(busybox_like(), o));
    CHECK(has(none["linux"]["namespaces"], json{{"type", "network"}}));
}

TEST_CASE("runtime spec: docker's mounts, then the init files, volumes and tmpfs in run's order") {
    RunOptions o = options_with();
    o.volumes = {"/srv/data:/data:ro"};
    o.tmpfs = {"/run:size=1m"};
    LaunchSpec spec = imgtool::launch::spec_from_image(busybox_like(), o);
    spec.own_files = {{"/b/hosts", "/etc/hosts"}, {"/b/hostname", "/etc/hostname"}, {"/b/resolv.conf", "/etc/resolv.conf"}};
    json c = render(spec);
    CHECK(destinations(c) == Strings{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm",
                                     "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/data", "/run"});
    const json& mounts = c["mounts"];
    CHECK(mounts[2]["type"] == "devpts");
    CHECK(has(mounts[2]["options"], "gid=5"));
    CHECK(has(mounts[2]["options"], "newinstance"));
    CHECK(has(mounts[3]["options"], "ro"));  // /sys
    CHECK(has(mounts[4]["options"], "ro"));  // /sys/fs/cgroup
    CHECK(mounts[7] == json{{"destination", "/etc/hosts"}, {"type", "bind"}, {"source", "/b/hosts"}, {"options", {"rbind", "rprivate"}}});
    CHECK(mounts[10]["source"] == "/srv/data");
    CHECK(has(mounts[10]["options"], "ro"));
    CHECK(mounts[11]["type"] == "tmpfs");
    CHECK(has(mounts[11]["options"], "size=1m"));
    CHECK(has(mounts[11]["options"], "noexec"));
}

TEST_CASE("runtime spec: masked and read-only paths, the device cgroup, seccomp; none with --privileged") {
    LaunchSpec spec = imgtool::launch::spec_from_image(busybox_like(), options_with());
    RuntimeSpecInputs inputs;
    inputs.platform = kAmd64;
    inputs.extra_masked = {"/sys/devices/system/cpu/cpu0/thermal_throttle"};
    json c = json::parse(imgtool::launch::runtime_spec_json(spec, inputs));
    const json& linux = c["linux"];
    CHECK(has(linux["maskedPaths"], "/proc/kcore"));
    CHECK(has(linux["maskedPaths"], "/proc/interrupts"));
    CHECK(linux["maskedPaths"].back() == "/sys/devices/system/cpu/cpu0/thermal_throttle");
    CHECK(linux["readonlyPaths"] == json(Strings{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}));
    const json& devices = linux["resources"]["devices"];
    CHECK(devices[0] == json{{"allow", false}, {"access", "rwm"}});
    CHECK(has(devices, json{{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rwm"}}));
    CHECK(has(devices, json{{"allow", true}, {"type", "c"}, {"major", 136}, {"access", "rwm"}}));  // any minor
    CHECK_FALSE(has(devices, json{{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 11}, {"access", "rwm"}}));
    CHECK_FALSE(linux["resources"].contains("memory"));

    const json& seccomp = linux["seccomp"];
    CHECK(seccomp["defaultAction"] == "SCMP_ACT_ERRNO");
    CHECK(seccomp["defaultErrnoRet"] == 1);
    CHECK(has(seccomp["architectures"], "SCMP_ARCH_X86_64"));
    bool read_allowed = false, clone_masked = false, clone3_enosys = false, keyctl = false;
    for (const auto& rule : seccomp["syscalls"]) {
        if (has(rule["names"], "read") && rule["action"] == "SCMP_ACT_ALLOW") read_allowed = true;
        if (has(rule["names"], "keyctl")) keyctl = true;
        if (rule["names"] == json(Strings{"clone"}) && rule.contains("args")) {
            clone_masked = rule["args"] == json::parse(R"([{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}])");
        }
        if (rule["names"] == json(Strings{"clone3"})) clone3_enosys = rule["action"] == "SCMP_ACT_ERRNO" && rule["errnoRet"] == 38;
    }
    CHECK(read_allowed);
    CHECK(clone_masked);
    CHECK(clone3_enosys);
    CHECK_FALSE(keyctl);  // docker's default leaves it to defaultAction

    RunOptions unconfined = options_with();
    unconfined.security_opts = {"seccomp=unconfined", "no-new-privileges"};
    json u = render(imgtool::launch::spec_from_image(busybox_like(), unconfined));
    CHECK_FALSE(u["linux"].contains("seccomp"));
    CHECK(u["process"]["noNewPrivileges"] == true);

    RunOptions privileged = options_with();
    privileged.privileged = true;
    json p = render(imgtool::launch::spec_from_image(busybox_like(), privileged));
    CHECK_FALSE(p["linux"].contains("seccomp"));
    CHECK_FALSE(p["linux"].contains("maskedPaths"));
    CHECK(p["linux"]["resources"]["devices"] == json::parse(R"([{"allow":true,"access":"rwm"}])"));
}

TEST_CASE("runtime spec: --read-only and resource limits") {
    RunOptions o = options_with();
    o.read_only = true;
    o.memory = "64m";
    o.pids_limit = "100";
    o.cpus = "0.5";
    json c = render(imgtool::launch::spec_from_image(busybox_like(), o));
    CHECK(c["root"]["readonly"] == true);
    CHECK(c["linux"]["resources"]["memory"] == json{{"limit", 64 << 20}, {"swap", 128 << 20}});
    CHECK(c["linux"]["resources"]["pids"] == json{{"limit", 100}});
    CHECK(c["linux"]["resources"]["cpu"] == json{{"quota", 50000}, {"period", 100000}});
}

TEST_CASE("seccomp_json groups consecutive argument-free rules with one action") {
    SyscallPolicy policy;
    policy.default_action = SyscallAction::fail(1);
    policy.architectures = {"SCMP_ARCH_X86_64"};
    policy.rules = {{"read", SyscallAction::allowed(), {}},
                    {"write", SyscallAction::allowed(), {}},
                    {"socket", SyscallAction::allowed(), {SyscallArg{0, SyscallArg::Op::lt, 38, 0}}},
                    {"close", SyscallAction::allowed(), {}},
                    {"clone3", SyscallAction::fail(38), {}},
                    {"kill", SyscallAction::of(SyscallAction::Kind::kill_process), {}}};
    json s = json::parse(imgtool::launch::seccomp_json(policy));
    CHECK(s == json::parse(R"({"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                    {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":38,"op":"SCMP_CMP_LT"}]},
                    {"names":["close"],"action":"SCMP_ACT_ALLOW"},
                    {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                    {"names":["kill"],"action":"SCMP_ACT_KILL_PROCESS"}]})"));
}
