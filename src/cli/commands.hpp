// One registration function per subcommand (cmd_<verb>.cpp). Each adds its CLI11 subcommand and, when
// that subcommand is chosen, sets `action` to the code that runs it. main() runs the action and maps
// errors to exit statuses.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "imgtool/store/store.hpp"
#include "imgtool/sys/space.hpp"

namespace imgtool::cli {

struct Globals {
    std::string root;
    bool debug = false;
    mode_t user_umask = 022;  // the caller's, for commands imgtool hands the terminal to
    // This process entered a fresh user namespace itself (an ordinary user outside `imgtool unshare`):
    // an overlay mount made here would vanish with it.
    bool fresh_user_namespace = false;
    std::string store_root() const;
};

using Action = std::function<int()>;

// --min-free's value (empty: the default reserve); throws InvalidArgument for junk.
std::optional<sys::MinFreeSetting> min_free_option(const std::string& text);

void add_pull_local(CLI::App& app, Globals& globals, Action& action);
void add_images(CLI::App& app, Globals& globals, Action& action);
void add_inspect(CLI::App& app, Globals& globals, Action& action);
void add_rm(CLI::App& app, Globals& globals, Action& action);
void add_tag(CLI::App& app, Globals& globals, Action& action);
void add_mount(CLI::App& app, Globals& globals, Action& action);
void add_umount(CLI::App& app, Globals& globals, Action& action);
void add_mounts(CLI::App& app, Globals& globals, Action& action);
void add_run(CLI::App& app, Globals& globals, Action& action);
void add_unshare(CLI::App& app, Globals& globals, Action& action);

}  // namespace imgtool::cli
