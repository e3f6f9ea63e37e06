#include "imgtool/output/template.hpp"

#include <algorithm>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::output {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

bool is_identifier(std::string_view s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

// The literal text as the user meant it: "\t" and "\n" typed in a shell argument are a tab and a newline.
std::string unescape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == 't' || text[i + 1] == 'n')) {
            out += text[++i] == 't' ? '\t' : '\n';
        } else {
            out += text[i];
        }
    }
    return out;
}

// "CreatedAt" -> "CREATED AT", "ImageID" -> "IMAGE ID".
std::string capitals(std::string_view name) {
    std::string out;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        bool upper = c >= 'A' && c <= 'Z';
        if (upper && i > 0 && name[i - 1] >= 'a' && name[i - 1] <= 'z') out += ' ';
        out += c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    }
    return out;
}

std::string names_of(const std::vector<Field>& fields) {
    std::string out;
    for (const Field& f : fields) out += (out.empty() ? "" : ", ") + f.name;
    return out;
}

std::string join_path(const std::vector<std::string>& path, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) out += (i ? "." : "") + path[i];
    return out;
}

// The header of a value, after checking every name of its path against the fields.
std::string check_path(const std::vector<std::string>& path, const std::vector<Field>& fields) {
    const std::vector<Field>* names = &fields;
    const Field* field = nullptr;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (field && field->map) {
            // A map's keys are the data's (labels): any name, and whatever follows it.
            return capitals(path.back());
        }
        if (field && field->fields.empty()) {
            throw Error(Errc::InvalidArgument, "unknown field \"" + printable(join_path(path, i + 1)) + "\" in --format; " +
                                                   field->name + " has no fields");
        }
        auto it = std::find_if(names->begin(), names->end(), [&](const Field& f) { return f.name == path[i]; });
        if (it == names->end()) {
            std::string where = i == 0 ? "fields: " : path[i - 1] + "'s fields: ";
            throw Error(Errc::InvalidArgument, "unknown field \"" + printable(join_path(path, i + 1)) + "\" in --format; " +
                                                   where + names_of(*names));
        }
        field = &*it;
        names = &it->fields;
    }
    if (!field) return "";
    return field->header.empty() ? capitals(field->name) : field->header;
}

const nlohmann::json* lookup(const nlohmann::json& item, const std::vector<std::string>& path) {
    const nlohmann::json* at = &item;
    for (const std::string& name : path) {
        if (!at->is_object()) return nullptr;
        auto it = at->find(name);
        if (it == at->end()) return nullptr;
        at = &*it;
    }
    return at;
}

std::string go_string(const nlohmann::json& value, int depth) {
    if (depth > 64) return "...";
    switch (value.type()) {
        case nlohmann::json::value_t::string:
            return escape_control(value.get_ref<const std::string&>());
        case nlohmann::json::value_t::boolean:
            return value.get<bool>() ? "true" : "false";
        case nlohmann::json::value_t::null:
        case nlohmann::json::value_t::discarded:
            return "";
        case nlohmann::json::value_t::array: {
            std::string out = "[";
            for (std::size_t i = 0; i < value.size(); ++i) out += (i ? " " : "") + go_string(value[i], depth + 1);
            return out + "]";
        }
        case nlohmann::json::value_t::object: {
            std::string out = "map[";
            bool first = true;
            for (const auto& [key, v] : value.items()) {
                out += (first ? "" : " ") + escape_control(key) + ":" + go_string(v, depth + 1);
                first = false;
            }
            return out + "]";
        }
        default:
            return value.dump();  // numbers
    }
}

std::string json_text(const nlohmann::json* value) {
    if (!value) return "null";
    // ASCII only: what an image's labels hold cannot act on the terminal.
    return value->dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string go_string(const nlohmann::json& value) { return go_string(value, 0); }

Template Template::parse(std::string_view text, const std::vector<Field>& fields) {
    // Quoted in errors, shortened: a 64 KiB template is not repeated back.
    auto shown = [&] {
        std::string s = escape_control(text.substr(0, std::min<std::size_t>(text.size(), 80)));
        return "\"" + s + (text.size() > 80 ? "...\"" : "\"");
    };
    auto bad = [&](const std::string& why) { return Error(Errc::InvalidArgument, "invalid --format " + shown() + ": " + why); };
    if (text.size() > kMaxTemplateBytes) {
        throw Error(Errc::InvalidArgument, "--format template is " + std::to_string(text.size()) + " bytes; at most " +
                                               std::to_string(kMaxTemplateBytes));
    }
    Template t;
    std::size_t pos = 0;
    if (text.substr(0, 6) == "table ") {
        t.table_ = true;
        pos = 6;
    }
    bool trim_next = false;
    auto add_text = [&t](std::string literal) {
        if (literal.empty()) return;
        if (!t.pieces_.empty() && t.pieces_.back().kind == Piece::Kind::Text) {
            t.pieces_.back().text += literal;
        } else {
            t.pieces_.push_back({Piece::Kind::Text, std::move(literal), {}});
        }
    };
    while (pos <= text.size()) {
        std::size_t open = text.find("{{", pos);
        std::string literal = unescape(text.substr(pos, open == std::string_view::npos ? std::string_view::npos : open - pos));
        if (trim_next) literal.erase(0, std::min(literal.size(), literal.find_first_not_of(" \t\n\r")));
        trim_next = false;
        if (open == std::string_view::npos) {
            add_text(std::move(literal));
            break;
        }
        std::string column = std::to_string(open + 1);
        std::size_t close = text.find("}}", open + 2);
        if (close == std::string_view::npos) throw bad("\"{{\" at column " + column + " is never closed by \"}}\"");
        std::string_view action = text.substr(open + 2, close - open - 2);
        if (action.find("{{") != std::string_view::npos) throw bad("\"{{\" inside the action at column " + column);
        // Go's trim markers: "{{- " drops the whitespace before, " -}}" the whitespace after.
        if (action.size() >= 2 && action[0] == '-' && is_space(action[1])) {
            while (!literal.empty() && is_space(literal.back())) literal.pop_back();
            action.remove_prefix(2);
        }
        if (action.size() >= 2 && action.back() == '-' && is_space(action[action.size() - 2])) {
            trim_next = true;
            action.remove_suffix(2);
        }
        add_text(std::move(literal));
        pos = close + 2;
        action = trim(action);
        if (action.size() >= 4 && action.substr(0, 2) == "/*" && action.substr(action.size() - 2) == "*/") continue;  // comment
        if (action.empty()) throw bad("empty action at column " + column);
        std::vector<std::string_view> words;
        for (std::size_t i = 0; i < action.size();) {
            while (i < action.size() && is_space(action[i])) ++i;
            std::size_t start = i;
            while (i < action.size() && !is_space(action[i])) ++i;
            if (i > start) words.push_back(action.substr(start, i - start));
        }
        std::string shown_action = "\"{{" + escape_control(action.substr(0, 40)) + (action.size() > 40 ? "...}}\"" : "}}\"");
        const std::string supported = ": only {{.Field}} and {{json .Field}} are supported";
        if (action.find('|') != std::string_view::npos) throw bad("pipeline " + shown_action + " at column " + column + supported);
        std::string_view first = words[0];
        Piece piece;
        std::string_view path_text;
        if (first[0] == '.') {
            if (words.size() != 1) throw bad(shown_action + " at column " + column + ": one value per action, as {{.A}} {{.B}}");
            piece.kind = Piece::Kind::Value;
            path_text = first;
        } else if (first == "json") {
            if (words.size() != 2 || words[1][0] != '.') {
                throw bad(shown_action + " at column " + column + ": json takes one value, as {{json .}} or {{json .Field}}");
            }
            piece.kind = Piece::Kind::Json;
            path_text = words[1];
        } else {
            static const char* const keywords[] = {"range", "if", "else", "end", "with", "define", "template",
                                                   "block", "break", "continue", "nil"};
            std::string what;
            if (std::find(std::begin(keywords), std::end(keywords), first) != std::end(keywords)) {
                what = "\"" + std::string(first) + "\" is not supported";
            } else if (first[0] == '$') {
                what = "variables are not supported";
            } else if (first[0] == '(') {
                what = "parentheses are not supported";
            } else if (first[0] == '"' || first[0] == '`' || first[0] == '\'' || (first[0] >= '0' && first[0] <= '9') ||
                       first[0] == '-') {
                what = "constants are not supported";
            } else {
                what = "function \"" + escape_control(first.substr(0, 40)) + "\" is not supported (only json)";
            }
            throw bad(shown_action + " at column " + column + ": " + what + supported);
        }
        if (path_text != ".") {
            std::vector<std::string> path = split(path_text.substr(1), '.');
            if (path.size() > kMaxFieldDepth) {
                throw bad(shown_action + " at column " + column + ": more than " + std::to_string(kMaxFieldDepth) + " names deep");
            }
            for (const std::string& name : path) {
                if (!is_identifier(name)) throw bad(shown_action + " at column " + column + ": \"" + printable(path_text) + "\" is not a field");
            }
            piece.path = std::move(path);
        }
        piece.text = check_path(piece.path, fields);
        t.pieces_.push_back(std::move(piece));
    }
    return t;
}

std::string Template::header() const {
    std::string out;
    for (const Piece& p : pieces_) out += p.text;
    return out;
}

std::string Template::render(const nlohmann::json& item) const {
    std::string out;
    for (const Piece& p : pieces_) {
        if (p.kind == Piece::Kind::Text) {
            out += p.text;
            continue;
        }
        const nlohmann::json* value = lookup(item, p.path);
        out += p.kind == Piece::Kind::Json ? json_text(value) : value ? go_string(*value, 0) : "";
    }
    return out;
}

Format parse_format(std::string_view text, const std::vector<Field>& fields) {
    Format f;
    if (text.empty() || text == "table") return f;
    if (text == "json") {
        f.style = Format::Style::Json;
        return f;
    }
    f.style = Format::Style::Template;
    f.tmpl = Template::parse(text, fields);
    return f;
}

std::string render_all(const Template& tmpl, const std::vector<nlohmann::json>& items) {
    if (!tmpl.table()) {
        std::string out;
        for (const auto& item : items) {
            std::string line = tmpl.render(item);
            if (line.empty() || line.back() != '\n') line += '\n';
            out += line;
        }
        return out;
    }
    std::vector<std::string> lines;
    auto add = [&lines](std::string text) {
        if (!text.empty() && text.back() == '\n') text.pop_back();
        for (std::string& line : split(text, '\n')) lines.push_back(std::move(line));
    };
    add(tmpl.header());
    for (const auto& item : items) add(tmpl.render(item));
    return align_columns(lines);
}

std::string align_columns(const std::vector<std::string>& lines, std::size_t gap) {
    std::vector<std::vector<std::string>> rows;
    for (const std::string& line : lines) rows.push_back(split(line, '\t'));
    return align_rows(rows, gap);
}

std::string align_rows(const std::vector<std::vector<std::string>>& rows, std::size_t gap,
                          const std::vector<std::size_t>& min_width) {
    std::vector<std::size_t> width = min_width;
    for (const auto& cells : rows) {
        if (width.size() < cells.size()) width.resize(cells.size(), 0);
        // A line's last cell sets no width: nothing follows it.
        for (std::size_t i = 0; i + 1 < cells.size(); ++i) width[i] = std::max(width[i], display_width(cells[i]));
    }
    std::string out;
    for (const auto& cells : rows) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
            out += cells[i];
            if (i + 1 < cells.size()) out += std::string(width[i] - display_width(cells[i]) + gap, ' ');
        }
        out += '\n';
    }
    return out;
}

std::size_t display_width(std::string_view text) {
    std::size_t n = 0;
    for (unsigned char c : text) n += (c & 0xC0) != 0x80;
    return n;
}

std::string human_duration(long long seconds) {
    if (seconds < 1) return "Less than a second";
    if (seconds == 1) return "1 second";
    if (seconds < 60) return std::to_string(seconds) + " seconds";
    long long minutes = seconds / 60;
    if (minutes == 1) return "About a minute";
    if (minutes < 60) return std::to_string(minutes) + " minutes";
    long long hours = (seconds + 1800) / 3600;  // to the nearest hour
    if (hours == 1) return "About an hour";
    if (hours < 48) return std::to_string(hours) + " hours";
    if (hours < 24 * 7 * 2) return std::to_string(hours / 24) + " days";
    if (hours < 24 * 30 * 2) return std::to_string(hours / 24 / 7) + " weeks";
    if (hours < 24 * 365 * 2) return std::to_string(hours / 24 / 30) + " months";
    return std::to_string(seconds / 3600 / 24 / 365) + " years";
}

}  // namespace imgtool::output
