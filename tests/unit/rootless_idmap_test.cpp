// Rootless id maps: /etc/subuid parsing, podman's map layout, and reading a namespace's map back.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/rootless/idmap.hpp"

using namespace imgtool::rootless;

namespace {
bool same(const std::vector<IdMapLine>& a, const std::vector<IdMapLine>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].inside != b[i].inside || a[i].outside != b[i].outside || a[i].count != b[i].count) return false;
    }
    return true;
}
}  // namespace

TEST_CASE("parse_subid_file keeps the user's ranges, by name or by id, in file order") {
    const std::string text =
        "# comment\n"
        "alice:100000:65536\n"
        "bob:165536:65536\n"
        "1001:300000:1000\n"
        "alice:400000:10\n"
        "alice:notanumber:5\n"
        "alice:500000:0\n"
        "alice:4294967290:10\n"  // would wrap past the last id
        "alice:1:2:3\n"
        "\n";
    auto r = parse_subid_file(text, "alice", 1001);
    REQUIRE(r.size() == 3);
    CHECK(r[0].start == 100000);
    CHECK(r[0].count == 65536);
    CHECK(r[1].start == 300000);  // the numeric line for uid 1001
    CHECK(r[2].start == 400000);
    CHECK(parse_subid_file(text, "carol", 1002).empty());
    CHECK(parse_subid_file("", "alice", 1001).empty());
}

TEST_CASE("plan_id_map puts the user's own id at 0 and packs the ranges from 1") {
    auto map = plan_id_map(1000, {{100000, 65536}, {300000, 10}});
    CHECK(same(map, {{0, 1000, 1}, {1, 100000, 65536}, {65537, 300000, 10}}));
    CHECK(id_map_text(map) == "0 1000 1\n1 100000 65536\n65537 300000 10\n");
    CHECK(newidmap_arguments(42, map) ==
          std::vector<std::string>{"42", "0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"});
}

TEST_CASE("plan_id_map leaves out a range holding the user's own id (an id may be mapped once)") {
    CHECK(same(plan_id_map(100005, {{100000, 65536}, {300000, 5}}), {{0, 100005, 1}, {1, 300000, 5}}));
    CHECK(same(plan_id_map(1000, {}), {{0, 1000, 1}}));
}

TEST_CASE("plan_id_map stops at the kernel's line limit") {
    std::vector<IdRange> many;
    for (std::uint32_t i = 0; i < 500; ++i) many.push_back({1000000 + i * 10, 10});
    CHECK(plan_id_map(1000, many).size() == kMaxIdMapLines);
}

TEST_CASE("parse_id_map reads /proc/PID/uid_map and tells the initial namespace apart") {
    auto initial = parse_id_map("         0          0 4294967295\n");
    CHECK(is_initial_id_map(initial));
    auto rootless = parse_id_map("         0       1000          1\n         1     100000      65536\n");
    CHECK_FALSE(is_initial_id_map(rootless));
    CHECK(mapped_id_count(rootless) == 65537);
    CHECK(id_is_mapped(rootless, 0));
    CHECK(id_is_mapped(rootless, 65536));
    CHECK_FALSE(id_is_mapped(rootless, 65537));
    CHECK_THROWS_AS(parse_id_map("0 1000\n"), imgtool::Error);
    CHECK_THROWS_AS(parse_id_map("0 x 1\n"), imgtool::Error);
    CHECK(parse_id_map("").empty());
}
