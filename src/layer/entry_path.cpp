#include "imgtool/layer/entry_path.hpp"

#include <vector>

namespace imgtool::layer {

std::optional<std::string> clean_entry_path(std::string_view name) {
    std::vector<std::string_view> parts;
    std::size_t pos = 0;
    while (pos <= name.size()) {
        std::size_t end = name.find('/', pos);
        if (end == std::string_view::npos) end = name.size();
        std::string_view part = name.substr(pos, end - pos);
        pos = end + 1;
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (parts.empty()) return std::nullopt;
            parts.pop_back();
            continue;
        }
        parts.push_back(part);
    }
    std::string out;
    for (std::string_view part : parts) {
        if (!out.empty()) out += '/';
        out += part;
    }
    return out;
}

Whiteout classify_whiteout(std::string_view base) {
    constexpr std::string_view prefix = ".wh.";
    constexpr std::string_view meta_prefix = ".wh..wh.";
    if (base.substr(0, prefix.size()) != prefix) return {};
    if (base == ".wh..wh..opq") return {WhiteoutKind::Opaque, {}};
    if (base.substr(0, meta_prefix.size()) == meta_prefix) return {WhiteoutKind::Meta, {}};
    std::string_view target = base.substr(prefix.size());
    if (target.empty() || target == "." || target == "..") return {WhiteoutKind::Invalid, std::string(target)};
    return {WhiteoutKind::Whiteout, std::string(target)};
}

}  // namespace imgtool::layer
