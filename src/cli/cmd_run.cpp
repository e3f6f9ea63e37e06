#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/view/container_root.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/container.hpp"
#include "imgtool/overlay/copy.hpp"
#include "imgtool/overlay/mount.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/user_path.hpp"

extern char** environ;

namespace imgtool::cli {
namespace {

struct RunArgs {
    std::vector<std::string> env, env_files, volumes, tmpfs, cap_add, cap_drop;
    std::string workdir, user, hostname, net = "host", upper, driver;
    std::optional<std::string> entrypoint;
    bool interactive = false, tty = false, read_only = false, init = false, privileged = false, rm = true;
    std::vector<std::string> rest;  // IMAGE [COMMAND [ARG...]]
};

std::vector<std::string> json_strings(const nlohmann::json& config, const char* key) {
    std::vector<std::string> out;
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return out;
    if (!it->is_array()) throw Error(Errc::Corrupt, std::string("image config: ") + key + " is not an array");
    for (const auto& v : *it) {
        if (!v.is_string()) throw Error(Errc::Corrupt, std::string("image config: ") + key + " has a non-string entry");
        out.push_back(v.get<std::string>());
    }
    return out;
}

std::string json_string(const nlohmann::json& config, const char* key) {
    auto it = config.find(key);
    return it != config.end() && it->is_string() ? it->get<std::string>() : "";
}

launch::VolumeSpec parse_volume(const std::string& text) {
    auto parts = split(text, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty() || parts[1][0] != '/') {
        throw Error(Errc::InvalidArgument, "invalid volume \"" + text + "\": expected HOST:CONTAINER[:ro]");
    }
    if (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw") {
        throw Error(Errc::InvalidArgument, "invalid volume mode \"" + parts[2] + "\"");
    }
    return {parts[0], parts[1], parts.size() == 3 && parts[2] == "ro"};
}

int run(const Globals& globals, RunArgs& a) {
    if (a.rest.empty()) throw Error(Errc::InvalidArgument, "run needs an IMAGE");
    store::Store store(globals.store_root());
    check_rootless_id_map(store);
    store::ImageRecord img = store.resolve(a.rest[0]);
    image::ImageConfig config = image::parse_config(store.read_blob(img.id), "config " + img.id.str());
    const nlohmann::json& cfg = config.config;

    launch::LaunchSpec spec;
    std::vector<std::string> command(a.rest.begin() + 1, a.rest.end());
    spec.argv = launch::compose_argv(json_strings(cfg, "Entrypoint"), json_strings(cfg, "Cmd"), a.entrypoint, command);
    std::vector<std::string> overrides;
    for (const auto& f : a.env_files) {
        for (auto& kv : launch::parse_env_file(sys::read_file_at(AT_FDCWD, f, 1 << 20))) overrides.push_back(kv);
    }
    overrides.insert(overrides.end(), a.env.begin(), a.env.end());
    std::vector<std::string> host_env;
    for (char** e = environ; *e; ++e) host_env.emplace_back(*e);
    spec.env = launch::merge_env(json_strings(cfg, "Env"), overrides, host_env);
    if (!launch::env_value(spec.env, "PATH")) {
        spec.env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    }
    spec.hostname = a.hostname.empty() ? img.id.short_hex() : a.hostname;
    if (!launch::env_value(spec.env, "HOSTNAME")) spec.env.push_back("HOSTNAME=" + spec.hostname);
    if (a.tty && !launch::env_value(spec.env, "TERM")) spec.env.push_back("TERM=xterm");
    spec.workdir = !a.workdir.empty() ? a.workdir : json_string(cfg, "WorkingDir");
    if (spec.workdir.empty()) spec.workdir = "/";
    if (spec.workdir[0] != '/') {
        throw Error(Errc::InvalidArgument, "working directory \"" + spec.workdir + "\" is not an absolute path");
    }
    spec.user = !a.user.empty() ? a.user : json_string(cfg, "User");
    spec.new_network = a.net == "none";
    spec.read_only_root = a.read_only;
    spec.tty = a.tty;
    spec.interactive = a.interactive;
    spec.init = a.init;
    spec.privileged = a.privileged;
    spec.capabilities = a.privileged ? launch::all_capabilities()
                                     : launch::adjust_capabilities(launch::default_capabilities(), a.cap_add, a.cap_drop);
    for (const auto& v : a.volumes) spec.volumes.push_back(parse_volume(v));
    for (const auto& t : a.tmpfs) {
        if (t.empty() || t[0] != '/') throw Error(Errc::InvalidArgument, "--tmpfs needs an absolute path");
        spec.tmpfs.push_back(t);
    }

    view::ContainerRootPlan root;
    root.driver = overlay::plan_driver(a.driver, !a.upper.empty());
    view::LayerStack layers = view::open_layers(store, img);
    root.layers = &layers;
    // The container's writable layer lives in the store's tmp/ and goes away with this process (a crash
    // leaves it for the next imgtool to clean). --upper keeps changes in the user's directory instead.
    store::Store::ContainerArea area = store.new_container_area();
    root.upper = {area.upper_dir(), area.work_dir()};
    if (!a.upper.empty()) {
        root.user_upper = view::open_container_upper(a.upper);
        root.upper.upper = root.user_upper->path;
    }
    root.user_xattr = rootless::active();
    overlay::plan_overlay(layers.refs, root.upper, layers.empty_dir);  // refuse what cannot be stacked here
    spec.root_dir = area.root_dir();
    // While the container lives, its area must survive other imgtool commands' cleaning of tmp/: they
    // skip an area whose container.pid names a live process (pid and start time).
    spec.on_started = [&area](pid_t pid) { area.record_process(pid); };
    spec.mount_root = view::container_root(root);
    launch::RunOutcome outcome = launch::run_container(spec);
    if (!outcome.error.empty()) std::fprintf(stderr, "imgtool: run: %s\n", escape_control(outcome.error).c_str());
    return outcome.exit_status;
}

}  // namespace

void add_run(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<RunArgs>();
    CLI::App* cmd = app.add_subcommand("run", "run a command in an image's root filesystem, in new namespaces");
    cmd->add_flag("--rm", a->rm, "remove the container's changes on exit (always done)");
    cmd->add_flag("-i,--interactive", a->interactive, "keep stdin attached");
    cmd->add_flag("-t,--tty", a->tty, "allocate a pseudo-terminal");
    cmd->add_option("-e,--env", a->env, "set an environment variable (KEY=VALUE, or KEY from the host)")->allow_extra_args(false);
    cmd->add_option("--env-file", a->env_files, "read environment variables from a file")->allow_extra_args(false);
    cmd->add_option("-w,--workdir", a->workdir, "working directory inside the container");
    cmd->add_option("-u,--user", a->user, "user[:group] (names from the image's /etc/passwd and /etc/group)");
    cmd->add_option("--hostname", a->hostname, "container host name (default: short image ID)");
    cmd->add_option("--entrypoint", a->entrypoint, "override the image's entrypoint");
    cmd->add_option("--net,--network", a->net, "host (default) or none")->check(CLI::IsMember({"host", "none"}));
    cmd->add_flag("--read-only", a->read_only, "mount the root filesystem read-only");
    cmd->add_option("--upper", a->upper, "keep the container's changes in DIR");
    cmd->add_flag("--init", a->init, "run a tiny init as PID 1 that reaps zombies and forwards signals");
    cmd->add_flag("--privileged", a->privileged, "keep all capabilities, no masked paths");
    cmd->add_option("--cap-add", a->cap_add, "add a capability")->allow_extra_args(false);
    cmd->add_option("--cap-drop", a->cap_drop, "drop a capability")->allow_extra_args(false);
    cmd->add_option("-v,--volume", a->volumes, "bind mount HOST:CONTAINER[:ro]")->allow_extra_args(false);
    cmd->add_option("--tmpfs", a->tmpfs, "mount a tmpfs at PATH")->allow_extra_args(false);
    cmd->add_option("--driver", a->driver, "root filesystem driver: overlay (default) or copy")
        ->check(CLI::IsMember({"overlay", "copy"}));
    // Repeatable options take one value per occurrence (else "-e K IMAGE" would swallow IMAGE).
    // Everything from IMAGE on belongs to the container, options included.
    cmd->prefix_command();
    cmd->callback([&globals, &action, a, cmd] {
        a->rest = cmd->remaining();
        action = [&globals, a] { return run(globals, *a); };
    });
}

}  // namespace imgtool::cli
