#include "imgtool/overlay/copy.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/space.hpp"
#include "imgtool/sys/tree_metadata.hpp"

namespace imgtool::overlay {
namespace {

using sys::UniqueFd;

// Extended attributes are read by fd (regular files, directories) or by name under a parent fd with the
// l* calls through "/proc/self/fd/<dir>/<name>" (symlinks, devices: never opened, last component not
// followed). Overlay-internal names are never copied.
using XattrList = std::vector<std::pair<std::string, std::string>>;

template <typename List, typename Get>
XattrList collect_xattrs(List list, Get get) {
    XattrList out;
    ssize_t size = list(nullptr, 0);
    if (size <= 0) return out;
    std::string names(static_cast<std::size_t>(size), '\0');
    size = list(names.data(), names.size());
    if (size < 0) return out;
    for (std::size_t pos = 0; pos < static_cast<std::size_t>(size);) {
        std::string name = names.c_str() + pos;
        pos += name.size() + 1;
        if (sys::is_overlay_xattr(name)) continue;
        ssize_t vlen = get(name.c_str(), nullptr, 0);
        if (vlen < 0) continue;
        std::string value(static_cast<std::size_t>(vlen), '\0');
        vlen = get(name.c_str(), value.data(), value.size());
        if (vlen < 0) continue;
        value.resize(static_cast<std::size_t>(vlen));
        out.emplace_back(name, value);
    }
    return out;
}

XattrList xattrs_of_fd(int fd) {
    return collect_xattrs([fd](char* b, size_t n) { return ::flistxattr(fd, b, n); },
                          [fd](const char* k, void* v, size_t n) { return ::fgetxattr(fd, k, v, n); });
}

std::string proc_path(int dirfd, const std::string& name) {
    return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

XattrList xattrs_by_name(int dirfd, const std::string& name) {
    std::string p = proc_path(dirfd, name);
    return collect_xattrs([&p](char* b, size_t n) { return ::llistxattr(p.c_str(), b, n); },
                          [&p](const char* k, void* v, size_t n) { return ::lgetxattr(p.c_str(), k, v, n); });
}

// Data is copied in pieces of this size: each is charged to the reserve before it is written.
constexpr std::uint64_t kChunk = 256 << 10;

class Materializer {
public:
    Materializer(int target_fd, const CopyOptions& options, const detail::CreatedHook& created)
        : target_(target_fd), options_(options), created_(created) {}

    void apply_layer(const std::string& layer_dir) {
        // O_NOFOLLOW: a layer directory that is a symlink is not a layer the store made. The one link
        // followed is /proc/self/fd/N: it names a directory the caller already opened and checked
        // (Store::open_layer), and nothing on disk can redirect it.
        bool opened_by_caller = layer_dir.rfind("/proc/self/fd/", 0) == 0;
        UniqueFd root = sys::open_at(AT_FDCWD, layer_dir, O_RDONLY | O_DIRECTORY | (opened_by_caller ? 0 : O_NOFOLLOW), 0,
                                     layer_dir);
        links_.clear();
        struct Frame {
            UniqueFd src;
            std::string rel;  // "" for the root
        };
        std::vector<Frame> stack;
        stack.push_back({std::move(root), ""});
        bool at_root = true;
        while (!stack.empty()) {
            Frame f = std::move(stack.back());
            stack.pop_back();
            UniqueFd dst = open_target_dir(f.rel);
            if (at_root) {
                struct stat st = sys::fstat_fd(f.src.get(), layer_dir);
                defer(f.rel, st, false);
                copy_xattrs_fd(f.src.get(), dst.get());
                at_root = false;
            }
            // An opaque directory hides what lower layers put there: clear it before adding our entries.
            // Root stores mark it with trusted.*, rootless ones with user.* (tars cannot smuggle either).
            char v;
            auto opaque = [&](const char* name) { return ::fgetxattr(f.src.get(), name, &v, 1) == 1 && v == 'y'; };
            if (opaque("trusted.overlay.opaque") || opaque("user.overlay.opaque")) {
                for (const auto& n : sys::list_directory(dst.get(), f.rel)) sys::remove_tree_at(dst.get(), n);
            }
            for (const std::string& name : sys::list_directory(f.src.get(), layer_dir + "/" + f.rel)) {
                std::string rel = f.rel.empty() ? name : f.rel + "/" + name;
                auto [st, src_err] = sys::try_lstat_at(f.src.get(), name);
                if (src_err == ENOENT) continue;
                if (src_err) throw_errno(src_err, "stat", layer_dir + "/" + rel);
                ++stats_.entries;
                if (sys::is_whiteout(st)) {
                    sys::remove_tree_at(dst.get(), name);
                    continue;
                }
                auto [existing, dst_err] = sys::try_lstat_at(dst.get(), name);
                if (dst_err && dst_err != ENOENT) throw_errno(dst_err, "stat", rel);
                bool exists = !dst_err;
                if (S_ISDIR(st.st_mode)) {
                    if (exists && !S_ISDIR(existing.st_mode)) sys::remove_tree_at(dst.get(), name);
                    if (!exists || !S_ISDIR(existing.st_mode)) {
                        charge(0, 1);
                        // 0700 and ours until finish(): nobody else can add, swap or rename entries
                        // in it while we fill it.
                        if (::mkdirat(dst.get(), name.c_str(), 0700) != 0) throw_errno("mkdir", rel);
                        created(dst.get(), rel);
                    }
                    UniqueFd src_child = sys::open_at(f.src.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, rel);
                    UniqueFd dst_child = sys::open_at(dst.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, rel);
                    copy_xattrs_fd(src_child.get(), dst_child.get());
                    defer(rel, st, true);
                    stack.push_back({std::move(src_child), rel});
                    continue;
                }
                if (exists) sys::remove_tree_at(dst.get(), name);
                copy_entry(f.src.get(), dst.get(), name, rel, st);
            }
        }
    }

    // A higher layer's directory replaced the lower one's metadata when it was recorded; a directory a
    // higher layer deleted or replaced is skipped.
    void finish() { deferred_.apply(target_); }

    const CopyStats& stats() const { return stats_; }

private:
    UniqueFd open_target_dir(const std::string& rel) {
        if (rel.empty()) return sys::open_at(target_, ".", O_RDONLY | O_DIRECTORY);
        return sys::open_beneath(target_, rel, O_RDONLY | O_DIRECTORY);
    }

    // `chown`: false for the target itself, whose owner is the caller's.
    void defer(const std::string& rel, const struct stat& st, bool chown) {
        sys::DirMetadata meta;
        meta.mode = static_cast<mode_t>(st.st_mode & 07777);
        meta.times[0] = st.st_atim;
        meta.times[1] = st.st_mtim;
        if (chown) meta.owner = sys::Owner{st.st_uid, st.st_gid};
        deferred_.record(rel, meta);
    }

    void charge(std::uint64_t bytes, std::uint64_t entries) {
        if (options_.reserve != nullptr) options_.reserve->charge(bytes, entries);
    }

    void created(int dir, const std::string& rel) {
        if (created_) created_(dir, rel);
    }

    // The permission bits to apply to a non-directory.
    mode_t file_mode(const struct stat& st) const {
        mode_t mode = st.st_mode & 07777;
        return options_.strip_setid ? mode & ~(S_ISUID | S_ISGID) : mode;
    }

    void copy_xattrs_fd(int src, int dst) {
        for (const auto& [name, value] : xattrs_of_fd(src)) {
            if (::fsetxattr(dst, name.c_str(), value.data(), value.size(), 0) != 0 && errno != ENOTSUP) {
                throw_errno("setxattr", name);
            }
        }
    }

    void copy_xattrs_by_name(int src_dir, int dst_dir, const std::string& name) {
        std::string dst = proc_path(dst_dir, name);
        for (const auto& [xname, value] : xattrs_by_name(src_dir, name)) {
            if (::lsetxattr(dst.c_str(), xname.c_str(), value.data(), value.size(), 0) != 0 && errno != ENOTSUP &&
                errno != EPERM) {
                throw_errno("setxattr", name);
            }
        }
    }

    // Fills the empty regular file dst with src's `size` bytes, holes kept as holes.
    void copy_data(int src, int dst, const std::string& rel, off_t size) {
        if (reflink_ok_) {
            if (::ioctl(dst, FICLONE, src) == 0) {
                ++stats_.reflinked;
                return;
            }
            // Not this filesystem (or not across two): stop asking. Anything else is a real failure.
            if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EXDEV && errno != EINVAL && errno != EPERM) {
                throw_errno("clone", rel);
            }
            reflink_ok_ = false;
        }
        // Only the data segments are written: a 1 TiB file with 8 KiB of data costs 8 KiB.
        off_t pos = 0;
        off_t written_to = 0;
        while (pos < size) {
            off_t data = ::lseek(src, pos, SEEK_DATA);
            if (data < 0 && errno == ENXIO) break;  // only a hole up to the end
            if (data < 0) throw_errno("seek", rel);
            if (data >= size) break;
            off_t hole = ::lseek(src, data, SEEK_HOLE);
            if (hole < 0) throw_errno("seek", rel);
            off_t end = std::min(hole, size);
            if (copy_range(src, dst, rel, data, end - data)) written_to = end;
            pos = hole;
        }
        // The trailing hole (or all of an empty-looking file): the size without writing anything.
        if (written_to < size && ::ftruncate(dst, size) != 0) throw_errno("truncate", rel);
    }

    // Copies [offset, offset + length); false if the source ended before.
    bool copy_range(int src, int dst, const std::string& rel, off_t offset, off_t length) {
        while (length > 0) {
            std::uint64_t piece = std::min<std::uint64_t>(static_cast<std::uint64_t>(length), kChunk);
            charge(piece, 0);
            std::uint64_t done = copy_piece(src, dst, rel, offset, piece);
            stats_.copied_bytes += done;
            if (done < piece) return false;
            offset += static_cast<off_t>(piece);
            length -= static_cast<off_t>(piece);
        }
        return true;
    }

    // Copies up to `length` bytes at `offset`; fewer only at the source's end.
    std::uint64_t copy_piece(int src, int dst, const std::string& rel, off_t offset, std::uint64_t length) {
        std::uint64_t done = 0;
        while (done < length && copy_file_range_ok_) {
            loff_t in = offset + static_cast<off_t>(done);
            loff_t out = in;
            ssize_t n = ::copy_file_range(src, &in, dst, &out, length - done, 0);
            if (n > 0) {
                done += static_cast<std::uint64_t>(n);
            } else if (n == 0) {
                return done;
            } else if (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS) {
                // The kernel cannot copy between these two (another filesystem, an old kernel):
                // read and write ourselves from now on.
                copy_file_range_ok_ = false;
            } else if (errno != EINTR) {
                throw_errno("copy_file_range", rel);
            }
        }
        if (done < length && !buffer_) buffer_ = std::make_unique<char[]>(kChunk);
        while (done < length) {
            ssize_t n = ::pread(src, buffer_.get(), length - done, offset + static_cast<off_t>(done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw_errno("read", rel);
            if (n == 0) return done;
            sys::pwrite_all(dst, buffer_.get(), static_cast<std::size_t>(n), offset + static_cast<off_t>(done), rel);
            done += static_cast<std::uint64_t>(n);
        }
        return done;
    }

    void copy_entry(int src_dir, int dst_dir, const std::string& name, const std::string& rel, const struct stat& st) {
        if (options_.skip_devices && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
            ++stats_.skipped_devices;
            return;
        }
        // Hardlink groups: the second name of an inode in this layer becomes a link to the first copy.
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
            auto it = links_.find(st.st_ino);
            if (it != links_.end()) {
                auto [parent, base] = split_parent(it->second);
                UniqueFd pdir = open_target_dir(parent);
                if (::linkat(pdir.get(), base.c_str(), dst_dir, name.c_str(), 0) != 0) throw_errno("link", rel);
                return;
            }
            links_.emplace(st.st_ino, rel);
        }
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (S_ISREG(st.st_mode)) {
            UniqueFd in = sys::open_at(src_dir, name, O_RDONLY | O_NOFOLLOW, 0, rel);
            // The size of what was opened, not of what was listed.
            off_t size = sys::fstat_fd(in.get(), rel).st_size;
            charge(0, 1);
            int raw = ::openat(dst_dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (raw < 0) throw_errno("create", rel);
            UniqueFd out(raw);
            created(dst_dir, rel);
            copy_data(in.get(), out.get(), rel, size);
            if (::fchown(out.get(), st.st_uid, st.st_gid) != 0) throw_errno("chown", rel);
            if (::fchmod(out.get(), file_mode(st)) != 0) throw_errno("chmod", rel);
            copy_xattrs_fd(in.get(), out.get());
            if (::futimens(out.get(), times) != 0) throw_errno("utimes", rel);
            return;
        }
        if (S_ISLNK(st.st_mode)) {
            std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
            ssize_t n = ::readlinkat(src_dir, name.c_str(), target.data(), target.size());
            if (n < 0) throw_errno("readlink", rel);
            target.resize(static_cast<std::size_t>(n));
            charge(0, 1);
            if (::symlinkat(target.c_str(), dst_dir, name.c_str()) != 0) throw_errno("symlink", rel);
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
            charge(0, 1);
            if (::mknodat(dst_dir, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) throw_errno("mknod", rel);
        } else {
            return;  // sockets
        }
        created(dst_dir, rel);
        if (::fchownat(dst_dir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", rel);
        // AT_SYMLINK_NOFOLLOW: should the node have become a symlink, chmod fails instead of
        // changing the symlink's target.
        if (!S_ISLNK(st.st_mode) && ::fchmodat(dst_dir, name.c_str(), file_mode(st), AT_SYMLINK_NOFOLLOW) != 0) {
            throw_errno("chmod", rel);
        }
        copy_xattrs_by_name(src_dir, dst_dir, name);
        if (::utimensat(dst_dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("utimes", rel);
    }

    int target_;
    const CopyOptions& options_;
    const detail::CreatedHook& created_;
    CopyStats stats_;
    bool reflink_ok_ = true;
    bool copy_file_range_ok_ = true;
    std::unique_ptr<char[]> buffer_;  // for pread/pwrite, kChunk bytes
    std::map<ino_t, std::string> links_;
    sys::DeferredDirs deferred_;
};

}  // namespace

CopyStats materialize(const std::vector<std::string>& layer_dirs_bottom_first, int target_fd,
                      const CopyOptions& options) {
    return detail::materialize(layer_dirs_bottom_first, target_fd, options, {});
}

CopyStats detail::materialize(const std::vector<std::string>& layer_dirs_bottom_first, int target_fd,
                              const CopyOptions& options, const CreatedHook& created) {
    Materializer m(target_fd, options, created);
    for (const auto& dir : layer_dirs_bottom_first) {
        with_context("layer " + dir, [&] { m.apply_layer(dir); });
    }
    m.finish();
    return m.stats();
}

}  // namespace imgtool::overlay
