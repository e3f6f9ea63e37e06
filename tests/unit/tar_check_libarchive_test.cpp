// layer::TarCheck against libarchive itself: the checker must walk exactly the headers libarchive walks
// (tar_oracle.hpp says what "exactly" means), on hand-picked archives and on 30000 generated ones, in
// chunks of every kind. A mismatch prints the archive as hex so it can become a hand-picked case.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "tar_build.hpp"
#include "tar_gen.hpp"
#include "tar_oracle.hpp"

using namespace tar_build;

namespace {

class Prng final : public tar_gen::Source {
public:
    explicit Prng(std::uint64_t seed) : rng_(seed) {}
    std::uint64_t below(std::uint64_t n) override { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }

private:
    std::mt19937_64 rng_;
};

std::string hex(std::string_view data) {
    std::string out;
    char buf[4];
    for (unsigned char c : data) {
        std::snprintf(buf, sizeof buf, "%02x", c);
        out += buf;
    }
    return out;
}

// The checker and libarchive agree on `tar`, whatever the chunk sizes.
std::string agree(const std::string& tar, std::initializer_list<std::size_t> chunks = {1 << 20, 512, 1, 700}) {
    for (std::size_t chunk : chunks) {
        auto lib = tar_oracle::libarchive_walk(tar, chunk == 1 ? 3 : chunk);
        auto mine = tar_oracle::checker_walk(tar, chunk);
        std::string diff = tar_oracle::compare(mine, lib);
        if (!diff.empty()) return diff + " (chunk " + std::to_string(chunk) + ")";
    }
    return {};
}

}  // namespace

TEST_CASE("tar check walks as libarchive: hand-picked archives") {
    const std::vector<std::pair<const char*, std::string>> cases = {
        {"plain", file("a", "x\n") + file("b", std::string(1000, 'b')) + eof()},
        {"no end blocks", file("a", "x\n")},
        {"pax size on a file", pax({{"size", "1024"}}) + entry(Header("f").size(3), std::string(1024, 'z')) +
                                   file("after", "a") + eof()},
        {"hard link size, ustar", file("t", "T") + entry(Header("h", '1').size(512).link("t")) +
                                      file("hidden", "h") + eof()},
        {"hard link size, GNU", file("t", "T") + entry(Header("h", '1', Magic::Gnu).size(512).link("t")) +
                                    file("hidden", "h") + eof()},
        {"base-256 size", entry(Header("big").size_base256(1536), std::string(1536, 'q')) + file("after", "") + eof()},
        {"old GNU sparse, extension blocks",
         gnu_sparse("sp", 100000, {{0, 512}, {2000, 512}, {4000, 512}, {6000, 512}, {8000, 512}, {9000, 512}}, 3072) +
             std::string(3072, 's') + file("after", "a") + eof()},
        {"sparse 1.0", pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "real"},
                            {"GNU.sparse.realsize", "5000"}}) +
                           entry(Header("GNUSparseFile.1/real").size(1024), sparse_10_map({{0, 10}, {4000, 500}}) +
                                                                              std::string(512, 'v')) +
                           file("after", "a") + eof()},
        {"global header only", pax({{"comment", "c"}}, 'g') + eof()},
        {"long names", gnu_long(std::string(150, 'n')) + file("short", "x") + gnu_long("target", 'K') +
                           entry(Header("l", '2').link("t")) + eof()},
    };
    for (const auto& [what, tar] : cases) {
        CAPTURE(what);
        CHECK(agree(tar) == "");
    }
}

// TAR_CHECK_ARCHIVES and TAR_CHECK_SEED run more (or other) archives, e.g. after changing the checker.
TEST_CASE("tar check walks as libarchive: generated archives") {
    const char* count_env = std::getenv("TAR_CHECK_ARCHIVES");
    const char* seed_env = std::getenv("TAR_CHECK_SEED");
    int count = count_env ? std::atoi(count_env) : 30000;
    Prng rng(seed_env ? std::strtoull(seed_env, nullptr, 10) : 20240611);
    int refused = 0, stopped = 0, ended = 0, failures = 0, sparse = 0, links = 0, long_names = 0;
    for (int i = 0; i < count; ++i) {
        std::string tar = tar_gen::archive(rng);
        std::string diff = i % 10 ? agree(tar, {1 << 20, 700}) : agree(tar);
        if (!diff.empty() && ++failures <= 5) {
            FAIL_CHECK("archive " << i << ": " << diff << "\n" << hex(tar));
        }
        auto mine = tar_oracle::checker_walk(tar, 1 << 20);
        auto lib = tar_oracle::libarchive_walk(tar, 1 << 20);
        for (std::size_t k = 0; k < mine.entries.size() && k < lib.entries.size(); ++k) {
            sparse += lib.entries[k].sparse;
            links += !mine.links[k].empty();
            long_names += mine.names[k].size() > 100;
        }
        refused += mine.state == imgtool::layer::TarCheck::State::Refused;
        stopped += mine.state == imgtool::layer::TarCheck::State::Stopped;
        ended += mine.state == imgtool::layer::TarCheck::State::End;
    }
    CHECK(failures == 0);
    // The generator must keep producing every outcome, or it tests less than it seems to.
    CHECK(refused > count / 30);
    CHECK(stopped > count / 30);
    CHECK(ended > count / 30);
    CHECK(sparse > count / 100);  // passed entries of each kind
    CHECK(links > count / 100);
    CHECK(long_names > count / 100);
    MESSAGE("refused " << refused << ", stopped " << stopped << ", ended " << ended << "; passed " << sparse
                        << " sparse entries, " << links << " links, " << long_names << " long names");
}
