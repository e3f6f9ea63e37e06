// How run_container ties a container's life to imgtool's, outside of any namespace: the parent-death
// signal armed with a lifeline check, and the start time that names the container's process.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/container.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/process.hpp"
#include "imgtool/sys/unique_fd.hpp"

using namespace imgtool;
using namespace imgtool::launch;

namespace {

// Field 22 of /proc/PID/stat, found independently of sys::process_start_time: the 20th field after the last ')'.
std::string start_time(pid_t pid) {
    std::string text = sys::read_file_at(AT_FDCWD, "/proc/" + std::to_string(pid) + "/stat", 4096);
    std::string rest = text.substr(text.rfind(')') + 2);
    for (int i = 3; i < 22; ++i) rest = rest.substr(rest.find(' ') + 1);
    return rest.substr(0, rest.find(' '));
}

int wait_status(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

struct Lifeline {
    sys::UniqueFd parent_end, child_end;
    Lifeline() {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        parent_end.reset(sv[0]);
        child_end.reset(sv[1]);
    }
};

}  // namespace

TEST_CASE("process_start_time: field 22, whatever the command name holds; nothing once gone") {
    auto own = sys::process_start_time(::getpid());
    REQUIRE(own.has_value());
    CHECK(std::to_string(*own) == start_time(::getpid()));
    // A command name with a space and parentheses would shift the fields of a naive parser.
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::prctl(PR_SET_NAME, "a) (b c) d", 0, 0, 0);
        (void)!::write(ready[1], "r", 1);
        ::pause();
        ::_exit(0);
    }
    char byte;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    auto child_time = sys::process_start_time(child);
    std::string want_time = start_time(child);
    ::kill(child, SIGKILL);
    wait_status(child);
    ::close(ready[0]);
    ::close(ready[1]);
    REQUIRE(child_time.has_value());
    CHECK(std::to_string(*child_time) == want_time);
    // Reaped: no start time, never a made-up one.
    CHECK_FALSE(sys::process_start_time(child).has_value());
}

TEST_CASE("arm_parent_death_signal: armed, and false once the parent's end is gone") {
    SUBCASE("parent alive") {
        Lifeline line;
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            line.parent_end.reset();  // as in the container: only the parent holds its end
            if (!arm_parent_death_signal(line.child_end.get())) ::_exit(1);
            int sig = 0;
            ::prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
            ::_exit(sig == SIGKILL ? 0 : 2);
        }
        CHECK(wait_status(child) == 0);
    }
    SUBCASE("parent gone before the signal was armed") {
        Lifeline line;
        int closed[2];  // the child arms only once the parent's end is gone (else the two race)
        REQUIRE(::pipe(closed) == 0);
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            line.parent_end.reset();
            ::close(closed[1]);
            char byte;
            if (::read(closed[0], &byte, 1) != 1) ::_exit(2);
            ::_exit(arm_parent_death_signal(line.child_end.get()) ? 1 : 0);
        }
        ::close(closed[0]);
        line.parent_end.reset();  // the parent's end closes as it would when the parent dies
        REQUIRE(::write(closed[1], "c", 1) == 1);
        ::close(closed[1]);
        CHECK(wait_status(child) == 0);
    }
    SUBCASE("the parent's death after arming kills the child") {
        // helper (a subreaper, so the orphan comes back to it) -> parent -> child
        pid_t helper = ::fork();
        REQUIRE(helper >= 0);
        if (helper == 0) {
            ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            Lifeline line;
            int armed[2];
            if (::pipe(armed) != 0) ::_exit(10);
            pid_t parent = ::fork();
            if (parent == 0) {
                pid_t child = ::fork();
                if (child == 0) {
                    line.parent_end.reset();
                    if (!arm_parent_death_signal(line.child_end.get())) ::_exit(1);
                    (void)!::write(armed[1], "a", 1);
                    ::sleep(30);
                    ::_exit(2);
                }
                char byte;
                if (::read(armed[0], &byte, 1) != 1) ::_exit(11);
                ::_exit(0);  // the parent dies, with the child armed
            }
            line.parent_end.reset();
            line.child_end.reset();
            ::close(armed[1]);
            int status = 0;
            if (::waitpid(parent, &status, 0) != parent) ::_exit(12);
            pid_t orphan = ::waitpid(-1, &status, 0);  // the child, reparented to this subreaper
            if (orphan < 0) ::_exit(13);
            ::_exit(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : 14);
        }
        CHECK(wait_status(helper) == 0);
    }
}
