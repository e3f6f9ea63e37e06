// Raw tar headers built in memory for the tar checker's tests (tar_check_test.cpp, the libarchive
// comparison, fuzz_tar_check): any field can be set to anything, the checksum is fixed up last.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tar_build {

constexpr std::size_t kBlock = 512;

enum class Magic { Ustar, Gnu, V7 };

class Header {
public:
    explicit Header(std::string_view name = {}, char typeflag = '0', Magic magic = Magic::Ustar) {
        put(0, name.substr(0, 100));
        octal(100, 8, 0644);
        octal(108, 8, 0);
        octal(116, 8, 0);
        octal(124, 12, 0);
        octal(136, 12, 1700000000);
        b_[156] = typeflag;
        if (magic == Magic::Ustar) put(257, std::string_view("ustar\0" "00", 8));
        if (magic == Magic::Gnu) put(257, std::string_view("ustar  \0", 8));
    }
    Header& size(std::uint64_t n) { return octal(124, 12, n); }
    Header& size_base256(std::uint64_t n) {
        b_[124] = static_cast<char>(0x80);
        for (int i = 0; i < 11; ++i) b_[135 - i] = static_cast<char>(i < 8 ? (n >> (8 * i)) & 0xff : 0);
        return *this;
    }
    Header& link(std::string_view target) { return put(157, target.substr(0, 100)); }
    Header& prefix(std::string_view p) { return put(345, p.substr(0, 155)); }
    Header& typeflag(char t) {
        b_[156] = t;
        return *this;
    }
    // Raw bytes at an offset (placed as they are; the checksum is computed over them).
    Header& put(std::size_t offset, std::string_view bytes) {
        std::memcpy(b_ + offset, bytes.data(), std::min(bytes.size(), kBlock - offset));
        return *this;
    }
    Header& octal(std::size_t offset, std::size_t width, std::uint64_t value) {
        std::string digits(width, '\0');
        std::snprintf(digits.data(), width, "%0*llo", static_cast<int>(width - 1),
                      static_cast<unsigned long long>(value));
        return put(offset, digits);
    }
    // The block, with a valid checksum unless one was set by hand with keep_checksum().
    std::string str() const {
        std::string h(b_, kBlock);
        if (!keep_checksum_) {
            std::memset(h.data() + 148, ' ', 8);
            unsigned sum = 0;
            for (unsigned char c : h) sum += c;
            std::snprintf(h.data() + 148, 8, "%06o", sum);
        }
        return h;
    }
    Header& keep_checksum() {
        keep_checksum_ = true;
        return *this;
    }

private:
    char b_[kBlock] = {};
    bool keep_checksum_ = false;
};

inline std::string pad(std::string data) {
    data.resize((data.size() + kBlock - 1) / kBlock * kBlock, '\0');
    return data;
}

// "<len> key=value\n", where len counts itself.
inline std::string pax_record(std::string_view key, std::string_view value) {
    std::size_t body = 1 + key.size() + 1 + value.size() + 1;
    std::size_t len = body + 1;
    while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
    return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

using Records = std::vector<std::pair<std::string, std::string>>;

inline std::string pax_body(const Records& records) {
    std::string out;
    for (const auto& [k, v] : records) out += pax_record(k, v);
    return out;
}

// An extension header ('x', 'g', 'X') with its data.
inline std::string pax(const Records& records, char typeflag = 'x') {
    std::string body = pax_body(records);
    return Header("PaxHeader", typeflag).size(body.size()).str() + pad(body);
}

inline std::string raw_extension(std::string_view body, char typeflag) {
    return Header("././@LongLink", typeflag, Magic::Gnu).size(body.size()).str() + pad(std::string(body));
}

// A GNU long name ('L') or link ('K'), NUL-terminated as GNU tar writes it.
inline std::string gnu_long(std::string_view value, char typeflag = 'L') {
    return raw_extension(std::string(value) + '\0', typeflag);
}

inline std::string file(std::string_view name, std::string_view data, Magic magic = Magic::Ustar) {
    return Header(name, '0', magic).size(data.size()).str() + pad(std::string(data));
}

inline std::string entry(const Header& h, std::string_view data = {}) { return h.str() + pad(std::string(data)); }

inline std::string eof() { return std::string(2 * kBlock, '\0'); }

// Old GNU sparse ('S'): up to 4 (offset, length) pairs in the header, the rest in extension blocks of 21.
inline std::string gnu_sparse(std::string_view name, std::uint64_t realsize,
                              const std::vector<std::pair<std::uint64_t, std::uint64_t>>& map, std::uint64_t size,
                              char typeflag = 'S') {
    Header h(name, typeflag, Magic::Gnu);
    h.size(size).octal(483, 12, realsize);
    std::size_t in_header = std::min<std::size_t>(4, map.size());
    for (std::size_t i = 0; i < in_header; ++i) h.octal(386 + 24 * i, 12, map[i].first).octal(398 + 24 * i, 12, map[i].second);
    std::string out;
    std::vector<std::string> blocks;
    for (std::size_t i = in_header; i < map.size(); i += 21) {
        std::string b(kBlock, '\0');
        for (std::size_t j = 0; j < 21 && i + j < map.size(); ++j) {
            std::snprintf(b.data() + 24 * j, 12, "%011llo", static_cast<unsigned long long>(map[i + j].first));
            std::snprintf(b.data() + 24 * j + 12, 12, "%011llo", static_cast<unsigned long long>(map[i + j].second));
        }
        blocks.push_back(std::move(b));
    }
    if (!blocks.empty()) h.put(482, std::string_view("\1", 1));
    for (std::size_t i = 0; i + 1 < blocks.size(); ++i) blocks[i][504] = 1;
    out = h.str();
    for (const auto& b : blocks) out += b;
    return out;
}

// PAX sparse 1.0: the map as decimal lines at the start of the data, padded to a block.
inline std::string sparse_10_map(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& map) {
    std::string text = std::to_string(map.size()) + "\n";
    for (const auto& [offset, length] : map) text += std::to_string(offset) + "\n" + std::to_string(length) + "\n";
    return pad(text);
}

}  // namespace tar_build
