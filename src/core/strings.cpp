#include "imgtool/core/strings.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

namespace imgtool {

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        std::size_t end = text.find(separator, start);
        parts.emplace_back(text.substr(start, end - start));
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    return parts;
}

std::pair<std::string, std::string> split_parent(std::string_view path) {
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) return {"", std::string(path)};
    return {std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
}

bool is_lower_hex(std::string_view text) noexcept {
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::string human_size(std::uint64_t bytes) {
    static const char* const units[] = {"B", "kB", "MB", "GB", "TB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1000.0 && unit < 4) {
        value /= 1000.0;
        ++unit;
    }
    char buf[32];
    if (unit == 0) {
        std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
    } else {
        std::snprintf(buf, sizeof buf, "%.3g%s", value, units[unit]);
    }
    return buf;
}

namespace {

// Length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0. C1 controls (U+0080..U+009F) count as malformed: some terminals act on
// them (0x9b is CSI).
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char c = byte(i);
    std::size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (len == 0 || i + len > text.size()) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
    }
    unsigned char d = byte(i + 1);
    if (c == 0xc2 && d < 0xa0) return 0;                 // C1 control
    // Bidirectional overrides and isolates (U+202A-202E, U+2066-2069) and marks (U+200E, U+200F,
    // U+061C) make a terminal show text in another order than it is: "Trojan Source".
    if (c == 0xe2 && d == 0x80 && len == 3) {
        unsigned char e = byte(i + 2);
        if ((e >= 0xaa && e <= 0xae) || e == 0x8e || e == 0x8f) return 0;
    }
    if (c == 0xe2 && d == 0x81 && len == 3 && byte(i + 2) >= 0xa6 && byte(i + 2) <= 0xa9) return 0;
    if (c == 0xd8 && d == 0x9c) return 0;
    if (c == 0xe0 && d < 0xa0) return 0;                 // overlong
    if (c == 0xed && d >= 0xa0) return 0;                // surrogate
    if (c == 0xf0 && d < 0x90) return 0;                 // overlong
    if (c == 0xf4 && d >= 0x90) return 0;                // above U+10FFFF
    return len;
}

}  // namespace

std::string escape_control(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        if (std::size_t len = c >= 0x80 ? utf8_sequence(text, i) : 0) {
            out.append(text.substr(i, len));
            i += len;
            continue;
        }
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
        ++i;
    }
    return out;
}

std::string printable(std::string_view name) {
    std::string out = escape_control(name);
    if (out.size() > 200) out = out.substr(0, 200) + "...";
    return out;
}

std::string utc_now_rfc3339() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Optimal string alignment distance (Levenshtein plus swaps of neighbours), without case.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (prefix.size() > text.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (lower(text[i]) != lower(prefix[i])) return false;
    }
    return true;
}

}  // namespace

std::string shell_word(std::string_view word) {
    bool plain = !word.empty();
    for (char c : word) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-_./:=@%+,").find(c) != std::string_view::npos)) plain = false;
    }
    if (plain) return std::string(word);
    std::string quoted = "'";
    for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates, std::size_t max_edits) {
    if (word.empty()) return {};
    // Words of hundreds of characters are no typo of a command or a name: no quadratic work on them.
    if (word.size() > 256) return {};
    const std::size_t limit = std::min(max_edits, std::max<std::size_t>(1, (word.size() + 2) / 3));
    const std::string* best = nullptr;
    std::size_t best_distance = limit + 1;
    for (const std::string& candidate : candidates) {
        if (candidate.size() > word.size() + limit || word.size() > candidate.size() + limit) continue;
        std::size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best = &candidate;
            best_distance = distance;
        }
    }
    if (best) return *best;
    if (word.size() < 3) return {};
    for (const std::string& candidate : candidates) {
        if (starts_with_nocase(candidate, word) && (!best || candidate.size() < best->size())) best = &candidate;
    }
    return best ? *best : std::string();
}

}  // namespace imgtool
