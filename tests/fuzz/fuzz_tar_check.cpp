// libFuzzer target: layer::TarCheck against libarchive. The input is read twice: as a tar stream
// itself, and as the choices of tests/unit/tar_gen.hpp's generator (archives of the headers tar
// readers disagree about, which raw bytes rarely reach). Each time the checker's walk must be
// libarchive's (tests/unit/tar_oracle.hpp: same entries at the same offsets with the same names;
// the end when libarchive ends; a stop only where libarchive fails), and its verdict must not depend on
// where the stream is cut.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../unit/tar_gen.hpp"
#include "../unit/tar_oracle.hpp"

namespace {

// The generator's choices, taken from the input (zeros once it runs out).
class Choices final : public tar_gen::Source {
public:
    Choices(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint64_t below(std::uint64_t n) override {
        std::uint64_t v = 0;
        for (std::uint64_t range = 1; range < n && range < (std::uint64_t{1} << 48); range <<= 8) {
            v = v << 8 | (at_ < size_ ? data_[at_++] : 0);
        }
        return v % n;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

void require(const std::string& diff, const char* what) {
    if (diff.empty()) return;
    std::fprintf(stderr, "fuzz_tar_check: %s: %s\n", what, diff.c_str());
    std::abort();
}

std::string same_verdict(const tar_oracle::Checked& a, const tar_oracle::Checked& b) {
    if (a.state != b.state || a.finding != b.finding || a.names != b.names) {
        return "whole: " + a.finding + " (" + std::to_string(a.names.size()) + " entries), in pieces: " + b.finding +
               " (" + std::to_string(b.names.size()) + " entries)";
    }
    return {};
}

void check(const std::string& tar, const char* what) {
    auto whole = tar_oracle::checker_walk(tar, tar.size() + 1);
    require(tar_oracle::compare(whole, tar_oracle::libarchive_walk(tar, 4096)), what);
    require(same_verdict(whole, tar_oracle::checker_walk(tar, 1 + tar.size() % 613)), what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check(std::string(reinterpret_cast<const char*>(data), size), "input as a tar");
    Choices choices(data, size);
    check(tar_gen::archive(choices), "input as generator choices");
    return 0;
}
