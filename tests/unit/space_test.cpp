// sys::parse_min_free, space_limits_for and SpaceReserve: the --min-free grammar, the limits it gives
// for a filesystem, and when the reserve looks at the filesystem and stops a writer.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmath>
#include <string>

#include "fs_test_support.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/sys/space.hpp"

using namespace imgtool;
using sys::MinFreeSetting;
using sys::parse_min_free;
using sys::SpaceLimits;
using sys::SpaceReserve;

namespace {

constexpr std::uint64_t MiB = 1ULL << 20;

struct statvfs fs_of(int fd) {
    struct statvfs st {};
    REQUIRE(::fstatvfs(fd, &st) == 0);
    return st;
}

std::uint64_t free_bytes(int fd) {
    struct statvfs st {};
    fs_test::check_sys(::fstatvfs(fd, &st) == 0, "statvfs");
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

// The message of the Error that fn throws; "" if none. Anything but ENOSPC fails the test.
template <typename Fn>
std::string enospc_message(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        CHECK_MESSAGE((e.code() == std::errc::no_space_on_device), std::string(e.what()));
        return e.what();
    }
    return {};
}

std::optional<std::uint64_t> bytes_of(std::string_view text) {
    auto s = parse_min_free(text);
    if (!s || s->percent >= 0) return std::nullopt;
    return s->bytes;
}

}  // namespace

TEST_CASE("parse_min_free: sizes with binary units") {
    CHECK(bytes_of("1048576") == 1048576u);
    CHECK(bytes_of("512M") == 512 * MiB);
    CHECK(bytes_of("2G") == 2048 * MiB);
    CHECK(bytes_of("3T") == 3ULL << 40);
    for (const char* one_k : {"1K", "1k", "1KB", "1kb", "1KiB", "1kib", "1Ki"}) {
        CHECK_MESSAGE(bytes_of(one_k) == 1024u, std::string(one_k));
    }
    CHECK(bytes_of("7B") == 7u);
    CHECK(bytes_of("16777215T") == 16777215ULL << 40);  // the largest that fits in 64 bits
}

TEST_CASE("parse_min_free: percentages") {
    auto five = parse_min_free("5%");
    REQUIRE(five);
    CHECK(five->percent == doctest::Approx(5));
    CHECK(parse_min_free("0.5%")->percent == doctest::Approx(0.5));
    CHECK(parse_min_free("100%")->percent == doctest::Approx(100));
    CHECK(parse_min_free("0%")->percent == doctest::Approx(0));
}

TEST_CASE("parse_min_free: 0 disables the reserve") {
    for (const char* zero : {"0", "0M", "0%"}) {
        auto s = parse_min_free(zero);
        REQUIRE_MESSAGE(s, std::string(zero));
        CHECK_MESSAGE((s->bytes == 0 && s->percent <= 0), std::string(zero));
    }
}

TEST_CASE("parse_min_free: junk is refused") {
    for (const char* junk : {"", "abc", "G", "5X", "5MM", "1BB", "1BiB", "1iB", "-1", "+1", "-0", "1.5G", " 1G", "1G ",
                             "1 G", "0x10", "101%", "-5%", "-0%", "+5%", "%", "5%%", "5 %", "nan%", "inf%", "1e3%",
                             "16777216T", "99999999999999999999", "18446744073709551616"}) {
        CHECK_MESSAGE(!parse_min_free(junk).has_value(), "accepted: '" << std::string(junk) << "'");
    }
}

TEST_CASE("space_limits_for: the default, a size, a percentage, and 0") {
    fs_test::Scratch s;
    struct statvfs st = fs_of(s.fd());
    std::uint64_t size = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
    std::uint64_t files = st.f_files;

    SpaceLimits def = sys::space_limits_for(s.fd(), std::nullopt);
    CHECK(def.min_free_bytes == std::min<std::uint64_t>(1ULL << 30, size / 20));
    CHECK(def.min_free_inodes == std::min<std::uint64_t>(65536, files / 20));

    SpaceLimits sized = sys::space_limits_for(s.fd(), parse_min_free("512M"));
    CHECK(sized.min_free_bytes == 512 * MiB);
    CHECK(sized.min_free_inodes == def.min_free_inodes);

    SpaceLimits pct = sys::space_limits_for(s.fd(), parse_min_free("10%"));
    CHECK(static_cast<double>(pct.min_free_bytes) == doctest::Approx(static_cast<double>(size) / 10).epsilon(1e-9));
    CHECK(static_cast<double>(pct.min_free_inodes) == doctest::Approx(static_cast<double>(files) / 10).epsilon(1e-6));

    for (const char* zero : {"0", "0%"}) {
        SpaceLimits none = sys::space_limits_for(s.fd(), parse_min_free(zero));
        CHECK_MESSAGE(none.min_free_bytes == 0, std::string(zero));
        CHECK_MESSAGE(none.min_free_inodes == 0, std::string(zero));
    }
}

TEST_CASE("SpaceReserve: no reserve never stops a writer") {
    fs_test::Scratch s;
    SpaceReserve r(s.fd(), SpaceLimits{0, 0}, "store");
    CHECK_NOTHROW(r.charge(1ULL << 50, 1ULL << 40));
    CHECK_NOTHROW(r.check());
}

TEST_CASE("SpaceReserve: a reserve below the free space lets writers go on") {
    fs_test::Scratch s;
    SpaceReserve r(s.fd(), SpaceLimits{free_bytes(s.fd()) / 4, 0}, "store");
    for (int i = 0; i < 100; ++i) CHECK_NOTHROW(r.charge(64 * MiB, 1000));
    CHECK_NOTHROW(r.check());
}

TEST_CASE("SpaceReserve: looks every step (a sixteenth of the reserve, at most 64 MiB) and stops with ENOSPC") {
    fs_test::Scratch s;
    // A reserve beyond what is free: the first look must stop the writer, none may come earlier.
    std::uint64_t reserve = free_bytes(s.fd()) + (1ULL << 30);
    SpaceReserve r(s.fd(), SpaceLimits{reserve, 0}, "store");
    CHECK(enospc_message([&] { r.charge(64 * MiB - 1); }).empty());
    std::string message = enospc_message([&] { r.charge(1); });
    CHECK(message.find("store: stopped before filling the filesystem") == 0);
    CHECK(message.find("reserve") != std::string::npos);
    CHECK(message.find("--min-free") != std::string::npos);
    // check() looks whatever was charged; a failed look starts a new step.
    CHECK_FALSE(enospc_message([&] { r.check(); }).empty());
    CHECK(enospc_message([&] { r.charge(MiB); }).empty());
}

TEST_CASE("SpaceReserve: the inode reserve looks every sixteenth of it") {
    fs_test::Scratch s;
    struct statvfs st = fs_of(s.fd());
    if (st.f_files == 0) {
        MESSAGE("skipped: this filesystem reports no inode count");
        return;
    }
    std::uint64_t reserve = st.f_favail + 160;  // more than is free; step = reserve / 16
    std::uint64_t step = std::min<std::uint64_t>(reserve / 16, 4096);
    SpaceReserve r(s.fd(), SpaceLimits{0, reserve}, "store");
    CHECK(enospc_message([&] { r.charge(0, step - 1); }).empty());
    CHECK(enospc_message([&] { r.charge(0, 1); }).find("inodes free") != std::string::npos);
}

TEST_CASE("SpaceReserve: a part of the reserve that is 0 never triggers a look") {
    // A byte reserve only (btrfs reports no inodes): entries alone must not cost a statfs each.
    fs_test::Scratch s;
    SpaceReserve r(s.fd(), SpaceLimits{free_bytes(s.fd()) + (1ULL << 30), 0}, "store");
    CHECK(enospc_message([&] { r.charge(0, 1000000); }).empty());
    CHECK_FALSE(enospc_message([&] { r.charge(64 * MiB); }).empty());
}

TEST_CASE("SpaceReserve: a small reserve is not eaten between two looks") {
    // On a 4 MiB tmpfs with a 1 MiB reserve, a writer charging each 16 KiB before writing it is
    // stopped by the reserve (not by a failed write) with at least 15/16 of the reserve still free.
    fs_test::check_in_mount_namespace([]() -> std::string {
        fs_test::Scratch s;
        if (::mount("tmpfs", s.path().c_str(), "tmpfs", 0, "size=4m") != 0) {
            return std::string("mount tmpfs: ") + std::strerror(errno);
        }
        int dir = ::open(s.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        std::string result;
        try {
            const std::uint64_t reserve = MiB;
            SpaceReserve r(dir, SpaceLimits{reserve, 0}, "tiny");
            int fd = ::openat(dir, "fill", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            std::string chunk(16384, 'x');
            bool stopped = false;
            for (int i = 0; i < 1024 && !stopped; ++i) {
                try {
                    r.charge(chunk.size());
                } catch (const Error& e) {
                    if (e.code() != std::errc::no_space_on_device) throw;
                    stopped = true;
                    break;
                }
                sys::write_all(fd, chunk.data(), chunk.size(), "fill");
            }
            ::close(fd);
            std::uint64_t left = free_bytes(dir);
            if (!stopped) result = "the reserve never stopped the writer";
            if (left + reserve / 16 < reserve) result += std::string(result.empty() ? "" : "; ") + "only " + std::to_string(left) + " bytes left";
        } catch (const std::exception& e) {
            result = e.what();
        }
        ::close(dir);
        ::umount2(s.path().c_str(), MNT_DETACH);
        return result;
    });
}
