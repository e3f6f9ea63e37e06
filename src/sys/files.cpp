#include "imgtool/sys/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "imgtool/core/error.hpp"

namespace imgtool::sys {
namespace {

std::string shown_or(std::string_view shown, const std::string& path) {
    return shown.empty() ? path : std::string(shown);
}

int raw_openat2(int dirfd, const std::string& path, int flags, mode_t mode, std::uint64_t resolve) {
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags) | O_CLOEXEC;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    long fd;
    do {
        fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
        // EAGAIN: the kernel saw a concurrent rename while resolving RESOLVE_IN_ROOT/BENEATH; retry.
    } while (fd < 0 && (errno == EAGAIN || errno == EINTR));
    return static_cast<int>(fd);
}

}  // namespace

UniqueFd open_at(int dirfd, const std::string& path, int flags, mode_t mode, std::string_view shown) {
    int fd;
    do {
        fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_errno("open", shown_or(shown, path));
    return UniqueFd(fd);
}

UniqueFd open_at_if_exists(int dirfd, const std::string& path, int flags, std::string_view shown) {
    int fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return {};
        throw_errno("open", shown_or(shown, path));
    }
    return UniqueFd(fd);
}

UniqueFd open_beneath(int dirfd, const std::string& path, int flags, mode_t mode) {
    int fd = raw_openat2(dirfd, path, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) throw_errno("open", path);
    return UniqueFd(fd);
}

UniqueFd open_beneath_if_exists(int dirfd, const std::string& path, int flags) {
    int fd = raw_openat2(dirfd, path, flags, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (fd < 0 && errno == ENOENT) return {};
    if (fd < 0) throw_errno("open", path);
    return UniqueFd(fd);
}

UniqueFd open_in_root(int rootfd, const std::string& path, int flags, int& err) {
    int fd = raw_openat2(rootfd, path.empty() ? "." : path, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    err = fd < 0 ? errno : 0;
    return UniqueFd(fd < 0 ? -1 : fd);
}

UniqueFd open_dirs_in_root(int rootfd, const std::string& path, int flags) {
    int err = 0;
    UniqueFd fd = open_in_root(rootfd, path, flags | O_DIRECTORY, err);
    if (fd) return fd;
    if (err != ENOENT) throw_errno(err, "open", path);
    UniqueFd current = open_at(rootfd, ".", O_PATH | O_DIRECTORY);
    // Prefixes keep the caller's spelling ("/a/b" or "a/b") so errors name the path as it was given.
    std::string prefix = !path.empty() && path[0] == '/' ? "/" : "";
    for (std::size_t pos = 0; pos <= path.size();) {
        std::size_t end = std::min(path.find('/', pos), path.size());
        std::string part = path.substr(pos, end - pos);
        pos = end + 1;
        if (part.empty() || part == ".") continue;
        prefix += (prefix.empty() || prefix == "/" ? "" : "/") + part;
        // Each prefix is resolved afresh inside the root; mkdirat goes into the directory it resolved to.
        UniqueFd next = open_in_root(rootfd, prefix, flags | O_DIRECTORY, err);
        if (!next && err == ENOENT) {
            if (::mkdirat(current.get(), part.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir", prefix);
            next = open_in_root(rootfd, prefix, flags | O_DIRECTORY, err);
        }
        if (!next) throw_errno(err, "open", prefix);
        current = std::move(next);
    }
    return current;
}

std::optional<struct stat> lstat_at(int dirfd, const std::string& name) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return st;
    if (errno == ENOENT) return std::nullopt;
    throw_errno("stat", name);
}

struct stat fstat_fd(int fd, std::string_view shown) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_errno("stat", shown);
    return st;
}

std::string read_file_at(int dirfd, const std::string& path, std::uint64_t max_bytes) {
    UniqueFd fd = open_at(dirfd, path, O_RDONLY);
    return read_fd(fd.get(), path, max_bytes);
}

std::string read_fd(int fd, std::string_view shown, std::uint64_t max_bytes) {
    struct stat st = fstat_fd(fd, shown);
    if (!S_ISREG(st.st_mode)) throw Error(Errc::Corrupt, std::string(shown) + ": not a regular file", std::string(shown));
    // Read to end of file rather than trusting st_size: /proc files report 0.
    std::string data;
    char buf[65536];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("read", shown);
        }
        if (n == 0) break;
        data.append(buf, static_cast<std::size_t>(n));
        if (data.size() > max_bytes) {
            throw Error(Errc::Corrupt, std::string(shown) + ": too large (limit " + std::to_string(max_bytes) + " bytes)",
                        std::string(shown));
        }
    }
    return data;
}

std::string pread_exact(int fd, std::uint64_t offset, std::uint64_t length, std::string_view shown) {
    std::string data(length, '\0');
    std::uint64_t done = 0;
    while (done < length) {
        ssize_t n = ::pread(fd, data.data() + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("read", shown);
        }
        if (n == 0) throw Error(Errc::Corrupt, std::string(shown) + ": unexpected end of file", std::string(shown));
        done += static_cast<std::uint64_t>(n);
    }
    return data;
}

void write_all(int fd, const void* data, std::size_t size, std::string_view shown) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("write", shown);
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
}

void fsync_fd(int fd, std::string_view shown) {
    if (::fsync(fd) != 0) throw_errno("fsync", shown);
}

std::string unique_name(std::string_view prefix) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%d-%016llx", static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(rng()));
    return std::string(prefix) + buf;
}

void atomic_write_file(int dirfd, const std::string& name, std::string_view data, mode_t mode) {
    std::string temp = unique_name("." + name + ".tmp-");
    UniqueFd fd = open_at(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    try {
        write_all(fd.get(), data.data(), data.size(), name);
        if (::fchmod(fd.get(), mode) != 0) throw_errno("chmod", name);
        fsync_fd(fd.get(), name);
        if (::renameat(dirfd, temp.c_str(), dirfd, name.c_str()) != 0) throw_errno("rename", name);
    } catch (...) {
        ::unlinkat(dirfd, temp.c_str(), 0);
        throw;
    }
    fsync_fd(dirfd, name);
}

void mkdir_at(int dirfd, const std::string& name, mode_t mode, bool exist_ok) {
    if (::mkdirat(dirfd, name.c_str(), mode) == 0) return;
    if (errno == EEXIST && exist_ok) {
        auto st = lstat_at(dirfd, name);
        if (st && S_ISDIR(st->st_mode)) return;
        throw Error(std::error_code(ENOTDIR, std::generic_category()), name + ": exists and is not a directory",
                    name);
    }
    throw_errno("mkdir", name);
}

namespace {

// A directory stream on a fresh open of directory `fd`: its own read position, so the caller's fd
// (and any other stream on it) is unaffected.
DIR* open_dir_stream(int fd, const std::string& shown) {
    int own = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (own < 0) throw_errno("open", shown);
    DIR* dir = ::fdopendir(own);
    if (dir == nullptr) {
        ::close(own);
        throw_errno("opendir", shown);
    }
    return dir;
}

struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
};
using DirStream = std::unique_ptr<DIR, DirCloser>;

// Calls `visit(name)` for each entry but "." and ".." until it returns false.
template <typename Visit>
void for_each_entry(int dirfd, const std::string& shown, Visit visit) {
    DirStream dir(open_dir_stream(dirfd, shown));
    while (struct dirent* e = ::readdir(dir.get())) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        if (!visit(e->d_name)) return;
    }
}

// Depth-first removal holding one directory fd at a time (a stack of names, not fds), so hostile
// thousands-deep trees neither overflow the call stack nor exhaust file descriptors. Children are
// entered with O_NOFOLLOW|O_DIRECTORY; we climb back with "..", which inside trees that only imgtool
// writes (staging, store) is the directory we came from.
void remove_children(int top_fd, const std::string& shown) {
    auto open_dir = [&](int fd) { return open_dir_stream(fd, shown); };
    std::vector<std::string> names;  // path from the top to the current directory
    UniqueFd current(::fcntl(top_fd, F_DUPFD_CLOEXEC, 0));
    if (!current) throw_errno("dup", shown);
    DIR* dir = open_dir(current.get());
    try {
        while (true) {
            errno = 0;
            struct dirent* ent = ::readdir(dir);
            if (ent == nullptr) {
                if (errno != 0) throw_errno("readdir", shown);
                ::closedir(dir);
                dir = nullptr;
                if (names.empty()) return;
                int parent = ::openat(current.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (parent < 0) throw_errno("open", shown + "/..");
                current.reset(parent);
                if (::unlinkat(current.get(), names.back().c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
                    throw_errno("rmdir", shown + "/" + names.back());
                }
                names.pop_back();
                dir = open_dir(current.get());
                continue;
            }
            const char* name = ent->d_name;
            if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
            if (::unlinkat(current.get(), name, 0) == 0 || errno == ENOENT) continue;
            if (errno != EISDIR && errno != EPERM) throw_errno("unlink", shown + "/" + name);
            if (::unlinkat(current.get(), name, AT_REMOVEDIR) == 0) continue;
            if (errno != ENOTEMPTY && errno != EEXIST) throw_errno("rmdir", shown + "/" + name);
            int child = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child < 0) throw_errno("open", shown + "/" + name);
            names.emplace_back(name);
            ::closedir(dir);
            dir = nullptr;
            current.reset(child);
            dir = open_dir(current.get());
        }
    } catch (...) {
        if (dir != nullptr) ::closedir(dir);
        throw;
    }
}

}  // namespace

std::vector<std::string> list_directory(int dirfd, const std::string& shown) {
    std::vector<std::string> names;
    for_each_entry(dirfd, shown, [&](const char* name) {
        names.emplace_back(name);
        return true;
    });
    std::sort(names.begin(), names.end());
    return names;
}

bool directory_is_empty(int dirfd, const std::string& shown) {
    bool empty = true;
    for_each_entry(dirfd, shown, [&](const char*) { return empty = false; });
    return empty;
}

void remove_contents(int dirfd, const std::string& shown) { remove_children(dirfd, shown); }

void remove_tree_at(int dirfd, const std::string& name) {
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
    if (errno != EISDIR && errno != EPERM) throw_errno("unlink", name);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return;
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return;
        throw_errno("open", name);
    }
    UniqueFd top(fd);
    remove_children(top.get(), name);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) throw_errno("rmdir", name);
}

}  // namespace imgtool::sys
