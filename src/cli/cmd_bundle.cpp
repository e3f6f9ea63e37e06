#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "imgtool/bundle/bundle.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

extern char** environ;

namespace imgtool::cli {

// imgtool bundle [OPTIONS] IMAGE DIR [COMMAND [ARG...]] / imgtool bundle --rm DIR: a thin command over
// bundle::make_bundle and bundle::remove_bundle.
void add_bundle(CLI::App& app, Globals& globals, Action& action) {
    struct Args {
        bundle::BundleRequest request;
        std::vector<std::string> env_file_paths;
        bool remove = false;
        std::vector<std::string> rest;
    };
    auto a = std::make_shared<Args>();
    launch::RunOptions& o = a->request.options;
    CLI::App* cmd = app.add_subcommand("bundle", "write an OCI runtime bundle of an image (config.json, rootfs) for crun or runc");
    usage(*cmd, "[OPTIONS] IMAGE DIR [COMMAND [ARG...]]\n       imgtool bundle --rm DIR");
    cmd->footer("Options go before IMAGE. DIR must be absent or an empty directory; config.json holds what "
                "`imgtool run` would do (docs/bundle.md).");
    examples(*cmd, {"imgtool bundle --net none alpine /tmp/b echo hi   (then: crun run --bundle /tmp/b c1)",
                    "imgtool bundle --rm /tmp/b"});
    cmd->add_flag("--rm", a->remove, "unmount and remove a bundle made by `imgtool bundle` (only what it made)");
    cmd->add_option("--driver", a->request.driver, "rootfs driver: overlay (default) or copy")
        ->check(CLI::IsMember({"overlay", "copy"}));
    cmd->add_option("-e,--env", o.env, "set an environment variable (KEY=VALUE, or KEY from the host)")->allow_extra_args(false);
    cmd->add_option("--env-file", a->env_file_paths, "read environment variables from a file")->allow_extra_args(false);
    cmd->add_option("-w,--workdir", o.workdir, "working directory inside the container");
    cmd->add_option("-u,--user", o.user, "user[:group] (names from the image's /etc/passwd and /etc/group)");
    cmd->add_option("--hostname", o.hostname, "container host name (default: a new short ID)");
    cmd->add_option("--entrypoint", o.entrypoint, "override the image's entrypoint");
    cmd->add_option("--net,--network", o.net, "host (default: the host's network) or none (a network namespace)")
        ->check(CLI::IsMember({"host", "none"}));
    cmd->add_flag("--read-only", o.read_only, "the root filesystem read-only");
    cmd->add_option("--cap-add", o.cap_add, "add a capability")->allow_extra_args(false);
    cmd->add_option("--cap-drop", o.cap_drop, "drop a capability")->allow_extra_args(false);
    cmd->add_option("--security-opt", o.security_opts, "seccomp=unconfined, seccomp=PROFILE.json, or no-new-privileges")
        ->allow_extra_args(false);
    cmd->add_option("--add-host", o.add_hosts, "add NAME:ADDRESS to the bundle's hosts file")->allow_extra_args(false);
    cmd->add_option("--dns", o.dns, "nameserver for the bundle's resolv.conf")->allow_extra_args(false);
    cmd->add_option("--dns-search", o.dns_search, "search domain for the bundle's resolv.conf")->allow_extra_args(false);
    cmd->add_option("-v,--volume", o.volumes, "bind mount HOST:CONTAINER[:ro] (HOST absolute)")->allow_extra_args(false);
    cmd->add_option("--tmpfs", o.tmpfs, "mount a tmpfs at PATH[:OPTIONS]")->allow_extra_args(false);
    cmd->add_option("--memory,-m", o.memory, "memory limit: BYTES[b|k|m|g] (at least 6m)");
    cmd->add_option("--memory-swap", o.memory_swap, "memory plus swap: BYTES[b|k|m|g], -1 unlimited swap");
    cmd->add_option("--cpus", o.cpus, "CPUs the container may use, such as 1.5");
    cmd->add_option("--pids-limit", o.pids_limit, "most processes at once (-1: unlimited)");
    cmd->prefix_command();  // everything from IMAGE on is bundle's positional part
    cmd->callback([&globals, &action, a, cmd] {
        a->rest = cmd->remaining();
        action = [&globals, a] {
            store::Store store(globals.store_root());
            if (a->remove) {
                if (a->rest.size() != 1) throw Error(Errc::InvalidArgument, "--rm takes one DIR and nothing else");
                int status = 0;
                for (const std::string& what : bundle::remove_bundle(store, a->rest[0])) {
                    std::fprintf(stderr, "imgtool: bundle: %s/%s: left in place\n", escape_control(a->rest[0]).c_str(),
                                 escape_control(what).c_str());
                    status = 1;
                }
                return status;
            }
            if (a->rest.size() < 2) throw Error(Errc::InvalidArgument, "needs IMAGE and DIR (or --rm DIR)");
            bundle::BundleRequest request = a->request;
            request.dir = a->rest[1];
            request.options.command.assign(a->rest.begin() + 2, a->rest.end());
            for (const auto& f : a->env_file_paths) request.options.env_files.push_back(sys::read_file_at(AT_FDCWD, f, 1 << 20));
            for (char** e = environ; *e; ++e) request.options.host_env.emplace_back(*e);
            if (long cpus = ::sysconf(_SC_NPROCESSORS_ONLN); cpus > 0) request.options.host_cpus = static_cast<unsigned>(cpus);
            request.host_resolv = sys::read_config_file("/etc/resolv.conf", 1 << 20).value_or("");
            bundle::Bundle made = bundle::make_bundle(store, a->rest[0], std::move(request));
            std::printf("%s\n", escape_control(made.dir).c_str());
            return 0;
        };
    });
}

}  // namespace imgtool::cli
