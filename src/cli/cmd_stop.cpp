#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/exec.hpp"
#include "imgtool/sys/process.hpp"

namespace imgtool::cli {
namespace {

struct StopArgs {
    unsigned timeout = 10;
    std::vector<std::string> containers;
};

bool send_signal(int pidfd, int sig) { return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 || errno == ESRCH; }

// docker stop: the image's StopSignal (else SIGTERM) to the container's PID 1 (through the supervisor, which forwards it), then
// SIGKILL after the grace period. A PID 1 without a SIGTERM handler ignores it: the kill ends it.
void stop_one(const store::Store& store, const std::string& ref, std::chrono::seconds grace) {
    store::Store::Container c = store.find_container(ref);
    if (c.state == store::Store::ContainerState::Exited) return;  // as docker: stopping a stopped one is fine
    if (c.pid == 0) throw Error(Errc::Busy, "container " + c.id.substr(0, 12) + " is still starting");
    sys::UniqueFd process = sys::open_process(c.pid, c.start_time);
    if (!process) return;  // it ended meanwhile
    // The image's StopSignal, as docker (an image whose config is gone or unreadable gets SIGTERM).
    int stop_signal = SIGTERM;
    try {
        auto config = image::parse_config(store.read_blob(c.image), "config " + c.image.str());
        if (config.config.stop_signal) stop_signal = launch::signal_number(*config.config.stop_signal).value_or(SIGTERM);
    } catch (const Error&) {
    }
    // To the container's PID 1 itself, as docker: the supervisor forwards only the usual few.
    pid_t init_pid = 0;
    sys::UniqueFd init = launch::container_init_process(c.pid, process.get(), false, init_pid);
    if (!send_signal(init ? init.get() : process.get(), stop_signal)) throw_errno("signal", "container " + c.id.substr(0, 12));
    if (sys::wait_for_exit(process.get(), grace)) return;
    if (!send_signal(process.get(), SIGKILL)) throw_errno("signal", "container " + c.id.substr(0, 12));
    if (!sys::wait_for_exit(process.get(), std::chrono::seconds(10))) {
        throw Error(Errc::Busy, "container " + c.id.substr(0, 12) + " did not end after SIGKILL");
    }
}

}  // namespace

void add_stop(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<StopArgs>();
    CLI::App* cmd = app.add_subcommand("stop", "stop running containers: SIGTERM, then SIGKILL after the grace period");
    examples(*cmd, {"imgtool stop web", "imgtool stop -t 2 web"});
    cmd->add_option("-t,--time", a->timeout, "seconds to wait before SIGKILL (default 10)");
    cmd->add_option("CONTAINER", a->containers, "container name, ID or unique ID prefix")->required();
    cmd->callback([&globals, &action, a] {
        action = [&globals, a] {
            store::Store store(globals.store_root(), store::Access::Observe);
            for (const std::string& ref : a->containers) {
                stop_one(store, ref, std::chrono::seconds(a->timeout));
                std::printf("%s\n", escape_control(ref).c_str());
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
