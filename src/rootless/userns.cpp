#include "imgtool/rootless/userns.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/unique_fd.hpp"

extern char** environ;

#if defined(IMGTOOL_COVERAGE)
extern "C" void __gcov_dump(void);
extern "C" void __gcov_reset(void);
#endif

namespace imgtool::rootless {
namespace {

// Coverage builds: gcov writes its counters at exit(), which a process ending in _exit or a fatal
// signal never reaches; write them first. A forked child forgets the counts it inherited (its parent
// writes those). No-ops otherwise.
void coverage_flush() {
#if defined(IMGTOOL_COVERAGE)
    __gcov_dump();
    __gcov_reset();
#endif
}
void coverage_forget_inherited() {
#if defined(IMGTOOL_COVERAGE)
    __gcov_reset();
#endif
}

// Signals the parent passes on to the child (SIGKILL and SIGSTOP cannot be caught; the child dies with
// its parent through PR_SET_PDEATHSIG).
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT};

std::vector<IdMapLine> read_map(const char* path) {
    sys::UniqueFd fd = sys::open_at(AT_FDCWD, path, O_RDONLY, 0, path);
    return parse_id_map(sys::read_fd(fd.get(), path, 1 << 16));
}

// A missing or unreadable file means no ranges: the single-id fallback still works (and says so).
std::string read_optional(const char* path) {
    int raw = ::open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (raw < 0) return {};
    sys::UniqueFd fd(raw);
    return sys::read_fd(fd.get(), path, 1 << 20);
}

std::string user_name(uid_t uid) {
    struct passwd pw, *found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) return pw.pw_name;
    return std::to_string(uid);
}

// The setuid helpers, by absolute path: PATH (which an `env -i` may have emptied) is not consulted.
std::string helper_path(const char* name) {
    for (const char* dir : {"/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"}) {
        std::string path = std::string(dir) + name;
        if (::access(path.c_str(), X_OK) == 0) return path;
    }
    return {};
}

// Runs newuidmap/newgidmap; its complaint becomes part of our one-line error.
void run_helper(const char* name, pid_t child, const std::vector<IdMapLine>& map) {
    const std::string path = helper_path(name);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("pipe", name);
    sys::UniqueFd read_end(out[0]), write_end(out[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
    std::vector<std::string> args = newidmap_arguments(child, map);
    args.insert(args.begin(), name);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw Error(std::error_code(rc, std::generic_category()), std::string("cannot run ") + name);
    write_end.reset();
    std::string said;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(read_end.get(), buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (said.size() < (1 << 16)) said.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    if (auto nl = said.rfind('\n'); nl != std::string::npos) said = said.substr(nl + 1);
    throw Error(Errc::InvalidArgument, std::string(name) + " refused the map (" + escape_control(said) +
                                           "): check your ranges in /etc/subuid and /etc/subgid");
}

void write_proc(pid_t child, const char* file, const std::string& text) {
    std::string path = "/proc/" + std::to_string(child) + "/" + file;
    int raw = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (raw < 0) throw_errno("open", path);
    sys::UniqueFd fd(raw);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) throw_errno("write", path);
}

[[noreturn]] void exit_like(int status) {
    coverage_flush();
    if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    // Die of the same signal, so a shell sees what the command's process saw.
    ::signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
    ::prctl(PR_SET_DUMPABLE, 0);  // no core file of this waiting parent
    ::kill(::getpid(), sig);
    ::_exit(128 + sig);
}

[[noreturn]] void wait_and_forward(pid_t child, const sigset_t& waited) {
    while (true) {
        siginfo_t info;
        int sig = ::sigwaitinfo(&waited, &info);
        if (sig < 0) continue;  // EINTR
        if (sig != SIGCHLD) {
            ::kill(child, sig);
            continue;
        }
        int status = 0;
        pid_t got = ::waitpid(child, &status, WNOHANG | WUNTRACED);
        if (got != child) continue;
        // Job control: the child stopped (^Z reached it through the terminal), so stop too and let the
        // shell see it; the SIGCONT that resumes us is forwarded to it above.
        if (WIFSTOPPED(status)) {
            ::kill(::getpid(), SIGSTOP);
            continue;
        }
        exit_like(status);
    }
}

std::string unshare_failure(int err) {
    std::string why = std::strerror(err);
    if (err == EPERM || err == EACCES) {
        return "cannot create a user namespace: " + why +
               " (unprivileged user namespaces are disabled here: kernel.unprivileged_userns_clone=0 or a "
               "security module forbids them)";
    }
    if (err == ENOSPC || err == EUSERS) {
        return "cannot create a user namespace: " + why + " (the limit sysctl user.max_user_namespaces is 0 or reached)";
    }
    return "cannot create a user namespace: " + why;
}

}  // namespace

std::vector<IdMapLine> own_uid_map() { return read_map("/proc/self/uid_map"); }
std::vector<IdMapLine> own_gid_map() { return read_map("/proc/self/gid_map"); }

// Not cached: the same process is outside before enter_user_namespace() and inside after it.
bool active() { return !is_initial_id_map(own_uid_map()); }

bool single_id_mapped() { return mapped_id_count(own_uid_map()) <= 1 || mapped_id_count(own_gid_map()) <= 1; }

namespace {

// The host id this namespace maps to 0, or `own` in the initial namespace.
std::uint32_t host_id_of_root(const std::vector<IdMapLine>& map, std::uint32_t own) {
    if (is_initial_id_map(map)) return own;
    for (const auto& line : map) {
        if (line.inside == 0) return line.outside;
    }
    return own;
}

}  // namespace

std::vector<IdRange> own_subordinate_uids() {
    std::uint32_t uid = host_id_of_root(own_uid_map(), ::getuid());
    return parse_subid_file(read_optional("/etc/subuid"), user_name(uid), uid);
}

std::vector<IdRange> own_subordinate_gids() {
    std::uint32_t uid = host_id_of_root(own_uid_map(), ::getuid());
    return parse_subid_file(read_optional("/etc/subgid"), user_name(uid), uid);
}

void enter_user_namespace() {
    const uid_t uid = ::getuid();
    const gid_t gid = ::getgid();
    const std::string user = user_name(uid);
    // Ranges are read here, in the initial namespace, where the files are the host's.
    auto uid_ranges = parse_subid_file(read_optional("/etc/subuid"), user, uid);
    auto gid_ranges = parse_subid_file(read_optional("/etc/subgid"), user, uid);
    bool helpers = !uid_ranges.empty() && !gid_ranges.empty() && !helper_path("newuidmap").empty() &&
                   !helper_path("newgidmap").empty();
    auto uid_map = helpers ? plan_id_map(uid, uid_ranges) : std::vector<IdMapLine>{{0, uid, 1}};
    auto gid_map = helpers ? plan_id_map(gid, gid_ranges) : std::vector<IdMapLine>{{0, gid, 1}};

    // Blocked before fork, so no forwarded signal is lost between fork and the wait loop.
    sigset_t waited, previous;
    sigemptyset(&waited);
    for (int s : kForwarded) sigaddset(&waited, s);
    sigaddset(&waited, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &waited, &previous);

    int ready[2], go[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) throw_errno("pipe", "user namespace set-up");
    sys::UniqueFd ready_r(ready[0]), ready_w(ready[1]), go_r(go[0]), go_w(go[1]);
    const pid_t parent = ::getpid();
    pid_t child = ::fork();
    if (child < 0) throw_errno("fork", "user namespace set-up");
    if (child == 0) {
        coverage_forget_inherited();
        auto fail = [] {
            coverage_flush();
            ::_exit(1);
        };
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
        ready_r.reset();
        go_w.reset();
        int err = ::unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
        if (::write(ready_w.get(), &err, sizeof err) != sizeof err || err != 0) fail();
        char byte = 0;
        if (::read(go_r.get(), &byte, 1) != 1) fail();  // the parent failed and says why
        if (::setresgid(0, 0, 0) != 0 || (helpers && ::setgroups(0, nullptr) != 0) || ::setresuid(0, 0, 0) != 0) {
            std::fprintf(stderr, "imgtool: cannot become root in the user namespace: %s\n", std::strerror(errno));
            fail();
        }
        // Set after the id change (which clears it): die with the parent, whoever kills it.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) fail();
        return;
    }
    ready_w.reset();
    go_r.reset();
    // The terminal's stop signals are the child's to obey; this parent mirrors its state instead.
    for (int s : {SIGTSTP, SIGTTIN, SIGTTOU}) ::signal(s, SIG_IGN);
    auto abandon = [&] {
        ::kill(child, SIGKILL);
        while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
        }
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    };
    int err = 0;
    if (::read(ready_r.get(), &err, sizeof err) != sizeof err) err = ECHILD;
    if (err != 0) {
        abandon();
        throw Error(std::error_code(err, std::generic_category()), unshare_failure(err));
    }
    try {
        if (helpers) {
            run_helper("newuidmap", child, uid_map);
            run_helper("newgidmap", child, gid_map);
        } else {
            // Without helpers a process may map only its own ids, and only after giving up setgroups.
            write_proc(child, "uid_map", id_map_text(uid_map));
            write_proc(child, "setgroups", "deny");
            write_proc(child, "gid_map", id_map_text(gid_map));
        }
    } catch (...) {
        abandon();
        throw;
    }
    char byte = 1;
    if (::write(go_w.get(), &byte, 1) != 1) {
        abandon();
        throw_errno("write", "user namespace set-up");
    }
    go_w.reset();
    wait_and_forward(child, waited);
}

}  // namespace imgtool::rootless
