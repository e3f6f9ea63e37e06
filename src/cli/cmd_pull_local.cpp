#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/import/pull.hpp"
#include "imgtool/layer/unpack.hpp"

namespace imgtool::cli {

int import_and_report(Globals& globals, import::BlobSource& source, const ImportArgs& args) {
    store::Store store(globals.store_root());
    check_rootless_id_map(store);
    import::PullOptions options;
    if (!args.platform.empty()) options.platform = image::Platform::parse(args.platform);
    options.extra_tags = args.tags;
    options.jobs = args.jobs;
    options.min_free = min_free_option(args.min_free);
    bool tty = ::isatty(STDERR_FILENO) == 1;
    options.progress = tty && !args.quiet;
    options.rootless = rootless::active();
    options.squash_owners = options.rootless && rootless::single_id_mapped();
    import::PullLosses losses;
    auto results = import::pull(store, source, options, &losses);
    const std::string& verb = args.verb;
    // Said once per pull, so a rootless user knows what the store does not hold.
    auto note = [&verb](std::uint64_t n, const char* what) {
        if (n > 0) {
            std::fprintf(stderr, "imgtool: %s: note: %llu %s\n", verb.c_str(), static_cast<unsigned long long>(n), what);
        }
    };
    if (losses.skipped_devices > 0) {
        std::fprintf(stderr, "imgtool: %s: note: %s\n", verb.c_str(), layer::skipped_devices_note(losses.skipped_devices).c_str());
    }
    note(losses.skipped_xattrs, "extended attributes skipped (rootless: trusted.* and the like need real root)");
    note(losses.squashed_owners, "entries' owners squashed to yours (no subordinate ids: add ranges for you in "
                                 "/etc/subuid and /etc/subgid and install uidmap to keep them)");
    for (const auto& r : results) {
        // As docker: a name that pointed at another image now points at this one.
        for (const auto& [tag, previous] : r.moved_tags) {
            std::fprintf(stderr, "imgtool: %s: note: %s now names %s (it named %s)\n", verb.c_str(), tag.c_str(),
                         r.id.short_hex().c_str(), previous.short_hex().c_str());
        }
        if (options.progress) {
            std::string tags;
            for (const auto& t : r.tags) tags += " " + t;
            log::notice("loaded " + r.id.str() + " (" + std::to_string(r.layers_unpacked) + " layers unpacked, " +
                        std::to_string(r.layers_reused) + " reused)" + (tags.empty() ? "" : ":" + tags));
        }
        std::printf("%s\n", r.id.str().c_str());
        // As the issue asks (podman would name it after the path): say so rather than leave a <none>.
        if (r.tags.empty() && verb == "pull-local") {
            std::fprintf(stderr, "imgtool: %s: %s has no image name; imported untagged as %s \u2014 name it with --tag NAME\n",
                         verb.c_str(), printable(source.name()).c_str(), r.id.str().c_str());
        }
    }
    return 0;
}

void add_import_options(CLI::App& cmd, ImportArgs& args, const std::string& jobs_help) {
    cmd.add_option("--platform", args.platform, "os/arch[/variant] to select from a multi-platform index");
    cmd.add_flag("--quiet,-q", args.quiet, "print only the image ID");
    cmd.add_option("--jobs,-j", args.jobs, jobs_help);
    cmd.add_option("--min-free", args.min_free,
                   "stop before the store's filesystem has less free than SIZE (e.g. 2G) or PERCENT% "
                   "(default: 5%, at most 1G; 0 disables)");
}

void add_pull_local(CLI::App& app, Globals& globals, Action& action) {
    auto args = std::make_shared<ImportArgs>();
    args->verb = "pull-local";
    auto source = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("pull-local", "import a docker-save tar, OCI archive tar or OCI layout directory");
    examples(*cmd, {"imgtool pull-local alpine.tar", "imgtool pull-local --tag myapp:1.0 ./oci-layout"});
    cmd->add_option("SOURCE", *source,
                    "image archive or OCI layout directory; PATH:REF (skopeo's form) imports only the image whose "
                    "ref name (OCI) or RepoTag (docker archive) is REF")
        ->required();
    cmd->add_option("--tag,-t", args->tags, "also tag the image with NAME[:TAG]")->allow_extra_args(false);
    add_import_options(*cmd, *args, "layers to unpack in parallel (default: number of cores)");
    cmd->callback([&globals, &action, args, source] {
        action = [&globals, args, source] {
            auto opened = import::open_local(*source);
            return import_and_report(globals, *opened, *args);
        };
    });
}

}  // namespace imgtool::cli
