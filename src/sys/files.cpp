#include "imgtool/sys/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
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

UniqueFd open_beneath(int dirfd, const std::string& path, int flags, mode_t mode) {
    auto [fd, err] = try_open_beneath(dirfd, path, flags, mode);
    if (err) throw_errno(err, "open", path);
    return std::move(fd);
}

Result<UniqueFd> try_open_beneath(int dirfd, const std::string& path, int flags, mode_t mode) {
    int fd = raw_openat2(dirfd, path, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return {UniqueFd(), errno};
    return {UniqueFd(fd), 0};
}

UniqueFd open_in_root(int rootfd, const std::string& path, int flags) {
    auto [fd, err] = try_open_in_root(rootfd, path, flags);
    if (err) throw_errno(err, "open", path);
    return std::move(fd);
}

Result<UniqueFd> try_open_in_root(int rootfd, const std::string& path, int flags) {
    int fd = raw_openat2(rootfd, path.empty() ? "." : path, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return {UniqueFd(), errno};
    return {UniqueFd(fd), 0};
}

UniqueFd open_dirs_in_root(int rootfd, const std::string& path, int flags) {
    auto whole = try_open_in_root(rootfd, path, flags | O_DIRECTORY);
    if (!whole.err) return std::move(whole.value);
    if (whole.err != ENOENT) throw_errno(whole.err, "open", path);
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
        auto next = try_open_in_root(rootfd, prefix, flags | O_DIRECTORY);
        if (next.err == ENOENT) {
            if (::mkdirat(current.get(), part.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir", prefix);
            next = try_open_in_root(rootfd, prefix, flags | O_DIRECTORY);
        }
        if (next.err) throw_errno(next.err, "open", prefix);
        current = std::move(next.value);
    }
    return current;
}

Result<struct stat> try_lstat_at(int dirfd, const std::string& name) {
    Result<struct stat> r;
    if (::fstatat(dirfd, name.c_str(), &r.value, AT_SYMLINK_NOFOLLOW) != 0) r.err = errno;
    return r;
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

std::optional<std::string> read_config_file(const std::string& path, std::uint64_t max_bytes) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd && (errno == ENOENT || errno == ENOTDIR)) return std::nullopt;
    if (!fd) throw_errno("open", path);
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

void pwrite_all(int fd, const void* data, std::size_t size, off_t offset, std::string_view shown) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::pwrite(fd, p, size, offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("write", shown);
        }
        p += n;
        offset += n;
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
        auto [st, err] = try_lstat_at(dirfd, name);
        if (err && err != ENOENT) throw_errno(err, "stat", name);
        if (!err && S_ISDIR(st.st_mode)) return;
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

// The tree remover. Depth first and iterative (a stack of frames, not of calls), strictly fd-relative:
//  - a child directory is opened by name from its parent's fd with O_NOFOLLOW|O_DIRECTORY and
//    identified by statx (dev, inode, mount id); one whose mount id differs from the top's is a mount
//    point and is not entered;
//  - we never climb with "..": a directory moved elsewhere while we are inside it has a new parent,
//    and ".." would lead there (the attack this replaces). Each frame's parent is still open, or is
//    re-opened downward from the nearest open ancestor, name by name, each checked against the
//    (dev, inode) recorded when it was first entered;
//  - at most `window` directory fds (plus the top) are open, so a 10,000-deep tree needs no more fds
//    than a shallow one. Which ancestor to close is chosen so that the open ones are spaced in
//    proportion to their distance from the current depth: the near ones are needed first. Climbing back
//    out of an n-deep chain re-opens a few directories per level (about 4 for 10,000 deep and 32 fds),
//    and trees shallower than the window re-open nothing.
class TreeRemover {
public:
    TreeRemover(int top_fd, std::string shown, const detail::RemoveTreeOptions& options)
        : shown_(std::move(shown)), options_(options), window_(std::max<std::size_t>(2, options.fd_window)) {
        // Our own open of the top: its own read position, the caller's fd is left as it was.
        int raw = ::openat(top_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (raw < 0) throw_errno("open", shown_);
        UniqueFd fd(raw);
        frames_.emplace_back();
        Identity id = identity(fd.get(), 0, {});
        frames_[0].dev = id.dev;
        frames_[0].ino = id.ino;
        top_mnt_ = id.mnt;
        hold(0, std::move(fd));
    }

    void run() {
        while (true) {
            std::size_t depth = frames_.size() - 1;
            int fd = fd_at(depth);
            const struct dirent64* e = next_entry(depth);
            if (e == nullptr) {
                if (depth == 0) return;
                leave();
                continue;
            }
            std::string name = e->d_name;
            if (e->d_type != DT_DIR) {
                if (::unlinkat(fd, name.c_str(), 0) == 0 || errno == ENOENT) continue;
                if (errno != EISDIR) throw_errno("unlink", path(depth, name));  // DT_UNKNOWN or changed
            }
            enter(depth, name);
        }
    }

private:
    static constexpr std::size_t kBufferSize = 8192;

    struct Frame {
        std::string name;  // its name in the parent ("" for the top)
        dev_t dev = 0;
        ino_t ino = 0;
        UniqueFd fd;  // empty while the frame is outside the window
        std::unique_ptr<char[]> buffer;  // getdents64 records not yet handled: [pos, len)
        std::size_t pos = 0;
        std::size_t len = 0;
    };

    struct Identity {
        dev_t dev;
        ino_t ino;
        std::uint64_t mnt;
    };

    Identity identity(int fd, std::size_t depth, std::string_view name) const {
        struct statx stx {};
        if (::statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &stx) != 0) throw_errno("stat", path(depth, name));
        if (!(stx.stx_mask & STATX_MNT_ID)) {
            std::string p = path(depth, name);
            throw Error(Errc::Unsupported, "stat `" + p + "`: the kernel reports no mount id (needs Linux 5.8)", p);
        }
        return {makedev(stx.stx_dev_major, stx.stx_dev_minor), static_cast<ino_t>(stx.stx_ino), stx.stx_mnt_id};
    }

    // "shown/a/b[/name]" for frame `depth`: built only for messages and the observer.
    std::string path(std::size_t depth, std::string_view name = {}) const {
        std::string p = shown_;
        for (std::size_t i = 1; i <= depth; ++i) p += "/" + frames_[i].name;
        if (!name.empty()) (p += "/") += name;
        return p;
    }

    const struct dirent64* next_entry(std::size_t depth) {
        Frame& f = frames_[depth];
        while (true) {
            while (f.pos < f.len) {
                auto* e = reinterpret_cast<const struct dirent64*>(f.buffer.get() + f.pos);
                f.pos += e->d_reclen;
                if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) return e;
            }
            ssize_t n = ::getdents64(f.fd.get(), f.buffer.get(), kBufferSize);
            if (n < 0) {
                if (errno == EINTR) continue;
                // Removed by someone else since it was opened (a --rm container's monitor removing its
                // own area while a command cleans tmp/): a removed directory is empty.
                if (errno == ENOENT) return nullptr;
                throw_errno("read directory", path(depth));
            }
            if (n == 0) return nullptr;
            f.pos = 0;
            f.len = static_cast<std::size_t>(n);
        }
    }

    // Enters directory `name` of frame `parent` (which is open), unless it is gone or not a directory.
    void enter(std::size_t parent, const std::string& name) {
        int pfd = frames_[parent].fd.get();
        int raw = ::openat(pfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (raw < 0) {
            if (errno == ENOENT) return;
            // Replaced by a non-directory since it was listed: remove it like any other entry.
            if ((errno == ENOTDIR || errno == ELOOP) && (::unlinkat(pfd, name.c_str(), 0) == 0 || errno == ENOENT)) {
                return;
            }
            throw_errno("open", path(parent, name));
        }
        UniqueFd fd(raw);
        Identity id = identity(fd.get(), parent, name);
        if (id.mnt != top_mnt_) refuse_mount(parent, name);
        Frame f;
        f.name = name;
        f.dev = id.dev;
        f.ino = id.ino;
        frames_.push_back(std::move(f));
        hold(parent + 1, std::move(fd));
        if (options_.entered) {
            std::string rel = path(parent + 1).substr(shown_.size() + 1);
            options_.entered(frames_.back().fd.get(), rel, parent + 1);
        }
    }

    [[noreturn]] void refuse_mount(std::size_t parent, const std::string& name) const {
        std::string p = path(parent, name);
        throw Error(std::make_error_code(std::errc::device_or_resource_busy),
                    "remove `" + p + "`: a mount point inside the tree (not entered); unmount it first", p);
    }

    // The current directory was read to its end: close it and remove it from its parent.
    void leave() {
        std::size_t depth = frames_.size() - 1;
        std::string name = std::move(frames_[depth].name);
        release(depth);
        frames_.pop_back();
        int pfd = fd_at(depth - 1);
        // ENOENT: moved away (or removed) by someone else meanwhile; what it holds now is not ours.
        // ENOTEMPTY: someone added entries after we read it to the end; an error, as it always was.
        if (::unlinkat(pfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) throw_errno("rmdir", path(depth - 1, name));
    }

    int fd_at(std::size_t depth) {
        if (!frames_[depth].fd) reopen(depth);
        return frames_[depth].fd.get();
    }

    // Re-opens frames down to `depth` from the nearest open ancestor (every open frame is shallower).
    void reopen(std::size_t depth) {
        for (std::size_t i = held_.back() + 1; i <= depth; ++i) {
            int raw = ::openat(frames_[i - 1].fd.get(), frames_[i].name.c_str(),
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (raw < 0) {
                std::string p = path(i);
                throw Error(make_error_code(Errc::UnsafePath),
                            "remove `" + p + "`: moved while being removed (" + std::strerror(errno) + "); stopped", p);
            }
            UniqueFd fd(raw);
            Identity id = identity(fd.get(), i, {});
            if (id.dev != frames_[i].dev || id.ino != frames_[i].ino) {
                std::string p = path(i);
                throw Error(make_error_code(Errc::UnsafePath),
                            "remove `" + p + "`: replaced by another directory while being removed; stopped", p);
            }
            if (id.mnt != top_mnt_) refuse_mount(i - 1, frames_[i].name);
            hold(i, std::move(fd));
        }
    }

    // Opens frame `depth` (deeper than every open frame), closing one ancestor if the window is full.
    void hold(std::size_t depth, UniqueFd fd) {
        if (held_.size() > window_) evict(depth);
        Frame& f = frames_[depth];
        f.fd = std::move(fd);
        if (!f.buffer) f.buffer = std::make_unique<char[]>(kBufferSize);
        f.pos = f.len = 0;  // a fresh open reads from the start
        held_.push_back(depth);
    }

    // Closes the open ancestor whose loss widens the gap between open ancestors least, relative to its
    // distance from `depth`. Never the top (held_[0]) nor the parent of `depth` (held_.back()).
    void evict(std::size_t depth) {
        std::size_t best = 0;
        std::uint64_t best_gap = 0, best_dist = 1;
        for (std::size_t t = 1; t + 1 < held_.size(); ++t) {
            std::uint64_t gap = held_[t + 1] - held_[t - 1];
            std::uint64_t dist = depth - held_[t];
            if (best == 0 || gap * best_dist < best_gap * dist) {
                best = t;
                best_gap = gap;
                best_dist = dist;
            }
        }
        Frame& f = frames_[held_[best]];
        f.fd.reset();
        f.buffer.reset();
        held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(best));
    }

    void release(std::size_t depth) {
        Frame& f = frames_[depth];
        if (!f.fd) return;
        f.fd.reset();
        f.buffer.reset();
        held_.pop_back();  // only the deepest frame is ever released
    }

    std::string shown_;
    const detail::RemoveTreeOptions& options_;
    std::size_t window_;
    std::uint64_t top_mnt_ = 0;
    std::vector<Frame> frames_;       // frames_[0] is the top, frames_.back() the current directory
    std::vector<std::size_t> held_;   // depths of the open frames, ascending; held_[0] == 0
};

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

void detail::remove_children(int top_fd, const std::string& shown, const RemoveTreeOptions& options) {
    TreeRemover(top_fd, shown, options).run();
}

void remove_contents(int dirfd, const std::string& shown) { detail::remove_children(dirfd, shown, {}); }

void remove_tree_at(int dirfd, const std::string& name) {
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
    if (errno != EISDIR && errno != EPERM) throw_errno("unlink", name);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return;
    // EBUSY: a mount point (rmdir says so before looking inside); never empty another filesystem.
    if (errno != ENOTEMPTY && errno != EEXIST) throw_errno("rmdir", name);
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return;
        throw_errno("open", name);
    }
    UniqueFd top(fd);
    detail::remove_children(top.get(), name, {});
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) throw_errno("rmdir", name);
}

}  // namespace imgtool::sys
