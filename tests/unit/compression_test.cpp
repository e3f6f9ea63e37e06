// Layer compression: magic-byte detection and the gzip (ISA-L) / zstd decompressors on
// good, multi-member, truncated and trailing-garbage streams.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/layer/compression.hpp"
#include "imgtool/sys/reader.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
using imgtool::layer::Compression;
using imgtool::layer::compression_name;
using imgtool::layer::detect_compression;
using imgtool::layer::make_decompressor;
using imgtool::layer::PrefixReader;

using test_support::thrown_code;
using test_support::MemoryReader;

namespace {

// Fixtures. The gzip streams were made with python3's gzip module (compresslevel 9, mtime=0):
//   gzip.compress(b"hello, imgtool\n", 9, mtime=0)      -> kGzipHello
//   gzip.compress(b"second member\n", 9, mtime=0)       -> kGzipSecond
//   gzip.compress(b"\0" * 100000, 9, mtime=0)           -> kGzipZeros
// The zstd frames with the zstd 1.5.4 CLI (content checksum on, no content size since fed by a pipe):
//   printf 'hello, zstd\n' | zstd -q -19 -c              -> kZstdHello
//   head -c 300000 /dev/zero | zstd -q -19 -c            -> kZstdZeros
//   head -c 300000 /dev/zero | zstd -q --no-check -19 -c -> kZstdZerosNoCheck (no checksum after the data)
const unsigned char kGzipHello[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48,
    0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0xc8, 0xcc, 0x4d, 0x2f, 0xc9, 0xcf, 0xcf,
    0xe1, 0x02, 0x00, 0x4d, 0x63, 0x82, 0xca, 0x0f, 0x00, 0x00, 0x00,
};
const unsigned char kGzipSecond[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x2b, 0x4e, 0x4d, 0xce, 0xcf, 0x4b, 0x51,
    0xc8, 0x4d, 0xcd, 0x4d, 0x4a, 0x2d, 0xe2, 0x02, 0x00, 0x36, 0x18, 0x4b, 0x0e, 0x0e, 0x00, 0x00, 0x00,
};
const unsigned char kGzipZeros[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xc1, 0x31, 0x01, 0x00, 0x00, 0x00,
    0xc2, 0xa0, 0xf5, 0x4f, 0x6d, 0x0d, 0x0f, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0x57, 0x03, 0x7d, 0x95, 0x11, 0xd4, 0xa0, 0x86, 0x01, 0x00,
};
const unsigned char kZstdHello[] = {
    0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x68, 0x61, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c,
    0x6f, 0x2c, 0x20, 0x7a, 0x73, 0x74, 0x64, 0x0a, 0x84, 0x58, 0x5c, 0xa0,
};
const unsigned char kZstdZeros[] = {
    0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x68, 0x4c, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0xfc, 0xff,
    0x39, 0x10, 0x02, 0x02, 0x00, 0x10, 0x00, 0x03, 0x9f, 0x04, 0x00, 0x2d, 0x28, 0xde, 0x26,
};
const unsigned char kZstdZerosNoCheck[] = {
    0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x68, 0x4c, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00,
    0xfc, 0xff, 0x39, 0x10, 0x02, 0x02, 0x00, 0x10, 0x00, 0x03, 0x9f, 0x04, 0x00,
};

template <std::size_t N>
std::string bytes(const unsigned char (&array)[N]) {
    return std::string(reinterpret_cast<const char*>(array), N);
}

const std::string kGzHello = bytes(kGzipHello);
const std::string kGzSecond = bytes(kGzipSecond);
const std::string kGzZeros = bytes(kGzipZeros);
const std::string kZsHello = bytes(kZstdHello);
const std::string kZsZeros = bytes(kZstdZeros);
const std::string kZsZerosNoCheck = bytes(kZstdZerosNoCheck);

// Serves a string, at most `chunk` bytes per read.


std::string read_all(imgtool::sys::Reader& reader, std::size_t buffer_size) {
    std::string out;
    std::vector<char> buffer(buffer_size);
    while (std::size_t n = reader.read(buffer.data(), buffer.size())) out.append(buffer.data(), n);
    return out;
}

// Decompresses `data` reading the output through a buffer of `buffer_size` bytes; the source hands out
// at most `source_chunk` bytes per read.
std::string decompress(Compression c, const std::string& data, std::size_t buffer_size = 4096,
                       std::size_t source_chunk = SIZE_MAX) {
    MemoryReader source(data, source_chunk);
    auto reader = make_decompressor(c, source);
    return read_all(*reader, buffer_size);
}

std::error_code decompress_code(Compression c, const std::string& data, std::size_t buffer_size = 4096) {
    return thrown_code([&] { decompress(c, data, buffer_size); });
}

std::uint32_t crc32(std::string_view data) {
    std::uint32_t crc = 0xffffffffu;
    for (unsigned char c : data) {
        crc ^= c;
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void put_le(std::string& out, std::uint32_t value, int n) {
    for (int i = 0; i < n; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// A deflate stream of any size without a compressor: a run of stored blocks (RFC 1951 3.2.4: a 3-bit
// block header padded to a byte, LEN, ~LEN, then LEN raw bytes).
std::string deflate_stored(std::string_view data) {
    std::string out;
    std::size_t pos = 0;
    do {
        std::size_t n = std::min<std::size_t>(65535, data.size() - pos);
        bool last = pos + n == data.size();
        out += static_cast<char>(last ? 1 : 0);  // BFINAL, BTYPE=00
        put_le(out, static_cast<std::uint32_t>(n), 2);
        put_le(out, static_cast<std::uint32_t>(~n), 2);
        out.append(data.substr(pos, n));
        pos += n;
    } while (pos < data.size());
    return out;
}

// A gzip member (RFC 1952) around deflate_stored(data), after the given 10+-byte header.
std::string gzip_member(std::string header, std::string_view data) {
    std::string out = std::move(header);
    out += deflate_stored(data);
    put_le(out, crc32(data), 4);
    put_le(out, static_cast<std::uint32_t>(data.size()), 4);
    return out;
}

std::string gzip_stored(std::string_view data) {
    return gzip_member(std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10), data);
}

// A header with the optional fields of RFC 1952 2.3.1 that `gzip file` and other tools write.
std::string gzip_header_with(std::string_view extra, std::string_view name, std::string_view comment,
                             bool hcrc) {
    std::uint8_t flags = (hcrc ? 0x02 : 0) | (extra.empty() ? 0 : 0x04) | (name.empty() ? 0 : 0x08) |
                         (comment.empty() ? 0 : 0x10);
    std::string h("\x1f\x8b\x08", 3);
    h += static_cast<char>(flags);
    h += std::string("\x00\x00\x00\x00\x00\x03", 6);
    if (!extra.empty()) {
        put_le(h, static_cast<std::uint32_t>(extra.size()), 2);
        h += extra;
    }
    if (!name.empty()) (h += name) += '\0';
    if (!comment.empty()) (h += comment) += '\0';
    if (hcrc) put_le(h, crc32(h) & 0xffff, 2);
    return h;
}

// The size gzip_stored() gives n bytes: header 10 + trailer 8 + 5 per block of at most 65535 bytes.
std::size_t gzip_stored_size(std::size_t n) {
    return 18 + 5 * std::max<std::size_t>(1, (n + 65534) / 65535) + n;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) % 256);
    return s;
}

}  // namespace

// ---- detection ----

TEST_CASE("detect_compression reads the magic bytes") {
    CHECK(detect_compression(kGzHello) == Compression::Gzip);
    CHECK(detect_compression(kGzHello.substr(0, 2)) == Compression::Gzip);
    CHECK(detect_compression(kZsHello) == Compression::Zstd);
    CHECK(detect_compression(kZsHello.substr(0, 4)) == Compression::Zstd);
    CHECK(detect_compression("ustar archive") == Compression::None);
    CHECK(detect_compression(std::string(512, '\0')) == Compression::None);
}

TEST_CASE("detect_compression on short or near-miss inputs") {
    CHECK(detect_compression("") == Compression::None);
    CHECK(detect_compression("\x1f") == Compression::None);
    CHECK(detect_compression(kZsHello.substr(0, 3)) == Compression::None);  // zstd needs all four
    CHECK(detect_compression("\x1f\x8c") == Compression::None);
    CHECK(detect_compression("\x8b\x1f") == Compression::None);
    CHECK(detect_compression("\x28\xb5\x2f\xfe") == Compression::None);
    CHECK(detect_compression("\xfd\x2f\xb5\x28") == Compression::None);  // byte-swapped
    CHECK(detect_compression("BZh9") == Compression::None);              // bzip2 is not supported
}

TEST_CASE("compression_name") {
    CHECK(compression_name(Compression::None) == "none");
    CHECK(compression_name(Compression::Gzip) == "gzip");
    CHECK(compression_name(Compression::Zstd) == "zstd");
}

// ---- PrefixReader ----

TEST_CASE("PrefixReader replays the prefix, then continues with the rest") {
    for (std::size_t buffer_size : {std::size_t{1}, std::size_t{3}, std::size_t{100}}) {
        CAPTURE(buffer_size);
        MemoryReader rest("cdefgh", 2);
        PrefixReader reader("ab", rest);
        CHECK(read_all(reader, buffer_size) == "abcdefgh");
    }
    MemoryReader rest("xyz");
    PrefixReader empty_prefix("", rest);
    CHECK(read_all(empty_prefix, 8) == "xyz");
    MemoryReader none("");
    PrefixReader only_prefix("head", none);
    CHECK(read_all(only_prefix, 8) == "head");
}

TEST_CASE("make_decompressor(None) passes bytes through") {
    std::string data = pattern(10000);
    CHECK(decompress(Compression::None, data, 333) == data);
    CHECK(decompress(Compression::None, "") == "");
}

// ---- gzip ----

// Regression (fixed): GzipReader's constructor allocates its ISA-L state with `new inflate_state` (default-initialised:
// indeterminate bytes) and start_member() then saves state_->next_in / state_->avail_in from it and
// writes them back after isal_inflate_init(). The first read() therefore sees a garbage avail_in != 0,
// skips refill() and lets isal_inflate() read through a garbage next_in pointer. Input: kGzipHello (35
// bytes, any gzip stream) through make_decompressor(Compression::Gzip, ...). Observed: SIGSEGV in the
// first test below (with the poisoning operator new at the end of this file, on every run; without it,
// whenever the heap block is reused), and valgrind reports "Conditional jump or move depends on
// uninitialised value(s)" in GzipReader::read, "created by a heap allocation" in make_decompressor.
// Expected: the decoded bytes. Fix: `new inflate_state()` (value-initialise), or zero next_in/avail_in
// before the first start_member(). With that one-token change every test in this suite passes; remove
// the skip then.
TEST_SUITE("gzip decoding") {
    TEST_CASE("gzip: a single member decodes") {
        for (std::size_t buffer_size : {std::size_t{1}, std::size_t{5}, std::size_t{4096}}) {
            CAPTURE(buffer_size);
            CHECK(decompress(Compression::Gzip, kGzHello, buffer_size) == "hello, imgtool\n");
        }
    }

    TEST_CASE("gzip: a source that trickles one byte per read") {
        CHECK(decompress(Compression::Gzip, kGzHello, 4096, 1) == "hello, imgtool\n");
        CHECK(decompress(Compression::Gzip, kGzHello + kGzSecond, 3, 1) == "hello, imgtool\nsecond member\n");
    }

    TEST_CASE("gzip: highly compressed data through small output buffers") {
        for (std::size_t buffer_size : {std::size_t{1}, std::size_t{4096}, std::size_t{1} << 20}) {
            CAPTURE(buffer_size);
            CHECK(decompress(Compression::Gzip, kGzZeros, buffer_size) == std::string(100000, '\0'));
        }
    }

    TEST_CASE("gzip: concatenated members decode to the concatenation") {
        CHECK(decompress(Compression::Gzip, kGzHello + kGzSecond) == "hello, imgtool\nsecond member\n");
        CHECK(decompress(Compression::Gzip, kGzHello + kGzSecond, 1) == "hello, imgtool\nsecond member\n");
        CHECK(decompress(Compression::Gzip, kGzSecond + kGzHello + kGzSecond) ==
              "second member\nhello, imgtool\nsecond member\n");
        CHECK(decompress(Compression::Gzip, kGzZeros + kGzHello) ==
              std::string(100000, '\0') + "hello, imgtool\n");
    }

    TEST_CASE("gzip: stored-block members built by the test decode (the helper is sound)") {
        CHECK(decompress(Compression::Gzip, gzip_stored("hello")) == "hello");
        CHECK(decompress(Compression::Gzip, gzip_stored("")) == "");
        std::string big = pattern(200000);  // four stored blocks
        CHECK(decompress(Compression::Gzip, gzip_stored(big), 65536) == big);
        CHECK(decompress(Compression::Gzip, gzip_stored("a") + gzip_stored(big)) == "a" + big);
    }

    TEST_CASE("gzip: optional header fields (name, comment, extra, header CRC) are skipped") {
        const std::string data = "payload\n";
        CHECK(decompress(Compression::Gzip,
                         gzip_member(gzip_header_with("", "layer.tar", "", false), data)) == data);
        CHECK(decompress(Compression::Gzip,
                         gzip_member(gzip_header_with("AB\x02\x00xy", "layer.tar", "made by a test", true),
                                     data)) == data);
        // Long fields, longer than any fixed buffer a decoder might keep for them.
        std::string long_name(5000, 'n');
        std::string long_extra = "XY" + std::string("\xf0\x0f", 2) + std::string(4080, 'e');
        CHECK(decompress(Compression::Gzip,
                         gzip_member(gzip_header_with(long_extra, long_name, long_name, true), data)) ==
              data);
        CHECK(
            decompress(Compression::Gzip,
                       gzip_member(gzip_header_with("", long_name, "", false), data) + gzip_stored("second"),
                       4096, 1) == data + "second");
    }

    TEST_CASE("gzip: members and trailers that straddle the decoder's input chunk") {
        // compression.cpp reads its input 1 MiB at a time. Put the end of a first member (its 8-byte
        // trailer) and the start of a second (its 10-byte header) across that boundary at every offset.
        constexpr std::size_t kChunk = std::size_t{1} << 20;
        const std::string tail = "tail member";
        for (int delta = -12; delta <= 9; ++delta) {
            CAPTURE(delta);
            std::size_t target = kChunk + static_cast<std::size_t>(static_cast<long>(delta));
            std::size_t n = target - 200;
            while (gzip_stored_size(n) < target) ++n;
            std::string data = pattern(n);
            std::string first = gzip_stored(data);
            REQUIRE(first.size() == target);
            CHECK(decompress(Compression::Gzip, first, 1 << 16) ==
                  data);  // single member, trailer at the edge
            std::string both = decompress(Compression::Gzip, first + gzip_stored(tail), 1 << 16);
            CHECK(both.size() == n + tail.size());
            CHECK(both == data + tail);
        }
    }

    TEST_CASE("gzip: every truncation is Corrupt") {
        for (std::size_t n = 0; n < kGzHello.size(); ++n) {
            CAPTURE(n);
            CHECK(decompress_code(Compression::Gzip, kGzHello.substr(0, n)) ==
                  make_error_code(Errc::Corrupt));
        }
        // A truncated second member, too.
        for (std::size_t n = 1; n < kGzSecond.size(); ++n) {
            CAPTURE(n);
            CHECK(decompress_code(Compression::Gzip, kGzHello + kGzSecond.substr(0, n)) ==
                  make_error_code(Errc::Corrupt));
        }
    }

    TEST_CASE("gzip: trailing garbage is Corrupt") {
        for (const std::string& garbage :
             {std::string("x"), std::string(1, '\0'), std::string(8, '\0'), std::string("\x1f"),
              std::string("\x1f\x8b"), std::string("\x1f\x8b\x08"), std::string("\x1fXXXXXXXXXXXXXXXXXX"),
              std::string("PK\x03\x04")}) {
            CAPTURE(garbage);
            CHECK(decompress_code(Compression::Gzip, kGzHello + garbage) == make_error_code(Errc::Corrupt));
        }
    }

    TEST_CASE("gzip: checksum and length mismatches are Corrupt") {
        std::string bad_crc = kGzHello;
        bad_crc[bad_crc.size() - 8] ^= 0x01;
        CHECK(decompress_code(Compression::Gzip, bad_crc) == make_error_code(Errc::Corrupt));
        std::string bad_isize = kGzHello;
        bad_isize[bad_isize.size() - 4] ^= 0x01;
        CHECK(decompress_code(Compression::Gzip, bad_isize) == make_error_code(Errc::Corrupt));
        std::string bad_data = gzip_stored("hello");
        bad_data[15] ^= 0x20;  // a stored byte: only the CRC can notice
        CHECK(decompress_code(Compression::Gzip, bad_data) == make_error_code(Errc::Corrupt));
    }

    TEST_CASE("gzip: non-gzip input is Corrupt") {
        CHECK(decompress_code(Compression::Gzip, "plain text, not gzip") == make_error_code(Errc::Corrupt));
        std::string bad_method = kGzHello;
        bad_method[2] = 7;  // CM must be 8 (deflate)
        CHECK(decompress_code(Compression::Gzip, bad_method) == make_error_code(Errc::Corrupt));
        CHECK(decompress_code(Compression::Gzip, kZsHello) == make_error_code(Errc::Corrupt));
    }

    TEST_CASE("gzip: an empty stream is Corrupt") {
        CHECK(decompress_code(Compression::Gzip, "") == make_error_code(Errc::Corrupt));
    }
}

// ---- zstd ----

TEST_CASE("zstd: a frame decodes") {
    for (std::size_t buffer_size : {std::size_t{1}, std::size_t{4}, std::size_t{4096}}) {
        CAPTURE(buffer_size);
        CHECK(decompress(Compression::Zstd, kZsHello, buffer_size) == "hello, zstd\n");
    }
    CHECK(decompress(Compression::Zstd, kZsHello, 4096, 1) == "hello, zstd\n");
}

TEST_CASE("zstd: highly compressed data with an output buffer that holds all of it") {
    CHECK(decompress(Compression::Zstd, kZsZeros, std::size_t{1} << 20) == std::string(300000, '\0'));
}

TEST_CASE("zstd: decoded bytes buffered inside zstd are flushed through small output buffers") {
    // 30 bytes that expand to 300,000: most of the output is still inside zstd when the input is used up.
    for (std::size_t buffer_size : {std::size_t{1}, std::size_t{4096}, std::size_t{65536}}) {
        CAPTURE(buffer_size);
        CHECK(decompress(Compression::Zstd, kZsZeros, buffer_size) == std::string(300000, '\0'));
        CHECK(decompress(Compression::Zstd, kZsZerosNoCheck, buffer_size) == std::string(300000, '\0'));
        CHECK(decompress(Compression::Zstd, kZsZerosNoCheck, buffer_size, 1) == std::string(300000, '\0'));
    }
    CHECK(decompress(Compression::Zstd, kZsZeros + kZsHello, 4096) ==
          std::string(300000, '\0') + "hello, zstd\n");
    CHECK(decompress(Compression::Zstd, kZsZerosNoCheck + kZsHello, 4096) ==
          std::string(300000, '\0') + "hello, zstd\n");
}

TEST_CASE("zstd: concatenated frames decode to the concatenation") {
    CHECK(decompress(Compression::Zstd, kZsHello + kZsHello) == "hello, zstd\nhello, zstd\n");
    CHECK(decompress(Compression::Zstd, kZsHello + kZsZeros, std::size_t{1} << 20) ==
          "hello, zstd\n" + std::string(300000, '\0'));
}

TEST_CASE("zstd: every truncation is Corrupt") {
    for (std::size_t n = 1; n < kZsHello.size(); ++n) {
        CAPTURE(n);
        CHECK(decompress_code(Compression::Zstd, kZsHello.substr(0, n)) == make_error_code(Errc::Corrupt));
    }
    for (std::size_t n = 1; n < kZsZeros.size(); ++n) {
        CAPTURE(n);
        CHECK(decompress_code(Compression::Zstd, kZsZeros.substr(0, n), std::size_t{1} << 20) ==
              make_error_code(Errc::Corrupt));
    }
    for (std::size_t n = 1; n < kZsHello.size(); ++n) {
        CAPTURE(n);
        CHECK(decompress_code(Compression::Zstd, kZsHello + kZsHello.substr(0, n)) ==
              make_error_code(Errc::Corrupt));
    }
}

// BUG (minor): an empty stream decodes to nothing instead of failing, unlike the gzip reader (Corrupt)
// and the zstd CLI ("unexpected end of file"). Input: zero bytes to make_decompressor(Zstd). Observed:
// read() returns 0. Expected: Errc::Corrupt, a zstd stream has at least one frame.
TEST_CASE("zstd: an empty stream is Corrupt") {
    CHECK(decompress_code(Compression::Zstd, "") == make_error_code(Errc::Corrupt));
}

TEST_CASE("zstd: trailing garbage and corruption are Corrupt") {
    for (const std::string& garbage :
         {std::string("x"), std::string(8, '\0'), std::string("garbage!"), kGzHello, kZsHello.substr(0, 4)}) {
        CAPTURE(garbage);
        CHECK(decompress_code(Compression::Zstd, kZsHello + garbage) == make_error_code(Errc::Corrupt));
    }
    std::string bad_checksum = kZsHello;
    bad_checksum.back() ^= 0x01;
    CHECK(decompress_code(Compression::Zstd, bad_checksum) == make_error_code(Errc::Corrupt));
    std::string bad_data = kZsHello;
    bad_data[12] ^= 0x01;  // a literal byte of the raw block: only the checksum can notice
    CHECK(decompress_code(Compression::Zstd, bad_data) == make_error_code(Errc::Corrupt));
    CHECK(decompress_code(Compression::Zstd, "not zstd at all") == make_error_code(Errc::Corrupt));
    CHECK(decompress_code(Compression::Zstd, kGzHello) == make_error_code(Errc::Corrupt));
}

// ---- test-binary allocator ----

// Every block from operator new starts filled with 0xa5, as debug heaps do, so code under test that
// reads uninitialised heap memory misbehaves the same way on every run instead of only when glibc
// hands back a dirty block (see the gzip BUG above). Replaces the global allocation functions for
// the whole unit_tests binary; the array and nothrow forms forward here by default.
void* operator new(std::size_t size) {
    void* p = std::malloc(size == 0 ? 1 : size);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0xa5, size);
    return p;
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
