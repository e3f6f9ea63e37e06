// exec's pure parts: the container's process record and docker exec's rules on top of it; signal
// names as docker's StopSignal spells them.
#include <csignal>

#include <doctest/doctest.h>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/exec.hpp"

using namespace imgtool;
using namespace imgtool::launch;

TEST_CASE("the process record round-trips through JSON") {
    LaunchSpec spec;
    spec.env = {"PATH=/bin", "A=1"};
    spec.user = "app:staff";
    spec.workdir = "/srv";
    spec.capabilities = 0xa80425fbULL;
    spec.seccomp = false;
    spec.no_new_privileges = true;
    spec.init = true;
    ProcessRecord r = parse_process_record(process_record_json(process_record_of(spec)));
    CHECK(r.env == spec.env);
    CHECK(r.user == "app:staff");
    CHECK(r.workdir == "/srv");
    CHECK(r.capabilities == 0xa80425fbULL);
    CHECK_FALSE(r.privileged);
    CHECK_FALSE(r.seccomp);
    CHECK(r.no_new_privileges);
    CHECK(r.init);
    CHECK_THROWS_AS(parse_process_record("{}"), Error);
    CHECK_THROWS_AS(parse_process_record("not json"), Error);
    CHECK_THROWS_AS(parse_process_record(R"({"Env":"x","User":"","WorkingDir":"/","Capabilities":0,"Privileged":false,)"
                                         R"("Seccomp":true,"NoNewPrivileges":false,"Init":false})"),
                    Error);
}

TEST_CASE("docker exec: the container's settings with exec's flags on top") {
    ProcessRecord c{.env = {"PATH=/bin", "A=1", "TERM=dumb"}, .user = "app", .workdir = "/srv", .capabilities = 5,
                    .privileged = false, .seccomp = true, .no_new_privileges = true, .init = false};
    ExecOptions o;
    o.command = {"sh"};
    ExecSpec s = exec_spec(c, o);
    CHECK(s.argv == std::vector<std::string>{"sh"});
    CHECK(s.env == c.env);
    CHECK(s.user == "app");
    CHECK(s.workdir == "/srv");
    CHECK(s.capabilities == 5);
    CHECK(s.seccomp);
    CHECK(s.no_new_privileges);

    o.env = {"A=2", "B=3", "FROM_HOST"};
    o.host_env = {"FROM_HOST=h"};
    o.user = "0";
    o.workdir = "/tmp";
    o.tty = true;
    s = exec_spec(c, o);
    CHECK(s.env == std::vector<std::string>{"PATH=/bin", "A=2", "TERM=dumb", "B=3", "FROM_HOST=h"});
    CHECK(s.user == "0");
    CHECK(s.workdir == "/tmp");

    c.env = {"PATH=/bin"};
    s = exec_spec(c, o);
    CHECK(s.env.back() == "TERM=xterm");  // -t and no TERM: docker's

    ProcessRecord with_profile = c;
    with_profile.seccomp_profile = true;
    CHECK_THROWS_AS(exec_spec(with_profile, o), Error);  // fails closed: the file's filter is not known
    with_profile.seccomp = false;  // seccomp=unconfined given after the profile
    CHECK_NOTHROW(exec_spec(with_profile, o));

    o.workdir = "relative";
    CHECK_THROWS_AS(exec_spec(c, o), Error);
    o.workdir.clear();
    o.command.clear();
    CHECK_THROWS_AS(exec_spec(c, o), Error);
}

TEST_CASE("signal names as docker's StopSignal spells them") {
    CHECK(signal_number("SIGTERM") == SIGTERM);
    CHECK(signal_number("TERM") == SIGTERM);
    CHECK(signal_number("sigint") == SIGINT);
    CHECK(signal_number("15") == 15);
    CHECK(signal_number("SIGRTMIN") == SIGRTMIN);
    CHECK(signal_number("SIGRTMIN+3") == SIGRTMIN + 3);
    CHECK(signal_number("RTMAX-1") == SIGRTMAX - 1);
    CHECK_FALSE(signal_number("").has_value());
    CHECK_FALSE(signal_number("0").has_value());
    CHECK_FALSE(signal_number("65").has_value());
    CHECK_FALSE(signal_number("SIGNOPE").has_value());
    CHECK_FALSE(signal_number("SIGRTMIN+99").has_value());
    CHECK_FALSE(signal_number("SIGRTMIN3").has_value());
}
