// sys/tree_metadata: what the unpacker and the copy driver share. Overlay xattr names, the whiteout
// test, and DeferredDirs: one node per path, the last record wins, applied deepest first, and a
// directory removed or replaced since it was recorded is skipped, never followed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>

#include "fs_test_support.hpp"
#include "imgtool/sys/tree_metadata.hpp"

using namespace imgtool;
using fs_test::check_sys;
using fs_test::make_dir;
using fs_test::Scratch;
using fs_test::write_file;

namespace {

struct stat stat_at(int dirfd, const std::string& path) {
    struct stat st {};
    check_sys(::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0, "stat " + path);
    return st;
}

sys::DirMetadata meta(mode_t mode, time_t mtime) {
    sys::DirMetadata m;
    m.mode = mode;
    m.times[0] = {mtime, 0};
    m.times[1] = {mtime, 0};
    return m;
}

}  // namespace

TEST_CASE("is_overlay_xattr: overlayfs's own names, trusted and user, nothing else") {
    CHECK(sys::is_overlay_xattr("trusted.overlay.opaque"));
    CHECK(sys::is_overlay_xattr("trusted.overlay.redirect"));
    CHECK(sys::is_overlay_xattr("user.overlay.opaque"));
    CHECK(sys::is_overlay_xattr("user.overlay.metacopy"));
    CHECK_FALSE(sys::is_overlay_xattr("trusted.overlay"));
    CHECK_FALSE(sys::is_overlay_xattr("trusted.overlayfoo"));
    CHECK_FALSE(sys::is_overlay_xattr("user.overlayx.opaque"));
    CHECK_FALSE(sys::is_overlay_xattr("security.capability"));
    CHECK_FALSE(sys::is_overlay_xattr("user.mime_type"));
    CHECK_FALSE(sys::is_overlay_xattr(""));
}

TEST_CASE("is_whiteout: a 0/0 character device and nothing else") {
    struct stat st {};
    st.st_mode = S_IFCHR | 0;
    st.st_rdev = makedev(0, 0);
    CHECK(sys::is_whiteout(st));
    st.st_rdev = makedev(1, 3);  // /dev/null
    CHECK_FALSE(sys::is_whiteout(st));
    st.st_mode = S_IFBLK;
    st.st_rdev = makedev(0, 0);
    CHECK_FALSE(sys::is_whiteout(st));
    st.st_mode = S_IFREG | 0644;
    CHECK_FALSE(sys::is_whiteout(st));
}

TEST_CASE("DeferredDirs keeps one node per directory path, however often it is recorded") {
    sys::DeferredDirs dirs;
    for (int i = 0; i < 1000; ++i) dirs.record("a/b/c", meta(0755, i));
    CHECK(dirs.node_count() == 4);  // the root, a, a/b, a/b/c
    dirs.record("a//b/c/", meta(0755, 0));  // empty components are no names
    CHECK(dirs.node_count() == 4);
    dirs.record("a/b/d", meta(0755, 0));
    dirs.record("", meta(0755, 0));
    CHECK(dirs.node_count() == 5);
}

TEST_CASE("DeferredDirs::apply sets mode and times, the last record winning; the owner only when given") {
    Scratch s;
    make_dir(s.fd(), "a");
    make_dir(s.fd(), "a/b");
    make_dir(s.fd(), "other");
    struct stat before = stat_at(s.fd(), "other");

    sys::DeferredDirs dirs;
    dirs.record("a", meta(0750, 1000000000));
    dirs.record("a/b", meta(0700, 1100000000));
    dirs.record("a/b", meta(02711, 1200000000));  // later wins, setgid kept
    sys::DirMetadata owned = meta(0755, 1300000000);
    owned.owner = sys::Owner{::geteuid(), ::getegid()};
    dirs.record("other", owned);
    dirs.apply(s.fd());

    struct stat a = stat_at(s.fd(), "a");
    CHECK((a.st_mode & 07777) == 0750);
    CHECK(a.st_mtim.tv_sec == 1000000000);  // not touched by the child's own fix-up
    struct stat b = stat_at(s.fd(), "a/b");
    CHECK((b.st_mode & 07777) == 02711);
    CHECK(b.st_mtim.tv_sec == 1200000000);
    CHECK(b.st_atim.tv_sec == 1200000000);
    struct stat other = stat_at(s.fd(), "other");
    CHECK(other.st_uid == before.st_uid);
    CHECK(other.st_mtim.tv_sec == 1300000000);
}

TEST_CASE("DeferredDirs::apply fixes children before their parent: a closed parent blocks nothing") {
    Scratch s;
    make_dir(s.fd(), "closed");
    make_dir(s.fd(), "closed/inner");
    sys::DeferredDirs dirs;
    dirs.record("closed", meta(0000, 1000000000));  // recorded first, as a tar lists it
    dirs.record("closed/inner", meta(0555, 1100000000));
    dirs.apply(s.fd());  // as an ordinary user this fails if the parent is closed first
    check_sys(::fchmodat(s.fd(), "closed", 0700, 0) == 0, "chmod closed");
    CHECK((stat_at(s.fd(), "closed/inner").st_mode & 07777) == 0555);
    CHECK(stat_at(s.fd(), "closed").st_mtim.tv_sec == 1000000000);
}

TEST_CASE("DeferredDirs::apply applies the root itself for the empty path") {
    Scratch s;
    make_dir(s.fd(), "top");
    sys::UniqueFd top = sys::open_at(s.fd(), "top", O_RDONLY | O_DIRECTORY);
    sys::DeferredDirs dirs;
    dirs.record("", meta(0711, 1000000000));
    dirs.apply(top.get());
    CHECK((stat_at(s.fd(), "top").st_mode & 07777) == 0711);
    CHECK(stat_at(s.fd(), "top").st_mtim.tv_sec == 1000000000);
}

TEST_CASE("DeferredDirs::apply skips what was removed or replaced since, and never follows a symlink") {
    Scratch s;
    make_dir(s.fd(), "tree");
    make_dir(s.fd(), "outside");
    check_sys(::fchmodat(s.fd(), "outside", 0755, 0) == 0, "chmod outside");
    sys::UniqueFd tree = sys::open_at(s.fd(), "tree", O_RDONLY | O_DIRECTORY);
    make_dir(tree.get(), "kept");
    make_dir(tree.get(), "real");
    write_file(tree.get(), "now-a-file", "x");
    // Replaced by symlinks after being recorded: to a directory outside, and through a component.
    check_sys(::symlinkat("../outside", tree.get(), "now-a-link") == 0, "symlink now-a-link");
    check_sys(::symlinkat("real", tree.get(), "via") == 0, "symlink via");
    make_dir(tree.get(), "real/sub");
    mode_t sub_mode = stat_at(tree.get(), "real/sub").st_mode;

    sys::DeferredDirs dirs;
    dirs.record("gone", meta(0700, 1000000000));
    dirs.record("now-a-file", meta(0700, 1000000000));
    dirs.record("now-a-file/below", meta(0700, 1000000000));
    dirs.record("now-a-link", meta(0700, 1000000000));
    dirs.record("via/sub", meta(0700, 1000000000));
    dirs.record("kept", meta(0701, 1000000000));
    dirs.apply(tree.get());

    CHECK((stat_at(tree.get(), "kept").st_mode & 07777) == 0701);
    CHECK((stat_at(s.fd(), "outside").st_mode & 07777) == 0755);
    CHECK(stat_at(s.fd(), "outside").st_mtim.tv_sec != 1000000000);
    CHECK(stat_at(tree.get(), "real/sub").st_mode == sub_mode);
    CHECK(S_ISREG(stat_at(tree.get(), "now-a-file").st_mode));
    CHECK(S_ISLNK(stat_at(tree.get(), "now-a-link").st_mode));
}
