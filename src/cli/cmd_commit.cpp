// imgtool commit: a container's writable layer (or an overlay upper directory) as a new image.
#include <cstdio>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/commit/commit.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/rootless/userns.hpp"

namespace imgtool::cli {

void add_commit(CLI::App& app, Globals& globals, Action& action) {
    struct Args {
        commit::CommitOptions options;
        std::vector<std::string> positional;  // CONTAINER [NAME[:TAG]], or with --upper: [NAME[:TAG]]
        bool no_pause = false;
    };
    auto a = std::make_shared<Args>();
    CLI::App* cmd = app.add_subcommand("commit", "make an image of a container's changes");
    usage(*cmd, "[OPTIONS] CONTAINER [NAME[:TAG]]\n       imgtool commit [OPTIONS] --upper DIR --base IMAGE [NAME[:TAG]]");
    examples(*cmd, {"imgtool commit web myapp:v2", "imgtool commit -c 'CMD [\"httpd\", \"-f\"]' web myapp:v2"});
    cmd->add_option("--change,-c", a->options.changes,
                    "apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR")
        ->allow_extra_args(false);
    cmd->add_option("--message,-m", a->options.message, "commit message (the history entry's comment)");
    cmd->add_option("--author,-a", a->options.author, "author (\"Name <email>\")");
    cmd->add_option("--upper", a->options.upper, "commit this overlay upper directory (mount/run --upper) instead");
    cmd->add_option("--base", a->options.base, "with --upper: the image it was mounted over");
    cmd->add_flag("--no-pause", a->no_pause, "do not freeze a running container while reading its changes");
    cmd->add_option("ARGS", a->positional, "CONTAINER [NAME[:TAG]] (with --upper: [NAME[:TAG]])");
    cmd->callback([&globals, &action, a] {
        action = [&globals, a] {
            commit::CommitOptions options = a->options;
            const auto& p = a->positional;
            if (!options.upper.empty()) {
                if (p.size() > 1) throw Error(Errc::InvalidArgument, "with --upper, give only NAME[:TAG]");
                if (options.base.empty()) throw Error(Errc::InvalidArgument, "--upper needs --base IMAGE");
                if (!p.empty()) options.tag = p[0];
            } else {
                if (!options.base.empty()) throw Error(Errc::InvalidArgument, "--base goes with --upper");
                if (p.empty() || p.size() > 2) throw Error(Errc::InvalidArgument, "usage: commit CONTAINER [NAME[:TAG]]");
                options.container = p[0];
                if (p.size() == 2) options.tag = p[1];
            }
            options.pause = !a->no_pause;
            options.rootless = rootless::active();
            options.squash_owners = options.rootless && rootless::single_id_mapped();
            store::Store store(globals.store_root());
            check_rootless_id_map(store);
            commit::CommitResult r = commit::commit(store, options);
            if (r.paused == commit::Paused::No) {
                std::fprintf(stderr, "imgtool: commit: note: the container ran on while its changes were read (it "
                                     "has no cgroup of its own to freeze)\n");
            }
            if (r.empty_upper) {
                std::fprintf(stderr, "imgtool: commit: note: the container's writable layer is empty (a container run "
                                     "with --upper DIR keeps its changes in DIR: commit --upper DIR --base IMAGE)\n");
            }
            if (r.stats.skipped_sockets > 0) {
                std::fprintf(stderr, "imgtool: commit: note: %llu sockets left out (a layer tar cannot hold them)\n",
                             static_cast<unsigned long long>(r.stats.skipped_sockets));
            }
            for (const auto& [tag, previous] : r.moved_tags) {
                std::fprintf(stderr, "imgtool: commit: note: %s now names %s (it named %s)\n", tag.c_str(),
                             r.id.short_hex().c_str(), previous.short_hex().c_str());
            }
            log::debug("commit: layer " + r.diff_id.str() + ": " + std::to_string(r.layer_bytes) + " bytes, " +
                       std::to_string(r.stats.entries) + " entries, " + std::to_string(r.stats.whiteouts) +
                       " whiteouts, " + std::to_string(r.stats.opaque_dirs) + " opaque directories, " +
                       std::to_string(r.stats.left_out) + " runtime paths left out");
            std::printf("%s\n", r.id.str().c_str());
            return 0;
        };
    });
}

}  // namespace imgtool::cli
