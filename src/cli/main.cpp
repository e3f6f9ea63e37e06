// imgtool: turns container images into root filesystems. This file only parses the command line and
// turns failures into one line on stderr and an exit status.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <new>
#include <string>
#include <vector>

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


// ---- help text: usage lines and examples ----

namespace {

// Usage operands set by usage(), per verb.
std::map<const CLI::App*, std::string>& usages() {
    static std::map<const CLI::App*, std::string> map;
    return map;
}

// CLI11's help with the usage line a verb asked for ("Usage: imgtool run [OPTIONS] IMAGE [COMMAND
// [ARG...]]"), which CLI11 cannot derive for operands it does not parse itself.
class HelpFormatter : public CLI::Formatter {
public:
    std::string make_usage(const CLI::App* app, std::string name) const override {
        auto it = usages().find(app);
        if (it == usages().end()) return CLI::Formatter::make_usage(app, name);
        return get_label("Usage") + ": " + name + " " + it->second + "\n";
    }
};

// "imgtool run [OPTIONS] IMAGE [COMMAND [ARG...]]": the usage line without its label.
std::string usage_of(const CLI::App& cmd) {
    std::string name = cmd.get_parent() != nullptr ? "imgtool " + cmd.get_name() : "imgtool";
    std::string line = HelpFormatter().make_usage(&cmd, name);
    if (auto colon = line.find(": "); colon != std::string::npos) line.erase(0, colon + 2);
    return line.substr(0, line.find('\n'));  // the first form of a verb with two
}

}  // namespace

void usage(CLI::App& cmd, std::string operands) { usages()[&cmd] = std::move(operands); }

void examples(CLI::App& cmd, const std::vector<std::string>& lines) {
    std::string footer = cmd.get_footer();
    if (!footer.empty()) footer += "\n\n";
    footer += lines.size() == 1 ? "Example:" : "Examples:";
    for (const std::string& line : lines) footer += "\n  " + line;
    cmd.footer(footer);
}

// ---- the command line's errors: one line, the verb's exit status ----

namespace {

// The command line as given (for hints that show it rearranged).
std::vector<std::string>& command_line() {
    static std::vector<std::string> words;
    return words;
}

void set_command_line(int argc, char** argv) { command_line().assign(argv, argv + argc); }

// Whether an option reads a value (flags read none; --tls-verify=false is a flag's own syntax).
bool takes_value(const CLI::Option& opt) { return opt.get_expected_max() > 0 && opt.get_type_size_max() > 0; }

// Whether `word` is one of cmd's options as typed on a command line: --long, --long=VALUE, -s, or a
// cluster of short flags whose last may take a value (-it, -eK=V). Sets takes_next when the option's
// value is the next word.
bool is_option_word(const CLI::App& cmd, const std::string& word, bool& takes_next) {
    takes_next = false;
    if (word.size() < 2 || word[0] != '-') return false;
    if (word[1] == '-') {
        auto eq = word.find('=');
        const CLI::Option* opt = cmd.get_option_no_throw(word.substr(0, eq));
        if (opt == nullptr || !opt->nonpositional()) return false;
        takes_next = eq == std::string::npos && takes_value(*opt);
        return true;
    }
    for (std::size_t i = 1; i < word.size(); ++i) {
        const CLI::Option* opt = cmd.get_option_no_throw(std::string("-") + word[i]);
        if (opt == nullptr || !opt->nonpositional()) return false;
        if (takes_value(*opt)) {  // the rest of the word, or the next word, is its value
            takes_next = i + 1 == word.size();
            return true;
        }
    }
    return true;
}

// A word of the command line, quoted, for a message.
std::string in_quotes(const std::string& word) { return "\"" + printable(word) + "\""; }

// cmd's long options without their dashes, for "did you mean".
std::vector<std::string> long_options(const CLI::App& cmd) {
    std::vector<std::string> names;
    for (const CLI::Option* opt : cmd.get_options()) {
        for (const std::string& name : opt->get_lnames()) names.push_back(name);
    }
    return names;
}

std::string unknown_option(const CLI::App& cmd, const std::string& word) {
    std::string message = "unknown option " + printable(word);
    if (word.size() > 2 && word[1] == '-') {
        // Compared without the dashes, which every candidate shares.
        std::string near = closest_match(word.substr(2, word.find('=') - 2), long_options(cmd));
        if (!near.empty()) message += "; did you mean --" + near + "?";
    }
    return message;
}

// The verbs and their aliases.
std::vector<std::string> verb_names(const CLI::App& app) {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        names.push_back(sub->get_name());
        for (const std::string& alias : sub->get_aliases()) names.push_back(alias);
    }
    return names;
}

// What went wrong before a verb was found: the first word that is no global option is a verb imgtool
// does not have; without one, the verb is missing. "" when neither (an error of the global options).
std::string verb_error(const CLI::App& app) {
    const auto& words = command_line();
    for (std::size_t i = 1; i < words.size(); ++i) {
        const std::string& word = words[i];
        if (word == "--") break;
        if (word.size() > 1 && word[0] == '-') {
            bool takes_next = false;
            if (!is_option_word(app, word, takes_next)) return unknown_option(app, word);
            if (takes_next && ++i == words.size()) return "";  // --root without its value
            continue;
        }
        std::string message = "unknown command " + in_quotes(word);
        std::string near = closest_match(word, verb_names(app));
        return message + (near.empty() ? "; see imgtool --help" : "; did you mean \"" + near + "\"?");
    }
    return "no command given; see imgtool --help";
}

bool option_like(const std::string& word) { return word.size() > 1 && word[0] == '-'; }

// An option cmd (or the options before the verb) did not know, "" if none. It is the first thing to
// report, whatever CLI11 found missing after it. A verb whose operands run to the end of the line
// (prefix_command) keeps everything from its first operand: only the first word counts there.
std::string first_unknown_option(const CLI::App& cmd) {
    for (const CLI::App* where : {&cmd, cmd.get_parent()}) {
        if (where == nullptr) continue;
        std::vector<std::string> extra = where->remaining();
        if (where->get_prefix_command()) {
            if (!extra.empty() && option_like(extra[0])) return extra[0];
            continue;
        }
        for (const std::string& word : extra) {
            if (word == "--") break;
            if (option_like(word)) return word;
        }
    }
    return {};
}

// CLI11's message, reworded where it would not say what to do.
std::string reword(const CLI::App& cmd, const CLI::ParseError& e) {
    if (std::string option = first_unknown_option(cmd); !option.empty()) return unknown_option(cmd, option);
    std::string text = e.what();
    if (text.rfind("A subcommand", 0) == 0) {  // `imgtool system`: the verb has verbs of its own
        std::string names;
        for (const CLI::App* sub : cmd.get_subcommands([](const CLI::App*) { return true; })) {
            names += (names.empty() ? "" : ", ") + sub->get_name();
        }
        return "missing command: " + names + " (usage: " + usage_of(cmd) + ")";
    }
    const std::string required = " is required";
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && text.size() > required.size() &&
        text.compare(text.size() - required.size(), required.size(), required) == 0) {
        return "missing " + text.substr(0, text.size() - required.size()) + " (usage: " + usage_of(cmd) + ")";
    }
    // "--root: 1 required TEXT missing"
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr && text.find(" required ") != std::string::npos &&
        text.size() > 8 && text.compare(text.size() - 8, 8, " missing") == 0) {
        return text.substr(0, text.find(':')) + " needs a value";
    }
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
        for (const CLI::App* where : {&cmd, cmd.get_parent()}) {
            if (where == nullptr) continue;
            std::vector<std::string> extra = where->remaining();
            if (!extra.empty()) return "unexpected argument " + in_quotes(extra[0]) + " (usage: " + usage_of(cmd) + ")";
        }
    }
    if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

}  // namespace

std::string misplaced_options(const CLI::App& cmd, const std::vector<std::string>& operands, std::size_t command_at,
                              const std::string& after, const std::string& before) {
    if (operands.size() <= command_at) return {};
    bool takes_next = false;
    if (!is_option_word(cmd, operands[command_at], takes_next)) return {};
    // The options after the operands, moved before them: the rest of the line stays as it was.
    std::size_t end = command_at;
    while (end < operands.size() && is_option_word(cmd, operands[end], takes_next)) end += takes_next ? 2 : 1;
    end = std::min(end, operands.size());
    const auto& words = command_line();
    std::size_t first_operand = words.size() >= operands.size() ? words.size() - operands.size() : words.size();
    std::string line = "imgtool";
    auto add = [&line](const std::string& word) { line += " " + shell_word(word); };
    for (std::size_t i = 1; i < first_operand; ++i) add(words[i]);
    for (std::size_t i = command_at; i < end; ++i) add(operands[i]);
    for (std::size_t i = 0; i < command_at; ++i) add(operands[i]);
    for (std::size_t i = end; i < operands.size(); ++i) add(operands[i]);
    return in_quotes(operands[command_at]) + " after " + after + " is taken as the command; put " + cmd.get_name() +
           "'s options before " + before + ": " + escape_control(line);
}

namespace {

// Every verb takes the global options too (podman's way: `imgtool images --root DIR`). For verbs whose
// operands run to the end of the line (run, exec, bundle, unshare) this is the only way: CLI11's
// fallthrough would hand their operands to the parent.
// Every verb, and every verb's own verbs (system df), takes the top level's --root and --debug.
void add_global_options(CLI::App& app, Globals& globals, CLI::App* parent = nullptr) {
    CLI::App& top = parent ? *parent : app;
    for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        for (const CLI::Option* opt : top.get_options()) {
            if (opt->get_lnames() == std::vector<std::string>{"root"}) {
                sub->add_option("--root", globals.root, opt->get_description())->group("Global options");
            } else if (opt->get_lnames() == std::vector<std::string>{"debug"}) {
                sub->add_flag("--debug", globals.debug, opt->get_description())->group("Global options");
            }
        }
        add_global_options(*sub, globals, &top);
    }
}

// The one line for a command line imgtool cannot take; returns the exit status.
int parse_failure(const CLI::App& app, const CLI::ParseError& e) {
    std::vector<CLI::App*> chosen = app.get_subcommands();
    if (chosen.empty()) {
        std::string message = verb_error(app);
        if (message.empty()) message = reword(app, e);
        std::fprintf(stderr, "imgtool: %s\n", escape_control(message).c_str());
        return 1;
    }
    const CLI::App& cmd = *chosen.front();
    std::fprintf(stderr, "imgtool: %s: %s\n", cmd.get_name().c_str(), escape_control(reword(cmd, e)).c_str());
    return cmd.get_name() == "run" || cmd.get_name() == "exec" ? 125 : 1;
}

// After a successful parse: a verb whose operands run to the end of the line (CLI11's prefix_command)
// collects an unknown option before its first operand with them: `run --bogus IMG` is an error, not
// the image "--bogus".
void check_operands(const CLI::App& cmd) {
    if (!cmd.get_prefix_command()) return;
    if (std::string option = first_unknown_option(cmd); !option.empty()) {
        throw Error(Errc::InvalidArgument, unknown_option(cmd, option));
    }
}

}  // namespace
}  // namespace imgtool::cli

int main(int argc, char** argv) {
    using namespace imgtool;
    // Every file imgtool creates gets an explicit mode; the unpacker relies on a zero umask to create
    // entries with their final permissions in one syscall.
    const mode_t user_umask = ::umask(0);
    CLI::App app{"imgtool: daemonless container image store, mounter and launcher", "imgtool"};
    app.formatter(std::make_shared<cli::HelpFormatter>());
    app.require_subcommand(1, 1);
    app.set_version_flag("--version", "imgtool " IMGTOOL_VERSION " (commit " IMGTOOL_GIT_COMMIT ")");
    cli::Globals globals;
    globals.user_umask = user_umask;
    app.add_option("--root", globals.root,
                   "store directory (default: $IMGTOOL_ROOT, else /var/lib/imgtool for root and "
                   "$XDG_DATA_HOME/imgtool or ~/.local/share/imgtool for other users)");
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

    // After every add_<verb> above: each verb takes the global options too.
    cli::add_global_options(app, globals);
    // Last: a subcommand starts with its parent's footer, and the verbs have their own examples.
    cli::examples(app, {"imgtool pull-local alpine.tar", "imgtool run --rm -it alpine sh"});
    // docker's convention for run: 125 when imgtool itself fails; other commands exit 1.
    std::string verb;
    int failure = 1;
    try {
        cli::set_command_line(argc, argv);
        app.parse(argc, argv);
        verb = app.get_subcommands().front()->get_name();
        failure = verb == "run" || verb == "exec" ? 125 : 1;
        cli::check_operands(*app.get_subcommands().front());
    } catch (const CLI::ParseError& e) {
        // --help and --version print on stdout and exit 0; errors are one line, as every other error.
        return e.get_exit_code() == 0 ? app.exit(e) : cli::parse_failure(app, e);
    } catch (const Error& e) {
        // A verb's own check of its command line (exec CONTAINER -it sh), or check_operands.
        verb = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name();
        std::fprintf(stderr, "imgtool: %s: %s\n", verb.c_str(), escape_control(e.what()).c_str());
        return verb == "run" || verb == "exec" ? 125 : 1;
    }
    if (globals.debug) log::set_level(log::Level::Debug);
    cli::hide_secrets_in_argv(argc, argv, verb);
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
