#include "imgtool/commit/change.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::commit {
namespace {

using nlohmann::json;

[[noreturn]] void refuse(std::string_view text, const std::string& why) {
    throw Error(Errc::InvalidArgument, "--change \"" + escape_control(text) + "\": " + why);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// docker's "JSON or not": a JSON array of strings is the exec form; anything else is text.
std::optional<std::vector<std::string>> json_array(std::string_view rest) {
    if (rest.empty() || rest.front() != '[') return std::nullopt;
    json j = json::parse(rest.begin(), rest.end(), nullptr, false);
    if (j.is_discarded() || !j.is_array()) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& v : j) {
        if (!v.is_string()) return std::nullopt;
        out.push_back(v.get<std::string>());
    }
    return out;
}

// KEY=VALUE pairs, or the legacy one-pair form "KEY VALUE" (the rest of the line, verbatim).
std::vector<std::string> name_values(std::string_view text, std::string_view rest) {
    auto words = split_words(rest);
    if (words.empty()) refuse(text, "needs at least one KEY=VALUE");
    if (words[0].find('=') == std::string::npos) {
        auto space = rest.find_first_of(" \t");
        if (space == std::string_view::npos) refuse(text, "needs a value (KEY=VALUE or KEY VALUE)");
        std::string key(rest.substr(0, space));
        return {key + "=" + std::string(trim(rest.substr(space)))};
    }
    for (const auto& w : words) {
        auto eq = w.find('=');
        if (eq == std::string::npos || eq == 0) refuse(text, "\"" + escape_control(w) + "\" is not KEY=VALUE");
    }
    return words;
}

unsigned long port_number(std::string_view text, std::string_view s) {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        refuse(text, "invalid port \"" + escape_control(s) + "\"");
    }
    unsigned long n = std::stoul(std::string(s));
    if (n == 0 || n > 65535) refuse(text, "port " + std::string(s) + " out of range (1-65535)");
    return n;
}

std::vector<std::string> exposed_ports(std::string_view text, std::string_view rest) {
    auto words = split_words(rest);
    if (words.empty()) refuse(text, "needs at least one port");
    std::vector<std::string> out;
    for (const auto& w : words) {
        std::string_view spec = w;
        std::string proto = "tcp";
        if (auto slash = spec.find('/'); slash != std::string_view::npos) {
            proto = std::string(spec.substr(slash + 1));
            std::transform(proto.begin(), proto.end(), proto.begin(), [](unsigned char c) { return std::tolower(c); });
            if (proto != "tcp" && proto != "udp" && proto != "sctp") refuse(text, "invalid protocol \"" + escape_control(proto) + "\"");
            spec = spec.substr(0, slash);
        }
        unsigned long first, last;
        if (auto dash = spec.find('-'); dash != std::string_view::npos) {
            first = port_number(text, spec.substr(0, dash));
            last = port_number(text, spec.substr(dash + 1));
            if (last < first) refuse(text, "invalid port range \"" + std::string(spec) + "\"");
        } else {
            first = last = port_number(text, spec);
        }
        for (unsigned long p = first; p <= last; ++p) out.push_back(std::to_string(p) + "/" + proto);
    }
    return out;
}

// Lexical clean of an absolute path, as Go's path.Clean.
std::string clean_path(const std::string& path) {
    std::vector<std::string> parts;
    for (auto& part : split(path, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (!parts.empty()) parts.pop_back();
            continue;
        }
        parts.push_back(part);
    }
    std::string out;
    for (const auto& p : parts) out += "/" + p;
    return out.empty() ? "/" : out;
}

}  // namespace

std::vector<std::string> split_words(std::string_view text) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    char quote = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (quote == '\'') {
            if (c == '\'') quote = 0; else word += c;
            continue;
        }
        if (quote == '"') {
            if (c == '"') {
                quote = 0;
            } else if (c == '\\' && i + 1 < text.size()) {
                word += text[++i];
            } else {
                word += c;
            }
            continue;
        }
        if (std::isspace(static_cast<unsigned char>(c))) {
            if (in_word) words.push_back(std::move(word));
            word.clear();
            in_word = false;
            continue;
        }
        in_word = true;
        if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '\\' && i + 1 < text.size()) {
            word += text[++i];
        } else {
            word += c;
        }
    }
    if (quote) throw Error(Errc::InvalidArgument, "unterminated quote in \"" + escape_control(text) + "\"");
    if (in_word) words.push_back(std::move(word));
    return words;
}

Change parse_change(std::string_view text, const std::vector<std::string>& shell) {
    std::string_view line = trim(text);
    auto space = line.find_first_of(" \t");
    std::string instruction(line.substr(0, space));
    std::transform(instruction.begin(), instruction.end(), instruction.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    std::string_view rest = space == std::string_view::npos ? std::string_view() : trim(line.substr(space));
    Change change{instruction, {}};
    if (instruction == "CMD" || instruction == "ENTRYPOINT") {
        if (auto exec = json_array(rest)) {
            change.args = std::move(*exec);
        } else {
            if (rest.empty()) refuse(text, instruction + " needs a command");
            change.args = shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : shell;
            change.args.emplace_back(rest);
        }
    } else if (instruction == "ENV" || instruction == "LABEL") {
        change.args = name_values(text, rest);
    } else if (instruction == "EXPOSE") {
        change.args = exposed_ports(text, rest);
    } else if (instruction == "USER" || instruction == "WORKDIR") {
        if (rest.empty()) refuse(text, instruction + " needs a value");
        change.args = {std::string(rest)};
    } else if (instruction == "VOLUME") {
        if (auto list = json_array(rest)) {
            change.args = std::move(*list);
        } else {
            change.args = split_words(rest);
        }
        if (change.args.empty()) refuse(text, "VOLUME needs a path");
    } else if (instruction.empty()) {
        refuse(text, "empty");
    } else {
        refuse(text, "unsupported instruction " + escape_control(instruction) +
                         " (commit takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR)");
    }
    return change;
}

nlohmann::json update_config(const nlohmann::json& base, const ConfigUpdate& update) {
    if (!base.is_object()) throw Error(Errc::Corrupt, "base image config is not a JSON object");
    json out = base;
    json& config = out["config"];
    if (!config.is_object()) config = json::object();
    std::vector<std::string> shell{"/bin/sh", "-c"};
    if (auto it = config.find("Shell"); it != config.end() && it->is_array() && !it->empty()) {
        shell = it->get<std::vector<std::string>>();
    }
    bool cmd_set = false;
    for (const auto& text : update.changes) {
        Change c = parse_change(text, shell);
        if (c.instruction == "CMD") {
            config["Cmd"] = c.args;
            cmd_set = true;
        } else if (c.instruction == "ENTRYPOINT") {
            config["Entrypoint"] = c.args;
            if (!cmd_set) config["Cmd"] = nullptr;  // a Dockerfile's ENTRYPOINT resets the inherited CMD
        } else if (c.instruction == "ENV") {
            json& env = config["Env"];
            if (!env.is_array()) env = json::array();
            for (const auto& kv : c.args) {
                std::string key = kv.substr(0, kv.find('='));
                auto same = std::find_if(env.begin(), env.end(), [&key](const json& e) {
                    return e.is_string() && e.get_ref<const std::string&>().substr(0, key.size() + 1) == key + "=";
                });
                if (same != env.end()) *same = kv; else env.push_back(kv);
            }
        } else if (c.instruction == "LABEL") {
            json& labels = config["Labels"];
            if (!labels.is_object()) labels = json::object();
            for (const auto& kv : c.args) {
                auto eq = kv.find('=');
                labels[kv.substr(0, eq)] = kv.substr(eq + 1);
            }
        } else if (c.instruction == "EXPOSE") {
            json& ports = config["ExposedPorts"];
            if (!ports.is_object()) ports = json::object();
            for (const auto& p : c.args) ports[p] = json::object();
        } else if (c.instruction == "VOLUME") {
            json& volumes = config["Volumes"];
            if (!volumes.is_object()) volumes = json::object();
            for (const auto& v : c.args) volumes[v] = json::object();
        } else if (c.instruction == "USER") {
            config["User"] = c.args[0];
        } else if (c.instruction == "WORKDIR") {
            std::string dir = c.args[0];
            if (dir.front() != '/') {
                std::string previous = config.contains("WorkingDir") && config["WorkingDir"].is_string()
                                           ? config["WorkingDir"].get<std::string>()
                                           : "/";
                dir = previous + "/" + dir;
            }
            config["WorkingDir"] = clean_path(dir);
        }
    }
    json& rootfs = out["rootfs"];
    if (!rootfs.is_object()) rootfs = json::object();
    rootfs["type"] = "layers";
    json& diff_ids = rootfs["diff_ids"];
    if (!diff_ids.is_array()) diff_ids = json::array();
    diff_ids.push_back(update.diff_id.str());
    json entry = json::object();
    entry["created"] = update.created;
    entry["created_by"] = update.created_by;
    if (!update.comment.empty()) entry["comment"] = update.comment;
    if (!update.author.empty()) entry["author"] = update.author;
    json& history = out["history"];
    if (!history.is_array()) history = json::array();
    history.push_back(entry);
    out["created"] = update.created;
    if (!update.author.empty()) out["author"] = update.author;
    return out;
}

}  // namespace imgtool::commit
