// parse_json_strict: the one JSON entry point for untrusted metadata. Hostile shapes must fail with
// Errc::Corrupt (never crash, never silently pick one of two values).
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>

#include "imgtool/core/error.hpp"
#include "imgtool/image/json.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
using imgtool::image::kMaxJsonBytes;
using imgtool::image::kMaxJsonDepth;
using imgtool::image::parse_json_strict;

using test_support::thrown_code;

namespace {


std::error_code parse_code(const std::string& text) {
    return thrown_code([&] { parse_json_strict(text, "test.json"); });
}

std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

TEST_CASE("parse_json_strict accepts ordinary documents") {
    auto doc = parse_json_strict(R"({"a": [1, -2, 3.5, {"b": null}], "c": "d\u00e9", "e": true,
                                     "big": 18446744073709551615})",
                                 "test.json");
    CHECK(doc.is_object());
    CHECK(doc["a"].size() == 4);
    CHECK(doc["a"][0].get<int>() == 1);
    CHECK(doc["a"][1].get<int>() == -2);
    CHECK(doc["a"][2].get<double>() == 3.5);
    CHECK(doc["a"][3]["b"].is_null());
    CHECK(doc["c"].get<std::string>() == "d\xc3\xa9");
    CHECK(doc["e"].get<bool>() == true);
    CHECK(doc["big"].get<std::uint64_t>() == 18446744073709551615ull);
}

TEST_CASE("parse_json_strict accepts scalars, empty containers and surrounding whitespace") {
    CHECK(parse_json_strict("  {}\n", "t").is_object());
    CHECK(parse_json_strict("[]", "t").empty());
    CHECK(parse_json_strict("42", "t").get<int>() == 42);
    CHECK(parse_json_strict("\"s\"", "t").get<std::string>() == "s");
    CHECK(parse_json_strict("null", "t").is_null());
}

TEST_CASE("parse_json_strict keeps array order and sibling objects apart") {
    auto doc = parse_json_strict(R"([{"a": 1}, {"a": 2}, [[{"a": 3}]]])", "t");
    CHECK(doc[0]["a"] == 1);
    CHECK(doc[1]["a"] == 2);
    CHECK(doc[2][0][0]["a"] == 3);
    // The same key at different levels is not a duplicate.
    auto nested = parse_json_strict(R"({"a": {"a": {"a": 1}}, "b": {"a": 2}})", "t");
    CHECK(nested["a"]["a"]["a"] == 1);
    CHECK(nested["b"]["a"] == 2);
}

TEST_CASE("parse_json_strict rejects truncated documents") {
    const std::string doc = R"({"schemaVersion": 2, "layers": [{"digest": "sha256:ab", "size": 12}]})";
    // Every proper prefix that is not itself a complete value must fail.
    for (std::size_t n = 0; n < doc.size(); ++n) {
        CAPTURE(n);
        CHECK(parse_code(doc.substr(0, n)) == make_error_code(Errc::Corrupt));
    }
    CHECK(parse_code(doc) == std::error_code());
}

TEST_CASE("parse_json_strict rejects trailing garbage") {
    for (const std::string text : {"{} x", "{}{}", "[1] ]", "1 2", "\"a\"\"b\"", "{},", "null null"}) {
        CAPTURE(text);
        CHECK(parse_code(text) == make_error_code(Errc::Corrupt));
    }
}

// Regression (fixed): nlohmann's lexer treats a NUL byte as end of input, so everything from the first NUL after a
// complete value on is ignored: std::string("{}\0", 3) and "{\"a\":1}\0{\"a\":2, ...anything}" parse as
// {} and {"a":1}. A blob can thus carry bytes the strict parser never sees while other parsers (Go's
// encoding/json) reject it: the parser differential this function exists to prevent. Observed: no
// error. Expected: Errc::Corrupt ("trailing garbage"); e.g. reject any NUL byte in the text up front.
TEST_CASE("parse_json_strict rejects a NUL byte and anything after it") {
    CHECK(parse_code(std::string("{}\0", 3)) == make_error_code(Errc::Corrupt));
    const std::string smuggled = std::string(R"({"a":1})") + '\0' + R"({"a":2,"layers":[]} not JSON)";
    CHECK(parse_code(smuggled) == make_error_code(Errc::Corrupt));
    CHECK(parse_code(std::string("[1]\0\0\0", 6)) == make_error_code(Errc::Corrupt));
}

TEST_CASE("parse_json_strict rejects malformed JSON") {
    for (const std::string text : {"", " ", "{'a': 1}", "{a: 1}", "[1,]", "{\"a\":1,}", "NaN", "[Infinity]",
                                   "01", "\"\\x41\"", "\"tab\there\"", "/* c */ {}", "{} // c"}) {
        CAPTURE(text);
        CHECK(parse_code(text) == make_error_code(Errc::Corrupt));
    }
    // Invalid UTF-8 inside a string.
    CHECK(parse_code("\"\xff\xfe\"") == make_error_code(Errc::Corrupt));
    CHECK(parse_code("\"\xc0\xaf\"") == make_error_code(Errc::Corrupt));  // overlong "/"
}

TEST_CASE("parse_json_strict rejects duplicate keys at any depth") {
    for (const std::string text :
         {R"({"a": 1, "a": 2})", R"({"a": 1, "a": 1})", R"({"a": null, "a": 1})", R"({"a": {}, "a": {}})",
          R"({"x": {"a": 1, "b": 0, "a": 2}})", R"([{"ok": 1}, {"a": 1, "a": 2}])",
          R"({"l": [[{"k": [{"z": 1, "z": 2}]}]]})", R"({"a": 1, "\u0061": 2})"}) {
        CAPTURE(text);
        CHECK(parse_code(text) == make_error_code(Errc::Corrupt));
    }
}

TEST_CASE("parse_json_strict error messages name the document and the reason") {
    try {
        parse_json_strict(R"({"mediaType": "x", "mediaType": "y"})", "manifest sha256:ab");
        FAIL("no exception");
    } catch (const imgtool::Error& e) {
        std::string what = e.what();
        CHECK(what.rfind("manifest sha256:ab: invalid JSON: ", 0) == 0);
        CHECK(what.find("duplicate key \"mediaType\"") != std::string::npos);
    }
}

TEST_CASE("parse_json_strict caps nesting at kMaxJsonDepth") {
    CHECK(parse_json_strict(nested_arrays(kMaxJsonDepth), "t").is_array());
    CHECK(parse_code(nested_arrays(kMaxJsonDepth + 1)) == make_error_code(Errc::Corrupt));

    std::string objects;
    for (std::size_t i = 0; i < kMaxJsonDepth + 1; ++i) objects += "{\"a\":";
    objects += "1" + std::string(kMaxJsonDepth + 1, '}');
    CHECK(parse_code(objects) == make_error_code(Errc::Corrupt));
}

TEST_CASE("parse_json_strict fails cleanly on 1,000,000-deep nesting") {
    // Would exhaust the stack in a recursive parser or a recursive json destructor.
    CHECK(parse_code(nested_arrays(1000000)) == make_error_code(Errc::Corrupt));
    CHECK(parse_code(std::string(1000000, '[')) == make_error_code(Errc::Corrupt));  // unterminated too
    std::string objects;
    for (int i = 0; i < 1000000; ++i) objects += "{\"a\":";
    CHECK(parse_code(objects) == make_error_code(Errc::Corrupt));
}

TEST_CASE("parse_json_strict caps the document size at kMaxJsonBytes") {
    // A valid JSON string of exactly the limit is accepted; one byte more is refused before parsing.
    std::string at_limit = "\"" + std::string(kMaxJsonBytes - 2, 'a') + "\"";
    REQUIRE(at_limit.size() == kMaxJsonBytes);
    CHECK(parse_json_strict(at_limit, "t").get_ref<const std::string&>().size() == kMaxJsonBytes - 2);

    std::string over = at_limit + " ";
    CHECK(parse_code(over) == make_error_code(Errc::Corrupt));
    try {
        parse_json_strict(over, "config");
        FAIL("no exception");
    } catch (const imgtool::Error& e) {
        CHECK(std::string(e.what()).find("too large") != std::string::npos);
    }
}
