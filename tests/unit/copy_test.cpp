// overlay::materialize, the copy driver: holes kept, copies across filesystems, the free-space
// reserve, setuid stripping, skipped devices, and nothing followed or exposed while it fills the target.
// Tests that need a small filesystem mount a tmpfs in a private mount namespace (fs_test::
// check_in_mount_namespace); tests that need chown or mknod probe for them and skip with the reason.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fs_test_support.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/overlay/copy.hpp"
#include "imgtool/sys/space.hpp"

using namespace imgtool;
using fs_test::check_sys;
using fs_test::make_dir;
using fs_test::Scratch;
using fs_test::write_file;

namespace {

constexpr std::uint64_t KiB = 1ULL << 10;
constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::uint64_t GiB = 1ULL << 30;
constexpr std::uint64_t TiB = 1ULL << 40;

sys::UniqueFd open_dir(int dirfd, const std::string& path) {
    return sys::open_at(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

struct stat stat_at(int dirfd, const std::string& path) {
    struct stat st {};
    check_sys(::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0, "stat " + path);
    return st;
}

// A file of `size` logical bytes holding only `pieces` (offset, text): the rest is holes.
void make_sparse(int dirfd, const std::string& path, std::uint64_t size,
                 const std::vector<std::pair<std::uint64_t, std::string>>& pieces) {
    int fd = ::openat(dirfd, path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    check_sys(fd >= 0, "create " + path);
    bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
    for (const auto& [offset, text] : pieces) {
        ok = ok && ::pwrite(fd, text.data(), text.size(), static_cast<off_t>(offset)) == static_cast<ssize_t>(text.size());
    }
    ::close(fd);
    check_sys(ok, "write " + path);
}

std::string read_at(int dirfd, const std::string& path, std::uint64_t offset, std::size_t n) {
    sys::UniqueFd fd = sys::open_at(dirfd, path, O_RDONLY | O_NOFOLLOW);
    return sys::pread_exact(fd.get(), offset, n, path);
}

// Recognisable data: every 8-byte word holds its own offset.
std::string pattern(std::size_t size) {
    std::string data(size, '\0');
    for (std::size_t i = 0; i + 8 <= size; i += 8) std::memcpy(&data[i], &i, 8);
    return data;
}

// Mounts a tmpfs on `path` (inside check_in_mount_namespace only).
std::string mount_tmpfs(const std::string& path, const std::string& options) {
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, options.c_str()) == 0) return {};
    return "mount tmpfs " + options + ": " + std::strerror(errno);
}

std::uint64_t allocated(int dirfd, const std::string& path) {
    return static_cast<std::uint64_t>(stat_at(dirfd, path).st_blocks) * 512;
}

// The imgtool::Error that fn throws, as (what, code); empty if none.
template <typename Fn>
std::pair<std::string, std::error_code> thrown(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return {e.what(), e.code()};
    }
    return {};
}

bool can_chown_to_others(int dirfd) {
    write_file(dirfd, "probe", "");
    bool ok = ::fchownat(dirfd, "probe", 4321, 4321, 0) == 0;
    ::unlinkat(dirfd, "probe", 0);
    return ok;
}

}  // namespace

TEST_CASE("materialize keeps holes: a 1 TiB sparse file costs its data, not its size") {
    // On a 64 MiB tmpfs: a copy that wrote the holes would fail with ENOSPC instead of filling a disk.
    fs_test::check_in_mount_namespace([]() -> std::string {
        Scratch s;
        std::string err = mount_tmpfs(s.path(), "size=64m");
        if (!err.empty()) return err;
        std::string bad;
        try {
            sys::UniqueFd root = open_dir(AT_FDCWD, s.path());  // the tmpfs (s.fd() is below it)
            make_dir(root.get(), "layer");
            make_dir(root.get(), "target");
            sys::UniqueFd layer = open_dir(AT_FDCWD, s.path() + "/layer");
            make_sparse(layer.get(), "sparse", TiB, {{0, "head"}, {512 * GiB, "middle"}, {TiB - 4, "tail"}});
            make_sparse(layer.get(), "hole", 10 * GiB, {});
            write_file(layer.get(), "dense", pattern(3 * MiB));
            sys::UniqueFd target = open_dir(AT_FDCWD, s.path() + "/target");
            overlay::CopyStats stats = overlay::materialize({s.path() + "/layer"}, target.get());
            if (stat_at(target.get(), "sparse").st_size != static_cast<off_t>(TiB)) bad += "sparse: wrong size; ";
            if (allocated(target.get(), "sparse") > 64 * KiB) {
                bad += "sparse: " + std::to_string(allocated(target.get(), "sparse")) + " bytes allocated; ";
            }
            if (read_at(target.get(), "sparse", 0, 4) != "head" || read_at(target.get(), "sparse", 512 * GiB, 6) != "middle" ||
                read_at(target.get(), "sparse", TiB - 4, 4) != "tail" ||
                read_at(target.get(), "sparse", 256 * GiB, 4) != std::string(4, '\0')) {
                bad += "sparse: wrong data; ";
            }
            if (stat_at(target.get(), "hole").st_size != static_cast<off_t>(10 * GiB) || allocated(target.get(), "hole") != 0) {
                bad += "hole: wrong size or allocated; ";
            }
            if (fs_test::read_file(target.get(), "dense") != pattern(3 * MiB)) bad += "dense: wrong data; ";
            if (stats.copied_bytes > 3 * MiB + 64 * KiB) bad += "copied " + std::to_string(stats.copied_bytes) + " bytes; ";
        } catch (const std::exception& e) {
            bad += e.what();
        }
        ::umount2(s.path().c_str(), MNT_DETACH);
        return bad;
    });
}

TEST_CASE("materialize copies from another filesystem (copy_file_range says EXDEV): read and write") {
    Scratch layer_parent(fs_test::memory_parent());
    Scratch target_parent;
    if (stat_at(layer_parent.fd(), ".").st_dev == stat_at(target_parent.fd(), ".").st_dev) {
        MESSAGE("skipped: /dev/shm and the build directory are one filesystem here");
        return;
    }
    make_dir(layer_parent.fd(), "layer");
    sys::UniqueFd layer = open_dir(layer_parent.fd(), "layer");
    write_file(layer.get(), "dense", pattern(3 * MiB + 123));
    make_sparse(layer.get(), "sparse", GiB, {{0, "head"}, {GiB / 2, "middle"}});
    {
        // Show that this pair is the case the fallback is for.
        sys::UniqueFd in = sys::open_at(layer.get(), "dense", O_RDONLY);
        sys::UniqueFd out = sys::open_at(target_parent.fd(), "probe", O_WRONLY | O_CREAT, 0600);
        if (::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1, 0) >= 0 || errno != EXDEV) {
            MESSAGE("note: copy_file_range works across these two filesystems; the fallback is not exercised");
        }
        ::unlinkat(target_parent.fd(), "probe", 0);
    }
    overlay::CopyStats stats = overlay::materialize({layer_parent.path() + "/layer"}, target_parent.fd());
    CHECK(fs_test::read_file(target_parent.fd(), "dense") == pattern(3 * MiB + 123));
    CHECK(stat_at(target_parent.fd(), "sparse").st_size == static_cast<off_t>(GiB));
    CHECK(read_at(target_parent.fd(), "sparse", GiB / 2, 6) == "middle");
    CHECK(allocated(target_parent.fd(), "sparse") <= 256 * KiB);
    CHECK(stats.copied_bytes <= 3 * MiB + 123 + 64 * KiB);
}

TEST_CASE("materialize stops with the reserve's ENOSPC before the target falls below it (bytes)") {
    fs_test::check_in_mount_namespace([]() -> std::string {
        Scratch s;  // the layer, on the build directory's filesystem
        make_dir(s.fd(), "layer");
        for (int i = 0; i < 3; ++i) write_file(s.fd(), "layer/f" + std::to_string(i), pattern(4 * MiB));
        make_dir(s.fd(), "target");
        std::string target_path = s.path() + "/target";
        std::string err = mount_tmpfs(target_path, "size=16m");
        if (!err.empty()) return err;
        std::string bad;
        try {
            sys::UniqueFd target = open_dir(AT_FDCWD, target_path);
            const std::uint64_t reserve = 8 * MiB;
            sys::SpaceReserve r(target.get(), sys::SpaceLimits{reserve, 0}, target_path);
            overlay::CopyOptions opts;
            opts.reserve = &r;
            auto [message, code] = thrown([&] { overlay::materialize({s.path() + "/layer"}, target.get(), opts); });
            struct statvfs st {};
            ::fstatvfs(target.get(), &st);
            std::uint64_t left = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
            if (code != std::errc::no_space_on_device || message.find("stopped before filling") == std::string::npos) {
                bad += "not stopped by the reserve: '" + message + "'; ";
            }
            // At most a step (reserve / 16) and one piece of data (256 KiB) past the last look.
            if (left + reserve / 16 + 256 * KiB < reserve) bad += "only " + std::to_string(left) + " bytes left; ";
        } catch (const std::exception& e) {
            bad += e.what();
        }
        ::umount2(target_path.c_str(), MNT_DETACH);
        return bad;
    });
}

TEST_CASE("materialize stops with the reserve's ENOSPC before the target falls below it (inodes)") {
    fs_test::check_in_mount_namespace([]() -> std::string {
        Scratch s;
        make_dir(s.fd(), "layer");
        for (int d = 0; d < 3; ++d) {
            std::string dir = "layer/d" + std::to_string(d);
            make_dir(s.fd(), dir);
            for (int i = 0; i < 100; ++i) write_file(s.fd(), dir + "/f" + std::to_string(i), "");
        }
        make_dir(s.fd(), "target");
        std::string target_path = s.path() + "/target";
        std::string err = mount_tmpfs(target_path, "size=16m,nr_inodes=256");
        if (!err.empty()) return err;
        std::string bad;
        try {
            sys::UniqueFd target = open_dir(AT_FDCWD, target_path);
            const std::uint64_t reserve = 128;
            sys::SpaceReserve r(target.get(), sys::SpaceLimits{0, reserve}, target_path);
            overlay::CopyOptions opts;
            opts.reserve = &r;
            auto [message, code] = thrown([&] { overlay::materialize({s.path() + "/layer"}, target.get(), opts); });
            struct statvfs st {};
            ::fstatvfs(target.get(), &st);
            if (code != std::errc::no_space_on_device || message.find("inodes free") == std::string::npos) {
                bad += "not stopped by the reserve: '" + message + "'; ";
            }
            if (st.f_favail + reserve / 16 + 1 < reserve) bad += "only " + std::to_string(st.f_favail) + " inodes left; ";
        } catch (const std::exception& e) {
            bad += e.what();
        }
        ::umount2(target_path.c_str(), MNT_DETACH);
        return bad;
    });
}

TEST_CASE("strip_setid clears setuid and setgid on files, keeps setgid on directories") {
    Scratch s;
    make_dir(s.fd(), "layer");
    write_file(s.fd(), "layer/suid", "x");
    write_file(s.fd(), "layer/sgid", "x");
    write_file(s.fd(), "layer/both", "x");
    REQUIRE(::linkat(s.fd(), "layer/suid", s.fd(), "layer/suid.link", 0) == 0);
    make_dir(s.fd(), "layer/shared");
    check_sys(::fchmodat(s.fd(), "layer/suid", 04755, 0) == 0, "chmod");
    check_sys(::fchmodat(s.fd(), "layer/sgid", 02755, 0) == 0, "chmod");
    check_sys(::fchmodat(s.fd(), "layer/both", 06711, 0) == 0, "chmod");
    check_sys(::fchmodat(s.fd(), "layer/shared", 02775, 0) == 0, "chmod");
    auto mode = [&](int dir, const char* name) { return stat_at(dir, name).st_mode & 07777; };

    make_dir(s.fd(), "kept");
    sys::UniqueFd kept = open_dir(s.fd(), "kept");
    overlay::materialize({s.path() + "/layer"}, kept.get());
    CHECK(mode(kept.get(), "suid") == 04755);
    CHECK(mode(kept.get(), "both") == 06711);

    make_dir(s.fd(), "stripped");
    sys::UniqueFd stripped = open_dir(s.fd(), "stripped");
    overlay::CopyOptions opts;
    opts.strip_setid = true;
    overlay::materialize({s.path() + "/layer"}, stripped.get(), opts);
    CHECK(mode(stripped.get(), "suid") == 0755);
    CHECK(mode(stripped.get(), "suid.link") == 0755);
    CHECK(mode(stripped.get(), "sgid") == 0755);
    CHECK(mode(stripped.get(), "both") == 0711);
    CHECK(mode(stripped.get(), "shared") == 02775);
}

TEST_CASE("skip_devices creates no device node and counts it; a lower entry at its path is gone") {
    Scratch s;
    if (::mknodat(s.fd(), "probe", S_IFCHR | 0600, makedev(1, 3)) != 0) {
        if (::geteuid() == 0) FAIL("root cannot mknod here: " << std::strerror(errno));
        MESSAGE("skipped: mknod needs privileges (" << std::strerror(errno) << ")");
        return;
    }
    ::unlinkat(s.fd(), "probe", 0);
    make_dir(s.fd(), "lower");
    write_file(s.fd(), "lower/null", "a file in the lower layer");
    make_dir(s.fd(), "upper");
    check_sys(::mknodat(s.fd(), "upper/null", S_IFCHR | 0666, makedev(1, 3)) == 0, "mknod");
    check_sys(::mknodat(s.fd(), "upper/loop", S_IFBLK | 0660, makedev(7, 0)) == 0, "mknod");
    check_sys(::mkfifoat(s.fd(), "upper/fifo", 0644) == 0, "mkfifo");
    std::vector<std::string> layers{s.path() + "/lower", s.path() + "/upper"};

    make_dir(s.fd(), "with");
    sys::UniqueFd with = open_dir(s.fd(), "with");
    overlay::CopyStats all = overlay::materialize(layers, with.get());
    CHECK(S_ISCHR(stat_at(with.get(), "null").st_mode));
    CHECK(all.skipped_devices == 0);

    make_dir(s.fd(), "without");
    sys::UniqueFd without = open_dir(s.fd(), "without");
    overlay::CopyOptions opts;
    opts.skip_devices = true;
    overlay::CopyStats stats = overlay::materialize(layers, without.get(), opts);
    CHECK_FALSE(fs_test::exists(without.get(), "null"));
    CHECK_FALSE(fs_test::exists(without.get(), "loop"));
    CHECK(S_ISFIFO(stat_at(without.get(), "fifo").st_mode));
    CHECK(stats.skipped_devices == 2);
}

TEST_CASE("a layer directory that is a symlink is refused") {
    Scratch s;
    make_dir(s.fd(), "real");
    write_file(s.fd(), "real/f", "x");
    REQUIRE(::symlinkat("real", s.fd(), "link") == 0);
    make_dir(s.fd(), "target");
    sys::UniqueFd target = open_dir(s.fd(), "target");
    auto [message, code] = thrown([&] { overlay::materialize({s.path() + "/link"}, target.get()); });
    CHECK_MESSAGE((code == std::errc::too_many_symbolic_link_levels || code == std::errc::not_a_directory), message);
    CHECK(sys::list_directory(target.get(), "target").empty());
}

TEST_CASE("a node swapped for a symlink before its chmod: the symlink's target keeps its mode") {
    Scratch s;
    write_file(s.fd(), "victim", "secret", 0600);
    std::string victim = s.path() + "/victim";
    char abs[4096];
    REQUIRE(::realpath(victim.c_str(), abs) != nullptr);
    make_dir(s.fd(), "layer");
    check_sys(::mkfifoat(s.fd(), "layer/p", 0666) == 0, "mkfifo");
    check_sys(::fchmodat(s.fd(), "layer/p", 0666, 0) == 0, "chmod");
    make_dir(s.fd(), "target");
    sys::UniqueFd target = open_dir(s.fd(), "target");
    int swaps = 0;
    auto swap = [&](int dir, const std::string& rel) {
        if (rel != "p") return;
        ++swaps;
        check_sys(::unlinkat(dir, "p", 0) == 0, "unlink p");
        check_sys(::symlinkat(abs, dir, "p") == 0, "symlink p");
    };
    auto [message, code] = thrown([&] { overlay::detail::materialize({s.path() + "/layer"}, target.get(), {}, swap); });
    CHECK(swaps == 1);
    CHECK_FALSE(message.empty());
    CHECK((stat_at(s.fd(), "victim").st_mode & 07777) == 0600);
}

TEST_CASE("directories stay private to the copier until the end, then get their owner and mode") {
    Scratch s;
    if (!can_chown_to_others(s.fd())) {
        if (::geteuid() == 0) FAIL("root cannot chown here: " << std::strerror(errno));
        MESSAGE("skipped: giving files to another user needs privileges");
        return;
    }
    make_dir(s.fd(), "layer");
    make_dir(s.fd(), "layer/d");
    write_file(s.fd(), "layer/d/f", "x");
    check_sys(::fchownat(s.fd(), "layer/d", 4321, 4321, 0) == 0, "chown");
    check_sys(::fchmodat(s.fd(), "layer/d", 0777, 0) == 0, "chmod");
    make_dir(s.fd(), "target");
    sys::UniqueFd target = open_dir(s.fd(), "target");
    std::string seen;
    auto look = [&](int dir, const std::string& rel) {
        if (rel != "d/f") return;
        struct stat st {};
        check_sys(::fstat(dir, &st) == 0, "fstat");
        seen = std::to_string(st.st_uid) + " " + std::to_string(st.st_mode & 07777);
    };
    overlay::detail::materialize({s.path() + "/layer"}, target.get(), {}, look);
    CHECK(seen == std::to_string(::geteuid()) + " " + std::to_string(0700));
    struct stat d = stat_at(target.get(), "d");
    CHECK(d.st_uid == 4321u);
    CHECK(d.st_gid == 4321u);
    CHECK((d.st_mode & 07777) == 0777);
}
