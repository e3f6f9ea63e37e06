#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/view/container_root.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/launch/container.hpp"
#include "imgtool/launch/exec.hpp"
#include "imgtool/launch/spec.hpp"
#include "imgtool/overlay/driver.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/process.hpp"

extern char** environ;

namespace imgtool::cli {
namespace {

// run's flags: what the container is to be (launch::RunOptions) and how its root is made here.
struct RunArgs {
    launch::RunOptions options;
    std::string name;
    std::vector<std::string> env_file_paths;  // --env-file; their text goes into options.env_files
    std::string upper, driver;
    bool rm = false;
    bool detach = false;
    std::vector<std::string> rest;  // IMAGE [COMMAND [ARG...]]
    std::string misplaced;          // run's options where COMMAND stands (misplaced_options)
};

// docker's rule for container names.
bool valid_container_name(const std::string& name) {
    if (name.size() < 2 || name.size() > 128 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
}

// run -d. This process forks the container's monitor (which runs the container as a foreground run
// would, in a session of its own, stdin from nowhere, output into the container's log) and waits for
// one report on a pipe: "S" once the command has been exec'd, or "E<status> <message>" when starting
// failed. Then it prints the ID (or the error) and leaves without running destructors: the store
// area, the locks and the container are the monitor's.
class Detach {
public:
    // In the monitor: the report pipe's write end. -1 in a foreground run.
    int report_fd() const { return report_.get(); }

    // Forks. Returns in the monitor only.
    void fork_monitor(store::Store::ContainerArea& area, bool interactive, const std::string& id) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe", "run -d");
        sys::UniqueFd read_end(p[0]), write_end(p[1]);
        sys::UniqueFd log = area.open_log();
        sys::UniqueFd input = sys::open_at(AT_FDCWD, "/dev/null", O_RDONLY);
        if (interactive) {
            // docker's -di: stdin stays open, and nothing ever comes. The monitor keeps the write end.
            if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe", "run -d -i");
            input.reset(p[0]);
            stdin_writer_.reset(p[1]);
        }
        std::fflush(nullptr);
        pid_t monitor = ::fork();
        if (monitor < 0) throw_errno("fork", "run -d");
        if (monitor > 0) {
            write_end.reset();
            wait_for_report(read_end.get(), id);
        }
        read_end.reset();
        ::setsid();  // no terminal: the user's ^C and hang-up are not the container's
        if (::dup2(input.get(), 0) < 0 || ::dup2(log.get(), 1) < 0 || ::dup2(log.get(), 2) < 0) throw_errno("dup2", "run -d");
        report_ = std::move(write_end);
    }

    void report(const std::string& message) {
        if (!report_) return;
        (void)!::write(report_.get(), message.data(), message.size());
        report_.reset();
    }

private:
    [[noreturn]] static void wait_for_report(int fd, const std::string& id) {
        std::string message;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            message.append(buf, static_cast<std::size_t>(n));
            if (message == "S") break;
        }
        if (message == "S") {
            std::printf("%s\n", id.c_str());
            std::fflush(stdout);
            ::_exit(0);
        }
        int status = 125;
        std::string text = "the container's monitor ended before the container started";
        if (message.size() > 1 && message[0] == 'E') {
            auto space = message.find(' ');
            status = std::atoi(message.substr(1, space).c_str());
            text = space == std::string::npos ? "" : message.substr(space + 1);
        }
        std::fprintf(stderr, "imgtool: run: %s\n", escape_control(text).c_str());
        std::fflush(stderr);
        ::_exit(status ? status : 125);
    }

    sys::UniqueFd report_;
    sys::UniqueFd stdin_writer_;
};

int run(const Globals& globals, RunArgs& a) {
    if (a.rest.empty()) throw Error(Errc::InvalidArgument, "run needs an IMAGE");
    // run -d: the monitor lives as long as the container and must not hold what the caller handed
    // this process (a lock a script waits on, a pipe read to its end). Nothing of imgtool's is open yet.
    if (a.detach && ::syscall(SYS_close_range, 3, ~0U, 0) != 0) throw_errno("close_range", "run -d");
    if (!a.name.empty() && !valid_container_name(a.name)) {
        throw Error(Errc::InvalidArgument, "invalid container name \"" + printable(a.name) +
                                               "\": letters, digits, _ . - (starting with a letter or digit)");
    }
    store::Store store(globals.store_root());
    check_rootless_id_map(store);
    store::ImageRecord img = store.resolve(a.rest[0]);
    image::ImageConfig config = image::parse_config(store.read_blob(img.id), "config " + img.id.str());

    launch::RunOptions& options = a.options;
    options.command.assign(a.rest.begin() + 1, a.rest.end());
    for (const auto& f : a.env_file_paths) {
        options.env_files.push_back(sys::read_file_at(AT_FDCWD, f, 1 << 20));
    }
    for (char** e = environ; *e; ++e) options.host_env.emplace_back(*e);
    if (long cpus = ::sysconf(_SC_NPROCESSORS_ONLN); cpus > 0) options.host_cpus = static_cast<unsigned>(cpus);
    const std::string container_id = sys::new_container_id();
    options.default_hostname = container_id.substr(0, 12);
    launch::LaunchSpec spec = launch::spec_from_image(config.config, options);
    // `run IMG -it sh`: "-it" would be exec'd. Only when it is the executable: an entrypoint takes
    // words such as -v as its arguments.
    if (!a.misplaced.empty() && spec.argv.size() == options.command.size()) throw Error(Errc::InvalidArgument, a.misplaced);
    // docker's init layer: the files every container needs, its own, made before anything is created.
    std::string host_resolv = sys::read_config_file("/etc/resolv.conf", 1 << 20).value_or("");
    const std::string hosts = launch::hosts_file(spec.hostname, options.add_hosts);
    const std::string resolv = launch::resolv_conf(host_resolv, spec.new_network, options.dns, options.dns_search);

    view::ContainerRootPlan root;
    root.driver = overlay::plan_driver(a.driver, !a.upper.empty());
    view::LayerStack layers = view::open_layers(store, img);
    view::add_init_layer(store, img, layers);
    root.layers = &layers;
    // The container's writable layer lives in the store's tmp/ and goes away with this process (a crash
    // leaves it for the next imgtool to clean). --upper keeps changes in the user's directory instead.
    store::Store::ContainerArea area = store.new_container_area();
    root.upper = {area.upper_dir(), area.work_dir()};
    spec.own_files = {{area.write_file("hosts", hosts), "/etc/hosts"},
                      {area.write_file("hostname", spec.hostname + "\n"), "/etc/hostname"},
                      {area.write_file("resolv.conf", resolv), "/etc/resolv.conf"}};
    if (!a.upper.empty()) {
        root.user_upper = view::open_container_upper(a.upper);
        root.upper.upper = root.user_upper->path;
    }
    root.user_xattr = rootless::active();
    overlay::plan_overlay(layers.refs, root.upper, layers.empty_dir);  // refuse what cannot be stacked here
    spec.root_dir = area.root_dir();
    {
        // The name is checked and claimed under the metadata lock: two runs with one --name cannot both
        // start (a starting container's record is locked, so it counts before its process exists).
        sys::RangeLock names = store.lock_metadata();
        if (!a.name.empty()) {
            for (const auto& c : store.containers(true)) {
                if (c.name == a.name) {
                    throw Error(Errc::Busy, "the name \"" + a.name + "\" is in use by container " + c.id.substr(0, 12) +
                                                (c.state == store::Store::ContainerState::Exited ? " (stopped: imgtool rm it)" : ""));
                }
            }
        }
        store::Store::Container record{.id = container_id, .name = a.name, .image = img.id, .image_name = a.rest[0],
                                       .command = spec.argv, .created = {}, .pid = 0, .start_time = 0, .run_pid = 0, .run_start_time = 0,
                                       .state = store::Store::ContainerState::Created, .kept = a.detach && !a.rm,
                                       .exit_code = -1, .finished = {}, .area = {},
                                       .process = launch::process_record_json(launch::process_record_of(spec))};
        area.write_record(record, a.detach && !a.rm);
    }
    Detach detach;
    if (a.detach) {
        detach.fork_monitor(area, spec.interactive, container_id);
        spec.on_running = [&detach] { detach.report("S"); };
    }
    // While the container lives, its area must survive other imgtool commands' cleaning of tmp/: they
    // skip an area whose container.pid names a live process (pid and start time). From then on the
    // area and container.json hold the container's stake in the store (rm refuses its image), so run
    // stops holding the store: `rm` of a tag or of another image does not wait for the container.
    spec.on_started = [&area, &store](pid_t pid) {
        area.record_process(pid);
        store.release_activity();
    };
    spec.mount_root = view::container_root(root);
    launch::RunOutcome outcome;
    try {
        outcome = launch::run_container(spec);
    } catch (const Error& e) {
        if (!a.detach) throw;
        outcome = {125, e.what()};
    }
    if (a.detach) {
        detach.report("E" + std::to_string(outcome.exit_status) + " " + outcome.error);  // if not yet running
        area.record_exit(outcome.exit_status);
    }
    if (!outcome.error.empty()) std::fprintf(stderr, "imgtool: run: %s\n", escape_control(outcome.error).c_str());
    return outcome.exit_status;
}

}  // namespace

void add_run(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<RunArgs>();
    CLI::App* cmd = app.add_subcommand("run", "run a command in an image's root filesystem, in new namespaces");
    usage(*cmd, "[OPTIONS] IMAGE [COMMAND [ARG...]]");
    cmd->footer("Options go before IMAGE; what follows it is the container's.");
    examples(*cmd, {"imgtool run --rm -it alpine sh", "imgtool run -d --name web -v /srv/www:/www:ro alpine httpd -f -h /www"});
    cmd->add_flag("--rm", a->rm, "remove the container when it exits (always so without -d)");
    cmd->add_flag("-d,--detach", a->detach,
                  "run in the background and print the container ID; output goes to `imgtool logs`, and the "
                  "container stays (ps -a) until `imgtool rm`");
    cmd->add_flag("-i,--interactive", a->options.interactive, "keep stdin attached");
    cmd->add_flag("-t,--tty", a->options.tty, "allocate a pseudo-terminal");
    cmd->add_option("-e,--env", a->options.env,
                    "set an environment variable (KEY=VALUE, or KEY from the host)")
        ->allow_extra_args(false);
    cmd->add_option("--env-file", a->env_file_paths, "read environment variables from a file")
        ->allow_extra_args(false);
    cmd->add_option("-w,--workdir", a->options.workdir, "working directory inside the container");
    cmd->add_option("-u,--user", a->options.user,
                    "user[:group] (names from the image's /etc/passwd and /etc/group)");
    cmd->add_option("--name", a->name, "a name for the container (unique among running containers)");
    cmd->add_option("--hostname", a->options.hostname, "container host name (default: the short container ID)");
    cmd->add_option("--security-opt", a->options.security_opts, "seccomp=unconfined (no filter), seccomp=PROFILE.json (docker's format; default: docker's profile), or no-new-privileges")
        ->allow_extra_args(false);
    cmd->add_option("--add-host", a->options.add_hosts, "add NAME:ADDRESS to the container's /etc/hosts")
        ->allow_extra_args(false);
    cmd->add_option("--dns", a->options.dns, "nameserver for the container's /etc/resolv.conf (replaces the host's)")
        ->allow_extra_args(false);
    cmd->add_option("--dns-search", a->options.dns_search, "search domain for the container's /etc/resolv.conf")
        ->allow_extra_args(false);
    cmd->add_option("--entrypoint", a->options.entrypoint, "override the image's entrypoint");
    cmd->add_option("--net,--network", a->options.net,
                    "host (default: the host's network; docker's bridge needs a network stack imgtool has not) or none (loopback only)")
        ->check(CLI::IsMember({"host", "none"}));
    cmd->add_flag("--read-only", a->options.read_only, "mount the root filesystem read-only");
    cmd->add_option("--upper", a->upper, "keep the container's changes in DIR");
    cmd->add_flag("--init", a->options.init,
                  "run a tiny init as PID 1 that reaps zombies and forwards signals");
    cmd->add_flag("--privileged", a->options.privileged, "keep all capabilities, no masked paths");
    cmd->add_option("--cap-add", a->options.cap_add, "add a capability")->allow_extra_args(false);
    cmd->add_option("--cap-drop", a->options.cap_drop, "drop a capability")->allow_extra_args(false);
    cmd->add_option("-v,--volume", a->options.volumes, "bind mount HOST:CONTAINER[:ro]")
        ->allow_extra_args(false);
    cmd->add_option("--tmpfs", a->options.tmpfs, "mount a tmpfs at PATH[:OPTIONS] (size=, mode=, uid=, gid=, exec...; noexec,nosuid,nodev by default)")
        ->allow_extra_args(false);
    // ---- resource limits (launch::parse_resource_limits checks the values) ----
    cmd->add_option("--memory,-m", a->options.memory, "memory limit: BYTES[b|k|m|g] (at least 6m)");
    cmd->add_option("--memory-swap", a->options.memory_swap,
                    "memory plus swap: BYTES[b|k|m|g], -1 unlimited swap (default: twice --memory)");
    cmd->add_option("--cpus", a->options.cpus, "CPUs the container may use, such as 1.5");
    cmd->add_option("--pids-limit", a->options.pids_limit, "most processes at once (-1: unlimited)");
    // ---- end of resource limits ----
    cmd->add_option("--driver", a->driver, "root filesystem driver: overlay (default) or copy")
        ->check(CLI::IsMember({"overlay", "copy"}));
    // Repeatable options take one value per occurrence (else "-e K IMAGE" would swallow IMAGE).
    // Everything from IMAGE on belongs to the container, options included.
    cmd->prefix_command();
    cmd->callback([&globals, &action, a, cmd] {
        a->rest = cmd->remaining();
        a->misplaced = misplaced_options(*cmd, a->rest, 1, "the image", "IMAGE");
        action = [&globals, a] { return run(globals, *a); };
    });
}

}  // namespace imgtool::cli
