#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/import/pull.hpp"

namespace imgtool::cli {

void add_pull_local(CLI::App& app, Globals& globals, Action& action) {
    struct Args {
        std::string source;
        std::vector<std::string> tags;
        std::string platform;
        bool quiet = false;
        unsigned jobs = 0;
        std::string min_free;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = app.add_subcommand("pull-local", "import a docker-save tar, OCI archive tar or OCI layout directory");
    cmd->add_option("SOURCE", args->source, "image archive or OCI layout directory")->required();
    cmd->add_option("--tag,-t", args->tags, "also tag the image with NAME[:TAG]")->allow_extra_args(false);
    cmd->add_option("--platform", args->platform, "os/arch[/variant] to select from a multi-platform index");
    cmd->add_flag("--quiet,-q", args->quiet, "print only the image ID");
    cmd->add_option("--jobs,-j", args->jobs, "layers to unpack in parallel (default: number of cores)");
    cmd->add_option("--min-free", args->min_free,
                    "stop before the store's filesystem has less free than SIZE (e.g. 2G) or PERCENT% "
                    "(default: 5%, at most 1G; 0 disables)");
    cmd->callback([&globals, &action, args] {
        action = [&globals, args] {
            store::Store store(globals.store_root());
            check_rootless_id_map(store);
            import::PullOptions options;
            if (!args->platform.empty()) options.platform = image::Platform::parse(args->platform);
            options.extra_tags = args->tags;
            options.jobs = args->jobs;
            options.min_free = min_free_option(args->min_free);
            bool tty = ::isatty(STDERR_FILENO) == 1;
            options.progress = tty && !args->quiet;
            options.rootless = rootless::active();
            options.squash_owners = options.rootless && rootless::single_id_mapped();
            import::PullLosses losses;
            auto source = import::open_local(args->source);
            auto results = import::pull(store, *source, options, &losses);
            // Said once per pull, so a rootless user knows what the store does not hold.
            auto note = [](std::uint64_t n, const char* what) {
                if (n > 0) std::fprintf(stderr, "imgtool: pull-local: note: %llu %s\n", static_cast<unsigned long long>(n), what);
            };
            note(losses.skipped_devices, "device nodes skipped (rootless: making devices needs real root)");
            note(losses.skipped_xattrs, "extended attributes skipped (rootless: trusted.* and the like need real root)");
            note(losses.squashed_owners, "entries' owners squashed to yours (no subordinate ids: add ranges for you in "
                                         "/etc/subuid and /etc/subgid and install uidmap to keep them)");
            for (const auto& r : results) {
                // As docker: a name that pointed at another image now points at this one.
                for (const auto& [tag, previous] : r.moved_tags) {
                    std::fprintf(stderr, "imgtool: pull-local: note: %s now names %s (it named %s)\n", tag.c_str(),
                                 r.id.short_hex().c_str(), previous.short_hex().c_str());
                }
                if (options.progress) {
                    std::string tags;
                    for (const auto& t : r.tags) tags += " " + t;
                    log::notice("loaded " + r.id.str() + " (" + std::to_string(r.layers_unpacked) + " layers unpacked, " +
                                std::to_string(r.layers_reused) + " reused)" + (tags.empty() ? "" : ":" + tags));
                }
                std::printf("%s\n", r.id.str().c_str());
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
