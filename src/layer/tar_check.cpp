#include "imgtool/layer/tar_check.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <vector>

#include "imgtool/core/strings.hpp"
#include "imgtool/layer/entry_path.hpp"

// How the readers behave, in brief (docs/layers.md has the table; each rule below was checked against
// libarchive 3.6.2, GNU tar 1.34, Python 3.11's tarfile and Go 1.19's archive/tar inside umoci):
// - libarchive handles each extension header ('x', 'g', 'L', 'K', 'A', 'X', 'V') by reading the next
//   header recursively and applying its own values afterwards, so the first of a PAX path and a GNU long
//   name wins; GNU tar always prefers the PAX path; Go always prefers the GNU long name.
// - Several 'L' headers share one buffer in libarchive, so the last wins, as in Go and GNU tar; Python
//   keeps the first. Two 'x' headers share one buffer too: libarchive parses the second one twice,
//   warns, and applies it (as Go does); Python applies the first.
// - Go's reader returns a 'g' header as an entry of its own and forgets the extension headers read
//   before it; GNU tar and Python apply a global path or size to every later entry, libarchive ignores
//   global headers.
// - Go guesses a ustar prefix in a GNU header whose time fields do not parse (pre-Go-1.8 writers);
//   Python joins bytes 345.. to the name of any header; Go takes a 131-byte prefix when the header ends
//   in star's "tar\0" trailer and none unless the magic is exactly "ustar\0"; libarchive takes a
//   155-byte prefix whenever the magic starts with "ustar" and is not GNU's.
// - Sizes: Go and Python skip no data for links, devices, directories and FIFOs (Python skips PAX-sized
//   data only for files), GNU tar skips the size of everything but directories and hard links;
//   libarchive skips a PAX size for every type, a hard link's size in pax archives or when the header
//   does not look like a ustar one, no data for a "regular" entry named "x/", and only as many bytes as a
//   sparse map covers.

namespace imgtool::layer {
namespace {

constexpr std::size_t kBlock = 512;
constexpr std::int64_t kMaxSpecialHeader = 1 << 20;  // libarchive: "Special header too large"
constexpr int kMaxHeadersPerEntry = 32;              // libarchive: "Too many special headers" beyond
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

// Header fields (POSIX ustar; the GNU ones where GNU puts something else there).
constexpr std::size_t kName = 0, kMode = 100, kUid = 108, kGid = 116, kSize = 124, kMtime = 136, kChecksum = 148,
                      kTypeflag = 156, kLinkname = 157, kMagic = 257, kVersion = 263, kDevMajor = 329,
                      kDevMinor = 337, kPrefix = 345, kGnuAtime = 345, kGnuCtime = 357, kGnuSparse = 386,
                      kGnuIsExtended = 482, kStarTrailer = 508;
constexpr std::size_t kSparseEntry = 24;     // offset and numbytes, 12 bytes each
constexpr std::size_t kExtIsExtended = 504;  // in an old GNU sparse extension block (21 entries)

using namespace std::string_view_literals;

std::string_view field(const char* h, std::size_t offset, std::size_t length) {
    return {h + offset, strnlen(h + offset, length)};
}
std::string_view c_string(std::string_view s) { return s.substr(0, s.find('\0')); }
bool has(const char* h, std::size_t offset, std::string_view bytes) {
    return std::memcmp(h + offset, bytes.data(), bytes.size()) == 0;
}
std::uint64_t padding(std::uint64_t n) { return (kBlock - n % kBlock) % kBlock; }
std::uint64_t round_up(std::uint64_t n) { return n + padding(n); }
bool ends_with_slash(std::string_view s) { return !s.empty() && s.back() == '/'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// ---- numbers as libarchive reads them -----------------------------------------------------------

// Text: leading blanks, an optional '-', digits up to the first non-digit; saturating at the int64 limits.
std::int64_t lib_text_number(const char* p, std::size_t n, int base) {
    std::size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) ++i;
    bool negative = i < n && p[i] == '-';
    if (negative) ++i;
    const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : static_cast<std::uint64_t>(kMax);
    std::uint64_t magnitude = 0;
    for (; i < n; ++i) {
        int digit = static_cast<unsigned char>(p[i]) - '0';
        if (digit < 0 || digit >= base) break;
        auto d = static_cast<std::uint64_t>(digit);
        if (magnitude > (limit - d) / static_cast<std::uint64_t>(base)) return negative ? kMin : kMax;
        magnitude = magnitude * static_cast<std::uint64_t>(base) + d;
    }
    return negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
}

// Base-256 (GNU, star): big-endian two's complement whose sign is bit 6 of the first byte (bit 7 marks
// the encoding); saturating at the int64 limits.
std::int64_t lib_base256(const char* p, std::size_t n) {
    const auto* b = reinterpret_cast<const unsigned char*>(p);
    __int128 v = (b[0] & 0x40) ? static_cast<int>(b[0] & 0x7f) - 128 : static_cast<int>(b[0] & 0x7f);
    for (std::size_t i = 1; i < n; ++i) v = v * 256 + b[i];
    if (v > kMax) return kMax;
    if (v < kMin) return kMin;
    return static_cast<std::int64_t>(v);
}

// A numeric header field.
std::int64_t lib_number(const char* p, std::size_t n) {
    return (static_cast<unsigned char>(p[0]) & 0x80) ? lib_base256(p, n) : lib_text_number(p, n, 8);
}

std::int64_t lib_decimal(std::string_view s) { return lib_text_number(s.data(), s.size(), 10); }

// The int fields libarchive fills from a 64-bit parse (GNU.sparse.major, the sparse 1.0 entry count).
int to_c_int(std::int64_t v) { return static_cast<int>(static_cast<std::uint32_t>(static_cast<std::uint64_t>(v))); }

bool lib_checksum_ok(const char* h) {
    for (std::size_t i = kChecksum; i < kChecksum + 8; ++i) {
        char c = h[i];
        if (c != ' ' && c != '\0' && (c < '0' || c > '7')) return false;
    }
    std::int64_t stored = lib_text_number(h + kChecksum, 8, 8);
    // Unsigned and signed byte sums, the checksum field counted as spaces; one pass for both (a byte of
    // 0x80 or more counts 256 less when signed).
    const auto* b = reinterpret_cast<const unsigned char*>(h);
    std::uint32_t sum = 0, high = 0;
    for (std::size_t i = 0; i < kBlock; ++i) {
        sum += b[i];
        high += b[i] >> 7;
    }
    for (std::size_t i = kChecksum; i < kChecksum + 8; ++i) {
        sum -= b[i];
        high -= b[i] >> 7;
    }
    sum += 8 * ' ';
    std::int64_t unsigned_sum = sum, signed_sum = static_cast<std::int64_t>(sum) - 256 * static_cast<std::int64_t>(high);
    return stored == unsigned_sum || stored == signed_sum;
}

// The field check of libarchive's format bid: base-256 markers pass, else blanks, octal, blanks/NULs.
bool lib_bid_number_ok(const char* p, std::size_t n) {
    auto marker = static_cast<unsigned char>(p[0]);
    if (marker == 0x80 || marker == 0xff || marker == 0) return true;
    std::size_t i = 0;
    while (i < n && p[i] == ' ') ++i;
    while (i < n && p[i] >= '0' && p[i] <= '7') ++i;
    for (; i < n; ++i) {
        if (p[i] != ' ' && p[i] != '\0') return false;
    }
    return true;
}

// libarchive's format bid on a header whose checksum is good. It decides twice: on the first block (a
// bid of 0 and libarchive refuses the stream), and, on a non-pax hard link's own header, whether its size
// is data (a bid of 50 or less) or a leftover of old writers.
int lib_bid(const char* h) {
    int bid = 48;
    if (has(h, kMagic, "ustar\0"sv) && has(h, kVersion, "00"sv)) bid += 56;
    if (has(h, kMagic, "ustar "sv) && has(h, kVersion, " \0"sv)) bid += 56;
    char t = h[kTypeflag];
    if (t != 0 && !is_digit(t) && !(t >= 'A' && t <= 'Z') && !(t >= 'a' && t <= 'z')) return 0;
    bid += 2;
    if (!lib_bid_number_ok(h + kMode, 8) || !lib_bid_number_ok(h + kUid, 8) || !lib_bid_number_ok(h + kGid, 8) ||
        !lib_bid_number_ok(h + kMtime, 12) || !lib_bid_number_ok(h + kSize, 12) ||
        !lib_bid_number_ok(h + kDevMajor, 8) || !lib_bid_number_ok(h + kDevMinor, 8)) {
        return 0;
    }
    return bid;
}

// ---- numbers as Go's archive/tar reads them ----------------------------------------------------------

// nullopt where Go fails the archive (ErrHeader).
std::optional<std::int64_t> go_number(const char* p, std::size_t n) {
    const auto* b = reinterpret_cast<const unsigned char*>(p);
    if (n > 0 && (b[0] & 0x80)) {
        unsigned char invert = (b[0] & 0x40) ? 0xff : 0;
        std::uint64_t x = 0;
        for (std::size_t i = 0; i < n; ++i) {
            unsigned char c = b[i] ^ invert;
            if (i == 0) c &= 0x7f;
            if (x >> 56) return std::nullopt;
            x = x << 8 | c;
        }
        if (x >> 63) return std::nullopt;
        return invert ? ~static_cast<std::int64_t>(x) : static_cast<std::int64_t>(x);
    }
    std::string_view s(p, n);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\0')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
    if (s.empty()) return 0;
    s = c_string(s);
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '7') return std::nullopt;
        auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 8) return std::nullopt;
        v = v * 8 + d;
    }
    return static_cast<std::int64_t>(v);
}

bool plain_decimal(std::string_view s) {
    return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), is_digit);
}

// ---- PAX records ---------------------------------------------------------------------------------------

struct PaxRecord {
    std::string key;
    std::string value;  // raw: libarchive stops at a NUL, Go refuses one in a name
};

enum class PaxParse { Ok, Malformed, Fatal };

// "<length> <key>=<value>\n"..., with libarchive's checks: a malformed record makes libarchive warn and
// drop the rest of the header (path included) while keeping what it applied already (size).
PaxParse parse_pax(std::string_view data, std::vector<PaxRecord>& out) {
    std::size_t pos = 0;
    while (pos < data.size()) {
        std::size_t i = pos, length = 0;
        while (i < data.size()) {
            char c = data[i++];
            if (c == ' ') break;
            if (!is_digit(c)) return PaxParse::Malformed;
            length = length * 10 + static_cast<std::size_t>(c - '0');
            if (length > 999999) return PaxParse::Malformed;
        }
        if (length < 1 || length > data.size() - pos || data[pos + length - 1] != '\n') return PaxParse::Malformed;
        std::size_t end = pos + length - 1;  // the '\n'
        if (i < end && data[i] == '=') return PaxParse::Fatal;
        std::size_t eq = i;
        while (eq < end && data[eq] != '=' && data[eq] != '\0') ++eq;
        if (eq >= end || data[eq] != '=') return PaxParse::Malformed;
        out.push_back({std::string(data.substr(i, eq - i)), std::string(data.substr(eq + 1, end - eq - 1))});
        pos += length;
    }
    return PaxParse::Ok;
}

bool pax_key_matters(std::string_view key) {
    return key == "path" || key == "linkpath" || key == "size" || key.substr(0, 10) == "GNU.sparse" ||
           key == "SUN.holesdata";
}

const char* kind_of(char typeflag) {
    switch (typeflag) {
        case '1': return "a hard link";
        case '2': return "a symlink";
        case '3': return "a character device";
        case '4': return "a block device";
        case '5': return "a directory";
        case '6': return "a FIFO";
        default: return "a file";
    }
}

constexpr const char* kOnName = "; tar readers disagree on its name";
constexpr const char* kOnLink = "; tar readers disagree on its link target";
constexpr const char* kOnWalk = "; tar readers disagree on where the next entry starts";
constexpr const char* kOnEntries = "; tar readers disagree on the entries";
constexpr const char* kOnLater = "; tar readers disagree on the names of the entries after it";

// Saturating sum of sparse map lengths.
void add_saturating(std::uint64_t& sum, std::int64_t n) {
    auto u = static_cast<std::uint64_t>(n);
    sum = (sum > std::numeric_limits<std::uint64_t>::max() - u) ? std::numeric_limits<std::uint64_t>::max() : sum + u;
}

}  // namespace

std::string TarFinding::message() const {
    std::string out = "entry " + std::to_string(entry);
    if (!name.empty()) out += " (" + printable(name) + ")";
    return out + ": " + reason;
}

struct TarCheck::Impl {
    enum class Phase { Header, ExtBody, SparseExt, SparseMap, Skip, Done };
    enum class Format { Unset, Tar, Ustar, Pax, Gnu };
    enum class Ext { Pax, Global, LongName, LongLink, Other };

    // The extension headers of the entry being read.
    struct Chain {
        std::uint64_t offset = 0;
        int headers = 0;
        int pax_headers = 0;
        bool any = false;                      // an 'x', 'L', 'K', 'A' or 'X' seen (a later 'g' splits
                                               // them in Go; an end of archive then is damage)
        std::vector<PaxRecord> pax;            // the records of the 'x' header that matter, in order
        std::optional<std::string> long_name;  // the GNU 'L' value (C string)
        std::optional<std::string> long_link;
        bool long_name_first = false;          // an 'L' came before the 'x' (libarchive then reads the 'L')
        std::string problem;                   // the first reason found in an extension header
    };

    // The entry whose data comes next.
    struct Entry {
        char typeflag = 0;
        std::string name, link;              // libarchive's reading
        std::int64_t data = 0;               // libarchive's entry_bytes_remaining after the PAX size
        std::int64_t gnu_tar_size = 0;       // the PAX size, else the header's
        bool regular = false;                // libarchive's AE_IFREG (a "x/" name makes it a directory)
        bool lib_ext = false, go_ext = false;  // old GNU sparse extension blocks follow the header
        std::optional<std::int64_t> go_data;   // data Go's archive/tar skips; nullopt: Go fails
        bool sparse = false;                 // libarchive holds a sparse map
        std::uint64_t sparse_sum = 0;        // bytes its map covers
        std::int64_t map_bytes = 0;          // a sparse 1.0 map read from the data, padding included
    };

    // ---- driving ----

    void feed(std::span<const char> bytes) {
        while (!bytes.empty() && phase != Phase::Done) {
            std::size_t used = 0;
            switch (phase) {
                case Phase::Skip: used = skip_bytes(bytes.size()); break;
                case Phase::Header:
                case Phase::SparseExt: used = block(bytes); break;
                case Phase::ExtBody: used = ext_bytes(bytes); break;
                case Phase::SparseMap: used = map_bytes(bytes); break;
                case Phase::Done: break;
            }
            position += used;
            bytes = bytes.subspan(used);
        }
    }

    std::size_t skip_bytes(std::size_t available) {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip, available));
        skip -= n;
        if (skip == 0) phase = after_skip;
        return n;
    }

    // A 512-byte block, in place when the chunk holds it whole.
    std::size_t block(std::span<const char> bytes) {
        if (held == 0 && bytes.size() >= kBlock) {
            block_start = position;
            on_block(bytes.data());
            return kBlock;
        }
        std::size_t n = std::min(kBlock - held, bytes.size());
        std::memcpy(buffer.data() + held, bytes.data(), n);
        held += n;
        if (held == kBlock) {
            held = 0;
            block_start = position + n - kBlock;
            on_block(buffer.data());
        }
        return n;
    }

    void on_block(const char* b) {
        if (phase == Phase::SparseExt) {
            sparse_ext_block(b);
        } else {
            header(b);
        }
    }

    // Where a stream that ends here ended: between entries, or in the block padding after an entry's
    // data (a writer that never wrote the padding and the end-of-archive blocks, as umoci 0.4.7's
    // insert does), rather than inside a header or an entry's data.
    bool ended_cleanly() const {
        if (state == State::End) return true;
        if (state != State::Checking) return false;
        if (phase == Phase::Header) return held == 0 && chain.headers == 0;
        return phase == Phase::Skip && after_skip == Phase::Header && skip <= skip_padding;
    }

    void skip_then(std::uint64_t n, Phase next) {
        skip_padding = 0;
        skip = n;
        after_skip = next;
        phase = n ? Phase::Skip : next;
    }

    void stop() { phase = Phase::Done, state = State::Stopped; }
    void end() { phase = Phase::Done, state = State::End; }

    void refuse(std::string reason, std::string name = {}) {
        finding = TarFinding{passed + 1, chain.offset, std::move(name), std::move(reason)};
        phase = Phase::Done;
        state = State::Refused;
    }

    // A chain-level problem is reported once the entry's own header gives it a name.
    void problem(std::string reason) {
        if (chain.problem.empty()) chain.problem = std::move(reason);
    }

    // ---- headers ----

    void header(const char* h) {
        if (chain.headers == 0) chain.offset = block_start;
        if (std::all_of(h, h + kBlock, [](char c) { return c == '\0'; })) {
            // End of archive. After an entry's 'x', 'L' or 'K' header libarchive calls it damaged; after
            // global or volume headers only, it is the end.
            if (chain.any) return stop();
            if (!chain.problem.empty()) return refuse(chain.problem);
            return end();
        }
        if (!lib_checksum_ok(h)) return stop();
        if (block_start == 0 && lib_bid(h) == 0) return stop();  // libarchive: unrecognized archive format
        if (++chain.headers > kMaxHeadersPerEntry) {
            return refuse("more than " + std::to_string(kMaxHeadersPerEntry - 1) +
                          " extension headers for one entry (libarchive skips the entry's own header)" + kOnName);
        }
        char t = h[kTypeflag];
        switch (t) {
            case 'x':
                format = Format::Pax;
                if (++chain.pax_headers == 2) {
                    problem(std::string("two PAX extended headers (libarchive, Go and Python each apply a different "
                                        "one)") + kOnName);
                }
                chain.any = true;
                return extension(h, Ext::Pax);
            case 'g':
                format = Format::Pax;
                if (chain.any) {
                    problem(std::string("a PAX global header between the entry and its extension headers (Go's "
                                        "archive/tar drops those before it)") + kOnName);
                }
                return extension(h, Ext::Global);
            case 'L':
                if (chain.pax_headers == 0) chain.long_name_first = true;
                chain.any = true;
                return extension(h, Ext::LongName);
            case 'K': chain.any = true; return extension(h, Ext::LongLink);
            case 'A':
                format = Format::Pax;
                chain.any = true;
                problem(std::string("a Solaris ACL header ('A'), an entry of its own for readers other than "
                                    "libarchive") + kOnEntries);
                return extension(h, Ext::Other);
            case 'X':
                format = Format::Pax;
                chain.any = true;
                problem(std::string("a Solaris extended header ('X'), an entry of its own for Go's archive/tar") +
                        kOnEntries);
                return extension(h, Ext::Other);
            case 'V':
                // libarchive skips a volume label and its size; Go returns it as a file.
                problem(std::string("a GNU volume header ('V'), an entry of its own for Go's archive/tar") + kOnEntries);
                return;
            default: return entry_header(h);
        }
    }

    void extension(const char* h, Ext kind) {
        std::int64_t size = lib_number(h + kSize, 12);
        if (size < 0 || size > kMaxSpecialHeader) return stop();  // libarchive: special header too large
        ext_kind = kind;
        ext_size = static_cast<std::size_t>(size);
        ext.clear();
        if (ext_size == 0) return ext_done();
        phase = Phase::ExtBody;
    }

    std::size_t ext_bytes(std::span<const char> bytes) {
        std::size_t n = std::min(ext_size - ext.size(), bytes.size());
        ext.append(bytes.data(), n);
        if (ext.size() == ext_size) ext_done();
        return n;
    }

    void ext_done() {
        switch (ext_kind) {
            case Ext::Pax: pax_header(); break;
            case Ext::Global: global_header(); break;
            case Ext::LongName: long_value(chain.long_name, "name"); break;
            case Ext::LongLink: long_value(chain.long_link, "link name"); break;
            case Ext::Other: break;
        }
        if (phase != Phase::Done) skip_then(padding(ext_size), Phase::Header);
    }

    void pax_header() {
        std::vector<PaxRecord> records;
        // Malformed, libarchive warns and keeps part of it, or fails (a record "=..."): refused either
        // way, since with a second 'x' header libarchive would not even parse this one.
        if (parse_pax(ext, records) != PaxParse::Ok) {
            problem(std::string("a malformed PAX extended header (libarchive keeps part of it, Go refuses the "
                                "archive)") + kOnName);
        }
        // Several 'x' headers share one buffer in libarchive: the last one's records are those it applies.
        chain.pax.clear();
        for (auto& r : records) {
            if (r.key == "SUN.holesdata") {
                problem(std::string("a Solaris sparse map (SUN.holesdata), which only libarchive reads") + kOnWalk);
            }
            if (pax_key_matters(r.key)) chain.pax.push_back(std::move(r));
        }
    }

    void global_header() {
        std::vector<PaxRecord> records;
        parse_pax(ext, records);  // libarchive ignores global headers; what parses is what others apply
        for (const auto& r : records) {
            if (r.key == "path" || r.key == "linkpath" || r.key == "size") {
                problem("a PAX global header that sets " + r.key +
                        " (GNU tar and Python apply it to every later entry, libarchive and Go ignore it)" + kOnLater);
            }
        }
    }

    // Several 'L' (or 'K') headers share one buffer in libarchive: the last one wins, as in Go and GNU tar.
    void long_value(std::optional<std::string>& slot, const char* what) {
        std::string value(c_string(ext));
        if (slot && *slot != value) {
            problem(std::string("two GNU long ") + what + "s (" + printable(*slot) + " and " + printable(value) +
                    "; Python takes the first, the others the last)" + (&slot == &chain.long_name ? kOnName : kOnLink));
        }
        slot = std::move(value);
    }

    // ---- the entry's own header ----

    void entry_header(const char* h) {
        char t = h[kTypeflag];
        bool gnu = has(h, kMagic, "ustar  \0"sv);
        bool ustar = !gnu && has(h, kMagic, "ustar"sv);
        format = gnu ? Format::Gnu : ustar ? (format == Format::Pax ? Format::Pax : Format::Ustar) : Format::Tar;
        if (t == '0' || t == 'S') sparse_allowed = true;

        std::int64_t size = lib_number(h + kSize, 12);
        if (size < 0 || size == kMax) return stop();  // libarchive: negative size, size overflow
        // The entry's fields are reset one by one: its strings keep their buffers from entry to entry.
        e.typeflag = t;
        e.gnu_tar_size = size;
        switch (t) {
            case '2': case '3': case '4': case '5': case '6': e.data = 0; break;
            case '1':
                e.data = size == 0 || format == Format::Tar || format == Format::Gnu ? 0
                         : format == Format::Pax                                     ? size
                         : lib_bid(h) > 50                                          ? 0
                                                                                    : size;
                break;
            default: e.data = size;
        }
        e.regular = t == '1' ? size > 0 : !(t >= '2' && t <= '6') && t != 'D' && t != 'M';
        e.lib_ext = e.go_ext = e.sparse = false;
        e.go_data.reset();
        e.sparse_sum = 0;
        e.map_bytes = 0;

        // What the header alone says, as libarchive reads it.
        e.name.clear();
        if (ustar && h[kPrefix] != '\0') {
            e.name = field(h, kPrefix, 155);
            if (!ends_with_slash(e.name)) e.name += '/';
        }
        e.name += field(h, kName, 100);
        e.link = field(h, kLinkname, 100);
        // libarchive keeps a link name buffer across entries: a link whose own linkname field is empty gets
        // a target only if some earlier header allocated that buffer.
        if (h[kLinkname] != '\0') linkname_buffer = true;
        link_set = linkname_buffer;

        // Old GNU sparse map: in the header, continued in extension blocks that follow it. libarchive
        // reads it for any GNU header whose first entry is set, Go only for type 'S'.
        if (gnu && h[kGnuSparse] != '\0') {
            if (!sparse_entries(h + kGnuSparse, 4)) return stop();
            e.lib_ext = h[kGnuIsExtended] != '\0';
        }
        e.go_ext = t == 'S' && gnu && h[kGnuIsExtended] != '\0';

        names(h, gnu, ustar);
        if (phase == Phase::Done) return;
        if (e.lib_ext) {
            phase = Phase::SparseExt;
            return;
        }
        after_header();
    }

    void sparse_ext_block(const char* b) {
        if (!sparse_entries(b, 21)) return stop();
        if (b[kExtIsExtended] == '\0') after_header();
    }

    // Entries until one whose offset field starts with NUL; false where libarchive fails the archive.
    bool sparse_entries(const char* p, int count) {
        for (int i = 0; i < count && p[i * kSparseEntry] != '\0'; ++i) {
            if (!add_sparse(lib_number(p + i * kSparseEntry, 12), lib_number(p + i * kSparseEntry + 12, 12))) {
                return false;
            }
        }
        return true;
    }

    bool add_sparse(std::int64_t offset, std::int64_t length) {
        if (length < 0 || offset < 0 || offset > kMax - length) return false;  // "Malformed sparse map data"
        e.sparse = true;
        add_saturating(e.sparse_sum, length);
        return true;
    }

    // Names, link targets and sizes as each reader sees them; refuses where they differ. On entry e.name
    // and e.link hold what the header alone says (as libarchive reads it); on return, libarchive's reading.
    // Runs for every entry: the common case (no extension headers, an ordinary magic) copies nothing.
    void names(const char* h, bool gnu, bool ustar) {
        char t = e.typeflag;
        if (!chain.problem.empty()) return refuse(chain.problem, best_effort_name(e.name));
        // libarchive applies the 'x' header's records in order, each overwriting the last. The views point
        // into chain.pax, which lives until the entry is done.
        std::optional<std::string_view> path, linkpath, sparse_name, size;
        std::optional<std::string_view> paths_differ, links_differ, sparse_names_differ, sizes_differ;
        auto note = [](std::optional<std::string_view>& slot, std::string_view value,
                       std::optional<std::string_view>& differ) {
            if (slot && *slot != value && !differ) differ = *slot;
            slot = value;
        };
        bool go_fails = false, sparse_map_go = false;
        std::optional<std::string_view> go_major, go_minor;
        int sparse_pairs = 0;  // Go accepts GNU.sparse.offset/numbytes only alternating
        for (const auto& r : chain.pax) {
            std::string_view value = c_string(r.value);
            if (r.key.compare(0, 10, "GNU.sparse") == 0) {
                if (!sparse_allowed) return stop();  // libarchive: non-regular file cannot be sparse
                if (!sparse_record(r.key, value)) return stop();
                if (r.key == "GNU.sparse.name") note(sparse_name, r.value, sparse_names_differ);
                if (r.key == "GNU.sparse.major") go_major = r.value;
                if (r.key == "GNU.sparse.minor") go_minor = r.value;
                if (r.key == "GNU.sparse.map") sparse_map_go = !r.value.empty();
                if (r.key == "GNU.sparse.offset" || r.key == "GNU.sparse.numbytes") {
                    if ((r.key == "GNU.sparse.offset") != (sparse_pairs % 2 == 0)) go_fails = true;
                    ++sparse_pairs;
                    sparse_map_go = true;
                }
            } else if (r.key == "path") {
                note(path, r.value, paths_differ);
                if (r.value.find('\0') != std::string::npos) go_fails = true;
            } else if (r.key == "linkpath") {
                note(linkpath, r.value, links_differ);
                if (r.value.find('\0') != std::string::npos) go_fails = true;
            } else if (r.key == "size") {
                note(size, r.value, sizes_differ);
                if (!plain_decimal(r.value)) {
                    return refuse("a PAX size that is not a plain decimal number (" + printable(r.value) +
                                      "; Python reads 0, Go refuses the archive)" + kOnWalk,
                                  best_effort_name(e.name));
                }
                e.data = e.gnu_tar_size = lib_decimal(value);
                if (e.data == kMax) return stop();  // libarchive: size attribute overflow
            }
        }

        // libarchive's reading: of the GNU long name and the 'x' header's name (the GNU sparse name, else
        // the PAX path), the one whose header comes first; else the header's.
        std::optional<std::string_view> pax_name;
        if (sparse_name && !c_string(*sparse_name).empty()) {
            pax_name = c_string(*sparse_name);
        } else if (path && !c_string(*path).empty()) {
            pax_name = c_string(*path);
        }
        const bool from_header = !chain.long_name && !pax_name;
        if (chain.long_name && (chain.long_name_first || !pax_name)) {
            e.name = *chain.long_name;
        } else if (pax_name) {
            e.name = *pax_name;
        }
        if (linkpath) linkname_buffer = true;
        if (chain.long_link) e.link = *chain.long_link;
        if (linkpath && !c_string(*linkpath).empty()) e.link = c_string(*linkpath);
        if (!link_set) e.link.clear();
        const std::string& lib_name = e.name;

        // Readers other than Go (GNU tar, Python, Rust's tar crate) where Go and libarchive agree.
        auto name_problem = [&](const std::string& what) { refuse(what + kOnName, lib_name); };
        if (paths_differ) {
            return name_problem("several PAX path records (" + printable(*paths_differ) + " and " + printable(*path) +
                                "; Rust's tar crate takes the first, the others the last)");
        }
        if (sparse_names_differ) {
            return name_problem("several GNU.sparse.name records (" + printable(*sparse_names_differ) + " and " +
                                printable(*sparse_name) + ")");
        }
        if (path && c_string(*path).empty()) {
            return name_problem("an empty PAX path (libarchive keeps the header's name, the others take it)");
        }
        if (sparse_name && c_string(*sparse_name).empty()) {
            return name_problem("an empty GNU.sparse.name (libarchive and Go ignore it, Python takes it)");
        }
        if (chain.long_name && chain.long_name->empty()) {
            return name_problem("an empty GNU long name (Go ignores it, the others take it)");
        }
        if (path && chain.long_name && c_string(*path) != *chain.long_name) {
            return name_problem("both a PAX path (" + printable(c_string(*path)) + ") and a GNU long name (" +
                                printable(*chain.long_name) + ")");
        }
        if (sparse_name && chain.long_name && c_string(*sparse_name) != *chain.long_name) {
            return name_problem("both a GNU.sparse.name (" + printable(c_string(*sparse_name)) +
                                ") and a GNU long name (" + printable(*chain.long_name) + ")");
        }
        if (sparse_name && path && c_string(*sparse_name) != c_string(*path)) {
            return name_problem("both a GNU.sparse.name (" + printable(c_string(*sparse_name)) + ") and a PAX path (" +
                                printable(c_string(*path)) + "; Python takes the later record)");
        }
        if (from_header && !gnu && !ustar && h[kPrefix] != '\0' && t != 'S') {
            return name_problem("an old-style header with text where ustar keeps a name prefix (Python's tarfile "
                                "joins it to the name)");
        }
        if (t == '1' || t == '2') {
            auto link_problem = [&](const std::string& what) { refuse(what + kOnLink, lib_name); };
            if (links_differ) {
                return link_problem("several PAX linkpath records (" + printable(*links_differ) + " and " +
                                    printable(*linkpath) + ")");
            }
            if (linkpath && c_string(*linkpath).empty()) {
                return link_problem("an empty PAX linkpath (libarchive keeps the header's, the others take it)");
            }
            if (chain.long_link && chain.long_link->empty()) {
                return link_problem("an empty GNU long link name (Go ignores it, the others take it)");
            }
            if (linkpath && chain.long_link && c_string(*linkpath) != *chain.long_link) {
                return link_problem("both a PAX linkpath (" + printable(c_string(*linkpath)) +
                                    ") and a GNU long link name (" + printable(*chain.long_link) + ")");
            }
            if (!link_set && (chain.long_link || linkpath)) {
                return link_problem("a target named only by an extension header, with an empty linkname field "
                                    "(libarchive then reads none)");
            }
        }
        if (sizes_differ) {
            return refuse("several PAX size records (" + printable(*sizes_differ) + " and " + printable(*size) +
                              "; Rust's tar crate takes the first, the others the last)" + kOnWalk,
                          lib_name);
        }
        if (sparse_pending && !(sparse_major == 1 && sparse_minor == 0)) {
            return refuse("a GNU sparse format version libarchive does not know (GNU.sparse.major " +
                              std::to_string(sparse_major) + ", minor " + std::to_string(sparse_minor) + ")" + kOnWalk,
                          lib_name);
        }
        if (t == 'S' && !gnu) go_fails = true;  // Go reads an old sparse map only in a GNU header

        // Go's reading. With the refusals above it can differ from libarchive's only in what the header
        // alone says (its prefix rules), or where Go ignores a GNU sparse name.
        bool go_sparse = (go_major == "0" && (go_minor == "0" || go_minor == "1")) ||
                         (go_major == "1" && go_minor == "0") || (!go_major && !go_minor && sparse_map_go);
        bool odd_prefix = gnu ? h[kGnuAtime] != '\0' || h[kGnuCtime] != '\0'
                              : ustar && h[kPrefix] != '\0' &&
                                    (!has(h, kMagic, "ustar\0"sv) || has(h, kStarTrailer, "tar\0"sv));
        bool guessed_prefix = false;
        std::optional<std::string> go_name;
        if (!go_fails && ((from_header && odd_prefix) || (sparse_name && (t == 'S' || !go_sparse)))) {
            go_name = go_header_name(h, guessed_prefix);
            if (path) go_name = std::string(*path);
            if (chain.long_name && !chain.long_name->empty()) go_name = *chain.long_name;
            if (!same_name(lib_name, *go_name)) {
                std::string why = guessed_prefix
                                      ? "an old GNU header whose time fields hold text, which Go's archive/tar reads "
                                        "as a name prefix (" + printable(*go_name) + ")"
                                  : from_header && ustar
                                      ? "a ustar name prefix that Go's archive/tar reads differently (" +
                                            printable(*go_name) + ": non-standard magic or star trailer)"
                                      : "a name Go's archive/tar reads as " + printable(*go_name);
                return name_problem(why);
            }
        }

        // What Go skips as data.
        if (!go_fails) {
            std::optional<std::int64_t> go_size = size ? std::optional<std::int64_t>(lib_decimal(*size))
                                                       : go_number(h + kSize, 12);
            char go_type = t;
            if (t == '\0') go_type = ends_with_slash(go_name ? *go_name : lib_name) ? '5' : '0';
            if (go_size && *go_size >= 0) {
                e.go_data = (go_type >= '1' && go_type <= '6') ? 0 : *go_size;
            }
        }
    }

    // The name libarchive gives an entry whose extension headers are refused anyway (for the message).
    std::string best_effort_name(std::string_view base) const {
        std::string path, sparse;
        for (const auto& r : chain.pax) {
            if (r.key == "path") path = c_string(r.value);
            if (r.key == "GNU.sparse.name") sparse = c_string(r.value);
        }
        std::string pax_name = sparse.empty() ? path : sparse;
        if (chain.long_name && (chain.long_name_first || pax_name.empty())) return *chain.long_name;
        return pax_name.empty() ? std::string(base) : pax_name;
    }

    // Go's name from the header alone (reader.go readHeader): the prefix depends on the exact magic.
    static std::string go_header_name(const char* h, bool& guessed) {
        std::string name(field(h, kName, 100));
        std::string prefix;
        if (has(h, kMagic, "ustar\0"sv) && has(h, kStarTrailer, "tar\0"sv)) {
            prefix = field(h, kPrefix, 131);
        } else if (has(h, kMagic, "ustar\0"sv)) {
            prefix = field(h, kPrefix, 155);
        } else if (has(h, kMagic, "ustar "sv) && has(h, kVersion, " \0"sv)) {
            // Pre-Go-1.8 writers put a prefix here: Go takes it when the times do not parse.
            bool bad = (h[kGnuAtime] != '\0' && !go_number(h + kGnuAtime, 12)) ||
                       (h[kGnuCtime] != '\0' && !go_number(h + kGnuCtime, 12));
            std::string_view text = field(h, kPrefix, 155);
            if (bad && std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
                prefix = text;
                guessed = !prefix.empty();
            }
        }
        return prefix.empty() ? name : prefix + "/" + name;
    }

    // Two readings of one name: the same bytes, or the same path once cleaned ("a//b" is "a/b").
    static bool same_name(const std::string& a, const std::string& b) {
        if (a == b) return true;
        auto ca = clean_entry_path(a), cb = clean_entry_path(b);
        return ca && cb && *ca == *cb;
    }

    // One GNU.sparse.* record, with libarchive's state (some of it kept across entries, as libarchive
    // keeps it); false where libarchive fails the archive.
    bool sparse_record(const std::string& key, std::string_view value) {
        if (key == "GNU.sparse.numblocks") {
            sparse_offset = sparse_numbytes = -1;
            sparse_major = sparse_minor = 0;
        } else if (key == "GNU.sparse.offset" || key == "GNU.sparse.numbytes") {
            bool offset = key == "GNU.sparse.offset";
            (offset ? sparse_offset : sparse_numbytes) = lib_decimal(value);
            if ((offset ? sparse_numbytes : sparse_offset) != -1) {
                if (!add_sparse(sparse_offset, sparse_numbytes)) return false;
                sparse_offset = sparse_numbytes = -1;
            }
        } else if (key == "GNU.sparse.map") {
            sparse_major = 0;
            sparse_minor = 1;
            return sparse_map_01(value);
        } else if (key == "GNU.sparse.major") {
            sparse_major = to_c_int(lib_decimal(value));
            sparse_pending = true;
        } else if (key == "GNU.sparse.minor") {
            sparse_minor = to_c_int(lib_decimal(value));
            sparse_pending = true;
        }
        return true;
    }

    // "offset,length,offset,length...": a bad digit ends the map (libarchive warns and keeps what it read).
    bool sparse_map_01(std::string_view text) {
        std::int64_t offset = -1;
        std::size_t start = 0;
        while (true) {
            std::size_t end = start;
            while (end < text.size() && text[end] != ',') {
                if (!is_digit(text[end])) return true;
                ++end;
            }
            std::int64_t v = lib_decimal(text.substr(start, end - start));
            if (offset < 0) {
                offset = v;
            } else {
                if (!add_sparse(offset, v)) return false;
                offset = -1;
            }
            if (end >= text.size()) return true;
            start = end + 1;
        }
    }

    // After the header (and any old GNU sparse blocks): a sparse 1.0 map at the start of the data, then
    // the walk check.
    void after_header() {
        if (sparse_pending) {  // known to be version 1.0: names() refused the others
            sparse_pending = false;
            e.sparse = false;  // libarchive drops the map read so far
            e.sparse_sum = 0;
            map = SparseMap{};
            map.remaining = e.data;
            phase = Phase::SparseMap;
            return;
        }
        walk();
    }

    // ---- GNU sparse 1.0: decimal lines at the start of the data ----

    struct SparseMap {
        std::int64_t remaining = 0;  // of the entry's data
        std::int64_t consumed = 0;   // line bytes
        std::string line;
        bool have_count = false;
        std::int64_t values_left = 0;
        std::int64_t offset = -1;
    };

    std::size_t map_bytes(std::span<const char> bytes) {
        std::size_t used = 0;
        while (used < bytes.size() && phase == Phase::SparseMap) {
            char c = bytes[used++];
            map.line += c;
            // A line may not be longer than 100 bytes nor than the data left (libarchive: "Line too long").
            if (static_cast<std::int64_t>(map.line.size()) > std::min<std::int64_t>(map.remaining, 100)) {
                stop();
                break;
            }
            if (c == '\n') map_line();
        }
        return used;
    }

    void map_line() {
        std::string line = std::move(map.line);
        map.line.clear();
        map.remaining -= static_cast<std::int64_t>(line.size());
        map.consumed += static_cast<std::int64_t>(line.size());
        if (line[0] == '#') return;  // comment lines are skipped
        std::int64_t v = 0;
        for (char c : line) {
            if (c == '\n') break;
            if (!is_digit(c)) return stop();
            int d = c - '0';
            v = (v > (kMax - d) / 10) ? kMax : v * 10 + d;
        }
        if (!map.have_count) {
            map.have_count = true;
            int count = to_c_int(v);
            if (count < 0) return stop();
            map.values_left = 2 * static_cast<std::int64_t>(count);
        } else if (map.offset < 0) {
            map.offset = v;
            --map.values_left;
        } else {
            if (!add_sparse(map.offset, v)) return stop();
            map.offset = -1;
            --map.values_left;
        }
        if (map.values_left == 0) {
            std::int64_t pad = static_cast<std::int64_t>(padding(static_cast<std::uint64_t>(map.consumed)));
            if (pad > map.remaining) return stop();
            e.map_bytes = map.consumed + pad;
            walk(static_cast<std::uint64_t>(pad));
        }
    }

    // ---- where the next entry starts ----

    void walk(std::uint64_t map_padding = 0) {
        auto pad = padding(static_cast<std::uint64_t>(e.data));
        auto left = static_cast<std::uint64_t>(e.data - e.map_bytes);  // after a sparse 1.0 map
        std::uint64_t covered = e.sparse ? std::min(e.sparse_sum, left) : left;
        std::uint64_t lib_skip = covered + pad;
        bool directory_name = e.regular && ends_with_slash(e.name);
        if (directory_name) lib_skip = 0;

        char t = e.typeflag;
        // Skipping an entry, libarchive fails once what its map still covers reaches 2^63 - 1 bytes,
        // and whether it read the data first depends on the entry's name and type: such maps are
        // refused whatever libarchive would do.
        if (e.sparse && e.sparse_sum >= (std::uint64_t{1} << 62)) {
            return refuse("a sparse map covering " + std::to_string(e.sparse_sum) + " bytes" + kOnWalk, e.name);
        }
        if (directory_name && e.data > 0) {
            return refuse("a name ending in / with " + std::to_string(e.data) +
                              " bytes of data (libarchive makes it a directory and skips nothing)" + kOnWalk,
                          e.name);
        }
        if (e.go_data) {
            if (e.lib_ext != e.go_ext) {
                return refuse(std::string("old GNU sparse extension blocks that only ") +
                                  (e.lib_ext ? "libarchive" : "Go's archive/tar") + " reads" + kOnWalk,
                              e.name);
            }
            std::uint64_t lib_total = static_cast<std::uint64_t>(e.map_bytes) + lib_skip;
            std::uint64_t go_total = round_up(static_cast<std::uint64_t>(*e.go_data));
            if (lib_total != go_total) {
                std::string what =
                    e.sparse && covered < left
                        ? "a sparse map covering " + std::to_string(covered) + " of its " + std::to_string(left) +
                              " bytes of data"
                        : std::string(kind_of(t)) + " whose data libarchive reads as " + std::to_string(e.data) +
                              " bytes and Go's archive/tar as " + std::to_string(*e.go_data);
                return refuse(what + kOnWalk, e.name);
            }
        }
        if (t == '2' || t == '3' || t == '4' || t == '6') {
            if (e.gnu_tar_size > 0) {
                return refuse(std::string(kind_of(t)) + " with a size of " + std::to_string(e.gnu_tar_size) +
                                  " (GNU tar skips that much as its data)" + kOnWalk,
                              e.name);
            }
        }

        if (observer) {
            std::string_view link = (t == '1' || t == '2') ? std::string_view(e.link) : std::string_view();
            TarCheckedEntry checked{passed + 1, chain.offset, e.name, link, t};
            // Called from the entry's own header block (no sparse blocks or map before its data).
            checked.plain_data = e.regular && t != '1' && t != 'S' && !e.sparse && !e.lib_ext && e.map_bytes == 0 &&
                                 !directory_name && e.data > 0;
            checked.data_offset = block_start + kBlock;
            checked.data_size = static_cast<std::uint64_t>(e.data);
            observer(checked);
        }
        ++passed;
        chain = Chain{};
        skip_then(map_padding + lib_skip, Phase::Header);
        skip_padding = pad;  // the tail of that skip that is only block padding
    }

    // ---- state ----

    Phase phase = Phase::Header;
    Phase after_skip = Phase::Header;
    State state = State::Checking;
    std::optional<TarFinding> finding;
    std::function<void(const TarCheckedEntry&)> observer;
    std::uint64_t position = 0;     // of the next byte fed
    std::uint64_t block_start = 0;  // of the block being parsed
    std::uint64_t passed = 0;       // entries that passed; the current one is passed + 1
    std::uint64_t skip = 0;
    std::uint64_t skip_padding = 0;  // how much of `skip` is block padding after an entry's data
    std::array<char, kBlock> buffer{};
    std::size_t held = 0;
    Ext ext_kind = Ext::Other;
    std::size_t ext_size = 0;
    std::string ext;
    Chain chain;
    Entry e;
    SparseMap map;
    // libarchive's state that outlives an entry.
    Format format = Format::Unset;
    bool sparse_allowed = false;
    bool linkname_buffer = false;  // tar->entry_linkpath has been allocated
    bool link_set = false;         // the current link entry has a target in libarchive
    std::int64_t sparse_offset = 0, sparse_numbytes = 0;
    int sparse_major = 0, sparse_minor = 0;
    bool sparse_pending = false;
};

TarCheck::TarCheck() : impl_(std::make_unique<Impl>()) {}
TarCheck::~TarCheck() = default;

void TarCheck::feed(std::span<const char> bytes) { impl_->feed(bytes); }
TarCheck::State TarCheck::state() const { return impl_->state; }
bool TarCheck::ended_cleanly() const { return impl_->ended_cleanly(); }
const std::optional<TarFinding>& TarCheck::finding() const { return impl_->finding; }
std::uint64_t TarCheck::entries() const { return impl_->passed; }
void TarCheck::set_observer(std::function<void(const TarCheckedEntry&)> observer) {
    impl_->observer = std::move(observer);
}

}  // namespace imgtool::layer
