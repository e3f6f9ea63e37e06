// The tar record (layer/tar_record.hpp): unpack a tar with a record, regenerate it from the record and
// the tree, and get the very same bytes; and every lie a tampered record or tree can tell is refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <zstd.h>

#include <string>

#include "fs_test_support.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/layer/tar_record.hpp"
#include "imgtool/layer/unpack.hpp"
#include "imgtool/sys/files.hpp"
#include "tar_build.hpp"

using namespace imgtool;
using namespace tar_build;
using fs_test::Scratch;
using fs_test::write_file;

namespace {

// Feeds the tar to the unpacker in views of `chunk` bytes (headers straddle them).
class ChunkViews final : public sys::ViewReader {
public:
    ChunkViews(const std::string& data, std::size_t chunk) : data_(data), chunk_(chunk) {}
    std::span<const char> next() override {
        std::size_t n = std::min(chunk_, data_.size() - at_);
        std::span<const char> view(data_.data() + at_, n);
        at_ += n;
        return view;
    }

private:
    const std::string& data_;
    std::size_t chunk_;
    std::size_t at_ = 0;
};

struct Recorded {
    Scratch dir{fs_test::memory_parent()};
    int diff = -1;
    sys::UniqueFd diff_fd;
    std::string reason;
    std::uint64_t record_bytes = 0;
};

// Unpacks `tar` into a scratch diff/ with a record beside it (tar-record).
void record(Recorded& r, const std::string& tar, std::size_t chunk = 4096) {
    sys::mkdir_at(r.dir.fd(), "diff", 0755, false);
    r.diff_fd = sys::open_at(r.dir.fd(), "diff", O_RDONLY | O_DIRECTORY);
    sys::UniqueFd fd = sys::open_at(r.dir.fd(), layer::kTarRecordName, O_RDWR | O_CREAT | O_EXCL, 0644);
    layer::TarRecordWriter writer;
    writer.open(fd.get());
    ChunkViews views(tar, chunk);
    layer::RecordingViewReader tee(views, writer);
    layer::UnpackOptions options;
    options.record = &writer;
    options.rootless = ::geteuid() != 0;
    options.squash_owners = ::geteuid() != 0;
    layer::unpack_layer(static_cast<sys::ViewReader&>(tee), r.diff_fd.get(), options);
    while (!tee.next().empty()) {
    }
    r.reason = writer.finish();
    r.record_bytes = writer.record_bytes();
}

std::string regenerate(Recorded& r, std::uint64_t size) {
    sys::UniqueFd fd = sys::open_at(r.dir.fd(), layer::kTarRecordName, O_RDONLY);
    std::string out;
    layer::regenerate_tar(fd.get(), r.diff_fd.get(), size, [&](const char* p, std::size_t n) { out.append(p, n); });
    return out;
}

std::string error_of(Recorded& r, std::uint64_t size) {
    try {
        regenerate(r, size);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::string big(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 131 % 251);
    return s;
}

std::string sample_tar() {
    std::string long_name = std::string(150, 'n') + "/" + std::string(120, 'f');
    std::string tar;
    tar += entry(Header("etc/", '5'));
    tar += file("etc/hostname", "box\n");
    tar += file("etc/empty", "");
    tar += file("srv.bin", big(300000, 'a'));  // spans many views
    tar += entry(Header(std::string(150, 'n'), '5'));
    tar += gnu_long(long_name) + file(long_name.substr(0, 100), "gnu long name\n", Magic::Gnu);
    tar += pax({{"path", "paxdir-" + std::string(120, 'p')}}, 'x') + entry(Header("paxdir", '5'));
    tar += pax({{"SCHILY.xattr.user.foo", "bar"}, {"mtime", "1700000000.123456789"}}) + file("xattr.txt", "x\n");
    tar += entry(Header("hard", '1').link("etc/hostname"));
    tar += entry(Header("link", '2').link("/etc/hostname"));
    tar += file(".wh.gone", "");
    tar += eof();
    tar += std::string(1536, '\0');  // trailing zeros after the end blocks count in the diff_id
    return tar;
}

}  // namespace

TEST_CASE("tar record: regenerates the tar byte for byte, whatever the chunking") {
    std::string tar = sample_tar();
    for (std::size_t chunk : {std::size_t{1} << 20, std::size_t{4096}, std::size_t{777}, std::size_t{1}}) {
        if (chunk == 1 && tar.size() > 400000) chunk = 97;
        CAPTURE(chunk);
        Recorded r;
        record(r, tar, chunk);
        CHECK(r.reason == "");
        CHECK(regenerate(r, tar.size()) == tar);
        // File content is referred to, not copied: the record is a small part of the tar.
        CHECK(r.record_bytes < tar.size() / 20);
    }
}

TEST_CASE("tar record: a tar without end blocks and with odd trailing bytes comes back as it was") {
    std::string tar = file("a", "aaa") + file("b", big(5000, 'b'));
    Recorded r;
    record(r, tar);
    CHECK(r.reason == "");
    CHECK(regenerate(r, tar.size()) == tar);
}

TEST_CASE("tar record: sparse entries are kept inline") {
    std::string tar = gnu_sparse("sparse", 8192, {{0, 512}, {4096, 512}}, 1024) + big(1024, 's') + eof();
    Recorded r;
    record(r, tar);
    CHECK(r.reason == "");
    CHECK(regenerate(r, tar.size()) == tar);
}

TEST_CASE("tar record: a path written twice is not reproducible, and says why") {
    std::string tar = file("a", "first") + file("a", "second") + eof();
    Recorded r;
    record(r, tar);
    CHECK(r.reason.find("replaces a file") != std::string::npos);
    CHECK(error_of(r, tar.size()).find("not reproducible") != std::string::npos);
}

TEST_CASE("tar record: a regular file the unpacker does not keep (.wh. with data) is not reproducible") {
    std::string tar = file(".wh.x", "data") + eof();
    Recorded r;
    record(r, tar);
    CHECK(r.reason.find("not kept") != std::string::npos);
}

TEST_CASE("tar record: a changed tree or a lying size is refused") {
    std::string tar = sample_tar();
    SUBCASE("a file of another size") {
        Recorded r;
        record(r, tar);
        write_file(r.diff_fd.get(), "etc/hostname", "bigger content\n");
        CHECK(error_of(r, tar.size()).find("etc/hostname") != std::string::npos);
    }
    SUBCASE("a file replaced by a symlink") {
        Recorded r;
        record(r, tar);
        REQUIRE(::unlinkat(r.diff_fd.get(), "xattr.txt", 0) == 0);
        REQUIRE(::symlinkat("etc/hostname", r.diff_fd.get(), "xattr.txt") == 0);
        CHECK(error_of(r, tar.size()).find("xattr.txt") != std::string::npos);
    }
    SUBCASE("a directory on the way replaced by a symlink") {
        Recorded r;
        record(r, tar);
        REQUIRE(::renameat(r.diff_fd.get(), "etc", r.diff_fd.get(), "etc2") == 0);
        REQUIRE(::symlinkat("etc2", r.diff_fd.get(), "etc") == 0);
        CHECK(error_of(r, tar.size()).find("etc/hostname") != std::string::npos);
    }
    SUBCASE("a stated size smaller or larger than the record") {
        Recorded r;
        record(r, tar);
        CHECK(error_of(r, tar.size() - 1).find("past the layer's size") != std::string::npos);
        CHECK(error_of(r, tar.size() + 1).find("the layer has") != std::string::npos);
    }
    SUBCASE("a record that is not one") {
        Recorded r;
        record(r, tar);
        sys::UniqueFd fd = sys::open_at(r.dir.fd(), layer::kTarRecordName, O_WRONLY | O_TRUNC);
        sys::write_all(fd.get(), "garbage", 7, "record");
        CHECK(error_of(r, tar.size()) != "");
    }
}

namespace {

std::string le(std::uint64_t v, int bytes) {
    std::string s;
    for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return s;
}

// Replaces the record with `body` (zstd-compressed, as the writer writes it).
void forge(Recorded& r, const std::string& body) {
    std::string z(ZSTD_compressBound(body.size()), '\0');
    z.resize(ZSTD_compress(z.data(), z.size(), body.data(), body.size(), 1));
    sys::UniqueFd fd = sys::open_at(r.dir.fd(), layer::kTarRecordName, O_WRONLY | O_TRUNC);
    sys::write_all(fd.get(), z.data(), z.size(), "record");
}

}  // namespace

TEST_CASE("tar record: a forged record cannot reach outside the tree nor past the stated size") {
    Recorded r;
    record(r, file("a", "a") + eof());
    REQUIRE(r.reason == "");
    write_file(r.dir.fd(), "secret", "secret");
    const std::string magic = "imgtool-tar-record 1\n";
    SUBCASE("..") {
        forge(r, magic + "F" + le(6, 8) + le(9, 4) + "../secret" + "E" + le(6, 8));
        CHECK(error_of(r, 6).find("bad path") != std::string::npos);
    }
    SUBCASE("absolute") {
        forge(r, magic + "F" + le(6, 8) + le(11, 4) + "/etc/passwd" + "E" + le(6, 8));
        CHECK(error_of(r, 6).find("bad path") != std::string::npos);
    }
    SUBCASE("a symlink in the tree pointing out") {
        REQUIRE(::symlinkat("../secret", r.diff_fd.get(), "out") == 0);
        forge(r, magic + "F" + le(6, 8) + le(3, 4) + "out" + "E" + le(6, 8));
        CHECK(error_of(r, 6).find("out") != std::string::npos);
    }
    SUBCASE("a raw op longer than the layer") {
        forge(r, magic + "R" + le(1ull << 40, 8));
        CHECK(error_of(r, 6).find("past the layer's size") != std::string::npos);
    }
    SUBCASE("a huge path length") {
        forge(r, magic + "F" + le(1, 8) + le(0xffffffffu, 4));
        CHECK(error_of(r, 6).find("bad path length") != std::string::npos);
    }
    SUBCASE("truncated") {
        forge(r, magic + "R" + le(6, 8) + "abc");
        CHECK(error_of(r, 6).find("truncated") != std::string::npos);
    }
    SUBCASE("bytes after the end") {
        forge(r, magic + "R" + le(1, 8) + "a" + "E" + le(1, 8) + "junk");
        CHECK(error_of(r, 1).find("after its end") != std::string::npos);
    }
    SUBCASE("not reproducible") {
        forge(r, magic + "N" + le(3, 4) + "why");
        CHECK(error_of(r, 6).find("not reproducible: why") != std::string::npos);
    }
}

TEST_CASE("skipped device nodes: counted right, with the reason") {
    using imgtool::layer::skipped_devices_note;
    CHECK(skipped_devices_note(1).rfind("1 device node skipped (rootless: ", 0) == 0);
    CHECK(skipped_devices_note(2).rfind("2 device nodes skipped (rootless: ", 0) == 0);
    CHECK(skipped_devices_note(1).find('\n') == std::string::npos);
}
