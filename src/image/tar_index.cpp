#include "imgtool/image/tar_index.hpp"

#include <cstring>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::image {
namespace {

constexpr std::uint64_t kBlock = 512;
constexpr std::uint64_t kMaxExtendedHeader = 1 << 20;  // PAX / GNU long-name records: plenty for names

std::uint64_t round_up(std::uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// Numeric fields are octal text, or base-256 when the top bit of the first byte is set (GNU/star).
std::optional<std::uint64_t> parse_number(const char* field, std::size_t len) {
    const auto* p = reinterpret_cast<const unsigned char*>(field);
    if (p[0] & 0x80) {
        if (p[0] != 0x80) return std::nullopt;  // negative or too large
        std::uint64_t v = 0;
        for (std::size_t i = 1; i < len; ++i) {
            if (v >> 56) return std::nullopt;
            v = (v << 8) | p[i];
        }
        return v;
    }
    std::uint64_t v = 0;
    std::size_t i = 0;
    while (i < len && (field[i] == ' ' || field[i] == '\0')) ++i;
    bool any = false;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
        if (v >> 60) return std::nullopt;
        v = v * 8 + static_cast<std::uint64_t>(field[i] - '0');
        any = true;
    }
    for (; i < len; ++i) {
        if (field[i] != ' ' && field[i] != '\0') return std::nullopt;
    }
    if (!any) return 0;
    return v;
}

bool checksum_ok(const std::string& h) {
    auto stored = parse_number(h.data() + 148, 8);
    if (!stored) return false;
    std::uint64_t unsigned_sum = 0;
    std::int64_t signed_sum = 0;
    for (std::size_t i = 0; i < kBlock; ++i) {
        unsigned char c = (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
        unsigned_sum += c;
        signed_sum += static_cast<signed char>(c);
    }
    return *stored == unsigned_sum || static_cast<std::int64_t>(*stored) == signed_sum;
}

std::string field_string(const std::string& h, std::size_t off, std::size_t len) {
    const char* p = h.data() + off;
    return std::string(p, strnlen(p, len));
}

// PAX records: "<len> <key>=<value>\n". Only path and size matter for locating members.
void apply_pax(std::string_view data, std::optional<std::string>& path, std::uint64_t& size, bool& has_size,
               std::string_view shown) {
    while (!data.empty()) {
        auto space = data.find(' ');
        if (space == std::string_view::npos) break;
        std::uint64_t len = 0;
        for (char c : data.substr(0, space)) {
            if (c < '0' || c > '9') throw Error(Errc::Corrupt, std::string(shown) + ": malformed PAX header");
            len = len * 10 + static_cast<std::uint64_t>(c - '0');
            if (len > data.size()) break;
        }
        if (len <= space + 1 || len > data.size()) {
            throw Error(Errc::Corrupt, std::string(shown) + ": malformed PAX header");
        }
        std::string_view record = data.substr(space + 1, len - space - 2);  // drop trailing '\n'
        auto eq = record.find('=');
        if (eq != std::string_view::npos) {
            std::string_view key = record.substr(0, eq);
            std::string_view value = record.substr(eq + 1);
            if (key == "path") path = std::string(value);
            if (key == "size") {
                std::uint64_t v = 0;
                for (char c : value) {
                    if (c < '0' || c > '9' || (v >> 58)) {
                        throw Error(Errc::Corrupt, std::string(shown) + ": malformed PAX size");
                    }
                    v = v * 10 + static_cast<std::uint64_t>(c - '0');
                }
                size = v;
                has_size = true;
            }
        }
        data.remove_prefix(len);
    }
}

}  // namespace

std::optional<std::string> normalize_member_name(std::string_view name) {
    if (name.empty() || name.front() == '/') return std::nullopt;
    std::string out;
    for (const std::string& part : split(name, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") return std::nullopt;
        if (!out.empty()) out += '/';
        out += part;
    }
    if (out.empty()) return std::nullopt;
    return out;
}

TarIndex TarIndex::build(const ReadAt& read_at, std::string_view shown) {
    TarIndex index;
    std::uint64_t pos = 0;
    std::optional<std::string> next_path;
    std::uint64_t next_size = 0;  // from a PAX "size" record, when has_next_size
    bool has_next_size = false;
    bool first = true;
    while (true) {
        std::string h = read_at(pos, kBlock);
        if (h.size() < kBlock) {
            if (first) throw Error(Errc::Corrupt, std::string(shown) + ": not a tar archive (too short)");
            throw Error(Errc::Corrupt, std::string(shown) + ": truncated tar archive");
        }
        if (h.find_first_not_of('\0') == std::string::npos) break;  // end-of-archive block
        if (!checksum_ok(h)) {
            if (first) {
                bool gzip = static_cast<unsigned char>(h[0]) == 0x1f && static_cast<unsigned char>(h[1]) == 0x8b;
                throw Error(Errc::Corrupt, std::string(shown) + (gzip ? ": compressed archives are not supported "
                                                                        "(decompress it first)"
                                                                      : ": not a tar archive"));
            }
            throw Error(Errc::Corrupt, std::string(shown) + ": corrupt tar header at offset " + std::to_string(pos));
        }
        first = false;
        auto size = parse_number(h.data() + 124, 12);
        // Bounded so offsets cannot wrap around (a crafted size would loop back to this header).
        if (size && *size > (1ULL << 56)) size.reset();
        if (!size) throw Error(Errc::Corrupt, std::string(shown) + ": bad size in tar header at " + std::to_string(pos));
        char type = h[156];
        std::uint64_t data_at = pos + kBlock;
        if (type == 'x' || type == 'L' || type == 'g' || type == 'K') {
            if (*size > kMaxExtendedHeader) {
                throw Error(Errc::Corrupt, std::string(shown) + ": tar extended header too large (" +
                                               std::to_string(*size) + " bytes)");
            }
            if (type != 'g' && type != 'K') {
                std::string data = read_at(data_at, *size);
                if (data.size() < *size) throw Error(Errc::Corrupt, std::string(shown) + ": truncated tar archive");
                if (type == 'x') {
                    apply_pax(data, next_path, next_size, has_next_size, shown);
                } else {
                    next_path = std::string(data.c_str());  // GNU long name, NUL-terminated
                }
            }
            pos = data_at + round_up(*size);
            continue;
        }
        std::string name;
        if (next_path) {
            name = *next_path;
        } else {
            name = field_string(h, 0, 100);
            // POSIX ustar ("ustar\0") has a name prefix at 345; GNU ("ustar  \0") keeps times there.
            if (std::memcmp(h.data() + 257, "ustar\0", 6) == 0) {
                std::string prefix = field_string(h, 345, 155);
                if (!prefix.empty()) name = prefix + "/" + name;
            }
        }
        std::uint64_t member_size = has_next_size ? next_size : *size;
        if (member_size > (1ULL << 56)) throw Error(Errc::Corrupt, std::string(shown) + ": bad size in tar header");
        next_path.reset();
        has_next_size = false;
        bool regular = type == '0' || type == '\0' || type == '7';
        // Only regular members carry data in the archive; links and directories occupy no blocks.
        std::uint64_t data_blocks = regular ? round_up(member_size) : (type == '5' || type == '1' || type == '2' ? 0 : round_up(member_size));
        if (auto norm = normalize_member_name(name)) {
            index.members_[*norm] = TarMember{data_at, regular ? member_size : 0, regular};
        }
        pos = data_at + data_blocks;
    }
    return index;
}

std::optional<TarMember> TarIndex::find(std::string_view name) const {
    auto norm = normalize_member_name(name);
    if (!norm) return std::nullopt;
    auto it = members_.find(*norm);
    if (it == members_.end()) return std::nullopt;
    return it->second;
}

}  // namespace imgtool::image
