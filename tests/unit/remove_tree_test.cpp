// sys::remove_tree_at / remove_contents: strictly below the directory they start from, bounded fds
// whatever the depth, never across a mount. The races attackers used are replayed deterministically
// through the remover's observer (called after each directory is entered).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "fs_test_support.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/sys/files.hpp"

using namespace imgtool;
using fs_test::exists;
using fs_test::make_chain;
using fs_test::make_dir;
using fs_test::Scratch;
using fs_test::write_file;

namespace {

// The message and code of the imgtool::Error that fn throws ("" if none).
template <typename Fn>
std::pair<std::string, std::error_code> thrown(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return {e.what(), e.code()};
    }
    return {};
}

sys::UniqueFd open_dir(int dirfd, const std::string& path) {
    return sys::open_at(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

void move(int dirfd, const std::string& from, const std::string& to) {
    fs_test::check_sys(::renameat(dirfd, from.c_str(), dirfd, to.c_str()) == 0, "rename " + from);
}

// outside/ with files that must survive whatever happens to top/.
void make_victim(int dirfd, const std::string& name) {
    make_dir(dirfd, name);
    write_file(dirfd, name + "/keep1", "victim\n");
    make_dir(dirfd, name + "/sub");
    write_file(dirfd, name + "/sub/keep2", "victim\n");
}

bool victim_intact(int dirfd, const std::string& name) {
    return exists(dirfd, name + "/keep1") && exists(dirfd, name + "/sub/keep2");
}

}  // namespace

TEST_CASE("remove_tree_at removes every kind of entry and never follows a symlink") {
    Scratch s;
    make_victim(s.fd(), "outside");
    make_dir(s.fd(), "top");
    write_file(s.fd(), "top/file", "x");
    make_dir(s.fd(), "top/empty");
    make_dir(s.fd(), "top/d");
    make_dir(s.fd(), "top/d/e");
    write_file(s.fd(), "top/d/e/f", "x");
    REQUIRE(::symlinkat("../outside", s.fd(), "top/dirlink") == 0);
    REQUIRE(::symlinkat("../../outside/keep1", s.fd(), "top/d/filelink") == 0);
    REQUIRE(::mkfifoat(s.fd(), "top/d/fifo", 0600) == 0);
    sys::remove_tree_at(s.fd(), "top");
    CHECK_FALSE(exists(s.fd(), "top"));
    CHECK(victim_intact(s.fd(), "outside"));
    // A missing name is fine; a file is simply unlinked.
    CHECK_NOTHROW(sys::remove_tree_at(s.fd(), "top"));
    write_file(s.fd(), "plain", "x");
    sys::remove_tree_at(s.fd(), "plain");
    CHECK_FALSE(exists(s.fd(), "plain"));
}

TEST_CASE("remove_contents empties a directory and leaves the caller's fd as it was") {
    Scratch s;
    make_dir(s.fd(), "top");
    sys::UniqueFd top = open_dir(s.fd(), "top");
    make_chain(top.get(), "a", 5, 3);
    write_file(top.get(), "z", "x");
    sys::remove_contents(top.get(), "top");
    CHECK(sys::list_directory(top.get(), "top").empty());
    CHECK(exists(s.fd(), "top"));
}

TEST_CASE("a directory moved out of the tree mid-removal takes nothing outside with it") {
    // The attack of issue 12 item 3: while root removes top/, a user who can write in top/a moves
    // top/a/b (which root is inside) into a victim directory. Climbing back with ".." from b would
    // land in the victim and empty it.
    Scratch s;
    make_victim(s.fd(), "victim");
    make_dir(s.fd(), "top");
    make_dir(s.fd(), "top/a");
    write_file(s.fd(), "top/a/x", "x");
    make_dir(s.fd(), "top/a/b");
    make_chain(open_dir(s.fd(), "top/a/b").get(), "c", 3, 2);
    sys::detail::RemoveTreeOptions opts;
    int moved = 0;
    opts.entered = [&](int, const std::string& rel, std::size_t) {
        if (rel == "a/b") {
            move(s.fd(), "top/a/b", "victim/b");
            ++moved;
        }
    };
    int top = ::openat(s.fd(), "top", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    CHECK_NOTHROW(sys::detail::remove_children(top, "top", opts));
    ::close(top);
    CHECK(moved == 1);
    CHECK(victim_intact(s.fd(), "victim"));
    CHECK(exists(s.fd(), "victim/b"));  // moved away: no longer ours to remove
    CHECK(sys::list_directory(open_dir(s.fd(), "top").get(), "top").empty());
}

TEST_CASE("a directory removed by someone else after it was entered ends the removal quietly") {
    // Two removers of one tree: a --rm container's monitor removing its own area while another
    // command cleans tmp/. Reading a directory the other removed gives ENOENT: it is empty, not an error.
    Scratch s;
    make_dir(s.fd(), "top");
    make_dir(s.fd(), "top/a");
    write_file(s.fd(), "top/b", "b");
    sys::detail::RemoveTreeOptions opts;
    int removed = 0;
    opts.entered = [&](int, const std::string& rel, std::size_t) {
        if (rel == "a") {
            fs_test::check_sys(::unlinkat(s.fd(), "top/a", AT_REMOVEDIR) == 0, "rmdir top/a");
            ++removed;
        }
    };
    int top = ::openat(s.fd(), "top", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    CHECK_NOTHROW(sys::detail::remove_children(top, "top", opts));
    ::close(top);
    CHECK(removed == 1);
    CHECK(sys::list_directory(open_dir(s.fd(), "top").get(), "top").empty());
}

TEST_CASE("a directory swapped for a symlink after it was listed is unlinked, never followed") {
    Scratch s;
    make_victim(s.fd(), "outside");
    make_dir(s.fd(), "aside");
    make_dir(s.fd(), "top");
    for (int i = 0; i < 8; ++i) {
        make_dir(s.fd(), "top/d" + std::to_string(i));
        write_file(s.fd(), "top/d" + std::to_string(i) + "/f", "x");
    }
    sys::detail::RemoveTreeOptions opts;
    bool swapped = false;
    opts.entered = [&](int, const std::string& rel, std::size_t depth) {
        if (swapped || depth != 1) return;
        swapped = true;
        // Every other directory, already listed as a directory, becomes a symlink to outside/.
        for (int i = 0; i < 8; ++i) {
            std::string d = "d" + std::to_string(i);
            if (d == rel) continue;
            move(s.fd(), "top/" + d, "aside/" + d);
            REQUIRE(::symlinkat("../outside", s.fd(), ("top/" + d).c_str()) == 0);
        }
    };
    int top = ::openat(s.fd(), "top", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    CHECK_NOTHROW(sys::detail::remove_children(top, "top", opts));
    ::close(top);
    CHECK(swapped);
    CHECK(victim_intact(s.fd(), "outside"));
    CHECK(sys::list_directory(open_dir(s.fd(), "top").get(), "top").empty());
}

TEST_CASE("an ancestor moved away while outside the fd window stops the removal") {
    // With 4 fds for 200 levels, top/d is closed long before the bottom is reached; moved into the
    // victim meanwhile, it cannot be re-opened by name from top/, and nothing is guessed.
    Scratch s;
    make_victim(s.fd(), "victim");
    make_dir(s.fd(), "top");
    make_chain(open_dir(s.fd(), "top").get(), "d", 200, 1);  // top/d/d/.../d, a file in each
    sys::detail::RemoveTreeOptions opts;
    opts.fd_window = 4;
    opts.entered = [&](int, const std::string&, std::size_t depth) {
        if (depth == 200) move(s.fd(), "top/d", "victim/moved");
    };
    int top = ::openat(s.fd(), "top", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    auto [message, code] = thrown([&] { sys::detail::remove_children(top, "top", opts); });
    ::close(top);
    CHECK((code == make_error_code(Errc::UnsafePath)));
    CHECK_MESSAGE(message.find("remove `top/d`") != std::string::npos, message);
    CHECK_MESSAGE(message.find("moved while being removed") != std::string::npos, message);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(victim_intact(s.fd(), "victim"));
}

TEST_CASE("an ancestor re-opened by name must be the same directory, else the removal stops") {
    // The first level is moved aside and a look-alike chain with the same names put in its place:
    // re-opening downward finds other inodes. Continuing there would remove what was never in the tree.
    Scratch s;
    make_dir(s.fd(), "top");
    make_chain(open_dir(s.fd(), "top").get(), "d", 200, 1);
    sys::detail::RemoveTreeOptions opts;
    opts.fd_window = 4;
    bool replaced = false;
    opts.entered = [&](int, const std::string&, std::size_t depth) {
        if (depth != 200 || replaced) return;
        replaced = true;
        move(s.fd(), "top/d", "aside");
        make_chain(open_dir(s.fd(), "top").get(), "d", 200, 1, "planted");
    };
    int top = ::openat(s.fd(), "top", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    auto [message, code] = thrown([&] { sys::detail::remove_children(top, "top", opts); });
    ::close(top);
    CHECK((code == make_error_code(Errc::UnsafePath)));
    CHECK_MESSAGE(message.find("replaced by another directory") != std::string::npos, message);
    CHECK(fs_test::count_files(s.fd(), "top") == 200);  // every planted file is still there
}

TEST_CASE("a 10,000-deep tree is removed holding no more fds than the window") {
    Scratch s(fs_test::memory_parent());
    make_dir(s.fd(), "top");
    make_chain(open_dir(s.fd(), "top").get(), "d", 10000, 1);
    int top = ::openat(s.fd(), "top", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    std::size_t base = fs_test::open_fds();
    std::size_t peak = 0;
    sys::detail::RemoveTreeOptions opts;
    opts.fd_window = 8;
    opts.entered = [&](int, const std::string&, std::size_t depth) {
        if (depth % 250 == 0) peak = std::max(peak, fs_test::open_fds());
    };
    sys::detail::remove_children(top, "top", opts);
    ::close(top);
    CHECK(sys::list_directory(open_dir(s.fd(), "top").get(), "top").empty());
    // base includes `top`; the remover holds its own open of the top plus at most 8 others.
    CHECK(peak > base);
    CHECK(peak <= base + 1 + 8);
    // The public entry point (window 32) on the same shape.
    make_chain(open_dir(s.fd(), "top").get(), "d", 10000, 1);
    sys::remove_tree_at(s.fd(), "top");
    CHECK_FALSE(exists(s.fd(), "top"));
}

TEST_CASE("a directory mounted inside the tree is not entered, not unmounted, and named in the error") {
    // A bind mount of a directory on the same filesystem: st_dev is the same, only the mount id tells.
    fs_test::check_in_mount_namespace([]() -> std::string {
        Scratch s;
        make_victim(s.fd(), "outside");
        make_dir(s.fd(), "top");
        make_dir(s.fd(), "top/a");
        write_file(s.fd(), "top/a/x", "x");
        make_dir(s.fd(), "top/a/m");
        std::string mnt = s.path() + "/top/a/m";
        if (::mount((s.path() + "/outside").c_str(), mnt.c_str(), nullptr, MS_BIND, nullptr) != 0) {
            return std::string("bind mount: ") + std::strerror(errno);
        }
        auto [message, code] = thrown([&] { sys::remove_tree_at(s.fd(), "top"); });
        struct stat inside {};
        bool still_mounted = ::stat((mnt + "/keep1").c_str(), &inside) == 0;
        ::umount2(mnt.c_str(), MNT_DETACH);
        std::string bad;
        if (code != std::errc::device_or_resource_busy) bad += "code " + code.message() + "; ";
        if (message.find("remove `top/a/m`: a mount point inside the tree") == std::string::npos) {
            bad += "message: " + message + "; ";
        }
        if (!still_mounted) bad += "the mount is gone or emptied; ";
        if (!victim_intact(s.fd(), "outside")) bad += "files below the mount were removed; ";
        return bad;
    });
}

TEST_CASE("remove_tree_at of a mount point fails before emptying it") {
    fs_test::check_in_mount_namespace([]() -> std::string {
        Scratch s;
        make_victim(s.fd(), "outside");
        make_dir(s.fd(), "top");
        std::string mnt = s.path() + "/top";
        if (::mount((s.path() + "/outside").c_str(), mnt.c_str(), nullptr, MS_BIND, nullptr) != 0) {
            return std::string("bind mount: ") + std::strerror(errno);
        }
        auto [message, code] = thrown([&] { sys::remove_tree_at(s.fd(), "top"); });
        ::umount2(mnt.c_str(), MNT_DETACH);
        std::string bad;
        if (code != std::errc::device_or_resource_busy) bad += "code " + code.message() + " (" + message + "); ";
        if (!victim_intact(s.fd(), "outside")) bad += "the mounted directory was emptied; ";
        return bad;
    });
}

TEST_CASE("an ancestor re-opened through a mount made meanwhile stops the removal") {
    // top/d is bind-mounted onto itself while the remover is 40 levels down with 2 fds: re-opening it
    // by name finds the same (dev, inode), but through another mount, and is not entered.
    fs_test::check_in_mount_namespace([]() -> std::string {
        Scratch s;
        make_dir(s.fd(), "top");
        make_chain(open_dir(s.fd(), "top").get(), "d", 40, 1);
        std::string mnt = s.path() + "/top/d";
        bool mounted = false;
        std::string bad;
        sys::detail::RemoveTreeOptions opts;
        opts.fd_window = 2;
        opts.entered = [&](int, const std::string&, std::size_t depth) {
            if (depth != 40 || mounted) return;
            mounted = true;
            if (::mount(mnt.c_str(), mnt.c_str(), nullptr, MS_BIND, nullptr) != 0) {
                bad = std::string("bind mount: ") + std::strerror(errno);
            }
        };
        sys::UniqueFd top = open_dir(s.fd(), "top");
        auto [message, code] = thrown([&] { sys::detail::remove_children(top.get(), "top", opts); });
        ::umount2(mnt.c_str(), MNT_DETACH);
        if (!bad.empty()) return bad;
        if (code != std::errc::device_or_resource_busy ||
            message.find("remove `top/d`: a mount point inside the tree") == std::string::npos) {
            bad += "not refused as a mount point: " + message;
        }
        return bad;
    });
}
