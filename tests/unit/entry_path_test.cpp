// Layer entry names: where an entry lands in the layer root, and whiteout classification.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>

#include "imgtool/layer/entry_path.hpp"

using imgtool::layer::classify_whiteout;
using imgtool::layer::clean_entry_path;
using imgtool::layer::WhiteoutKind;

namespace {

// clean_entry_path with "<refused>" for nullopt, so a failing CHECK prints both sides.
std::string cleaned(std::string_view name) {
    return clean_entry_path(name).value_or("<refused>");
}

}  // namespace

TEST_CASE("clean_entry_path cleans names as docker does") {
    CHECK(cleaned("a") == "a");
    CHECK(cleaned("./a//b/") == "a/b");
    CHECK(cleaned("/etc/passwd") == "etc/passwd");  // contained, not refused
    CHECK(cleaned("//etc//passwd") == "etc/passwd");
    CHECK(cleaned("a/../b") == "b");
    CHECK(cleaned("a/b/..") == "a");
    CHECK(cleaned("a/b/../../c") == "c");
    CHECK(cleaned("a/./b/.") == "a/b");
    CHECK(cleaned("usr/bin/") == "usr/bin");
    CHECK(cleaned("...") == "...");  // only exactly ".." climbs
    CHECK(cleaned("..a/b..") == "..a/b..");
    CHECK(cleaned(".wh..wh..opq") == ".wh..wh..opq");
}

TEST_CASE("clean_entry_path: the root itself is the empty path") {
    CHECK(cleaned(".") == "");
    CHECK(cleaned("") == "");
    CHECK(cleaned("./") == "");
    CHECK(cleaned("/") == "");
    CHECK(cleaned("a/..") == "");
}

TEST_CASE("clean_entry_path refuses names that climb above the root") {
    for (const std::string name :
         {"..", "../x", "/../x", "./../x", "a/../../x", "a/b/../../..", "a/../..", "../"}) {
        CAPTURE(name);
        CHECK(cleaned(name) == "<refused>");
    }
}

TEST_CASE("clean_entry_path keeps bytes that are not separators") {
    CHECK(cleaned("a\\..\\b") == "a\\..\\b");  // backslash is an ordinary byte on Linux
    CHECK(cleaned("sp ace/t\tab") == "sp ace/t\tab");
    CHECK(cleaned(std::string("a\0b", 3)) == std::string("a\0b", 3));
}

TEST_CASE("classify_whiteout: ordinary names") {
    for (const std::string name : {"foo", "a.wh.b", "wh.foo", ".w", ".wh", "x.wh..wh..opq", ""}) {
        CAPTURE(name);
        auto w = classify_whiteout(name);
        CHECK(w.kind == WhiteoutKind::None);
        CHECK(w.target.empty());
    }
}

TEST_CASE("classify_whiteout: whiteouts name their target") {
    auto w = classify_whiteout(".wh.foo");
    CHECK(w.kind == WhiteoutKind::Whiteout);
    CHECK(w.target == "foo");
    CHECK(classify_whiteout(".wh..hidden").kind == WhiteoutKind::Whiteout);
    CHECK(classify_whiteout(".wh..hidden").target == ".hidden");
    CHECK(classify_whiteout(".wh....").target == "...");
    CHECK(classify_whiteout(".wh..opq").kind == WhiteoutKind::Whiteout);  // not the opaque marker
    CHECK(classify_whiteout(".wh..opq").target == ".opq");
}

TEST_CASE("classify_whiteout: opaque and aufs meta entries") {
    auto opq = classify_whiteout(".wh..wh..opq");
    CHECK(opq.kind == WhiteoutKind::Opaque);
    CHECK(opq.target.empty());
    CHECK(classify_whiteout(".wh..wh.plnk").kind == WhiteoutKind::Meta);
    CHECK(classify_whiteout(".wh..wh.aufs").kind == WhiteoutKind::Meta);
    CHECK(classify_whiteout(".wh..wh.").kind == WhiteoutKind::Meta);
    CHECK(classify_whiteout(".wh..wh..opqx").kind == WhiteoutKind::Meta);
}

TEST_CASE("classify_whiteout: names that would hit the directory or its parent are invalid") {
    CHECK(classify_whiteout(".wh.").kind == WhiteoutKind::Invalid);
    CHECK(classify_whiteout(".wh..").kind == WhiteoutKind::Invalid);
    CHECK(classify_whiteout(".wh...").kind == WhiteoutKind::Invalid);
    CHECK(classify_whiteout(".wh..").target == ".");
    CHECK(classify_whiteout(".wh...").target == "..");
}
