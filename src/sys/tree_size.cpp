#include "imgtool/sys/tree_size.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>
#include <vector>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {
namespace {

// One fd per level: deeper trees are counted as far as this and marked incomplete (sizes recorded at
// import cover real layers; this is the fallback).
constexpr int kMaxDepth = 256;

struct Walk {
    std::uint64_t top_mount = 0;
    std::set<std::pair<std::uint64_t, std::uint64_t>> linked;  // (dev, ino) of files seen with nlink > 1
    TreeSize size;

    bool stat_at(int dirfd, const char* name, struct statx& stx, int flags = 0) {
        // AT_SYMLINK_NOFOLLOW: a symlink is measured as itself. STATX_MNT_ID: mount boundaries, also bind
        // mounts of the same filesystem (st_dev alone would not tell).
        if (::statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                    STATX_TYPE | STATX_SIZE | STATX_INO | STATX_NLINK | STATX_MNT_ID, &stx) != 0) {
            size.complete = false;
            return false;
        }
        return true;
    }

    void count(const struct statx& stx) {
        ++size.entries;
        if (S_ISDIR(stx.stx_mode)) return;
        if (!S_ISREG(stx.stx_mode) && !S_ISLNK(stx.stx_mode)) return;
        if (S_ISREG(stx.stx_mode) && stx.stx_nlink > 1) {
            auto key = std::make_pair((std::uint64_t{stx.stx_dev_major} << 32) | stx.stx_dev_minor, std::uint64_t{stx.stx_ino});
            if (!linked.insert(key).second) return;
        }
        size.bytes += stx.stx_size;
    }

    // Counts what is inside the directory `fd` (already counted itself).
    void children(int fd, int depth) {
        if (depth >= kMaxDepth) {
            size.complete = false;
            return;
        }
        int dup = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dup < 0) {
            size.complete = false;
            return;
        }
        DIR* dir = ::fdopendir(dup);
        if (dir == nullptr) {
            ::close(dup);
            size.complete = false;
            return;
        }
        std::vector<std::string> subdirs;
        while (struct dirent* e = ::readdir(dir)) {
            std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            struct statx stx {};
            if (!stat_at(fd, name.c_str(), stx)) continue;
            if (S_ISDIR(stx.stx_mode) && stx.stx_mnt_id != top_mount) {
                ++size.entries;
                size.complete = false;  // another mount: not the store's, never entered
                continue;
            }
            count(stx);
            if (S_ISDIR(stx.stx_mode)) subdirs.push_back(std::move(name));
        }
        ::closedir(dir);
        for (const auto& name : subdirs) {
            // O_NOFOLLOW: the name was a directory a moment ago; if it was swapped for a symlink since,
            // the open fails instead of leaving the tree.
            int raw = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (raw < 0) {
                size.complete = false;
                continue;
            }
            UniqueFd sub(raw);
            struct statx stx {};
            if (!stat_at(sub.get(), "", stx, AT_EMPTY_PATH) || stx.stx_mnt_id != top_mount) {
                size.complete = false;
                continue;
            }
            children(sub.get(), depth + 1);
        }
    }
};

}  // namespace

TreeSize tree_size_at(int dirfd, const std::string& name) {
    Walk walk;
    struct statx stx {};
    if (::statx(dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                STATX_TYPE | STATX_SIZE | STATX_INO | STATX_NLINK | STATX_MNT_ID, &stx) != 0) {
        if (errno != ENOENT) walk.size.complete = false;
        return walk.size;
    }
    walk.count(stx);
    if (!S_ISDIR(stx.stx_mode)) return walk.size;
    int raw = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) {
        walk.size.complete = false;
        return walk.size;
    }
    UniqueFd top(raw);
    walk.top_mount = stx.stx_mnt_id;
    walk.children(top.get(), 0);
    return walk.size;
}

}  // namespace imgtool::sys
