// sys/files: the error rule. Plain functions throw an Error carrying the errno and the path; try_
// variants hand the errno back and throw nothing; the compatibility shapes keep their old contracts.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>

#include "fs_test_support.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/sys/files.hpp"

using namespace imgtool;
using fs_test::check_sys;
using fs_test::make_dir;
using fs_test::Scratch;
using fs_test::write_file;

namespace {

std::error_code errno_code(int err) { return {err, std::generic_category()}; }

// The Error fn throws; fails the test if it throws none.
template <typename Fn>
Error thrown(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no imgtool::Error thrown");
    return Error(Errc::NotFound, "unreachable");
}

// root/{dir/{file}, file, link-out -> /, link-dir -> dir}
void make_tree(int root) {
    make_dir(root, "dir");
    write_file(root, "dir/file", "x");
    write_file(root, "file", "y");
    check_sys(::symlinkat("/", root, "link-out") == 0, "symlink link-out");
    check_sys(::symlinkat("dir", root, "link-dir") == 0, "symlink link-dir");
}

}  // namespace

TEST_CASE("try_open_beneath returns the errno instead of throwing; open_beneath throws it with the path") {
    Scratch s;
    make_tree(s.fd());

    auto [fd, err] = sys::try_open_beneath(s.fd(), "dir/file", O_RDONLY);
    CHECK(err == 0);
    CHECK(fd);

    CHECK(sys::try_open_beneath(s.fd(), "missing", O_RDONLY).err == ENOENT);
    CHECK(sys::try_open_beneath(s.fd(), "file/below", O_RDONLY).err == ENOTDIR);
    CHECK(sys::try_open_beneath(s.fd(), "link-dir/file", O_RDONLY).err == ELOOP);  // no symlink, even inside
    CHECK(sys::try_open_beneath(s.fd(), "../x", O_RDONLY).err == EXDEV);           // never above dirfd
    CHECK_FALSE(sys::try_open_beneath(s.fd(), "missing", O_RDONLY).value);

    Error e = thrown([&] { sys::open_beneath(s.fd(), "dir/missing", O_RDONLY); });
    CHECK(e.code() == errno_code(ENOENT));
    CHECK(e.path() == "dir/missing");
    CHECK(std::string(e.what()) == "open `dir/missing`: No such file or directory");
}

TEST_CASE("try_open_in_root resolves symlinks inside the root; open_in_root throws") {
    Scratch s;
    make_tree(s.fd());

    // link-out points at "/": inside the root that is the root itself, so dir/file is found there.
    auto [fd, err] = sys::try_open_in_root(s.fd(), "link-out/dir/file", O_RDONLY);
    REQUIRE(err == 0);
    CHECK(sys::read_fd(fd.get(), "file", 16) == "x");
    CHECK(sys::try_open_in_root(s.fd(), "link-dir/file", O_RDONLY).err == 0);
    CHECK(sys::try_open_in_root(s.fd(), "", O_RDONLY | O_DIRECTORY).err == 0);  // "" is the root
    CHECK(sys::try_open_in_root(s.fd(), "link-out/missing", O_RDONLY).err == ENOENT);
    CHECK(sys::try_open_in_root(s.fd(), "file", O_RDONLY | O_DIRECTORY).err == ENOTDIR);

    Error e = thrown([&] { sys::open_in_root(s.fd(), "nothing/here", O_RDONLY); });
    CHECK(e.code() == errno_code(ENOENT));
    CHECK(e.path() == "nothing/here");
}

TEST_CASE("try_lstat_at never follows the last component and hands back the errno") {
    Scratch s;
    make_tree(s.fd());

    auto [st, err] = sys::try_lstat_at(s.fd(), "link-dir");
    CHECK(err == 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK(S_ISDIR(sys::try_lstat_at(s.fd(), "dir").value.st_mode));
    CHECK(sys::try_lstat_at(s.fd(), "missing").err == ENOENT);
    CHECK(sys::try_lstat_at(s.fd(), "file/below").err == ENOTDIR);
}

TEST_CASE("mkdir_at: an existing directory is fine when asked, anything else there is an error") {
    Scratch s;
    make_tree(s.fd());
    sys::mkdir_at(s.fd(), "dir", 0755, true);
    sys::mkdir_at(s.fd(), "new", 0755, true);
    CHECK(fs_test::exists(s.fd(), "new"));
    CHECK(thrown([&] { sys::mkdir_at(s.fd(), "file", 0755, true); }).code() == errno_code(ENOTDIR));
    CHECK(thrown([&] { sys::mkdir_at(s.fd(), "link-dir", 0755, true); }).code() == errno_code(ENOTDIR));
    CHECK(thrown([&] { sys::mkdir_at(s.fd(), "dir", 0755, false); }).code() == errno_code(EEXIST));
}

