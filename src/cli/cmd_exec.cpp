#include <cstdio>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/launch/exec.hpp"
#include "imgtool/sys/process.hpp"

extern char** environ;

namespace imgtool::cli {
namespace {

struct ExecArgs {
    launch::ExecOptions options;
    std::vector<std::string> rest;  // CONTAINER COMMAND [ARG...]
};

int exec(const Globals& globals, ExecArgs& a) {
    if (a.rest.size() < 2) throw Error(Errc::InvalidArgument, "exec needs a CONTAINER and a COMMAND");
    store::Store store(globals.store_root(), store::Access::Observe);
    store::Store::Container c = store.find_container(a.rest[0]);
    const std::string short_id = c.id.substr(0, 12);
    if (c.state == store::Store::ContainerState::Created) throw Error(Errc::Busy, "container " + short_id + " is still starting");
    if (c.state == store::Store::ContainerState::Exited) throw Error(Errc::Busy, "container " + short_id + " is not running");
    if (c.process.empty()) {
        throw Error(Errc::Unsupported, "container " + short_id + " was started by an older imgtool: it has no process record");
    }
    launch::ProcessRecord process = launch::parse_process_record(c.process);
    a.options.command.assign(a.rest.begin() + 1, a.rest.end());
    for (char** e = environ; *e; ++e) a.options.host_env.emplace_back(*e);
    launch::ExecSpec spec = launch::exec_spec(process, a.options);
    sys::UniqueFd recorded = sys::open_process(c.pid, c.start_time);
    sys::UniqueFd target;
    if (recorded) target = launch::container_init_process(c.pid, recorded.get(), process.init, spec.target);
    if (!target) throw Error(Errc::Busy, "container " + short_id + " is not running");
    spec.target_fd = target.get();
    launch::RunOutcome outcome = launch::exec_in_container(spec);
    if (!outcome.error.empty()) std::fprintf(stderr, "imgtool: exec: %s\n", escape_control(outcome.error).c_str());
    return outcome.exit_status;
}

}  // namespace

void add_exec(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<ExecArgs>();
    CLI::App* cmd = app.add_subcommand("exec", "run a command in a running container");
    usage(*cmd, "[OPTIONS] CONTAINER COMMAND [ARG...]");
    cmd->footer("Options go before CONTAINER. The command gets the container's namespaces, cgroups, capabilities, "
                "seccomp filter, environment, user and working directory.");
    examples(*cmd, {"imgtool exec -it web sh", "imgtool exec -e DEBUG=1 web cat /etc/hostname"});
    cmd->add_flag("-i,--interactive", a->options.interactive, "keep stdin attached");
    cmd->add_flag("-t,--tty", a->options.tty, "allocate a pseudo-terminal");
    cmd->add_option("-e,--env", a->options.env, "set an environment variable (KEY=VALUE, or KEY from the host)")
        ->allow_extra_args(false);
    cmd->add_option("-u,--user", a->options.user, "user[:group] (default: the container's)");
    cmd->add_option("-w,--workdir", a->options.workdir, "working directory (default: the container's)");
    cmd->prefix_command();
    cmd->callback([&globals, &action, a, cmd] {
        a->rest = cmd->remaining();
        // exec has no entrypoint: an option of exec's where COMMAND stands would be exec'd.
        if (std::string hint = misplaced_options(*cmd, a->rest, 1, "the container", "CONTAINER"); !hint.empty()) {
            throw Error(Errc::InvalidArgument, hint);
        }
        action = [&globals, a] { return exec(globals, *a); };
    });
}

}  // namespace imgtool::cli
