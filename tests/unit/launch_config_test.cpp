// Pure launch logic: capabilities, users from the image's own files, env and argv composition.
#include <doctest/doctest.h>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/config.hpp"

using namespace imgtool;
using namespace imgtool::launch;

TEST_CASE("docker's default capability set") {
    CHECK(default_capabilities() == 0xa80425fbULL);
    CHECK(capability_number("NET_ADMIN") == 12);
    CHECK(capability_number("cap_sys_admin") == 21);
    CHECK_FALSE(capability_number("NOPE").has_value());
    CHECK(capability_name(21) == "CAP_SYS_ADMIN");
}

TEST_CASE("--cap-add / --cap-drop, ALL, unknown names") {
    std::uint64_t sys_admin = 1ULL << 21, net_raw = 1ULL << 13;
    CHECK(adjust_capabilities(default_capabilities(), {"SYS_ADMIN"}, {}) == (default_capabilities() | sys_admin));
    CHECK(adjust_capabilities(default_capabilities(), {}, {"NET_RAW"}) == (default_capabilities() & ~net_raw));
    CHECK(adjust_capabilities(default_capabilities(), {}, {"ALL"}) == 0);
    CHECK(adjust_capabilities(0, {"ALL"}, {}) == all_capabilities());
    CHECK(adjust_capabilities(default_capabilities(), {"NET_RAW"}, {"ALL"}) == net_raw);  // drops first
    CHECK_THROWS_AS(adjust_capabilities(0, {"FLY"}, {}), Error);
}

TEST_CASE("users and groups come from the image's files") {
    auto passwd = parse_passwd(
        "root:x:0:0:root:/root:/bin/sh\n# comment\nuser:x:1000:1000:,,,:/home/user:/bin/sh\nbad:x:nope:1::/:\n"
        "nobody:x:65534:65534::/nonexistent:/bin/false\r\n");
    auto groups = parse_group("root:x:0:\nuser:x:1000:\nwheel:x:10:user,other\nnogroup:x:65534:\n");
    REQUIRE(passwd.size() == 3);
    CHECK(passwd[2].name == "nobody");  // CRLF tolerated

    User root = resolve_user("", passwd, groups);
    CHECK(root.uid == 0);
    CHECK(root.home == "/root");
    CHECK(root.groups == std::vector<gid_t>{0});  // the primary group first (CVE-2023-25173)

    User u = resolve_user("user", passwd, groups);
    CHECK(u.uid == 1000);
    CHECK(u.gid == 1000);
    CHECK(u.home == "/home/user");
    CHECK(u.groups == std::vector<gid_t>{1000, 10});

    User explicit_group = resolve_user("user:nogroup", passwd, groups);
    CHECK(explicit_group.gid == 65534);
    CHECK(explicit_group.groups == std::vector<gid_t>{65534});

    User numeric = resolve_user("4242:4343", passwd, groups);  // ids need no entry
    CHECK(numeric.uid == 4242);
    CHECK(numeric.gid == 4343);
    CHECK(numeric.home == "/");
    CHECK(numeric.groups == std::vector<gid_t>{4343});

    CHECK_THROWS_AS(resolve_user("ghost", passwd, groups), Error);
    CHECK_THROWS_AS(resolve_user("user:ghosts", passwd, groups), Error);
    CHECK_THROWS_AS(resolve_user("user:", passwd, groups), Error);
}

TEST_CASE("environment: overrides replace by key, KEY alone comes from the host") {
    std::vector<std::string> base = {"PATH=/bin", "A=1"};
    auto env = merge_env(base, {"A=2", "B=3", "HOSTVAR", "MISSING"}, {"HOSTVAR=h", "OTHER=o"});
    CHECK(env == std::vector<std::string>{"PATH=/bin", "A=2", "B=3", "HOSTVAR=h"});
    CHECK(env_value(env, "A") == std::optional<std::string>("2"));
    CHECK_FALSE(env_value(env, "PAT").has_value());
    CHECK_THROWS_AS(merge_env({}, {"=x"}, {}), Error);
    CHECK(parse_env_file("# c\n\nA=1\n  B=2\r\n") == std::vector<std::string>{"A=1", "B=2"});
}

TEST_CASE("argv: docker's Entrypoint/Cmd rules") {
    std::vector<std::string> ep = {"/entry"}, cmd = {"default", "args"};
    CHECK(compose_argv(ep, cmd, std::nullopt, {}) == std::vector<std::string>{"/entry", "default", "args"});
    CHECK(compose_argv(ep, cmd, std::nullopt, {"x"}) == std::vector<std::string>{"/entry", "x"});
    CHECK(compose_argv(ep, cmd, std::string("/other"), {}) == std::vector<std::string>{"/other"});
    CHECK(compose_argv(ep, cmd, std::string("/other"), {"y"}) == std::vector<std::string>{"/other", "y"});
    CHECK(compose_argv({}, cmd, std::nullopt, {}) == cmd);
    CHECK_THROWS_AS(compose_argv({}, {}, std::nullopt, {}), Error);
}

TEST_CASE("PATH search candidates") {
    CHECK(exec_candidates("/bin/sh", "/x") == std::vector<std::string>{"/bin/sh"});
    CHECK(exec_candidates("./run", "/x") == std::vector<std::string>{"./run"});
    CHECK(exec_candidates("sh", "/usr/bin:/bin:") == std::vector<std::string>{"/usr/bin/sh", "/bin/sh", "./sh"});
}

TEST_CASE("exec failures: docker's statuses, and a path's own reason") {
    auto f = exec_failure("nosuch", 0);
    CHECK(f.status == 127);
    CHECK(f.reason == "executable file not found in $PATH");
    f = exec_failure("/nonexistent/path", ENOENT);
    CHECK(f.status == 127);
    CHECK(f.reason == "no such file or directory in the container");
    CHECK(exec_failure("bin/x", ENOENT).reason == "no such file or directory in the container");
    CHECK(exec_failure("/etc/passwd/x", ENOTDIR).status == 127);
    f = exec_failure("/etc/passwd", EACCES);
    CHECK(f.status == 126);
    CHECK(f.reason == std::strerror(EACCES));
    CHECK(exec_failure("sh", ENOEXEC).status == 126);
}

TEST_CASE("numeric user specs need no account files") {
    CHECK(user_spec_is_numeric(""));
    CHECK(user_spec_is_numeric("0"));
    CHECK(user_spec_is_numeric("1000:0"));
    CHECK_FALSE(user_spec_is_numeric("app"));
    CHECK_FALSE(user_spec_is_numeric("1000:staff"));
    CHECK_FALSE(user_spec_is_numeric("app:0"));
    CHECK_FALSE(user_spec_is_numeric("1000:"));
}

TEST_CASE("Ctrl-C and PID 1: the disposition from /proc/PID/status, and what to do") {
    const std::string status = "Name:\tsleep\nState:\tS (sleeping)\nSigPnd:\t0000000000000000\n"
                               "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n";
    CHECK(signal_disposition(status, SIGINT) == SignalDisposition::Caught);   // bit 1
    CHECK(signal_disposition(status, SIGQUIT) == SignalDisposition::Ignored); // bit 2
    CHECK(signal_disposition(status, SIGTERM) == SignalDisposition::Caught);  // bit 14
    CHECK(signal_disposition(status, SIGHUP) == SignalDisposition::Default);
    CHECK_FALSE(signal_disposition("Name:\tx\n", SIGINT).has_value());
    CHECK_FALSE(signal_disposition("SigIgn:\tzz\nSigCgt:\t0\n", SIGINT).has_value());
    CHECK(process_name(status) == "sleep");
    CHECK(process_name("") == "");

    CHECK(interrupt_action(1, SignalDisposition::Default) == InterruptAction::Hint);
    CHECK(interrupt_action(2, SignalDisposition::Default) == InterruptAction::None);
    CHECK(interrupt_action(3, SignalDisposition::Default) == InterruptAction::Kill);
    for (int presses = 1; presses <= 4; ++presses) {  // a PID 1 that handles or ignores SIGINT: untouched
        CHECK(interrupt_action(presses, SignalDisposition::Caught) == InterruptAction::None);
        CHECK(interrupt_action(presses, SignalDisposition::Ignored) == InterruptAction::None);
    }
}
