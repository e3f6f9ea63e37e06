// layer::TarCheck: each header sequence that tar readers read differently is refused with the entry and
// the reason; the ordinary ones (PAX, GNU long names, ustar prefixes, sparse files, base-256 sizes) pass;
// the verdict does not depend on where the stream is cut into chunks.
// (tar_check_libarchive_test.cpp checks the walk itself against libarchive.)
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "imgtool/layer/tar_check.hpp"
#include "tar_build.hpp"

using imgtool::layer::TarCheck;
using imgtool::layer::TarCheckedEntry;
using imgtool::layer::TarFinding;
using namespace tar_build;

namespace {

struct Outcome {
    TarCheck::State state{};
    std::optional<TarFinding> finding;
    std::vector<std::string> names;    // entries that passed, as libarchive reads them
    std::vector<std::uint64_t> offsets;
    std::vector<std::string> links;

    std::string message() const { return finding ? finding->message() : ""; }
    bool operator==(const Outcome& o) const {
        return state == o.state && message() == o.message() && names == o.names && offsets == o.offsets &&
               links == o.links;
    }
};

// Feeds `tar` in chunks of `chunk` bytes; `cut` instead splits it once at that offset.
Outcome run(const std::string& tar, std::size_t chunk = 1 << 20, std::optional<std::size_t> cut = {}) {
    Outcome out;
    TarCheck check;
    check.set_observer([&out](const TarCheckedEntry& e) {
        out.names.emplace_back(e.name);
        out.offsets.push_back(e.offset);
        out.links.emplace_back(e.link);
    });
    std::string_view all(tar);
    if (cut) {
        check.feed(all.substr(0, *cut));
        check.feed(all.substr(*cut));
    } else {
        for (std::size_t at = 0; at < all.size(); at += chunk) check.feed(all.substr(at, chunk));
    }
    out.state = check.state();
    out.finding = check.finding();
    CHECK(check.entries() == out.names.size());
    return out;
}

// Refused at entry `entry` named `name`, the reason holding every needle.
void refused(const std::string& tar, std::uint64_t entry, const std::string& name,
             const std::vector<std::string>& needles) {
    Outcome o = run(tar);
    REQUIRE_MESSAGE(o.state == TarCheck::State::Refused, "passed: " << o.names.size() << " entries");
    CHECK(o.finding->entry == entry);
    CHECK(o.finding->name == name);
    for (const auto& n : needles) CHECK_MESSAGE(o.finding->reason.find(n) != std::string::npos, o.message());
}

// Passes whole, with these names.
void accepted(const std::string& tar, const std::vector<std::string>& names) {
    Outcome o = run(tar);
    CHECK_MESSAGE(o.state == TarCheck::State::End, o.message());
    CHECK(o.names == names);
}

std::string sym(std::string_view name, std::string_view target, Magic magic = Magic::Ustar) {
    return Header(name, '2', magic).link(target).str();
}

}  // namespace

TEST_CASE("tar check: the reported rows") {
    SUBCASE("PAX path, then GNU long name: libarchive and GNU tar read the PAX path, Go the GNU name") {
        refused(pax({{"path", "pax2"}}) + gnu_long("gnu2") + file("ustar2", "x") + eof(), 1, "pax2",
                {"both a PAX path (pax2) and a GNU long name (gnu2)", "tar readers disagree on its name"});
    }
    SUBCASE("GNU long name, then PAX path: libarchive and Go read the GNU name, GNU tar the PAX path") {
        refused(gnu_long("gnu1") + pax({{"path", "pax1"}}) + file("ustar1", "x") + eof(), 1, "gnu1",
                {"both a PAX path (pax1) and a GNU long name (gnu1)"});
    }
    SUBCASE("GNU magic whose time fields hold a pre-Go-1.8 name prefix: Go joins it, libarchive does not") {
        refused(entry(Header("foo", '\0', Magic::Gnu).put(345, std::string(95, 'a'))) + eof(), 1, "foo",
                {"time fields hold text", std::string(95, 'a') + "/foo", "disagree on its name"});
    }
    SUBCASE("the message names the entry as imgtool would have written it") {
        Outcome o = run(file("first", "1") + pax({{"path", "pax2"}}) + gnu_long("gnu2") + file("u", "x") + eof());
        CHECK(o.message() == "entry 2 (pax2): both a PAX path (pax2) and a GNU long name (gnu2); tar readers "
                             "disagree on its name");
        CHECK(o.finding->offset == 1024);
        CHECK(o.names == std::vector<std::string>{"first"});
    }
}

TEST_CASE("tar check: link targets") {
    SUBCASE("PAX linkpath and GNU long link name") {
        refused(pax({{"linkpath", "ptarget"}}) + gnu_long("ktarget", 'K') + sym("s", "short") + eof(), 1, "s",
                {"both a PAX linkpath (ptarget) and a GNU long link name (ktarget)", "disagree on its link target"});
        refused(gnu_long("ktarget", 'K') + pax({{"linkpath", "ptarget"}}) + sym("s", "short") + eof(), 1, "s",
                {"both a PAX linkpath (ptarget) and a GNU long link name (ktarget)"});
    }
    SUBCASE("two GNU long link names, two linkpath records, empty ones") {
        refused(gnu_long("one", 'K') + gnu_long("two", 'K') + sym("s", "x") + eof(), 1, "s", {"two GNU long link names"});
        refused(pax({{"linkpath", "a"}, {"linkpath", "b"}}) + sym("s", "x") + eof(), 1, "s",
                {"several PAX linkpath records"});
        refused(pax({{"linkpath", ""}}) + sym("s", "x") + eof(), 1, "s", {"an empty PAX linkpath"});
        refused(gnu_long("", 'K') + sym("s", "x") + eof(), 1, "s", {"an empty GNU long link name"});
    }
    SUBCASE("a target only an extension header names, before libarchive has a link name buffer") {
        refused(file("t", "") + gnu_long("target", 'K') + entry(Header("h", '1')) + eof(), 2, "h",
                {"empty linkname field"});
        // Once any header had a link name, libarchive reads the long one too.
        accepted(sym("a", "b") + gnu_long("target", 'K') + entry(Header("s", '2')) + eof(), {"a", "s"});
    }
    SUBCASE("a long link name on an entry that is no link is ignored by every reader") {
        accepted(gnu_long("ignored", 'K') + file("f", "data") + pax({{"linkpath", "x"}}) + file("g", "") + eof(),
                 {"f", "g"});
    }
    SUBCASE("ordinary long targets") {
        Outcome o = run(gnu_long(std::string(150, 't'), 'K') + sym("s", std::string(100, 't'), Magic::Gnu) +
                        pax({{"linkpath", std::string(150, 'u')}}) + sym("p", std::string(100, 'u')) +
                        pax({{"linkpath", "same"}}) + gnu_long("same", 'K') + sym("q", "same") + eof());
        CHECK(o.state == TarCheck::State::End);
        CHECK(o.links == std::vector<std::string>{std::string(150, 't'), std::string(150, 'u'), "same"});
    }
}

TEST_CASE("tar check: names that readers disagree on") {
    SUBCASE("several PAX path records (Rust's tar crate takes the first)") {
        refused(pax({{"path", "first"}, {"path", "second"}}) + file("u", "") + eof(), 1, "second",
                {"several PAX path records (first and second"});
        accepted(pax({{"path", "same"}, {"path", "same"}}) + file("u", "") + eof(), {"same"});
    }
    SUBCASE("two GNU long names (Python takes the first)") {
        refused(gnu_long("first") + gnu_long("second") + file("u", "") + eof(), 1, "second",
                {"two GNU long names (first and second"});
        accepted(gnu_long("same") + gnu_long("same") + file("u", "") + eof(), {"same"});
    }
    SUBCASE("two PAX extended headers") {
        refused(pax({{"path", "first"}}) + pax({{"mtime", "1"}}) + file("u", "") + eof(), 1, "u",
                {"two PAX extended headers"});
    }
    SUBCASE("a PAX path in a global header (GNU tar and Python apply it to every later entry)") {
        refused(pax({{"path", "global"}}, 'g') + file("a", "x") + file("b", "y") + eof(), 1, "a",
                {"global header that sets path"});
        refused(pax({{"size", "0"}}, 'g') + file("a", "x") + eof(), 1, "a", {"sets size"});
        accepted(pax({{"comment", "git archive"}}, 'g') + file("a", "x") + eof(), {"a"});
    }
    SUBCASE("a global header inside an entry's extension headers (Go forgets those before it)") {
        refused(pax({{"path", "xpath"}}) + pax({{"comment", "c"}}, 'g') + file("u", "") + eof(), 1, "xpath",
                {"global header between"});
        refused(gnu_long("lname") + pax({{"comment", "c"}}, 'g') + file("u", "") + eof(), 1, "lname",
                {"global header between"});
    }
    SUBCASE("empty names") {
        refused(pax({{"path", ""}}) + file("hdrname", "") + eof(), 1, "hdrname", {"an empty PAX path"});
        refused(pax({{"path", std::string("\0x", 2)}}) + file("hdrname", "") + eof(), 1, "hdrname",
                {"an empty PAX path"});
        refused(gnu_long("") + file("hdrname", "") + eof(), 1, "", {"an empty GNU long name"});
    }
    SUBCASE("a PAX path and a GNU long name that agree") {
        accepted(pax({{"path", "same"}}) + gnu_long("same") + file("u", "") + eof(), {"same"});
    }
    SUBCASE("a ustar prefix and a PAX path: every reader takes the PAX path") {
        accepted(pax({{"path", "paxname"}}) + entry(Header("name").prefix("pre")) + eof(), {"paxname"});
    }
    SUBCASE("a ustar prefix under a magic only libarchive takes as ustar") {
        refused(entry(Header("name").prefix("pre").put(257, std::string("ustar\1", 6))) + eof(), 1, "pre/name",
                {"reads differently (name"});
        refused(entry(Header("name").prefix("pre").put(257, std::string("ustar \0\0", 8))) + eof(), 1, "pre/name",
                {"ustar name prefix"});
    }
    SUBCASE("star's trailer: Go reads a 131-byte prefix, libarchive 155 bytes") {
        std::string prefix = std::string(131, 'p') + "00000000001";
        refused(entry(Header("name").prefix(prefix).put(508, std::string("tar\0", 4))) + eof(), 1, prefix + "/name",
                {"ustar name prefix"});
        accepted(entry(Header("name").prefix("short").put(508, std::string("tar\0", 4))) + eof(), {"short/name"});
    }
    SUBCASE("an old-style header with bytes where ustar keeps a prefix (Python joins them)") {
        refused(entry(Header("v7", '0', Magic::V7).put(345, "junk")) + eof(), 1, "v7", {"Python's tarfile"});
        accepted(file("v7", "x", Magic::V7) + eof(), {"v7"});
    }
    SUBCASE("GNU headers with numeric times: Go and libarchive agree (Python's tarfile does not: documented)") {
        accepted(entry(Header("foo", '0', Magic::Gnu).put(345, "14712345670").put(357, "14712345670")) + eof(),
                 {"foo"});
        // Text after a NUL in the time field is still a number to Go.
        accepted(entry(Header("foo", '0', Magic::Gnu).put(345, std::string("1\0zz", 4))) + eof(), {"foo"});
    }
    SUBCASE("a GNU sparse name beside another name") {
        Records sparse{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "0"}};
        auto with = [&](Records extra) {
            Records r = sparse;
            r.insert(r.end(), extra.begin(), extra.end());
            return r;
        };
        std::string body = sparse_10_map({});
        refused(pax(with({{"GNU.sparse.name", "real"}, {"path", "other"}})) +
                    entry(Header("GNUSparseFile.0/real").size(body.size()), body) + eof(),
                1, "real", {"both a GNU.sparse.name (real) and a PAX path (other"});
        refused(gnu_long("long") + pax(with({{"GNU.sparse.name", "real"}})) +
                    entry(Header("GNUSparseFile.0/real").size(body.size()), body) + eof(),
                1, "long", {"both a GNU.sparse.name (real) and a GNU long name (long)"});
        // Without a sparse version Go does not apply the name.
        refused(pax({{"GNU.sparse.name", "real"}}) + file("fake", "") + eof(), 1, "real",
                {"Go's archive/tar reads as fake"});
    }
    SUBCASE("control bytes in names stay on one line") {
        Outcome o = run(pax({{"path", "a\nb"}}) + gnu_long("c") + file("u", "") + eof());
        CHECK(o.message().find('\n') == std::string::npos);
        CHECK(o.message().find("a\\x0ab") != std::string::npos);
    }
}

TEST_CASE("tar check: headers only libarchive takes as extension headers") {
    refused(raw_extension("1\0", 'A') + file("u", "") + eof(), 1, "u", {"Solaris ACL header ('A')"});
    refused(pax({{"path", "sun"}}, 'X') + file("u", "") + eof(), 1, "u", {"Solaris extended header ('X')"});
    refused(Header("label", 'V', Magic::Gnu).str() + file("u", "") + eof(), 1, "u", {"GNU volume header ('V')"});
    refused(pax({{"SUN.holesdata", " 0 10"}}) + file("u", "") + eof(), 1, "u", {"SUN.holesdata"});
}

TEST_CASE("tar check: malformed or too many extension headers") {
    std::string bad = "8 path=x\n";  // the record is 9 bytes long
    refused(Header("PaxHeader", 'x').size(bad.size()).str() + pad(bad) + file("u", "") + eof(), 1, "u",
            {"malformed PAX extended header"});
    std::string chain31, chain32;
    for (int i = 0; i < 31; ++i) chain31 += gnu_long("same");
    chain32 = chain31 + gnu_long("same");
    accepted(chain31 + file("u", "") + eof(), {"same"});
    refused(chain32 + file("u", "") + eof(), 1, "", {"more than 31 extension headers"});
}

TEST_CASE("tar check: where the next entry starts") {
    SUBCASE("a hard link's size: libarchive skips it as data in pax archives, nobody else does") {
        refused(pax({{"mtime", "1"}}) + file("t", "T") + entry(Header("h", '1').size(512).link("t"), "Z") +
                    file("after", "") + eof(),
                2, "h", {"a hard link whose data libarchive reads as 512 bytes and Go's archive/tar as 0",
                         "where the next entry starts"});
        // ...and when the header does not look like ustar (here: its version field).
        refused(file("t", "T") + entry(Header("h", '1').size(512).link("t").put(263, "  "), "Z") + eof(), 2, "h",
                {"a hard link whose data libarchive reads as 512 bytes"});
        // Old writers' sizes on ordinary ustar and GNU hard links: every reader ignores them.
        accepted(file("t", "T") + Header("h", '1').size(512).link("t").str() +
                     Header("g", '1', Magic::Gnu).size(512).link("t").str() + file("after", "") + eof(),
                 {"t", "h", "g", "after"});
    }
    SUBCASE("a PAX size on an entry that has no data for Go") {
        refused(pax({{"size", "512"}}) + entry(Header("s", '2').link("t"), "Q") + file("after", "") + eof(), 1, "s",
                {"a symlink whose data libarchive reads as 512 bytes and Go's archive/tar as 0"});
        refused(pax({{"size", "1024"}}) + entry(Header("d", '5'), std::string(1024, 'D')) + eof(), 1, "d",
                {"a directory whose data libarchive reads as 1024 bytes"});
    }
    SUBCASE("a size field on a symlink, device or FIFO: GNU tar skips it") {
        refused(Header("s", '2').size(512).link("t").str() + file("hidden", "") + eof(), 1, "s",
                {"a symlink with a size of 512 (GNU tar skips"});
        refused(Header("c", '3').size(100).str() + file("hidden", "") + eof(), 1, "c", {"a character device"});
        // A directory's size is skipped by nobody.
        accepted(Header("d", '5').size(512).str() + file("next", "") + eof(), {"d", "next"});
    }
    SUBCASE("a file named x/ with data: libarchive makes a directory and skips nothing") {
        refused(entry(Header("dir/").size(512), file("hidden", "")) + eof(), 1, "dir/", {"a name ending in /"});
        refused(entry(Header("dir/", '\0').size(512), file("hidden", "")) + eof(), 1, "dir/", {"a name ending in /"});
        accepted(Header("dir/", '\0').str() + Header("dir2/").str() + eof(), {"dir/", "dir2/"});
    }
    SUBCASE("size fields Go reads differently") {
        refused(entry(Header("f").put(124, std::string("\0\0\0\0\0\0" "1000\0", 11)), file("hidden", "")) + eof(), 1,
                "f", {"a file whose data libarchive reads as 0 bytes and Go's archive/tar as 512"});
    }
    SUBCASE("PAX sizes") {
        accepted(pax({{"size", "1024"}}) + entry(Header("f").size(3), std::string(1024, 'z')) + file("after", "") +
                     eof(),
                 {"f", "after"});
        refused(pax({{"size", "12abc"}}) + file("f", "") + eof(), 1, "f", {"not a plain decimal number"});
        refused(pax({{"size", "+5"}}) + file("f", "") + eof(), 1, "f", {"not a plain decimal number"});
        refused(pax({{"size", "512"}, {"size", "0"}}) + file("f", "") + eof(), 1, "f", {"several PAX size records"});
    }
}

TEST_CASE("tar check: sparse files") {
    SUBCASE("old GNU sparse with extension blocks") {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> map;
        for (std::uint64_t i = 0; i < 30; ++i) map.emplace_back(i * 100000, 512);
        accepted(gnu_sparse("sp", 3000000, map, 30 * 512) + std::string(30 * 512, 's') + file("after", "a") + eof(),
                 {"sp", "after"});
    }
    SUBCASE("a map covering less than the data: libarchive resumes inside it") {
        refused(gnu_sparse("sp", 10000, {{0, 512}}, 1024) + std::string(512, 's') + file("hidden", "") + eof(), 1,
                "sp", {"a sparse map covering 512 of its 1024 bytes"});
    }
    SUBCASE("old GNU sparse blocks behind a type Go does not read them for") {
        refused(gnu_sparse("f", 10000, {{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}}, 5, '0') + pad("vvvvv") + eof(), 1,
                "f", {"extension blocks that only libarchive reads"});
    }
    SUBCASE("PAX 1.0, as GNU tar writes it") {
        std::string body = sparse_10_map({{0, 10}, {4000, 500}}) + std::string(510, 'v');
        accepted(pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", std::string(120, 'f')},
                      {"GNU.sparse.realsize", "4500"}}) +
                     entry(Header("./GNUSparseFile.1/fff").size(body.size()), body) + file("after", "") + eof(),
                 {std::string(120, 'f'), "after"});
    }
    SUBCASE("PAX 0.1 and 0.0") {
        accepted(pax({{"GNU.sparse.numblocks", "1"}, {"GNU.sparse.map", "0,700"}, {"GNU.sparse.name", "m"}}) +
                     entry(Header("x").size(700), std::string(700, 'v')) + file("after", "") + eof(),
                 {"m", "after"});
        accepted(pax({{"GNU.sparse.numblocks", "1"}, {"GNU.sparse.offset", "0"}, {"GNU.sparse.numbytes", "700"},
                      {"GNU.sparse.name", "m"}}) +
                     entry(Header("x").size(700), std::string(700, 'v')) + file("after", "") + eof(),
                 {"m", "after"});
    }
    SUBCASE("a GNU sparse version libarchive does not know") {
        refused(pax({{"GNU.sparse.major", "2"}, {"GNU.sparse.minor", "0"}}) + file("x", "") + eof(), 1, "x",
                {"sparse format version libarchive does not know"});
    }
    SUBCASE("a map libarchive refuses: nothing to report, libarchive fails the layer") {
        Outcome o = run(pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}}) +
                        entry(Header("x").size(512), pad("2\n0\n5x\n")) + eof());
        CHECK(o.state == TarCheck::State::Stopped);
    }
}

TEST_CASE("tar check: ordinary archives pass") {
    std::string big(5000, 'b');
    accepted(file("a", "x\n") + Header("d", '5').str() + sym("l", "a") + Header("h", '1').link("a").str() +
                 Header("c", '3').str() + Header("p", '6').str() + file("d/big", big) + eof(),
             {"a", "d", "l", "h", "c", "p", "d/big"});
    // Long names: PAX (Go, Python, libarchive's writers), GNU (GNU tar, Go's GNU format), ustar prefixes.
    accepted(pax({{"path", std::string(200, 'p')}, {"mtime", "1.5"}, {"SCHILY.xattr.user.a", "v"}}) +
                 file(std::string(100, 'p'), "x") + gnu_long(std::string(300, 'g')) +
                 file(std::string(100, 'g'), "y", Magic::Gnu) + entry(Header("name").prefix("a/b/c")) + eof(),
             {std::string(200, 'p'), std::string(300, 'g'), "a/b/c/name"});
    // Base-256 sizes (GNU tar and Go for files of 8 GiB and more).
    accepted(entry(Header("big").size_base256(1536), std::string(1536, 'q')) + file("after", "") + eof(),
             {"big", "after"});
    // No end-of-archive blocks (some writers): still checked to the end.
    Outcome o = run(file("a", "x") + file("b", "y"));
    CHECK(o.state == TarCheck::State::Checking);
    CHECK(o.names == std::vector<std::string>{"a", "b"});
    CHECK(!o.finding);
}

TEST_CASE("tar check: nothing after the end of the archive is read") {
    Outcome o = run(file("a", "x") + eof() + pax({{"path", "pax2"}}) + gnu_long("gnu2") + file("u", "") + eof());
    CHECK(o.state == TarCheck::State::End);
    CHECK(o.names == std::vector<std::string>{"a"});
}

TEST_CASE("tar check: input libarchive refuses stops the check") {
    std::string corrupt = Header("bad").str();
    corrupt[0] = 'B';  // checksum no longer matches
    CHECK(run(file("a", "x") + corrupt + pax({{"path", "p"}}) + gnu_long("g") + file("u", "")).state ==
          TarCheck::State::Stopped);
    CHECK(run(Header("huge", 'x').size(2 << 20).str()).state == TarCheck::State::Stopped);
    // A negative base-256 size.
    CHECK(run(Header("neg").put(124, std::string(12, '\xff')).str()).state == TarCheck::State::Stopped);
    // An 'x' header followed by the end: libarchive calls that damaged.
    CHECK(run(pax({{"path", "p"}}) + eof()).state == TarCheck::State::Stopped);
}

TEST_CASE("tar check: the verdict does not depend on chunk boundaries") {
    const std::vector<std::string> archives = {
        // Passing: extension headers, sparse extension blocks, a sparse 1.0 map, long data.
        pax({{"path", std::string(300, 'p')}}) + file("p", std::string(700, 'x')) + gnu_long(std::string(600, 'g')) +
            gnu_long("t", 'K') + sym("s", "t") +
            gnu_sparse("sp", 100000, {{0, 1}, {9, 1}, {99, 1}, {999, 1}, {9999, 1}, {99999, 1}}, 6) + pad("vvvvvv") +
            pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "sparse"}}) +
            entry(Header("GNUSparseFile/x").size(1024), sparse_10_map({{0, 5}}) + "vvvvv") + eof(),
        // Refused at the third entry.
        file("a", "x") + file("b", std::string(1500, 'y')) + pax({{"path", "pax2"}}) + gnu_long("gnu2") +
            file("u", "") + eof(),
        // Refused by the walk.
        file("t", "T") + pax({{"size", "512"}}) + entry(Header("s", '2').link("t"), "Q") + eof(),
    };
    for (const auto& tar : archives) {
        Outcome whole = run(tar);
        CHECK(whole.state != TarCheck::State::Stopped);
        CHECK(run(tar, 1) == whole);
        CHECK(run(tar, 7) == whole);
        CHECK(run(tar, 511) == whole);
        for (std::size_t cut = 0; cut <= tar.size(); ++cut) {
            CAPTURE(cut);
            REQUIRE(run(tar, 1 << 20, cut) == whole);
        }
    }
}
