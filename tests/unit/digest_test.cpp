// Digest parsing (the gate that keeps untrusted digests out of store paths) and Sha256 known vectors.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>

#include "imgtool/core/error.hpp"
#include "imgtool/digest/digest.hpp"
#include "imgtool/digest/sha256.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
using imgtool::digest::Digest;
using imgtool::digest::Sha256;

using test_support::thrown_code;

namespace {

// The code of the imgtool::Error that fn throws; a default (success) code if it returns normally.
// std::error_code prints as "imgtool:6", so a failing CHECK shows what was thrown instead.

const std::string kEmptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kAbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

}  // namespace

TEST_CASE("Digest::parse accepts sha256 with 64 lower-case hex digits") {
    Digest d = Digest::parse("sha256:" + kAbcHex);
    CHECK(d.hex() == kAbcHex);
    CHECK(d.str() == "sha256:" + kAbcHex);
    CHECK(d.algorithm() == "sha256");
    CHECK(d.short_hex() == "ba7816bf8f01");
}

TEST_CASE("Digest::parse rejects malformed digests with InvalidArgument") {
    const std::string hex63 = kAbcHex.substr(0, 63);
    const std::string upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
    std::string non_hex = kAbcHex;
    non_hex[10] = 'g';
    std::string with_nul = kAbcHex;
    with_nul[63] = '\0';
    const std::string cases[] = {
        "",                                                            // empty
        kAbcHex,                                                       // no algorithm, no colon
        "sha256:../../x",                                              // path traversal attempt
        "sha256:",                                                     // empty hex
        "sha256:" + hex63,                                             // one digit short
        "sha256:" + kAbcHex + "0",                                     // one digit long
        "sha256:" + kAbcHex + "\n",                                    // trailing newline
        "sha256:" + upper,                                             // upper-case hex
        "sha256:" + kAbcHex.substr(0, 32) + "A" + kAbcHex.substr(33),  // one upper-case digit
        "sha256:" + non_hex,                                           // non-hex letter
        "sha256:" + with_nul,                                          // embedded NUL
        "sha256:" + kAbcHex.substr(0, 62) + "/x",                      // separator inside
        "sha256::" + hex63,                                            // second colon
    };
    for (const std::string& text : cases) {
        CAPTURE(text);
        CHECK(thrown_code([&] { Digest::parse(text); }) == make_error_code(Errc::InvalidArgument));
    }
}

TEST_CASE("Digest::parse rejects other algorithms with Unsupported") {
    const std::string sha512 = "sha512:" + kAbcHex + kAbcHex;
    CHECK(thrown_code([&] { Digest::parse(sha512); }) == make_error_code(Errc::Unsupported));
    CHECK(thrown_code([&] { Digest::parse("SHA256:" + kAbcHex); }) == make_error_code(Errc::Unsupported));
    CHECK(thrown_code([&] { Digest::parse(":" + kAbcHex); }) == make_error_code(Errc::Unsupported));
    CHECK(thrown_code([&] { Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e"); }) ==
          make_error_code(Errc::Unsupported));
}

TEST_CASE("Digest error messages quote the offending text without raw control bytes") {
    try {
        Digest::parse("sha256:\x1b[31mred");
        FAIL("no exception");
    } catch (const imgtool::Error& e) {
        std::string what = e.what();
        CHECK(what.find('\x1b') == std::string::npos);
        CHECK(what.find("\\x1b[31mred") != std::string::npos);
    }
}

TEST_CASE("Digest::sha256_hex validates the raw hex") {
    CHECK(Digest::sha256_hex(kEmptyHex).str() == "sha256:" + kEmptyHex);
    CHECK(thrown_code([] { Digest::sha256_hex(""); }) == make_error_code(Errc::InvalidArgument));
    CHECK(thrown_code([&] { Digest::sha256_hex("sha256:" + kEmptyHex); }) ==
          make_error_code(Errc::InvalidArgument));
    CHECK(thrown_code([&] { Digest::sha256_hex(kEmptyHex.substr(1)); }) ==
          make_error_code(Errc::InvalidArgument));
    std::string upper = kEmptyHex;
    upper[0] = 'E';
    CHECK(thrown_code([&] { Digest::sha256_hex(upper); }) == make_error_code(Errc::InvalidArgument));
    CHECK(thrown_code([] { Digest::sha256_hex(std::string(62, 'a') + "/x"); }) ==
          make_error_code(Errc::InvalidArgument));
}

TEST_CASE("Digest compares by value") {
    CHECK(Digest::parse("sha256:" + kAbcHex) == Digest::sha256_hex(kAbcHex));
    CHECK(Digest::parse("sha256:" + kAbcHex) != Digest::sha256_hex(kEmptyHex));
    CHECK(Digest::sha256_hex(kAbcHex) < Digest::sha256_hex(kEmptyHex));  // "b.." < "e.."
}

TEST_CASE("Sha256::of matches the FIPS 180-2 vectors") {
    CHECK(Sha256::of("").hex() == kEmptyHex);
    CHECK(Sha256::of("abc").hex() == kAbcHex);
    CHECK(Sha256::of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex() ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(Sha256::of(std::string(1000000, 'a')).hex() ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("Sha256 incremental updates equal the one-shot hash") {
    const std::string text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (std::size_t cut = 0; cut <= text.size(); cut += 7) {
        CAPTURE(cut);
        Sha256 h;
        h.update(text.data(), cut);
        h.update(nullptr, 0);  // empty updates are no-ops
        h.update(text.data() + cut, text.size() - cut);
        CHECK(h.finish() == Sha256::of(text));
    }
}

TEST_CASE("Sha256 survives a move") {
    Sha256 a;
    a.update("ab", 2);
    Sha256 b(std::move(a));
    b.update("c", 1);
    CHECK(b.finish().hex() == kAbcHex);
}
