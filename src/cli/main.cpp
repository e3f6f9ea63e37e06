// imgtool: turns container images into root filesystems. This file only parses the command line and
// turns failures into one line on stderr and an exit status.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "commands.hpp"
#include "imgtool_version.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/rootless/userns.hpp"

#if defined(IMGTOOL_COVERAGE)
extern "C" void __gcov_dump(void);
#endif

namespace {
// gcov writes its counters in exit(); a process leaving by _exit writes them first.
[[maybe_unused]] void flush_coverage() {
#if defined(IMGTOOL_COVERAGE)
    __gcov_dump();
#endif
}
}  // namespace

namespace imgtool::cli {

std::string Globals::store_root() const {
    // An ordinary user's commands run in the user namespace main() entered: rootless::active() says so.
    // exec and logs stay outside it (an ordinary user's store all the same).
    return root.empty() ? store::Store::default_root(rootless::active() || ::geteuid() != 0) : root;
}

std::optional<sys::MinFreeSetting> min_free_option(const std::string& text) {
    if (text.empty()) return std::nullopt;
    auto setting = sys::parse_min_free(text);
    if (!setting) {
        throw Error(Errc::InvalidArgument, "invalid --min-free \"" + printable(text) +
                                               "\": expected a size such as 2G or 500M, a percentage such as 5%, or 0");
    }
    return setting;
}

// A secret given on the command line (pull --creds, login -p) stays readable by every user in
// /proc/PID/cmdline for the whole command: once parsed, it is overwritten there. (There is a window
// before this: --password-stdin and auth files have none.)
void hide_secrets_in_argv(int argc, char** argv, const std::string& verb) {
    if (verb != "pull" && verb != "login") return;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--") break;
        char* secret = nullptr;
        for (std::string_view option : {"--creds", "--password", "-p"}) {
            if (arg == option && i + 1 < argc) {
                secret = argv[++i];
            } else if (arg.size() > option.size() + 1 && arg.substr(0, option.size()) == option && arg[option.size()] == '=') {
                secret = argv[i] + option.size() + 1;
            }
        }
        if (!secret && verb == "login" && arg.size() > 2 && arg[0] == '-' && arg[1] == 'p') secret = argv[i] + 2;  // -pPASS
        if (secret) std::memset(secret, 'x', std::strlen(secret));
    }
}

}  // namespace imgtool::cli

int main(int argc, char** argv) {
    using namespace imgtool;
    // Every file imgtool creates gets an explicit mode; the unpacker relies on a zero umask to create
    // entries with their final permissions in one syscall.
    const mode_t user_umask = ::umask(0);
    CLI::App app{"imgtool: daemonless container image store, mounter and launcher", "imgtool"};
    app.require_subcommand(1, 1);
    app.set_version_flag("--version", "imgtool " IMGTOOL_VERSION " (commit " IMGTOOL_GIT_COMMIT ")");
    cli::Globals globals;
    globals.user_umask = user_umask;
    app.add_option("--root", globals.root, "store directory (default: $IMGTOOL_ROOT, else /var/lib/imgtool)");
    app.add_flag("--debug", globals.debug, "print debugging detail");

    cli::Action action;
    cli::add_pull(app, globals, action);
    cli::add_pull_local(app, globals, action);
    cli::add_login(app, globals, action);
    cli::add_logout(app, globals, action);
    cli::add_images(app, globals, action);
    cli::add_ps(app, globals, action);
    cli::add_stop(app, globals, action);
    cli::add_inspect(app, globals, action);
    cli::add_rm(app, globals, action);
    cli::add_tag(app, globals, action);
    cli::add_save(app, globals, action);
    cli::add_mount(app, globals, action);
    cli::add_umount(app, globals, action);
    cli::add_mounts(app, globals, action);
    cli::add_bundle(app, globals, action);
    cli::add_run(app, globals, action);
    cli::add_exec(app, globals, action);
    cli::add_logs(app, globals, action);
    cli::add_rmi(app, globals, action);
    cli::add_unshare(app, globals, action);
    cli::add_commit(app, globals, action);
    cli::add_info(app, globals, action);
    cli::add_system(app, globals, action);
    cli::add_prune(app, globals, action);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (globals.debug) log::set_level(log::Level::Debug);
    std::string verb = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name();
    cli::hide_secrets_in_argv(argc, argv, verb);
    // docker's convention for run: 125 when imgtool itself fails; other commands exit 1.
    int failure = verb == "run" || verb == "exec" ? 125 : 1;
    try {
        // Rootless: every command works as root of a user namespace mapped from the user's subordinate
        // ids (owners in the store are those ids; only the namespace may remove them).
        // exec joins the container's own user namespace from here: one of its own would be a sibling,
        // from which the container's is out of reach; so would stop's signals to a container process
        // that runs as another user. logs only reads.
        if (::geteuid() != 0 && verb != "exec" && verb != "logs" && verb != "stop") {
            // Checked here too, with the user's real ids: inside the namespace the host's root and
            // other users both show as the overflow id, so there the check cannot tell them apart.
            if (verb != "unshare") store::Store::check_location(globals.root.empty() ? store::Store::default_root(true) : globals.root);
            rootless::enter_user_namespace();
            globals.fresh_user_namespace = true;
        }
        int status = action();
        // Everything the command made is settled (its objects are gone with action's scope): leave
        // without destroying the option parser and the static objects, which only frees memory the
        // kernel takes back anyway (about a millisecond of a short `run`).
        // Sanitizer builds keep the normal exit, for the leak check.
#if !defined(__SANITIZE_ADDRESS__)
        std::fflush(nullptr);
        flush_coverage();
        ::_exit(status);
#else
        return status;
#endif
    } catch (const Error& e) {
        std::fprintf(stderr, "imgtool: %s: %s\n", verb.c_str(), escape_control(e.what()).c_str());
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "imgtool: %s: out of memory\n", verb.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "imgtool: %s: internal error: %s\n", verb.c_str(), escape_control(e.what()).c_str());
    }
    return failure;
}
