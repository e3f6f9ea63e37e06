#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::cli {
namespace {

struct PsArgs {
    bool all = false, quiet = false, no_trunc = false;
    std::string format;
};

// docker's COMMAND column: the argv quoted as one string, cut to 20 characters unless --no-trunc.
std::string command_column(const std::vector<std::string>& argv, bool no_trunc) {
    std::string text;
    for (const std::string& arg : argv) text += (text.empty() ? "" : " ") + arg;
    text = escape_control(text);
    if (!no_trunc && text.size() > 20) text = text.substr(0, 19) + "…";
    return "\"" + text + "\"";
}

// docker's "Up 5 seconds" from the container's creation time.
std::string up_for(const std::string& created) {
    std::string since = ago(created);  // "N units ago", "Less than a minute ago" or "N/A"
    if (since == "N/A") return "Up";
    if (since.rfind("Less than", 0) == 0) return "Up less than a minute";
    return "Up " + since.substr(0, since.size() - 4);
}

int ps(const Globals& globals, const PsArgs& a) {
    store::Store store(globals.store_root());
    auto containers = store.running_containers();
    if (a.format == "json") {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& c : containers) {
            out.push_back({{"Id", c.id}, {"Names", c.name.empty() ? nlohmann::json::array() : nlohmann::json::array({c.name})},
                           {"Image", c.image_name}, {"ImageID", c.image.str()}, {"Command", c.command},
                           {"Created", c.created}, {"Pid", c.pid}, {"State", c.pid ? "running" : "created"}});
        }
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    if (a.quiet) {
        for (const auto& c : containers) std::printf("%s\n", a.no_trunc ? c.id.c_str() : c.id.substr(0, 12).c_str());
        return 0;
    }
    std::printf("%-14s %-30s %-24s %-24s %-20s %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES");
    for (const auto& c : containers) {
        std::string status = c.pid ? up_for(c.created) : "Created";
        std::printf("%-14s %-30s %-24s %-24s %-20s %s\n", (a.no_trunc ? c.id : c.id.substr(0, 12)).c_str(),
                    escape_control(c.image_name).c_str(), command_column(c.command, a.no_trunc).c_str(),
                    ago(c.created).c_str(), status.c_str(), c.name.c_str());
    }
    return 0;
}

}  // namespace

void add_ps(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<PsArgs>();
    CLI::App* cmd = app.add_subcommand("ps", "list running containers");
    cmd->add_flag("-a,--all", a->all, "all containers (the same today: a container's record ends with it)");
    cmd->add_flag("-q,--quiet", a->quiet, "only container IDs");
    cmd->add_flag("--no-trunc", a->no_trunc, "full IDs and commands");
    cmd->add_option("--format", a->format, "output format: table (default) or json")->check(CLI::IsMember({"table", "json"}));
    cmd->callback([&globals, &action, a] { action = [&globals, a] { return ps(globals, *a); }; });
}

}  // namespace imgtool::cli
