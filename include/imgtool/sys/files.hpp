// Fd-relative file helpers. Nothing here follows a symlink unless its name says so.
//
// What sys is for: the calls that need care (openat2 resolution inside a root or beneath a directory,
// mounts, locks, tree removal, the free-space reserve, bounded readers), wrapped once. It is not the only
// place syscalls are made: where one libc call does the job (mkdirat, fchmod, linkat...), other modules
// call libc directly and report a failure with throw_errno, as crun does. (A few one-line conveniences
// that many modules share, such as fstat_fd and fsync_fd, live here too.)
//
// Errors, one rule for every function in sys:
//  - A failure throws imgtool::Error carrying the errno, the operation and the path:
//    "open `a/b`: No such file or directory" (throw_errno).
//  - Where a caller must branch on a specific errno (ENOENT: absent is an answer, not a failure; ENOTDIR,
//    ELOOP...), it calls the try_ variant instead: same arguments, nothing thrown for the call's own
//    failure, a Result {value, err} returned (err is 0 on success, else the errno). The caller handles the
//    errnos it expects and reports the rest with throw_errno(err, ...). The try_ mount calls fill an
//    FsMountError instead (errno, failing step, the kernel's message: a mount needs more than an errno
//    to explain itself; sys/mount.hpp).
//  - Nothing else: no int& out-parameters, no "empty fd means missing", no catching Error to read its
//    errno back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <sys/stat.h>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

// The result of a try_ function: `value` when err is 0, else err is the errno of the failed call. Written
// to be unpacked: `auto [fd, err] = sys::try_open_beneath(...)`.
template <typename T>
struct Result {
    T value{};
    int err = 0;
};

// openat(2); `shown` is the name used in the error message.
UniqueFd open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0, std::string_view shown = {});

// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: `path` must be a plain
// path below dirfd. Used for store and OCI-layout paths, where a symlink is always hostile, and to
// re-resolve a directory with no symlink allowed anywhere on the way.
UniqueFd open_beneath(int dirfd, const std::string& path, int flags, mode_t mode = 0);
Result<UniqueFd> try_open_beneath(int dirfd, const std::string& path, int flags, mode_t mode = 0);
// openat2(2) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: symlinks resolve as if rootfd were "/", so the
// result is always inside rootfd. "" is rootfd itself.
UniqueFd open_in_root(int rootfd, const std::string& path, int flags);
Result<UniqueFd> try_open_in_root(int rootfd, const std::string& path, int flags);

// Opens directory `path` inside rootfd (RESOLVE_IN_ROOT: symlinks in the path resolve inside the root),
// creating missing components (mode 0755, owned by the caller) as it goes. Throws with the failing prefix.
UniqueFd open_dirs_in_root(int rootfd, const std::string& path, int flags);

// fstatat(2) with AT_SYMLINK_NOFOLLOW. Only a try_ form: every caller branches on ENOENT.
Result<struct stat> try_lstat_at(int dirfd, const std::string& name);
struct stat fstat_fd(int fd, std::string_view shown);

// Reads a whole (small) file; refuses more than max_bytes so hostile inputs cannot exhaust memory.
std::string read_file_at(int dirfd, const std::string& path, std::uint64_t max_bytes);
// A user's configuration file (an auth file, registries.conf) whole, or nullopt if it does not exist:
// opened O_NONBLOCK so that a FIFO planted in its place fails (not a regular file) instead of hanging.
std::optional<std::string> read_config_file(const std::string& path, std::uint64_t max_bytes);
// Reads an open regular file from its current offset to the end, with the same cap.
std::string read_fd(int fd, std::string_view shown, std::uint64_t max_bytes);
std::string pread_exact(int fd, std::uint64_t offset, std::uint64_t length, std::string_view shown);
void write_all(int fd, const void* data, std::size_t size, std::string_view shown);
// Writes all of data at `offset` (pwrite, retried on short writes and EINTR).
void pwrite_all(int fd, const void* data, std::size_t size, off_t offset, std::string_view shown);

// Writes `data` to dirfd/name atomically: temp file, fsync, rename, fsync of the directory.
void atomic_write_file(int dirfd, const std::string& name, std::string_view data, mode_t mode);

void mkdir_at(int dirfd, const std::string& name, mode_t mode, bool exist_ok);
// Removes dirfd/name and everything below it without following symlinks. Missing is fine.
// The tree remover (this and remove_contents) works strictly below the directory it starts from:
// every directory is opened by name from its parent's fd (O_NOFOLLOW), never through ".." or a path
// from the top, so a directory moved away mid-removal takes nothing outside the tree with it. At most
// 32 directory fds are held at once, whatever the depth; an ancestor dropped from that window is
// re-opened downward by name and must be the same (dev, inode), else removal stops with an error.
// A directory on another mount (mount id differs from the top's) is never entered: removal stops
// with an error naming it, and nothing is unmounted. A name that is itself a mount point fails (EBUSY).
void remove_tree_at(int dirfd, const std::string& name);
bool directory_is_empty(int dirfd, const std::string& shown);
// The names in directory dirfd (without "." and ".."), sorted.
std::vector<std::string> list_directory(int dirfd, const std::string& shown);
// Removes everything inside the directory dirfd (not the directory itself), never following symlinks.
void remove_contents(int dirfd, const std::string& shown);
void fsync_fd(int fd, std::string_view shown);

namespace detail {
// The tree remover with its knobs exposed, for tests: the size of the fd window and an observer
// called after each directory is entered (its fd, its path below the top, its depth; the top is 0).
struct RemoveTreeOptions {
    std::size_t fd_window = 32;  // directory fds held besides the top (at least 2)
    std::function<void(int dirfd, const std::string& rel, std::size_t depth)> entered;
};
// Removes everything below top_fd (not top_fd itself), as remove_contents.
void remove_children(int top_fd, const std::string& shown, const RemoveTreeOptions& options);
}  // namespace detail

// A unique name for temporary entries: "<prefix><pid>-<random hex>".
std::string unique_name(std::string_view prefix);

}  // namespace imgtool::sys
