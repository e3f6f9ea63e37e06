// `imgtool unshare [COMMAND...]`: a shell (or COMMAND) as root of imgtool's user namespace, in a mount
// namespace of its own - podman unshare's counterpart. Rootless mounts made there (`imgtool mount`) are
// visible to that shell and its children and vanish with it.
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/rootless/userns.hpp"

namespace imgtool::cli {

void add_unshare(CLI::App& app, Globals& globals, Action& action) {
    auto command = std::make_shared<std::vector<std::string>>();
    CLI::App* cmd = app.add_subcommand(
        "unshare", "rootless: run a shell (or COMMAND) in imgtool's user and mount namespace, where mount works");
    // COMMAND [ARGS...] (default: $SHELL, else /bin/sh): everything from COMMAND on belongs to it.
    cmd->prefix_command();
    usage(*cmd, "[OPTIONS] [COMMAND [ARG...]]");
    cmd->footer("COMMAND: what to run (default: $SHELL, else /bin/sh).");
    examples(*cmd, {"imgtool unshare", "imgtool unshare sh -c 'imgtool mount alpine ~/rootfs && ls ~/rootfs'"});
    cmd->callback([&globals, &action, command, cmd] {
        *command = cmd->remaining();
        action = [&globals, command]() -> int {
            if (!rootless::active()) {
                throw Error(Errc::InvalidArgument, "unshare is for ordinary users: as root, mounts are visible everywhere");
            }
            if (::unshare(CLONE_NEWNS) != 0) throw_errno("unshare", "mount namespace");
            std::vector<std::string> argv = *command;
            if (argv.empty()) {
                const char* shell = std::getenv("SHELL");
                argv.push_back(shell != nullptr && *shell == '/' ? shell : "/bin/sh");
            }
            // The store this session uses, for scripts that want to find it.
            ::setenv("IMGTOOL_ROOT", globals.store_root().c_str(), 1);
            ::umask(globals.user_umask);
            std::vector<char*> raw;
            for (auto& a : argv) raw.push_back(a.data());
            raw.push_back(nullptr);
            ::execvp(raw[0], raw.data());
            // As a shell says it, with its statuses: 127 nothing to run, 126 there but not runnable.
            int err = errno;
            launch::ExecFailure failure = launch::exec_failure(argv[0], err);
            std::string reason = failure.status == 126 ? failure.reason
                                 : argv[0].find('/') == std::string::npos ? "command not found"
                                                                          : "no such file or directory";
            std::fprintf(stderr, "imgtool: unshare: %s: %s\n", escape_control(argv[0]).c_str(), reason.c_str());
            return failure.status;
        };
    });
}

}  // namespace imgtool::cli
