// core/strings: error text from hostile names stays one line of valid text; path splitting.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "imgtool/core/strings.hpp"

using namespace imgtool;

TEST_CASE("escape_control escapes controls, C1 controls and bytes that are not UTF-8") {
    CHECK(escape_control("plain name") == "plain name");
    CHECK(escape_control("a\nb\tc\x1b[2J") == "a\\x0ab\\x09c\\x1b[2J");
    CHECK(escape_control("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3");
    CHECK(escape_control("\xff\xfe") == "\\xff\\xfe");
    CHECK(escape_control("\xc2\x9b" "31m") == "\\xc2\\x9b31m");     // C1 CSI
    CHECK(escape_control("\xc0\xaf") == "\\xc0\\xaf");              // overlong '/'
    CHECK(escape_control("\xed\xa0\x80") == "\\xed\\xa0\\x80");     // surrogate
    CHECK(escape_control("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
    CHECK(escape_control("\xe2\x82") == "\\xe2\\x82");              // cut short
    CHECK(escape_control("\x7f") == "\\x7f");
    CHECK(escape_control("a\xe2\x80\xae" "b") == "a\\xe2\\x80\\xae" "b");  // U+202E right-to-left override
    CHECK(escape_control("\xe2\x81\xa6") == "\\xe2\\x81\\xa6");          // U+2066 isolate
    CHECK(escape_control("\xe2\x80\x94") == "\xe2\x80\x94");               // an em dash stays
}

TEST_CASE("split_parent splits a relative path at its last slash") {
    using Split = std::pair<std::string, std::string>;
    CHECK(split_parent("a/b/c") == Split{"a/b", "c"});
    CHECK(split_parent("c") == Split{"", "c"});
    CHECK(split_parent("a/.wh.b") == Split{"a", ".wh.b"});
    CHECK(split_parent("") == Split{"", ""});
    CHECK(split_parent("a/") == Split{"a", ""});  // callers pass cleaned paths: a trailing slash leaves an empty base
}

TEST_CASE("closest_match suggests a near candidate, or none") {
    const std::vector<std::string> verbs = {"pull",   "pull-local", "images", "inspect", "rm",     "rmi",   "run",
                                            "exec",   "mount",      "mounts", "umount",  "unmount", "unshare", "ps"};
    CHECK(closest_match("pul-local", verbs) == "pull-local");  // one deletion
    CHECK(closest_match("imgaes", verbs) == "images");         // one swap of neighbours
    CHECK(closest_match("IMAGES", verbs) == "images");         // case is no difference
    CHECK(closest_match("imgs", verbs) == "images");           // two edits in a word of four
    CHECK(closest_match("rnu", verbs) == "run");
    CHECK(closest_match("run", verbs) == "run");               // exact
    CHECK(closest_match("rn", verbs) == "rm");                 // ties: the earlier candidate
    CHECK(closest_match("unsh", verbs) == "unshare");          // too far by edits, but a prefix
    CHECK(closest_match("mou", verbs) == "mount");             // the shortest candidate with the prefix
    CHECK(closest_match("frobnicate", verbs).empty());
    CHECK(closest_match("x", verbs).empty());                  // "rm" and "ps" are two edits from one letter
    CHECK(closest_match("ab", verbs).empty());
    CHECK(closest_match("", verbs).empty());
    CHECK(closest_match("pull", {}).empty());
    CHECK(closest_match(std::string(1000, 'p'), verbs).empty());
    // Long names allow more edits: a third of the word.
    CHECK(closest_match("docker.io/library/bb-featurs:latest", {"docker.io/library/alpine:latest",
                                                                 "docker.io/library/bb-features:latest"}) ==
          "docker.io/library/bb-features:latest");
}

TEST_CASE("closest_match on image names: a likely typo's stored name, nothing for a stranger") {
    using imgtool::closest_match;
    std::vector<std::string> names{"bb-features:latest", "imgtool-test/busybox:latest", "alpine:3"};
    CHECK(closest_match("bb-featurs:latest", names, 3) == "bb-features:latest");
    CHECK(closest_match("imgtool-test/busybx:latest", names, 3) == "imgtool-test/busybox:latest");
    CHECK(closest_match("alpine:4", names) == "alpine:3");
    CHECK(closest_match("postgres:latest", names) == "");
    CHECK(closest_match("", names) == "");
    CHECK(closest_match("x", {"y"}) == "y");
    CHECK(closest_match("ab", {"cd"}) == "");
    // A long shared part is no likeness: at most 3 edits for names.
    CHECK(closest_match("localhost/postgres:latest", {"localhost/v2:latest"}, 3) == "");
    CHECK(closest_match("localhost/postgres:latest", {"localhost/v2:latest"}) == "localhost/v2:latest");
}

TEST_CASE("shell_word: a path a user may paste runs nothing") {
    using imgtool::shell_word;
    CHECK(shell_word("/mnt/x-1_2.v:3") == "/mnt/x-1_2.v:3");
    CHECK(shell_word("/tmp/no such;$(id)") == "'/tmp/no such;$(id)'");
    CHECK(shell_word("it's") == "'it'\\''s'");
    CHECK(shell_word("`id`") == "'`id`'");
    CHECK(shell_word("") == "''");
    CHECK(shell_word(std::string_view("a\0b", 3)) == std::string("'a\0b'", 5));
}
