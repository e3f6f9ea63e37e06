#include "imgtool/rootless/idmap.hpp"

#include <charconv>

#include "imgtool/core/error.hpp"

namespace imgtool::rootless {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    while (true) {
        auto at = text.find(sep);
        out.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return out;
        text.remove_prefix(at + 1);
    }
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::vector<IdRange> parse_subid_file(std::string_view text, std::string_view user, std::uint32_t id) {
    std::vector<IdRange> ranges;
    const std::string own_id = std::to_string(id);
    for (std::string_view line : split(text, '\n')) {
        if (line.empty() || line.front() == '#') continue;
        auto fields = split(line, ':');
        if (fields.size() != 3) continue;
        if (fields[0] != user && fields[0] != own_id) continue;
        IdRange r;
        if (!parse_number(fields[1], r.start) || !parse_number(fields[2], r.count) || r.count == 0) continue;
        if (std::uint64_t{r.start} + r.count > 0xffffffffULL) continue;  // would wrap past the last id
        ranges.push_back(r);
    }
    return ranges;
}

std::vector<IdMapLine> plan_id_map(std::uint32_t own_id, const std::vector<IdRange>& ranges) {
    std::vector<IdMapLine> map{{0, own_id, 1}};
    std::uint64_t next_inside = 1;
    for (const IdRange& r : ranges) {
        if (map.size() == kMaxIdMapLines) break;
        bool holds_own = own_id >= r.start && own_id - r.start < r.count;
        if (holds_own) continue;  // an id may be mapped only once
        if (next_inside + r.count > 0xffffffffULL) break;
        map.push_back({static_cast<std::uint32_t>(next_inside), r.start, r.count});
        next_inside += r.count;
    }
    return map;
}

std::string id_map_text(const std::vector<IdMapLine>& map) {
    std::string text;
    for (const auto& l : map) {
        text += std::to_string(l.inside) + " " + std::to_string(l.outside) + " " + std::to_string(l.count) + "\n";
    }
    return text;
}

std::vector<std::string> newidmap_arguments(pid_t pid, const std::vector<IdMapLine>& map) {
    std::vector<std::string> args{std::to_string(pid)};
    for (const auto& l : map) {
        args.push_back(std::to_string(l.inside));
        args.push_back(std::to_string(l.outside));
        args.push_back(std::to_string(l.count));
    }
    return args;
}

std::vector<IdMapLine> parse_id_map(std::string_view text) {
    std::vector<IdMapLine> map;
    for (std::string_view line : split(text, '\n')) {
        std::vector<std::string_view> fields;
        for (std::string_view f : split(line, ' ')) {
            if (!f.empty()) fields.push_back(f);
        }
        if (fields.empty()) continue;
        IdMapLine l;
        if (fields.size() != 3 || !parse_number(fields[0], l.inside) || !parse_number(fields[1], l.outside) ||
            !parse_number(fields[2], l.count)) {
            throw Error(Errc::Corrupt, "malformed id map line \"" + std::string(line) + "\"");
        }
        map.push_back(l);
    }
    return map;
}

bool is_initial_id_map(const std::vector<IdMapLine>& map) {
    return map.size() == 1 && map[0].inside == 0 && map[0].outside == 0 && map[0].count == 0xffffffffU;
}

std::uint64_t mapped_id_count(const std::vector<IdMapLine>& map) {
    std::uint64_t n = 0;
    for (const auto& l : map) n += l.count;
    return n;
}

bool id_is_mapped(const std::vector<IdMapLine>& map, std::uint64_t inside) {
    for (const auto& l : map) {
        if (inside >= l.inside && inside - l.inside < l.count) return true;
    }
    return false;
}

}  // namespace imgtool::rootless
