// The container's system call policy as data (docker's default profile, resolved for capabilities,
// architecture and kernel), docker's JSON profile format, and the filter libseccomp compiles, loaded
// in a forked child (with no_new_privs, so no privilege is needed) and asked real system calls.
#include <doctest/doctest.h>

#include <linux/capability.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/seccomp.hpp"
#include "imgtool/launch/seccomp_filter.hpp"
#include "imgtool/launch/seccomp_profile.hpp"
#include "imgtool/launch/spec.hpp"

using namespace imgtool::launch;
using Kind = SyscallAction::Kind;
using Op = SyscallArg::Op;

namespace {

std::uint64_t cap(int n) { return 1ULL << n; }

const SeccompPlatform kAmd64{"amd64", "SCMP_ARCH_X86_64", 6, 1};
const SeccompPlatform kArm64{"arm64", "SCMP_ARCH_AARCH64", 6, 1};

// The rules for `name` in a policy.
std::vector<SyscallRule> rules_for(const SyscallPolicy& p, const std::string& name) {
    std::vector<SyscallRule> out;
    std::copy_if(p.rules.begin(), p.rules.end(), std::back_inserter(out), [&](const auto& r) { return r.name == name; });
    return out;
}

// Allowed whatever the arguments: one rule, unconditional, allow.
bool allows(const SyscallPolicy& p, const std::string& name) {
    auto rules = rules_for(p, name);
    return rules.size() == 1 && rules[0].when.empty() && rules[0].action == SyscallAction::allowed();
}

const std::vector<std::string> kNeverAllowed = {
    "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "userfaultfd", "swapon", "swapoff",
    "pivot_root", "io_uring_setup", "io_uring_enter", "io_uring_register", "move_pages", "migrate_pages"};
const std::vector<std::string> kSysAdmin = {"mount", "umount2", "unshare", "setns", "fsopen", "fsmount", "move_mount",
                                            "open_tree", "bpf", "perf_event_open", "sethostname", "syslog",
                                            "fanotify_init", "quotactl", "lookup_dcookie"};

// errno values no kernel path returns, so a call failing with one was failed by the filter.
constexpr int kSentinel = 4000;
constexpr int kSentinelNosys = 4001;

// Runs fn in a forked child; returns its exit status (or 1000 + signal).
template <typename Fn>
int in_child(Fn&& fn) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(fn());
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

// docker's default for the default capability set, on this machine, with sentinel errnos.
SeccompFilter sentinel_filter(std::uint64_t caps = default_capabilities()) {
    SyscallPolicy policy = default_syscall_policy(caps, host_platform());
    REQUIRE(policy.default_action == SyscallAction::fail(EPERM));
    policy.default_action = SyscallAction::fail(kSentinel);
    for (auto& r : policy.rules) {
        if (r.action == SyscallAction::fail(ENOSYS)) r.action = SyscallAction::fail(kSentinelNosys);
    }
    return SeccompFilter::compile(policy);
}

// A call in a child under `filter`: the errno it failed with, 0 if it succeeded.
int errno_of(const SeccompFilter& filter, long nr, std::vector<unsigned long> args) {
    args.resize(6, 0);
    return in_child([&] {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 250;
        filter.load();
        long rc = ::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
        if (rc == 0 && nr == SYS_clone) ::_exit(0);  // the clone's child
        if (rc >= 0) return 0;
        return errno == kSentinel ? 200 : errno == kSentinelNosys ? 201 : errno > 199 ? 199 : errno;
    });
}

std::string profile_path(const std::string& name) { return std::string(IMGTOOL_TESTDATA_DIR) + "/seccomp/" + name; }

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// docker's JSON for a profile: the test's own writer, to read our table back through the parser.
nlohmann::json to_docker_json(const SeccompProfile& p) {
    using json = nlohmann::json;
    auto action = [](const SyscallAction& a, json& out, const char* key, const char* errno_key) {
        static const std::map<Kind, const char*> kNames = {{Kind::allow, "SCMP_ACT_ALLOW"}, {Kind::error, "SCMP_ACT_ERRNO"},
                                                           {Kind::kill_thread, "SCMP_ACT_KILL"}, {Kind::kill_process, "SCMP_ACT_KILL_PROCESS"},
                                                           {Kind::trap, "SCMP_ACT_TRAP"}, {Kind::log, "SCMP_ACT_LOG"}};
        out[key] = kNames.at(a.kind);
        if (a.kind == Kind::error) out[errno_key] = a.error;
    };
    auto condition = [](const ProfileCondition& c) {
        json out = json::object();
        if (!c.caps.empty()) out["caps"] = c.caps;
        if (!c.arches.empty()) out["arches"] = c.arches;
        if (c.min_kernel) out["minKernel"] = std::to_string(c.min_kernel->first) + "." + std::to_string(c.min_kernel->second);
        return out;
    };
    static const std::map<Op, const char*> kOps = {{Op::eq, "SCMP_CMP_EQ"}, {Op::ne, "SCMP_CMP_NE"}, {Op::lt, "SCMP_CMP_LT"},
                                                   {Op::le, "SCMP_CMP_LE"}, {Op::ge, "SCMP_CMP_GE"}, {Op::gt, "SCMP_CMP_GT"},
                                                   {Op::masked_eq, "SCMP_CMP_MASKED_EQ"}};
    json out;
    action(p.default_action, out, "defaultAction", "defaultErrnoRet");
    out["archMap"] = json::array();
    for (const auto& [native, subs] : p.arch_map) out["archMap"].push_back({{"architecture", native}, {"subArchitectures", subs}});
    out["syscalls"] = json::array();
    for (const ProfileRule& r : p.rules) {
        json rule = {{"names", r.names}};
        action(r.action, rule, "action", "errnoRet");
        for (const SyscallArg& a : r.args) {
            rule["args"].push_back({{"index", a.index}, {"value", a.value}, {"valueTwo", a.value_two}, {"op", kOps.at(a.op)}});
        }
        if (auto c = condition(r.includes); !c.empty()) rule["includes"] = c;
        if (auto c = condition(r.excludes); !c.empty()) rule["excludes"] = c;
        out["syscalls"].push_back(rule);
    }
    return out;
}

// The error parse_seccomp_profile throws for `text`.
std::string parse_error(const std::string& text) {
    try {
        parse_seccomp_profile(text, "p.json");
    } catch (const imgtool::Error& e) {
        CHECK(e.code() == imgtool::make_error_code(imgtool::Errc::InvalidArgument));
        return e.what();
    }
    return "(parsed)";
}

std::string with_rule(const std::string& rule) {
    return R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, )" + rule + "]}";
}

}  // namespace

// ---- docker's default profile ----

TEST_CASE("seccomp default: an allow-list, EPERM for the rest, for docker's default capability set") {
    SyscallPolicy p = default_syscall_policy(default_capabilities(), kAmd64);
    CHECK(p.default_action == SyscallAction::fail(EPERM));
    CHECK(p.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"});
    for (const char* name : {"read", "write", "openat", "execve", "exit_group", "mkdir", "mkdirat", "futex", "rt_sigreturn",
                             "wait4", "getpid", "ptrace", "arch_prctl", "modify_ldt", "chroot"}) {
        CAPTURE(name);
        CHECK(allows(p, name));
    }
    for (const auto& name : kNeverAllowed) CHECK_MESSAGE(rules_for(p, name).empty(), name);
    for (const auto& name : kSysAdmin) CHECK_MESSAGE(rules_for(p, name).empty(), name);
    for (const char* name : {"reboot", "init_module", "acct", "kcmp", "iopl", "settimeofday", "vhangup", "mbind",
                             "open_by_handle_at", "set_tls", "riscv_flush_icache"}) {
        CHECK_MESSAGE(rules_for(p, name).empty(), name);
    }
    // clone only without namespace flags; clone3 ENOSYS (libc falls back to clone).
    auto clone = rules_for(p, "clone");
    REQUIRE(clone.size() == 1);
    CHECK(clone[0].action == SyscallAction::allowed());
    CHECK(clone[0].when == std::vector<SyscallArg>{{0, Op::masked_eq, clone_namespace_flags(), 0}});
    CHECK(clone_namespace_flags() == 0x7E020000);
    auto clone3 = rules_for(p, "clone3");
    REQUIRE(clone3.size() == 1);
    CHECK(clone3[0].action == SyscallAction::fail(ENOSYS));
    // socket: every family but AF_ALG (38) and AF_VSOCK (40); personality: docker's five values.
    std::vector<SyscallArg> socket_args;
    for (const auto& r : rules_for(p, "socket")) socket_args.push_back(r.when.at(0));
    CHECK(socket_args == std::vector<SyscallArg>{{0, Op::lt, 38, 0}, {0, Op::eq, 39, 0}, {0, Op::gt, 40, 0}});
    std::set<std::uint64_t> personas;
    for (const auto& r : rules_for(p, "personality")) personas.insert(r.when.at(0).value);
    CHECK(personas == std::set<std::uint64_t>{0, 8, 0x20000, 0x20008, 0xffffffff});
}

TEST_CASE("seccomp default: each capability unlocks its group, nothing unlocks the never-allowed calls") {
    const std::uint64_t base = default_capabilities();
    SUBCASE("CAP_SYS_ADMIN: namespaces and mounts, clone and clone3 whole") {
        SyscallPolicy p = default_syscall_policy(base | cap(CAP_SYS_ADMIN), kAmd64);
        for (const auto& name : kSysAdmin) CHECK_MESSAGE(allows(p, name), name);
        CHECK(allows(p, "clone"));
        CHECK(allows(p, "clone3"));
    }
    SUBCASE("one capability, one group") {
        const std::vector<std::pair<int, std::vector<std::string>>> groups = {
            {CAP_SYS_BOOT, {"reboot"}},
            {CAP_SYS_MODULE, {"init_module", "finit_module", "delete_module"}},
            {CAP_SYS_PACCT, {"acct"}},
            {CAP_SYS_PTRACE, {"kcmp", "pidfd_getfd", "process_madvise"}},
            {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
            {CAP_SYS_TIME, {"settimeofday", "clock_settime"}},
            {CAP_SYS_TTY_CONFIG, {"vhangup"}},
            {CAP_SYS_NICE, {"mbind", "set_mempolicy", "get_mempolicy"}},
            {CAP_SYSLOG, {"syslog"}},
            {CAP_BPF, {"bpf"}},
            {CAP_PERFMON, {"perf_event_open"}},
            {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}}};
        const std::size_t base_rules = default_syscall_policy(base, kAmd64).rules.size();
        for (const auto& [number, calls] : groups) {
            CAPTURE(number);
            SyscallPolicy p = default_syscall_policy(base | cap(number), kAmd64);
            for (const auto& name : calls) CHECK_MESSAGE(allows(p, name), name);
            CHECK(p.rules.size() > base_rules);
            CHECK(rules_for(p, "mount").empty());  // ...and not CAP_SYS_ADMIN's
        }
    }
    SUBCASE("CAP_SYS_CHROOT is in docker's default set: dropped, chroot goes") {
        CHECK(rules_for(default_syscall_policy(base & ~cap(CAP_SYS_CHROOT), kAmd64), "chroot").empty());
    }
    SUBCASE("every capability") {
        SyscallPolicy p = default_syscall_policy(all_capabilities(), kAmd64);
        for (const auto& name : kNeverAllowed) CHECK_MESSAGE(rules_for(p, name).empty(), name);
    }
}

TEST_CASE("seccomp default: the architecture's own calls and companions, the kernel's version") {
    SyscallPolicy arm = default_syscall_policy(default_capabilities(), kArm64);
    CHECK(arm.architectures == std::vector<std::string>{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"});
    CHECK(rules_for(arm, "arch_prctl").empty());
    CHECK(rules_for(arm, "modify_ldt").empty());
    CHECK(allows(arm, "set_tls"));
    CHECK(allows(arm, "cacheflush"));
    // s390 passes clone's flags second.
    SyscallPolicy s390 = default_syscall_policy(default_capabilities(), {"s390x", "SCMP_ARCH_S390X", 6, 1});
    auto clone = rules_for(s390, "clone");
    REQUIRE(clone.size() == 1);
    CHECK(clone[0].when.at(0).index == 1);
    // ptrace only from 4.8 on (before, a tracer could bypass seccomp) unless CAP_SYS_PTRACE.
    SeccompPlatform old_kernel = kAmd64;
    old_kernel.kernel = 4;
    old_kernel.kernel_major = 4;
    CHECK(rules_for(default_syscall_policy(default_capabilities(), old_kernel), "ptrace").empty());
    CHECK(allows(default_syscall_policy(default_capabilities() | cap(CAP_SYS_PTRACE), old_kernel), "ptrace"));
    old_kernel.kernel_major = 8;
    CHECK(allows(default_syscall_policy(default_capabilities(), old_kernel), "ptrace"));
}

TEST_CASE("seccomp default: read back through the parser, the table resolves to the same policy") {
    // The whole of docker's format in one document: what `--security-opt seccomp=default.json` gives
    // is what imgtool applies without it.
    const std::string text = to_docker_json(docker_default_profile()).dump(1);
    SeccompProfile parsed = parse_seccomp_profile(text, "default.json");
    for (std::uint64_t caps : {std::uint64_t{0}, default_capabilities(), default_capabilities() | cap(CAP_SYS_ADMIN), all_capabilities()}) {
        for (const auto& platform : {kAmd64, kArm64}) {
            CHECK(resolve_profile(parsed, caps, platform) == default_syscall_policy(caps, platform));
        }
    }
}

// ---- the filter ----

TEST_CASE("seccomp filter: the build-time programs are docker's default compiled now") {
    const SeccompPlatform here = host_platform();
    auto same = [](const SeccompFilter& a, const SeccompFilter& b) {
        return std::equal(a.program().begin(), a.program().end(), b.program().begin(), b.program().end(),
                          [](const sock_filter& x, const sock_filter& y) {
                              return x.code == y.code && x.jt == y.jt && x.jf == y.jf && x.k == y.k;
                          });
    };
    const std::uint64_t base = default_capabilities();
    // Baked (default, +SYS_ADMIN, +SYS_PTRACE, all), one the profile ignores (+NET_ADMIN: the
    // default's program), and compiled now (+SYS_NICE, no capability).
    for (std::uint64_t caps : {base, base | cap(CAP_SYS_ADMIN), base | cap(CAP_SYS_PTRACE), all_capabilities(),
                               base | cap(CAP_NET_ADMIN), base | cap(CAP_SYS_NICE), std::uint64_t{0}}) {
        CAPTURE(caps);
        CHECK(same(SeccompFilter::docker_default(caps, here), SeccompFilter::compile(default_syscall_policy(caps, here))));
    }
    CHECK_FALSE(same(SeccompFilter::docker_default(base, here), SeccompFilter::docker_default(base | cap(CAP_SYS_ADMIN), here)));
}

TEST_CASE("seccomp filter: names libseccomp does not know are skipped, as docker skips them") {
    SyscallPolicy p;
    p.default_action = SyscallAction::fail(EPERM);
    p.architectures = {host_platform().scmp_arch};
    p.rules = {{"no_such_call", SyscallAction::allowed(), {}}, {"getpid", SyscallAction::allowed(), {}}};
    CHECK(SeccompFilter::compile(p));
    CHECK(syscall_number("getpid") == SYS_getpid);
    CHECK(syscall_number("no_such_call") == -1);
    // The table's own names are known, but for calls newer than this libseccomp.
    int unknown = 0;
    for (const auto& rule : docker_default_profile().rules) {
        for (const auto& name : rule.names) unknown += libseccomp_knows(name) ? 0 : 1;
    }
    MESSAGE(unknown << " names of docker's table are newer than this libseccomp");
    CHECK(unknown < 40);
    for (const char* name : {"read", "write", "clone", "clone3", "socket", "personality", "mount", "keyctl"}) {
        CHECK_MESSAGE(libseccomp_knows(name), name);
    }
}

TEST_CASE("seccomp filter: loaded, docker's default fails what it does not allow") {
    SeccompFilter filter = sentinel_filter();
    // Refused by the filter (200: the sentinel EPERM; 201: the sentinel ENOSYS). Arguments that would
    // fail harmlessly if a call got through.
    CHECK(errno_of(filter, SYS_keyctl, {~0UL}) == 200);
    CHECK(errno_of(filter, SYS_add_key, {0, 0, 0, 0, ~0UL}) == 200);
    CHECK(errno_of(filter, SYS_request_key, {0, 0, 0, 0}) == 200);
    CHECK(errno_of(filter, SYS_kexec_load, {0, 0, 0, ~0UL}) == 200);
    CHECK(errno_of(filter, SYS_bpf, {~0UL}) == 200);
    CHECK(errno_of(filter, SYS_perf_event_open, {0, 0, 0, 0, ~0UL}) == 200);
    CHECK(errno_of(filter, SYS_unshare, {~0UL}) == 200);
    CHECK(errno_of(filter, SYS_mount, {0, 0, 0, 0, 0}) == 200);
    CHECK(errno_of(filter, SYS_setns, {~0UL, 0}) == 200);
    CHECK(errno_of(filter, SYS_io_uring_setup, {0, 0}) == 200);
    CHECK(errno_of(filter, SYS_clone, {CLONE_NEWUSER | CLONE_THREAD}) == 200);
    CHECK(errno_of(filter, SYS_clone3, {0, 0}) == 201);
    CHECK(errno_of(filter, SYS_socket, {AF_VSOCK, SOCK_STREAM, 0}) == 200);
    CHECK(errno_of(filter, SYS_socket, {38 /* AF_ALG */, SOCK_SEQPACKET, 0}) == 200);
    CHECK(errno_of(filter, SYS_personality, {ADDR_NO_RANDOMIZE}) == 200);
    CHECK(errno_of(filter, SYS_move_pages, {0, 0, 0, 0, 0, ~0UL}) == 200);
    // Allowed: they reach the kernel (which may fail them itself).
    CHECK(errno_of(filter, SYS_getpid, {}) == 0);
    CHECK(errno_of(filter, SYS_write, {1, 0, 0}) == 0);
    CHECK(errno_of(filter, SYS_read, {~0UL, 0, 0}) == EBADF);
    CHECK(errno_of(filter, SYS_clone, {CLONE_THREAD}) == EINVAL);  // no namespace flag: the kernel decides
    CHECK(errno_of(filter, SYS_socket, {AF_UNIX, SOCK_STREAM, 0}) == 0);
    CHECK(errno_of(filter, SYS_personality, {0xffffffff}) == 0);
    CHECK(errno_of(filter, SYS_mkdirat, {~0UL, 0, 0}) < 200);
    // With CAP_SYS_ADMIN (in the policy; the kernel still checks it): mount and unshare reach the kernel.
    SeccompFilter admin = sentinel_filter(default_capabilities() | cap(CAP_SYS_ADMIN));
    CHECK(errno_of(admin, SYS_mount, {0, 0, 0, 0, 0}) != 200);
    CHECK(errno_of(admin, SYS_unshare, {~0UL}) == EINVAL);
    CHECK(errno_of(admin, SYS_keyctl, {~0UL}) == 200);
    // The filter does not set no_new_privs by itself (setuid binaries keep working, as in docker):
    // loaded as root, which may do without it.
    if (::geteuid() == 0) {
        CHECK(in_child([&] {
                  filter.load();
                  return ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0 ? 0 : 1;
              }) == 0);
    }
}

#if defined(__x86_64__)
namespace {
// A system call through the i386 entry (int $0x80), as a 32-bit program in the container would make it.
long syscall_i386(long nr, long a, long b) {
    long rc;
    asm volatile("int $0x80" : "=a"(rc) : "a"(nr), "b"(a), "c"(b) : "memory");
    return rc;
}
constexpr long kI386Getpid = 20;
constexpr long kI386Keyctl = 288;
}  // namespace

TEST_CASE("seccomp filter: i386 system calls are filtered too") {
    // Is the i386 entry there at all (a kernel may be built or booted without IA32 emulation)?
    // Without it, int $0x80 is SIGSEGV: the child dies by the default action, not doctest's report.
    if (in_child([] {
            ::signal(SIGSEGV, SIG_DFL);
            return syscall_i386(kI386Getpid, 0, 0) == ::getpid() ? 0 : 1;
        }) != 0) {
        MESSAGE("this kernel has no i386 system call entry: nothing to filter there");
        return;
    }
    SeccompFilter filter = sentinel_filter();
    CHECK(in_child([&] {
              if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 90;
              filter.load();
              if (syscall_i386(kI386Getpid, 0, 0) != ::getpid()) return 91;  // killed if the arch were unknown
              return syscall_i386(kI386Keyctl, -1, 0) == -kSentinel ? 0 : 92;
          }) == 0);
}
#endif

// ---- docker's JSON format ----

TEST_CASE("seccomp profile: a hand-written profile in docker's format") {
    SeccompProfile p = parse_seccomp_profile(slurp(profile_path("reduced-profile.json")), "reduced-profile.json");
    CHECK(p.default_action == SyscallAction::fail(EPERM));
    CHECK(p.arch_map.size() == 3);
    CHECK(p.arch_map[2].second.empty());  // "subArchitectures": null
    REQUIRE(p.rules.size() == 10);
    CHECK(p.rules[1].names == std::vector<std::string>{"personality"});  // "name"
    CHECK(p.rules[4].action == SyscallAction::fail(ENOSYS));
    CHECK(p.rules[8].action == SyscallAction::of(Kind::kill_process));
    CHECK(p.rules[9].action == SyscallAction::of(Kind::log));

    SyscallPolicy def = resolve_profile(p, default_capabilities(), kAmd64);
    CHECK(def.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"});
    CHECK(allows(def, "read"));
    CHECK(allows(def, "no_such_call_in_any_kernel"));  // kept here, skipped by the compiler
    CHECK(rules_for(def, "socket").at(0).when == std::vector<SyscallArg>{{0, Op::ne, 40, 0}});
    CHECK(rules_for(def, "clone").at(0).when == std::vector<SyscallArg>{{0, Op::masked_eq, 0x7E020000, 0}});
    CHECK(rules_for(def, "clone3").size() == 1);
    CHECK(rules_for(def, "mount").empty());
    CHECK(allows(def, "arch_prctl"));
    CHECK(allows(def, "ptrace"));
    SyscallPolicy admin = resolve_profile(p, default_capabilities() | cap(CAP_SYS_ADMIN), kArm64);
    CHECK(admin.architectures == std::vector<std::string>{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"});
    CHECK(allows(admin, "mount"));
    CHECK(rules_for(admin, "clone").empty());
    CHECK(rules_for(admin, "clone3").empty());
    CHECK(rules_for(admin, "arch_prctl").empty());
    SyscallPolicy riscv = resolve_profile(p, 0, {"riscv64", "SCMP_ARCH_RISCV64", 4, 4});
    CHECK(riscv.architectures == std::vector<std::string>{"SCMP_ARCH_RISCV64"});
    CHECK(rules_for(riscv, "ptrace").empty());  // minKernel 4.8
    // It compiles on this machine (the unknown name skipped).
    CHECK(SeccompFilter::compile(resolve_profile(p, default_capabilities(), host_platform())));
}

TEST_CASE("seccomp profile: docker's details") {
    SUBCASE("SCMP_ACT_ERRNO without errnoRet is EPERM; defaultErrnoRet; architectures as listed") {
        SeccompProfile p = parse_seccomp_profile(
            R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})", "p.json");
        CHECK(p.default_action == SyscallAction::fail(ENOSYS));
        CHECK(p.rules.at(0).action == SyscallAction::fail(EPERM));
        CHECK(resolve_profile(p, 0, kAmd64).architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"});
    }
    SUBCASE("no architectures: the native one only") {
        SeccompProfile p = parse_seccomp_profile(R"({"defaultAction": "SCMP_ACT_ALLOW"})", "p.json");
        SyscallPolicy policy = resolve_profile(p, 0, kAmd64);
        CHECK(policy.default_action == SyscallAction::allowed());
        CHECK(policy.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64"});
        CHECK(policy.rules.empty());
    }
    SUBCASE("includes.caps needs every one, excludes.caps any one; names a container does not hold") {
        SeccompProfile p = parse_seccomp_profile(with_rule(R"(
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_BOOT"]}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_BOOT"]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_NO_SUCH", "cap_sys_admin"]}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "3.0"}})"), "p.json");
        auto has = [&](std::uint64_t caps, const char* name) { return !rules_for(resolve_profile(p, caps, kAmd64), name).empty(); };
        CHECK_FALSE(has(cap(CAP_SYS_ADMIN), "a"));
        CHECK(has(cap(CAP_SYS_ADMIN) | cap(CAP_SYS_BOOT), "a"));
        CHECK(has(0, "b"));
        CHECK_FALSE(has(cap(CAP_SYS_BOOT), "b"));
        CHECK_FALSE(has(all_capabilities(), "c"));  // docker compares the exact names
        CHECK_FALSE(has(0, "d"));
    }
    SUBCASE("two comparisons of one argument are alternatives (runc), of two arguments both hold") {
        SeccompProfile p = parse_seccomp_profile(with_rule(R"(
            {"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                                                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["y"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"},
                                                                    {"index": 1, "value": 18446744073709551615, "op": "SCMP_CMP_LE"}]})"),
                                                 "p.json");
        SyscallPolicy policy = resolve_profile(p, 0, kAmd64);
        auto x = rules_for(policy, "x");
        REQUIRE(x.size() == 2);
        CHECK(x[0].when == std::vector<SyscallArg>{{0, Op::eq, 1, 0}});
        CHECK(x[1].when == std::vector<SyscallArg>{{0, Op::eq, 2, 0}});
        auto y = rules_for(policy, "y");
        REQUIRE(y.size() == 1);
        CHECK(y[0].when == std::vector<SyscallArg>{{0, Op::ge, 1, 0}, {1, Op::le, ~0ULL, 0}});
    }
    SUBCASE("every action and comparison docker's format has, but TRACE and NOTIFY") {
        for (const char* action : {"SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"}) {
            CAPTURE(action);
            CHECK_NOTHROW(parse_seccomp_profile(with_rule(std::string(R"({"names": ["x"], "action": ")") + action + "\"}"), "p.json"));
        }
        for (const char* op : {"SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}) {
            CAPTURE(op);
            SeccompProfile p = parse_seccomp_profile(
                with_rule(std::string(R"({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 3, "valueTwo": 1, "op": ")") + op + "\"}]}"),
                "p.json");
            CHECK(SeccompFilter::compile(resolve_profile(p, 0, host_platform())));
        }
    }
}

TEST_CASE("seccomp profile: hostile or broken input is one error naming the file and the field") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_FOO"})"), "p.json: syscalls[1].action: unknown action \"SCMP_ACT_FOO\""},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]})"),
         "p.json: syscalls[1].args[0].op: unknown comparison \"SCMP_CMP_LIKE\""},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_TRACE"})"), "syscalls[1].action: SCMP_ACT_TRACE is not supported"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_NOTIFY"})"), "syscalls[1].action: SCMP_ACT_NOTIFY is not supported"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4096})"), "syscalls[1].errnoRet: past the largest errno"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1})"), "syscalls[1].errnoRet: only SCMP_ACT_ERRNO"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]})"), "syscalls[1].args[0].index"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]})"), "syscalls[1].args[0].value"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1.5, "op": "SCMP_CMP_EQ"}]})"), "syscalls[1].args[0].value"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1}]})"), "syscalls[1].args[0].op: missing"},
        {with_rule(R"({"name": "x", "names": ["y"], "action": "SCMP_ACT_ALLOW"})"), "syscalls[1]: both name and names"},
        {with_rule(R"({"action": "SCMP_ACT_ALLOW"})"), "syscalls[1]: names no system call"},
        {with_rule(R"({"names": "x", "action": "SCMP_ACT_ALLOW"})"), "syscalls[1].names: expected an array of strings"},
        {with_rule(R"({"names": ["x"]})"), "syscalls[1].action: missing"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}})"), "syscalls[1].includes.minKernel"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "0.0"}})"), "syscalls[1].excludes.minKernel"},
        {with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": "CAP_SYS_ADMIN"}})"), "syscalls[1].includes.caps"},
        {R"({"syscalls": []})", "p.json: defaultAction: missing"},
        {R"({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})", "defaultErrnoRet: only SCMP_ACT_ERRNO"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]})", "architectures: unknown architecture \"SCMP_ARCH_VAX\""},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]})",
         "architectures: both architectures and archMap"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})", "flags: not supported"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"})", "listenerPath: not supported"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}})", "syscalls: expected an array"},
        {R"([])", "p.json: (top level): expected an object"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultAction": "SCMP_ACT_ALLOW"})", "p.json: invalid JSON"},  // duplicate key
        {R"({"defaultAction": "SCMP_ACT_ERRNO",)", "p.json: invalid JSON"},
        {std::string(100000, '[') + std::string(100000, ']'), "p.json: invalid JSON"},  // nesting
        {std::string("{\"defaultAction\": \"SCMP_ACT_ALLOW\"}\0 ", 37), "p.json: invalid JSON"},
    };
    for (const auto& [text, want] : cases) {
        CAPTURE(text.substr(0, 200));
        std::string got = parse_error(text);
        CHECK_MESSAGE(got.find(want) != std::string::npos, got);
        CHECK(got.rfind("seccomp profile p.json: ", 0) == 0);
        CHECK(got.find('\n') == std::string::npos);
    }
    // Huge: refused by size before parsing.
    std::string huge = R"({"defaultAction": "SCMP_ACT_ALLOW", "comment": ")" + std::string(kMaxSeccompProfileBytes, 'x') + "\"}";
    CHECK(parse_error(huge).find("p.json: (file): larger than 1048576 bytes") != std::string::npos);
    // Unknown keys are ignored, as docker does; names of no call are kept for the compiler to skip.
    CHECK_NOTHROW(parse_seccomp_profile(with_rule(R"({"names": ["x"], "action": "SCMP_ACT_ALLOW", "comment": 1, "future": {}})"), "p.json"));
}

TEST_CASE("seccomp profile: read from the host, capped, a FIFO refused") {
    CHECK(read_seccomp_profile(profile_path("reduced-profile.json")).rules.size() == 10);
    CHECK_THROWS_WITH_AS(read_seccomp_profile("/nonexistent/p.json"), doctest::Contains("seccomp profile /nonexistent/p.json"),
                         imgtool::Error);
    CHECK_THROWS_WITH_AS(read_seccomp_profile("/proc/self"), doctest::Contains("seccomp profile"), imgtool::Error);
}

TEST_CASE("spec_from_image: --security-opt seccomp=PROFILE.json") {
    imgtool::image::ContainerConfig config;
    config.cmd = std::vector<std::string>{"sh"};
    RunOptions o;
    o.default_hostname = "abc";
    o.seccomp_platform = kAmd64;
    std::vector<std::string> asked;
    o.read_seccomp_profile = [&](const std::string& path) {
        asked.push_back(path);
        return parse_seccomp_profile(slurp(profile_path("reduced-profile.json")), path);
    };
    CHECK_FALSE(spec_from_image(config, o).seccomp_policy);  // docker's default, made by the launcher
    o.security_opts = {"seccomp=/etc/p.json"};
    o.cap_add = {"SYS_ADMIN"};
    LaunchSpec spec = spec_from_image(config, o);
    CHECK(asked == std::vector<std::string>{"/etc/p.json"});
    REQUIRE(spec.seccomp_policy);
    CHECK(spec.seccomp);
    CHECK(allows(*spec.seccomp_policy, "mount"));  // resolved for the capabilities after --cap-add
    o.security_opts = {"seccomp:relative.json"};
    CHECK(spec_from_image(config, o).seccomp_policy);
    CHECK(asked.back() == "relative.json");
    o.security_opts = {"seccomp="};
    CHECK_THROWS_WITH_AS(spec_from_image(config, o), doctest::Contains("names no profile"), imgtool::Error);
}
