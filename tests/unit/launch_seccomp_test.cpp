// The container's system call policy as data (docker's blocks, lifted by the capabilities docker's
// profile names), and the filter libseccomp compiles from it, loaded in a forked child (with
// no_new_privs, so no privilege is needed) and asked every blocked call.
#include <doctest/doctest.h>

#include <linux/capability.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/seccomp.hpp"
#include "imgtool/launch/seccomp_filter.hpp"

using namespace imgtool::launch;

namespace {

std::uint64_t cap(int n) { return 1ULL << n; }

std::set<std::string> names(const SyscallPolicy& p) {
    std::set<std::string> out;
    for (const auto& r : p.rules) out.insert(r.name);
    return out;
}

const std::set<std::string> kAlways = {"keyctl",         "add_key",        "request_key",      "kexec_load",
                                        "kexec_file_load", "userfaultfd",    "swapon",           "swapoff",
                                        "pivot_root",      "io_uring_setup", "io_uring_enter", "io_uring_register"};
const std::set<std::string> kUnlessSysAdmin = {
    "unshare", "setns",      "mount",         "umount",        "umount2",  "fsopen",   "fsconfig", "fsmount",
    "fspick",  "move_mount", "open_tree",     "mount_setattr", "lookup_dcookie", "quotactl", "quotactl_fd",
    "clone",   "clone3"};

std::set<std::string> joined(std::initializer_list<std::set<std::string>> sets) {
    std::set<std::string> out;
    for (const auto& s : sets) out.insert(s.begin(), s.end());
    return out;
}

// errno values no kernel path returns, so a call failing with one of them was failed by the filter.
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

}  // namespace

TEST_CASE("seccomp policy: docker's blocks for the default capability set") {
    SyscallPolicy p = default_syscall_policy(default_capabilities());
    CHECK(p.default_action == SyscallAction::allowed());
    CHECK(names(p) == joined({kAlways, kUnlessSysAdmin, {"open_by_handle_at", "perf_event_open", "bpf", "acct"}}));
    std::uint64_t clone_flags = 0;
    int clone_rules = 0;
    for (const auto& r : p.rules) {
        CAPTURE(r.name);
        if (r.name == "clone3") {
            // ENOSYS, so that glibc falls back to clone, whose flags the filter can see.
            CHECK(r.action == SyscallAction::fail(ENOSYS));
            CHECK(r.when.empty());
        } else if (r.name == "clone") {
            ++clone_rules;
            CHECK(r.action == SyscallAction::fail(EPERM));
            REQUIRE(r.when.size() == 1);
            CHECK(r.when[0].index == 0);
            CHECK(r.when[0].mask == r.when[0].value);  // "this bit is set"
            CHECK(__builtin_popcountll(r.when[0].mask) == 1);
            clone_flags |= r.when[0].mask;
        } else {
            CHECK(r.action == SyscallAction::fail(EPERM));
            CHECK(r.when.empty());
        }
    }
    CHECK(clone_rules == 7);
    CHECK(clone_flags == 0x7E020000);  // docker's mask: NEWNS NEWCGROUP NEWUTS NEWIPC NEWUSER NEWPID NEWNET
    CHECK(clone_flags == clone_namespace_flags());
}

TEST_CASE("seccomp policy: capabilities lift what docker's profile lets them lift, never the keyring") {
    const std::uint64_t base = default_capabilities();
    SUBCASE("CAP_SYS_ADMIN: namespaces, mounts, perf, bpf") {
        CHECK(names(default_syscall_policy(base | cap(CAP_SYS_ADMIN))) ==
              joined({kAlways, {"open_by_handle_at", "acct"}}));
    }
    SUBCASE("one capability each") {
        CHECK(names(default_syscall_policy(base | cap(CAP_DAC_READ_SEARCH))).count("open_by_handle_at") == 0);
        CHECK(names(default_syscall_policy(base | cap(CAP_PERFMON))).count("perf_event_open") == 0);
        CHECK(names(default_syscall_policy(base | cap(CAP_BPF))).count("bpf") == 0);
        CHECK(names(default_syscall_policy(base | cap(CAP_SYS_PACCT))).count("acct") == 0);
        // ...and nothing else.
        CHECK(names(default_syscall_policy(base | cap(CAP_BPF))).size() ==
              names(default_syscall_policy(base)).size() - 1);
    }
    SUBCASE("every capability: only the calls docker never allows") {
        CHECK(names(default_syscall_policy(all_capabilities())) == kAlways);
    }
    SUBCASE("no capability at all: the same blocks as the default set") {
        CHECK(names(default_syscall_policy(0)) == names(default_syscall_policy(base)));
    }
}

TEST_CASE("seccomp filter: every call of the policy is known to libseccomp") {
    for (std::uint64_t caps : {std::uint64_t{0}, default_capabilities(), all_capabilities()}) {
        CHECK_NOTHROW(SeccompFilter::compile(default_syscall_policy(caps)));
    }
    CHECK(syscall_number("getpid") == SYS_getpid);
    CHECK(syscall_number("keyctl") == SYS_keyctl);
    CHECK(syscall_number("no_such_call") == -1);
    SyscallPolicy bad;
    bad.rules.push_back({"no_such_call", SyscallAction::fail(EPERM), {}});
    CHECK_THROWS_WITH_AS(SeccompFilter::compile(bad), doctest::Contains("no_such_call"), imgtool::Error);
}

TEST_CASE("seccomp filter: loaded, it fails exactly the policy's calls") {
    // The policy with its errors replaced by sentinels: then only the filter can be the reason a call
    // fails with one (the kernel's own EPERM for a missing capability proves nothing). Arguments are
    // chosen so that a call the filter let through would fail harmlessly (bad pointers, bad fds,
    // unknown flags, CLONE_THREAD without CLONE_SIGHAND).
    SyscallPolicy policy = default_syscall_policy(default_capabilities());
    for (auto& r : policy.rules) r.action = SyscallAction::fail(r.action.error == ENOSYS ? kSentinelNosys : kSentinel);
    SeccompFilter filter = SeccompFilter::compile(policy);
    std::map<std::string, std::uint64_t> first_arg;  // per name: one argument that makes the rule match
    for (const auto& r : policy.rules) first_arg.emplace(r.name, r.when.empty() ? ~0ULL : r.when[0].value);

    for (const auto& [name, arg0] : first_arg) {
        long nr = syscall_number(name);
        if (nr < 0) continue;  // not on this architecture (umount on x86_64)
        CAPTURE(name);
        int want = name == "clone3" ? kSentinelNosys : kSentinel;
        int got = in_child([&, arg0 = arg0] {
            if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 90;
            filter.load();
            std::uint64_t a0 = name == "clone" ? (arg0 | CLONE_THREAD) : arg0;
            long rc = ::syscall(nr, a0, ~0UL, ~0UL, ~0UL, ~0UL, ~0UL);
            if (rc != -1) return 91;
            return errno == want ? 0 : errno == kSentinel || errno == kSentinelNosys ? 92 : 93;
        });
        CHECK(got == 0);
    }
    // Controls: a call outside the policy, and clone without a namespace flag, reach the kernel.
    CHECK(in_child([&] {
              if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 90;
              filter.load();
              if (::syscall(SYS_getpid) != ::getpid()) return 91;
              long rc = ::syscall(SYS_clone, CLONE_THREAD, 0, 0, 0, 0);
              return rc == -1 && errno == EINVAL ? 0 : 92;
          }) == 0);
    // And the filter did not set no_new_privs by itself (setuid binaries keep working, as in docker):
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
    if (in_child([] { return syscall_i386(kI386Getpid, 0, 0) == ::getpid() ? 0 : 1; }) != 0) {
        MESSAGE("this kernel has no i386 system call entry: nothing to filter there");
        return;
    }
    SyscallPolicy policy = default_syscall_policy(default_capabilities());
    for (auto& r : policy.rules) r.action = SyscallAction::fail(kSentinel);
    SeccompFilter filter = SeccompFilter::compile(policy);
    CHECK(in_child([&] {
              if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 90;
              filter.load();
              if (syscall_i386(kI386Getpid, 0, 0) != ::getpid()) return 91;  // killed if the arch were unknown
              return syscall_i386(kI386Keyctl, -1, 0) == -kSentinel ? 0 : 92;
          }) == 0);
}
#endif
