#include <algorithm>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/output/template.hpp"

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
    std::string since = ago(created);  // "N units ago", "Less than a second ago" or "N/A"
    if (since == "N/A") return "Up";
    return "Up " + since.substr(0, since.size() - 4);
}

using State = store::Store::ContainerState;

const char* state_name(State state) {
    return state == State::Running ? "running" : state == State::Created ? "created" : "exited";
}

// docker's STATUS column.
std::string status_column(const store::Store::Container& c) {
    if (c.state == State::Running) return up_for(c.created);
    if (c.state == State::Created) return "Created";
    std::string code = c.exit_code < 0 ? "unknown" : std::to_string(c.exit_code);
    return "Exited (" + code + ")" + (c.finished.empty() ? "" : " " + ago(c.finished));
}

// The template's fields: docker's and podman's names (`ps --format '{{json .}}'`) for what imgtool has.
const std::vector<output::Field>& ps_fields() {
    static const std::vector<output::Field> fields = {
        output::leaf("ID", "CONTAINER ID"), output::leaf("Names"),  output::leaf("Image"),
        output::leaf("ImageID", "IMAGE ID"), output::leaf("Command"), output::leaf("CreatedAt"),
        output::leaf("RunningFor", "CREATED"), output::leaf("Status"), output::leaf("State"),
        output::leaf("Pid"), output::leaf("ExitCode"),
    };
    return fields;
}

int ps(const Globals& globals, const PsArgs& a) {
    output::Format f = output::parse_format(a.format, ps_fields());
    store::Store store(globals.store_root());
    auto containers = store.containers(a.all);
    if (f.style == output::Format::Style::Json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& c : containers) {
            out.push_back({{"Id", c.id}, {"Names", c.name.empty() ? nlohmann::json::array() : nlohmann::json::array({c.name})},
                           {"Image", c.image_name}, {"ImageID", c.image.str()}, {"Command", c.command},
                           {"Created", c.created}, {"Pid", c.pid}, {"State", state_name(c.state)},
                           {"ExitCode", c.state == State::Exited ? nlohmann::json(c.exit_code) : nlohmann::json()},
                           {"FinishedAt", c.finished}});
        }
        // ASCII only: an image's command cannot put bidi overrides or escapes on the terminal.
        std::printf("%s\n", out.dump(2, ' ', true).c_str());
        return 0;
    }
    if (a.quiet) {
        for (const auto& c : containers) std::printf("%s\n", a.no_trunc ? c.id.c_str() : c.id.substr(0, 12).c_str());
        return 0;
    }
    if (f.style == output::Format::Style::Template) {
        std::vector<nlohmann::json> items;
        for (const auto& c : containers) {
            items.push_back({{"ID", a.no_trunc ? c.id : c.id.substr(0, 12)},
                             {"Names", c.name},
                             {"Image", c.image_name},
                             {"ImageID", a.no_trunc ? c.image.str() : c.image.short_hex()},
                             {"Command", command_column(c.command, a.no_trunc)},
                             {"CreatedAt", go_time(c.created)},
                             {"RunningFor", ago(c.created)},
                             {"Status", status_column(c)},
                             {"State", state_name(c.state)},
                             {"Pid", c.pid},
                             {"ExitCode", c.state == State::Exited ? nlohmann::json(c.exit_code) : nlohmann::json()}});
        }
        std::fputs(output::render_all(f.tmpl, items).c_str(), stdout);
        return 0;
    }
    // docker's table: columns as wide as their widest cell, three spaces apart.
    std::vector<std::vector<std::string>> rows = {{"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"}};
    for (const auto& c : containers) {
        rows.push_back({a.no_trunc ? c.id : c.id.substr(0, 12), escape_control(c.image_name),
                        command_column(c.command, a.no_trunc), ago(c.created), status_column(c), c.name});
    }
    std::fputs(output::align_rows(rows).c_str(), stdout);
    return 0;
}

}  // namespace

void add_ps(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<PsArgs>();
    CLI::App* cmd = app.add_subcommand("ps", "list running containers");
    examples(*cmd, {"imgtool ps -a", "imgtool ps -q"});
    cmd->add_flag("-a,--all", a->all, "stopped detached containers too (kept until `imgtool rm`)");
    cmd->add_flag("-q,--quiet", a->quiet, "only container IDs");
    cmd->add_flag("--no-trunc", a->no_trunc, "full IDs and commands");
    cmd->add_option("--format", a->format,
                    "table (default), json, or a Go template: '{{.ID}} {{.Status}}', 'table {{.Names}}\\t{{.State}}', "
                    "'{{json .}}'; fields: ID, Names, Image, ImageID, Command, CreatedAt, RunningFor, Status, State, Pid, ExitCode");
    cmd->callback([&globals, &action, a] { action = [&globals, a] { return ps(globals, *a); }; });
}

}  // namespace imgtool::cli
