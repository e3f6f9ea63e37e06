// Random tar archives made of the headers tar readers disagree about (extension header chains, odd
// magics, size encodings, links with data, sparse maps), whose data blocks often hold valid headers,
// so that any step the checker takes differently from libarchive shows as different entries.
// Driven by a Source: a seeded PRNG in the unit test, the fuzzer's bytes in fuzz_tar_check.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tar_build.hpp"

namespace tar_gen {

class Source {
public:
    virtual ~Source() = default;
    virtual std::uint64_t below(std::uint64_t n) = 0;  // in [0, n); n > 0
    bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }
    // An oddity, more or less often depending on how wild this archive is (0: none at all).
    bool odd(int percent) { return wild > 0 && chance(percent * wild); }
    int wild = 1;
    template <typename T>
    const T& pick(const std::vector<T>& from) {
        return from[below(from.size())];
    }
};

inline std::string name(Source& s) {
    static const std::vector<std::string> names = {
        "a", "b", "dir/", "dir/f", "x/y/z", "../up", "/abs", "./dot", "", "f/", "bin/sh",
        std::string(99, 'n'), std::string(100, 'n'), std::string(120, 'l') + "/tail", "a//b",
    };
    std::string n = s.pick(names);
    if (s.chance(20)) n += std::to_string(s.below(10));
    return n;
}

inline std::string number_text(Source& s) {
    static const std::vector<std::string> sizes = {"0", "1", "2", "511", "512", "513", "1024", "1536", "12x",
                                                   "+5", "", " 7", "-1", "99999999999999999999", "0001"};
    return s.pick(sizes);
}

inline std::uint64_t size_value(Source& s) {
    static const std::vector<std::uint64_t> sizes = {0, 1, 2, 100, 511, 512, 513, 1000, 1024, 1536, 3000};
    return s.pick(sizes);
}

inline tar_build::Records records(Source& s) {
    tar_build::Records out;
    std::uint64_t n = 1 + s.below(4);
    for (std::uint64_t i = 0; i < n; ++i) {
        switch (s.below(14)) {
            case 0: case 1: out.emplace_back("path", name(s)); break;
            case 2: out.emplace_back("linkpath", name(s)); break;
            case 3: case 4: out.emplace_back("size", number_text(s)); break;
            case 5: out.emplace_back("GNU.sparse.major", s.chance(80) ? "1" : "0"); break;
            case 6: out.emplace_back("GNU.sparse.minor", s.chance(80) ? "0" : "1"); break;
            case 7: out.emplace_back("GNU.sparse.name", name(s)); break;
            case 8: out.emplace_back("GNU.sparse.map", s.chance(50) ? "0,10,600,5" : "0,1x"); break;
            case 9: out.emplace_back(s.chance(50) ? "GNU.sparse.offset" : "GNU.sparse.numbytes", number_text(s)); break;
            case 10: out.emplace_back("GNU.sparse.realsize", "5000"); break;
            case 11: out.emplace_back("mtime", "1.5"); break;
            case 12: out.emplace_back("path", std::string("nul\0tail", 8)); break;
            default: out.emplace_back("comment", "c"); break;
        }
    }
    return out;
}

// Bytes that would be a header (and its data) if a reader looked there.
inline std::string hidden_entry(Source& s) {
    return tar_build::file(s.chance(50) ? "hidden" : "bin/sh", s.chance(50) ? "h\n" : "");
}

inline std::string data_bytes(Source& s, std::uint64_t size) {
    std::uint64_t length = size;
    switch (s.below(6)) {
        case 0: length = 0; break;
        case 1: length = size + 512; break;
        case 2: length = size > 512 ? size - 512 : 0; break;
        default: break;
    }
    std::string out;
    if (s.chance(40)) out = hidden_entry(s);
    if (s.odd(15)) {
        for (int i = 0; i < 16; ++i) out += static_cast<char>(s.below(256));
    }
    out.resize(length, s.chance(80) ? '\0' : 'd');
    return tar_build::pad(out);
}

inline std::string sparse_map_text(Source& s) {
    switch (s.below(5)) {
        case 0: return tar_build::sparse_10_map({{0, 10}, {600, 5}});
        case 1: return tar_build::sparse_10_map({});
        case 2: return tar_build::pad("#c\n1\n0\n" + std::to_string(size_value(s)) + "\n");
        case 3: return tar_build::pad("1000000000\n0\n1\n");
        default: return tar_build::pad("2\n0\n5x\n");
    }
}

inline tar_build::Header entry_header(Source& s, char typeflag) {
    using tar_build::Magic;
    Magic magic = s.chance(60) ? Magic::Ustar : s.chance(60) ? Magic::Gnu : Magic::V7;
    tar_build::Header h(name(s), typeflag, magic);
    std::uint64_t size = size_value(s);
    if (s.chance(15)) {
        h.size_base256(size);
    } else if (s.odd(10)) {
        switch (s.below(3)) {
            case 0: h.put(124, std::string("\0\0\0\0\0\0" "1000\0", 11)); break;
            case 1: h.put(124, "  1000 \0"); break;
            default: h.put(124, "0000001000 x"); break;
        }
    } else {
        h.size(size);
    }
    if (s.chance(20)) h.link(name(s));
    if (s.chance(15)) h.prefix(s.odd(30) ? std::string(140, 'p') + "0000000" : "pre");
    if (s.odd(5)) h.put(345, s.chance(50) ? "text" : "00000000001");  // GNU atime (or prefix)
    if (s.odd(4)) h.put(257, s.chance(50) ? std::string("ustar\1", 6) : std::string("ustar \0\0", 8));
    if (s.odd(4)) h.put(508, std::string("tar\0", 4));
    if (s.odd(4)) h.put(263, "  ");  // version: libarchive's hard link heuristic looks at it
    if (s.odd(4)) {                  // old GNU sparse fields
        h.octal(386, 12, s.below(2000)).octal(398, 12, s.below(2000));
        if (s.chance(50)) h.put(482, "\1");
    }
    if (s.odd(3)) h.put(329, "12x");  // a device field libarchive's bid rejects
    return h;
}

inline std::string item(Source& s) {
    static const std::vector<char> types = {'0', '0', '0', '\0', '1', '1', '2', '3', '5', '5', '6', '7', 'D',
                                            'M', 'N', 'S', 'Z', 'x', 'x', 'x', 'g', 'L', 'L', 'K', 'A', 'X', 'V',
                                            'P', 'Q', 'R'};
    static const std::vector<char> mild = {'0', '0', '0', '0', '1', '2', '5', '5', 'x', 'L', 'K', 'g', 'S', 'P', 'Q', 'R'};
    char t = s.wild ? s.pick(types) : s.pick(mild);
    switch (t) {
        case 'x': case 'g': case 'X': {
            auto recs = records(s);
            std::string body = tar_build::pax_body(recs);
            if (s.odd(3)) body += s.chance(50) ? "5 a\n" : "5 =a\n";  // malformed (the second: fatal)
            return tar_build::Header("PaxHeader", t).size(body.size()).str() + tar_build::pad(body);
        }
        case 'L': case 'K': return tar_build::gnu_long(name(s), t);
        case 'P': case 'Q': case 'R': {  // PAX sparse 1.0, 0.1, 0.0 (the map right or not)
            std::uint64_t chunks = s.below(4), covered = 0;
            std::vector<std::pair<std::uint64_t, std::uint64_t>> map;
            for (std::uint64_t i = 0; i < chunks; ++i) {
                map.emplace_back(i * 4096, s.chance(50) ? 512 : 100);
                covered += map.back().second;
            }
            tar_build::Records recs{{"GNU.sparse.name", name(s)}, {"GNU.sparse.realsize", "20000"}};
            std::string text;
            if (t == 'P') {
                recs.insert(recs.begin(), {{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}});
                text = tar_build::sparse_10_map(map);
            } else if (t == 'Q') {
                std::string m;
                for (auto& [o, l] : map) m += (m.empty() ? "" : ",") + std::to_string(o) + "," + std::to_string(l);
                recs.emplace_back("GNU.sparse.numblocks", std::to_string(map.size()));
                recs.emplace_back("GNU.sparse.map", m);
            } else {
                recs.emplace_back("GNU.sparse.numblocks", std::to_string(map.size()));
                for (auto& [o, l] : map) {
                    recs.emplace_back("GNU.sparse.offset", std::to_string(o));
                    recs.emplace_back("GNU.sparse.numbytes", std::to_string(l));
                }
            }
            std::uint64_t size = text.size() + covered;
            if (s.odd(30)) size = s.chance(50) ? size + 512 : (size > 100 ? size - 100 : 0);
            std::string data = text + std::string(covered, 'v');
            return tar_build::pax(recs) + tar_build::entry(tar_build::Header("GNUSparseFile.0/x").size(size), data);
        }
        case 'A': return tar_build::raw_extension("1\0", 'A');
        case 'V': return tar_build::Header("label", 'V', tar_build::Magic::Gnu).str();
        case 'S':
            if (s.chance(60)) {
                std::vector<std::pair<std::uint64_t, std::uint64_t>> map;
                std::uint64_t n = s.below(30);
                for (std::uint64_t i = 0; i < n; ++i) map.emplace_back(1 + i * 1000, s.chance(80) ? 1 : 600);
                std::uint64_t covered = 0;
                for (auto& [o, l] : map) covered += l;
                std::uint64_t size = s.chance(70) ? covered : size_value(s);
                return tar_build::gnu_sparse(name(s), 100000, map, size, s.chance(80) ? 'S' : '0') +
                       data_bytes(s, size);
            }
            [[fallthrough]];
        default: {
            tar_build::Header h = entry_header(s, t);
            std::string out = h.str();
            if (s.odd(5)) out += sparse_map_text(s);
            return out + data_bytes(s, size_value(s));
        }
    }
}

inline std::string archive(Source& s) {
    s.wild = static_cast<int>(s.below(3));
    std::string out;
    std::uint64_t n = 1 + s.below(s.wild ? 8 : 16);
    for (std::uint64_t i = 0; i < n; ++i) out += item(s);
    if (s.chance(85)) out += tar_build::eof();
    if (s.chance(10)) out += tar_build::file("after-end", "x");
    return out;
}

}  // namespace tar_gen
