// layer::merged_lookup: overlayfs's lookup rules over layer directories, without mounting (the import
// uses it to refuse implicit directories over a lower non-directory). Whiteouts (0/0 character devices)
// need no privilege since Linux 5.8; opaque markers use the user.* name, as a rootless store does.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs_test_support.hpp"
#include "imgtool/layer/merged.hpp"

using namespace imgtool;
using namespace fs_test;

namespace {

constexpr const char* kOpaque = "user.overlay.opaque";

struct Stack {
    Scratch top{memory_parent()}, middle{memory_parent()}, bottom{memory_parent()};
    std::vector<layer::StackedLayer> all() { return {{top.fd()}, {middle.fd()}, {bottom.fd()}}; }
};

void whiteout(int dirfd, const std::string& path) {
    check_sys(::mknodat(dirfd, path.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0, "mknod " + path);
}

layer::MergedKind kind(Stack& s, const std::string& path) {
    return layer::merged_lookup(s.all(), path, kOpaque).kind;
}

}  // namespace

TEST_CASE("merged_lookup follows overlayfs: the topmost entry decides, directories merge") {
    Stack s;
    make_dir(s.bottom.fd(), "usr");
    make_dir(s.bottom.fd(), "usr/bin");
    write_file(s.bottom.fd(), "usr/bin/sh", "sh");
    check_sys(::symlinkat("usr/bin", s.bottom.fd(), "bin") == 0, "symlink");
    make_dir(s.middle.fd(), "usr");
    make_dir(s.middle.fd(), "etc");
    CHECK(kind(s, "usr/bin") == layer::MergedKind::Directory);  // middle's usr merges with bottom's
    CHECK(kind(s, "etc") == layer::MergedKind::Directory);
    CHECK(kind(s, "nothing/here") == layer::MergedKind::Absent);
    auto bin = layer::merged_lookup(s.all(), "bin/newtool", kOpaque);
    CHECK(bin.kind == layer::MergedKind::Other);  // a symlink on the way: blocked at bin
    CHECK(bin.blocked_at == "bin");
    // A whiteout in a higher layer hides the lower entry; a directory above it is new, unmerged.
    whiteout(s.top.fd(), "bin");
    CHECK(kind(s, "bin") == layer::MergedKind::Absent);
    CHECK(kind(s, "usr/bin/sh") == layer::MergedKind::Other);
}

TEST_CASE("merged_lookup stops merging at an opaque directory and at an opaque layer root") {
    Stack s;
    make_dir(s.bottom.fd(), "d");
    write_file(s.bottom.fd(), "d/f", "f");
    make_dir(s.middle.fd(), "d");
    int fd = ::openat(s.middle.fd(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    check_sys(fd >= 0, "open d");
    bool xattr_ok = ::fsetxattr(fd, kOpaque, "y", 1, 0) == 0;
    ::close(fd);
    if (!xattr_ok) {
        MESSAGE("user xattrs unsupported on " << memory_parent() << ": opaque cases skipped");
        return;
    }
    CHECK(kind(s, "d") == layer::MergedKind::Directory);
    CHECK(kind(s, "d/f") == layer::MergedKind::Absent);  // hidden by the opaque middle d
    std::vector<layer::StackedLayer> cut = {{s.top.fd()}, {s.middle.fd(), true}, {s.bottom.fd()}};
    write_file(s.bottom.fd(), "only-below", "x");
    CHECK(layer::merged_lookup(cut, "only-below", kOpaque).kind == layer::MergedKind::Absent);
    CHECK(kind(s, "only-below") == layer::MergedKind::Other);
}
