#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/launch/container.hpp"
#include "imgtool/launch/spec.hpp"
#include "imgtool/overlay/copy.hpp"
#include "imgtool/overlay/mount.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/user_path.hpp"
#include "mounts.hpp"
#include "rootless_store.hpp"

extern char** environ;

namespace imgtool::cli {
namespace {

// run's flags: what the container is to be (launch::RunOptions) and how its root is made here.
struct RunArgs {
    launch::RunOptions options;
    std::vector<std::string> env_file_paths;  // --env-file; their text goes into options.env_files
    std::string upper, driver;
    bool rm = true;
    std::vector<std::string> rest;  // IMAGE [COMMAND [ARG...]]
};

int run(const Globals& globals, RunArgs& a) {
    if (a.rest.empty()) throw Error(Errc::InvalidArgument, "run needs an IMAGE");
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
    options.default_hostname = img.id.short_hex();
    launch::LaunchSpec spec = launch::spec_from_image(config.config, options);

    LayerStack layers = open_layers(store, img);
    // The container's writable layer lives in the store's tmp/ and goes away with this process (a crash
    // leaves it for the next imgtool to clean). --upper keeps changes in the user's directory instead.
    store::Staging area = store.new_staging();
    sys::mkdir_at(area.dir_fd(), "root", 0755, false);
    overlay::UpperDirs upper{area.path() + "/diff", area.path() + "/work"};
    sys::mkdir_at(area.dir_fd(), "work", 0700, false);
    // --upper DIR: reached without following anybody else's symlink, and only where nobody else can
    // reach: the container writes there as root, so its setuid files and device nodes would be live
    // for whoever could.
    struct stat upper_id {};
    if (!a.upper.empty()) {
        sys::UserPath opened = sys::open_user_directory(a.upper, O_RDONLY, true);
        if (!opened.private_to_caller) {
            throw Error(Errc::UnsafePath, opened.resolved +
                                              ": --upper must be a directory other users cannot reach (make a "
                                              "directory above it mode 0700): the container writes there as "
                                              "root, and its setuid files and device nodes would work for them");
        }
        upper.upper = opened.resolved;
        upper_id = sys::fstat_fd(opened.fd.get(), opened.resolved);
    }
    spec.root_dir = area.path() + "/root";
    // While the container lives, its area must survive other imgtool commands' cleaning of tmp/: they
    // skip an area whose container.pid names a live process (pid and start time).
    spec.on_started = [&area](pid_t pid) { launch::write_pid_file(area.dir_fd(), "container.pid", pid); };
    overlay::plan_overlay(layers.refs, upper, layers.empty_dir);  // refuse what cannot be stacked here
    std::string driver = a.driver;
    spec.mount_root = [&upper, &upper_id, &driver, &layers](int target_fd) {
        // In the container's mount namespace: the layers are opened again here (and checked to be the
        // same directories), since overlayfs refuses layers whose mounts belong to another namespace.
        LayerStack here = layers.reopened();
        overlay::UpperDirs dirs = upper;
        sys::UniqueFd user_upper;
        if (upper_id.st_ino != 0) {
            user_upper = sys::open_at(AT_FDCWD, upper.upper, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, upper.upper);
            struct stat now = sys::fstat_fd(user_upper.get(), upper.upper);
            if (now.st_dev != upper_id.st_dev || now.st_ino != upper_id.st_ino) {
                throw Error(Errc::UnsafePath, upper.upper + ": changed while the container was being set up");
            }
            dirs.upper = "/proc/self/fd/" + std::to_string(user_upper.get());
        }
        overlay::MountSpec root = overlay::plan_overlay(here.refs, dirs, here.empty_dir);
        root.user_xattr = rootless::active();
        // nodev: device nodes in image layers are inert; only the fresh /dev works.
        if (driver != "copy") {
            try {
                overlay::mount_at(root, target_fd, MOUNT_ATTR_NODEV);
                return;
            } catch (const Error& e) {
                if (driver == "overlay") throw;
                log::notice(std::string("overlayfs unavailable (") + e.what() + "); using the copy driver");
            }
        }
        std::vector<std::string> bottom_first = overlay::visible_layer_dirs(here.refs);
        sys::UniqueFd dir = sys::open_at(target_fd, ".", O_RDONLY | O_DIRECTORY);
        overlay::materialize(bottom_first, dir.get());
        sys::bind_at(dir.get(), dir.get(), false, "root filesystem");  // pivot_root needs a mount point
    };
    launch::RunOutcome outcome = launch::run_container(spec);
    if (!outcome.error.empty()) std::fprintf(stderr, "imgtool: run: %s\n", escape_control(outcome.error).c_str());
    return outcome.exit_status;
}

}  // namespace

void add_run(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<RunArgs>();
    CLI::App* cmd = app.add_subcommand("run", "run a command in an image's root filesystem, in new namespaces");
    cmd->add_flag("--rm", a->rm, "remove the container's changes on exit (always done)");
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
    cmd->add_option("--hostname", a->options.hostname, "container host name (default: short image ID)");
    cmd->add_option("--entrypoint", a->options.entrypoint, "override the image's entrypoint");
    cmd->add_option("--net,--network", a->options.net, "host (default) or none")
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
    cmd->add_option("--tmpfs", a->options.tmpfs, "mount a tmpfs at PATH")->allow_extra_args(false);
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
