// One registration function per subcommand (cmd_<verb>.cpp). Each adds its CLI11 subcommand and, when
// that subcommand is chosen, sets `action` to the code that runs it. main() runs the action and maps
// errors to exit statuses.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "imgtool/import/blob_source.hpp"
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

// Help text. usage: the operands of the usage line when CLI11 cannot derive them, such as
// "[OPTIONS] IMAGE [COMMAND [ARG...]]" for operands it does not parse. examples: command lines that
// end the verb's --help (after its footer).
void usage(CLI::App& cmd, std::string operands);
void examples(CLI::App& cmd, const std::vector<std::string>& lines);

// For a verb whose COMMAND runs to the end of the line (run, exec): when the word where the command
// stands (operands[command_at]) is one of the verb's own options, the message that says so and shows
// the line with those options moved before the operands (`"-it" after the image is taken as the
// command; put run's options before IMAGE: imgtool run -it IMG sh`); "" otherwise.
std::string misplaced_options(const CLI::App& cmd, const std::vector<std::string>& operands, std::size_t command_at,
                              const std::string& after, const std::string& before);

// --min-free's value (empty: the default reserve); throws InvalidArgument for junk.
std::optional<sys::MinFreeSetting> min_free_option(const std::string& text);

// What pull-local and pull share: the import's options, and its report (the image ID on stdout, notes
// on stderr).
struct ImportArgs {
    std::string verb;
    std::vector<std::string> tags;
    std::string platform;
    bool quiet = false;
    unsigned jobs = 0;
    std::string min_free;
};
void add_import_options(CLI::App& cmd, ImportArgs& args, const std::string& jobs_help);
int import_and_report(Globals& globals, import::BlobSource& source, const ImportArgs& args);

void add_pull_local(CLI::App& app, Globals& globals, Action& action);
void add_pull(CLI::App& app, Globals& globals, Action& action);
void add_login(CLI::App& app, Globals& globals, Action& action);
void add_logout(CLI::App& app, Globals& globals, Action& action);
void add_images(CLI::App& app, Globals& globals, Action& action);
void add_ps(CLI::App& app, Globals& globals, Action& action);
void add_stop(CLI::App& app, Globals& globals, Action& action);

// docker's "3 weeks ago" for an RFC 3339 time ("N/A" if unparsable).
std::string ago(const std::string& created);
// Go's time.String() of an RFC 3339 time, as docker and podman print CreatedAt: "2024-01-02 03:04:05 +0000 UTC".
std::string go_time(const std::string& created);
void add_inspect(CLI::App& app, Globals& globals, Action& action);
void add_rm(CLI::App& app, Globals& globals, Action& action);
void add_save(CLI::App& app, Globals& globals, Action& action);
void add_tag(CLI::App& app, Globals& globals, Action& action);
void add_mount(CLI::App& app, Globals& globals, Action& action);
void add_umount(CLI::App& app, Globals& globals, Action& action);
void add_mounts(CLI::App& app, Globals& globals, Action& action);
void add_bundle(CLI::App& app, Globals& globals, Action& action);
void add_run(CLI::App& app, Globals& globals, Action& action);
void add_exec(CLI::App& app, Globals& globals, Action& action);
void add_logs(CLI::App& app, Globals& globals, Action& action);
void add_rmi(CLI::App& app, Globals& globals, Action& action);
void add_unshare(CLI::App& app, Globals& globals, Action& action);
void add_commit(CLI::App& app, Globals& globals, Action& action);
void add_info(CLI::App& app, Globals& globals, Action& action);
void add_system(CLI::App& app, Globals& globals, Action& action);  // system df, and df
void add_prune(CLI::App& app, Globals& globals, Action& action);

}  // namespace imgtool::cli
