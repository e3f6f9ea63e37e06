#include "imgtool/layer/unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <algorithm>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/layer/compression.hpp"
#include "imgtool/layer/entry_path.hpp"
#include "imgtool/layer/tar_record.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/tree_metadata.hpp"

namespace imgtool::layer {
namespace {

using sys::UniqueFd;

struct ArchiveDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};

// Feeds libarchive the stream's own buffers (no copy); an exception is parked and rethrown after
// libarchive returns. At the stream's end, once, the block padding and the two end-of-archive blocks
// a writer left out (umoci 0.4.7's insert ends its tars right after the last file's data; Go's reader
// takes them whole, libarchive would call them truncated): whether the stream ended where such zeros
// may follow, not inside a header or an entry's data, is for the caller to check (TarCheck sees the
// raw stream).
struct CallbackContext {
    sys::ViewReader* reader;
    const std::atomic<bool>* cancel;
    std::exception_ptr error;
    std::uint64_t delivered = 0;
    bool padded = false;  // the zeros were supplied
};

constexpr std::size_t kTarBlock = 512;
const char kZeros[3 * kTarBlock] = {};

la_ssize_t read_callback(struct archive* a, void* opaque, const void** out) {
    auto* ctx = static_cast<CallbackContext*>(opaque);
    try {
        if (ctx->cancel && ctx->cancel->load(std::memory_order_relaxed)) {
            throw Error(Errc::Busy, "cancelled");
        }
        std::span<const char> view = ctx->reader->next();
        if (view.empty() && !ctx->padded) {
            ctx->padded = true;
            std::size_t fill = (kTarBlock - ctx->delivered % kTarBlock) % kTarBlock + 2 * kTarBlock;
            *out = kZeros;
            return static_cast<la_ssize_t>(fill);
        }
        ctx->delivered += view.size();
        *out = view.data();
        return static_cast<la_ssize_t>(view.size());
    } catch (...) {
        ctx->error = std::current_exception();
        archive_set_error(a, EIO, "read failed");
        return -1;
    }
}

[[noreturn]] void throw_archive(struct archive* a) {
    const char* reason = archive_error_string(a);
    throw Error(Errc::Corrupt, std::string("corrupt layer tar: ") + (reason ? reason : "read error"));
}

class Unpacker {
public:
    Unpacker(int root_fd, const UnpackOptions& options)
        : root_fd_(root_fd), options_(options), euid_(::geteuid()), egid_(::getegid()) {}

    void entry(struct archive* a, struct archive_entry* e) {
        const char* raw = archive_entry_pathname(e);
        if (raw == nullptr) throw Error(Errc::Corrupt, "entry without a usable name");
        name_ = raw;
        wrote_file_ = false;
        path_.clear();
        auto path = clean_entry_path(name_);
        if (!path) throw Error(Errc::UnsafePath, printable(name_) + ": path escapes the layer root");
        path_ = *path;
        if (path->size() >= PATH_MAX) throw Error(Errc::Corrupt, printable(name_) + ": path longer than PATH_MAX");
        ++stats_.entries;
        mode_t type = archive_entry_filetype(e);

        if (path->empty()) {
            if (type != AE_IFDIR || archive_entry_hardlink(e) != nullptr) {
                throw Error(Errc::UnsafePath, printable(name_) + ": the layer root entry is not a directory");
            }
            UniqueFd fd = sys::open_at(root_fd_, ".", O_RDONLY | O_DIRECTORY);
            apply_owner_and_xattrs_fd(fd.get(), e);
            defer_dir("", e);
            return;
        }

        auto [parent, base] = split_parent(*path);
        Whiteout wh = classify_whiteout(base);
        switch (wh.kind) {
            case WhiteoutKind::Meta: return;
            case WhiteoutKind::Invalid:
                throw Error(Errc::UnsafePath, printable(name_) + ": invalid whiteout name");
            case WhiteoutKind::Opaque: make_opaque_marker(parent); return;
            case WhiteoutKind::Whiteout: make_whiteout(parent, wh.target); return;
            case WhiteoutKind::None: break;
        }

        int dir = parent_dir(parent);
        if (dir < 0) {
            throw Error(Errc::Corrupt, shown() + ": parent `" + printable(blocked_at_) + "` is " + blocked_why_);
        }
        if (options_.reserve) options_.reserve->charge(type == AE_IFREG ? 0 : 4096, 1);
        if (const char* link = archive_entry_hardlink(e)) {
            make_hardlink(dir, base, link);
            return;
        }
        // Each maker creates first and deals with an existing entry only on EEXIST: most entries are
        // new, so this saves a stat per entry.
        switch (type) {
            case AE_IFREG:
                make_file(a, dir, base, e);
                wrote_file_ = true;
                break;
            case AE_IFDIR: make_dir(dir, base, *path, e); break;
            case AE_IFLNK: make_symlink(dir, base, e); break;
            case AE_IFCHR:
            case AE_IFBLK:
            case AE_IFIFO: make_node(dir, base, type, e); break;
            default: break;  // sockets and unknown types carry nothing a rootfs needs
        }
    }

    void finish() {
        // Directory modes and times last, deepest first; a directory that a later entry replaced with a
        // symlink is skipped, never followed.
        deferred_.apply(root_fd_);
        // Later entries may have replaced or removed what was recorded: keep what is still there.
        for (const auto& [ino, path] : implicit_) {
            if (still_there(path, ino)) stats_.implicit_dirs.push_back(path);
        }
        for (const auto& [ino, path] : whiteout_dirs_) {
            UniqueFd fd = still_there(path, ino);
            if (fd && !under_opaque(fd.get())) stats_.whiteout_dirs.push_back(path);
        }
        std::sort(stats_.implicit_dirs.begin(), stats_.implicit_dirs.end());
        std::sort(stats_.whiteout_dirs.begin(), stats_.whiteout_dirs.end());
    }

    const UnpackStats& stats() const { return stats_; }
    const std::string& current_name() const { return name_; }
    // The cleaned path of the entry just handled, and whether its data went to a new regular file there.
    const std::string& current_path() const { return path_; }
    bool wrote_file() const { return wrote_file_; }

private:
    std::string shown() const { return printable(name_); }

    // The directory that will hold an entry, or -1 when a component is not a directory in this layer
    // (the caller decides: a whiteout there is a no-op, anything else an error). Resolution happens
    // inside the layer root, so symlinks of this layer never lead out of it. Components the tar omits
    // are created (0755, root) and recorded as implicit; a component that is a whiteout of this layer
    // becomes an opaque directory (the lower one was deleted, this layer makes a new one).
    // `for_whiteout`: a whiteout of this layer on the way means the whiteout hides nothing (-1), where any
    // other entry turns it into a new directory.
    int parent_dir(const std::string& parent, bool for_whiteout = false) {
        if (cached_parent_fd_ && parent == cached_parent_) return cached_parent_fd_.get();
        // Tars list a directory right before its children: the directory just made is the next parent.
        if (last_dir_fd_ && parent == last_dir_) {
            cached_parent_ = std::move(last_dir_);
            cached_parent_fd_ = std::move(last_dir_fd_);
            last_dir_.clear();
            return cached_parent_fd_.get();
        }
        auto [fd, err] = sys::try_open_in_root(root_fd_, parent, O_RDONLY | O_DIRECTORY);
        if (err) {
            if (err != ENOENT && err != ENOTDIR) throw_errno(err, "open parent of", shown());
            fd = make_parents(parent, for_whiteout);
            if (!fd) return -1;
        }
        cached_parent_ = parent;
        cached_parent_fd_ = std::move(fd);
        return cached_parent_fd_.get();
    }

    UniqueFd make_parents(const std::string& parent, bool for_whiteout) {
        UniqueFd current = sys::open_at(root_fd_, ".", O_RDONLY | O_DIRECTORY);
        std::string prefix;
        for (const std::string& part : split(parent, '/')) {
            if (part.empty()) continue;
            prefix += (prefix.empty() ? "" : "/") + part;
            // Each prefix is resolved afresh inside the root (a symlink of this layer may lead elsewhere
            // in it); what is missing is made in the directory the previous prefix resolved to.
            auto [next, err] = sys::try_open_in_root(root_fd_, prefix, O_RDONLY | O_DIRECTORY);
            if (err) {
                if (err != ENOENT && err != ENOTDIR) throw_errno(err, "open", printable(prefix));
                auto [st, stat_err] = sys::try_lstat_at(current.get(), part);
                if (stat_err && stat_err != ENOENT) throw_errno(stat_err, "stat", printable(prefix));
                bool exists = !stat_err;
                if (exists && (!sys::is_whiteout(st) || for_whiteout)) {  // a file, a symlink to nothing, a whiteout
                    blocked_at_ = prefix;
                    blocked_why_ = S_ISLNK(st.st_mode)    ? "a symlink that leads to no directory inside the layer"
                                   : sys::is_whiteout(st) ? "whited out in this layer"
                                                          : "not a directory in this layer";
                    return {};
                }
                if (exists) {
                    remove_existing(current.get(), part);
                } else if (implicit_.size() >= kMaxImplicitDirs || implicit_bytes_ > kMaxImplicitBytes) {
                    throw Error(Errc::Corrupt, "more than " + std::to_string(kMaxImplicitDirs) +
                                                   " directories (or 16 MiB of their names) without an entry of "
                                                   "their own in one layer");
                }
                if (options_.reserve) options_.reserve->charge(4096, 1);
                if (::mkdirat(current.get(), part.c_str(), 0755) != 0) throw_errno("mkdir", printable(prefix));
                next = sys::open_at(current.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, printable(prefix));
                if (exists) {
                    set_opaque(next.get());  // replaces a whiteout of this layer: the lower one stays hidden
                } else {
                    std::string real = real_path(next.get());
                    implicit_bytes_ += real.size();
                    implicit_.insert_or_assign(sys::fstat_fd(next.get(), prefix).st_ino, std::move(real));
                }
            }
            current = std::move(next);
        }
        return current;
    }

    // The path of an open directory relative to the layer root (through /proc: the names on the way
    // may have passed through symlinks of this layer). Only used for the rare implicit directories.
    std::string real_path(int fd) {
        if (root_path_.empty()) root_path_ = proc_link(root_fd_);
        std::string path = proc_link(fd);
        if (path == root_path_) return "";
        if (path.compare(0, root_path_.size() + 1, root_path_ + "/") != 0) {
            throw Error(Errc::UnsafePath, shown() + ": resolved outside the layer root");
        }
        return path.substr(root_path_.size() + 1);
    }

    static std::string proc_link(int fd) {
        std::string link = "/proc/self/fd/" + std::to_string(fd);
        std::string out(PATH_MAX, '\0');
        ssize_t n = ::readlink(link.c_str(), out.data(), out.size());
        if (n < 0 || static_cast<std::size_t>(n) >= out.size()) throw_errno("readlink", link);
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

    // The directory recorded at `path` as inode `ino`, if it is still there, reached with no symlink at
    // all on the way; else an empty fd. Any failure to reach it means "not there": a later entry of
    // this layer removed or replaced it.
    UniqueFd still_there(const std::string& path, ino_t ino) {
        UniqueFd fd = path.empty() ? sys::open_at(root_fd_, ".", O_RDONLY | O_DIRECTORY)
                                   : sys::try_open_beneath(root_fd_, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW).value;
        if (!fd || sys::fstat_fd(fd.get(), path).st_ino != ino) return {};
        return fd;
    }

    const char* opaque_xattr() const { return options_.rootless ? "user.overlay.opaque" : "trusted.overlay.opaque"; }

    bool is_opaque(int dir) const {
        char v = 0;
        return ::fgetxattr(dir, opaque_xattr(), &v, 1) == 1 && v == 'y';
    }

    void set_opaque(int dir) {
        if (::fsetxattr(dir, opaque_xattr(), "y", 1, 0) != 0) throw_errno("setxattr", shown());
        opaque_cache_.reset();
    }

    // True if `dir` or a directory above it (up to the layer root) is opaque: then nothing of the lower
    // layers is visible there. Climbing with ".." is sound here: only this process writes the staging
    // tree, which lives in the store's private tmp/.
    bool under_opaque(int dir) {
        // Whiteouts come in runs in one directory (an `rm -rf` step): the answer is kept for the last
        // directory asked about until an opaque marker is set anywhere.
        ino_t ino = sys::fstat_fd(dir, shown()).st_ino;
        if (opaque_cache_ && opaque_cache_->first == ino) return opaque_cache_->second;
        UniqueFd current = sys::open_at(dir, ".", O_RDONLY | O_DIRECTORY);
        bool found = false;
        while (true) {
            if (is_opaque(current.get())) {
                found = true;
                break;
            }
            if (sys::fstat_fd(current.get(), shown()).st_ino == root_ino()) break;
            current = sys::open_at(current.get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, shown());
        }
        opaque_cache_.emplace(ino, found);
        return found;
    }

    // Marks `dir` opaque and removes the whiteouts this layer already made below it: they hide nothing
    // the marker does not (and overlayfs would show them as broken entries, opaque directories not
    // being merged).
    void make_opaque(int dir) {
        set_opaque(dir);
        std::vector<std::string> names;  // path from `dir` to the directory being listed
        UniqueFd current = sys::open_at(dir, ".", O_RDONLY | O_DIRECTORY);
        std::vector<std::vector<std::string>> pending{{}};
        // Depth-first over the subtree; each level keeps the names of the subdirectories still to visit.
        pending.back() = subdirectories_and_purge(current.get());
        while (!pending.empty()) {
            if (pending.back().empty()) {
                pending.pop_back();
                if (names.empty()) break;
                names.pop_back();
                current = sys::open_at(current.get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, shown());
                continue;
            }
            std::string next = std::move(pending.back().back());
            pending.back().pop_back();
            current = sys::open_at(current.get(), next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, shown());
            names.push_back(next);
            pending.push_back(subdirectories_and_purge(current.get()));
        }
    }

    // Removes the whiteout devices in `dir` (counted as dropped); returns its subdirectories' names.
    std::vector<std::string> subdirectories_and_purge(int dir) {
        std::vector<std::string> subdirs;
        for (const std::string& name : sys::list_directory(dir, shown())) {
            auto [st, err] = sys::try_lstat_at(dir, name);
            if (err == ENOENT) continue;
            if (err) throw_errno(err, "stat", shown());
            if (S_ISDIR(st.st_mode)) {
                subdirs.push_back(name);
            } else if (sys::is_whiteout(st) && ::unlinkat(dir, name.c_str(), 0) == 0) {
                ++stats_.dropped_whiteouts;
            }
        }
        return subdirs;
    }

    // ".wh.NAME": hides NAME of the lower layers.
    void make_whiteout(const std::string& parent, const std::string& target) {
        int dir = parent_dir(parent, true);
        // Under a non-directory of this layer, or below an opaque directory, nothing lower is visible.
        if (dir < 0 || under_opaque(dir)) {
            ++stats_.dropped_whiteouts;
            return;
        }
        auto [st, err] = sys::try_lstat_at(dir, target);
        if (err && err != ENOENT) throw_errno(err, "stat", shown());
        if (!err) {
            // An entry of this layer by that name stays: whiteouts apply to lower layers only. A
            // directory becomes opaque so that the lower one's contents stay hidden.
            if (S_ISDIR(st.st_mode)) {
                UniqueFd d = sys::open_at(dir, target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, shown());
                make_opaque(d.get());
            }
            ++stats_.whiteouts;
            return;
        }
        if (options_.reserve) options_.reserve->charge(0, 1);
        if (::mknodat(dir, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) throw_errno("mknod", shown());
        struct stat dst = sys::fstat_fd(dir, parent);
        if (!whiteout_dirs_.count(dst.st_ino)) {
            std::string real = real_path(dir);
            whiteout_dir_bytes_ += real.size();
            if (whiteout_dir_bytes_ > kMaxImplicitBytes) {
                throw Error(Errc::Corrupt, "more than 16 MiB of names of directories holding whiteouts in one layer");
            }
            whiteout_dirs_.emplace(dst.st_ino, std::move(real));
        }
        ++stats_.whiteouts;
    }

    // ".wh..wh..opq": the parent hides its lower layers' contents.
    void make_opaque_marker(const std::string& parent) {
        // The marker says its directory exists in this layer: a whiteout of it made earlier becomes that
        // (opaque) directory, as for any entry below it. Under a file it means nothing.
        int dir = parent_dir(parent);
        if (dir < 0) {
            ++stats_.dropped_whiteouts;
            return;
        }
        make_opaque(dir);
        struct stat dst = sys::fstat_fd(dir, parent);
        if (dst.st_ino == root_ino()) stats_.root_opaque = true;
        ++stats_.whiteouts;
    }

    ino_t root_ino() {
        if (!root_ino_) root_ino_ = sys::fstat_fd(root_fd_, "layer root").st_ino;
        return root_ino_;
    }

    void remove_existing(int dir, const std::string& base) {
        auto [st, err] = sys::try_lstat_at(dir, base);
        if (err == ENOENT) return;
        if (err) throw_errno(err, "stat", shown());
        opaque_cache_.reset();  // an inode number it holds may be reused
        sys::remove_tree_at(dir, base);
        // The cached parent is always the directory holding `base` (the caller's `dir`, still in use), so
        // it stays valid; the last-made directory may have been `base` or below it.
        if (S_ISDIR(st.st_mode)) last_dir_fd_.reset();
    }

    // Runs `create` (a *at syscall returning 0/-1 or an fd); on EEXIST removes what is there (a
    // duplicate entry or a type change within the layer) and tries once more.
    template <typename Create>
    int create_replacing(int dir, const std::string& base, const char* what, Create create) {
        int rc = create();
        if (rc < 0 && errno == EEXIST) {
            remove_existing(dir, base);
            rc = create();
        }
        if (rc < 0) throw_errno(what, shown());
        return rc;
    }

    bool needs_chown(struct archive_entry* e) {
        bool differs = archive_entry_uid(e) != static_cast<la_int64_t>(euid_) || archive_entry_gid(e) != static_cast<la_int64_t>(egid_);
        if (differs && options_.squash_owners) {
            ++stats_.squashed_owners;
            return false;
        }
        return differs;
    }

    // EINVAL from chown in a user namespace: the id has no mapping there.
    [[noreturn]] void throw_chown(struct archive_entry* e) {
        int err = errno;
        if (err == EINVAL && options_.rootless) {
            throw Error(Errc::Unsupported, shown() + ": owner " + std::to_string(archive_entry_uid(e)) + ":" +
                                               std::to_string(archive_entry_gid(e)) +
                                               " is outside the ids mapped for you (add or widen your ranges in "
                                               "/etc/subuid and /etc/subgid)");
        }
        throw_errno(err, "chown", shown());
    }

    // The message is built only on failure: this runs for every entry.
    void check_ids(struct archive_entry* e) const {
        auto bad = [](la_int64_t id) { return id < 0 || id > 0xfffffffeLL; };
        if (bad(archive_entry_uid(e)) || bad(archive_entry_gid(e))) {
            throw Error(Errc::Corrupt, shown() + ": owner id out of range");
        }
    }

    void set_xattrs(struct archive_entry* e, const std::function<int(const char*, const void*, size_t)>& set) {
        archive_entry_xattr_reset(e);
        const char* xname;
        const void* value;
        size_t size;
        while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
            if (sys::is_overlay_xattr(xname)) {
                ++stats_.dropped_xattrs;  // smuggled overlay metadata must never act as a whiteout or redirect
                continue;
            }
            if (set(xname, value, size) != 0) {
                if (errno == ENOTSUP || errno == EOPNOTSUPP) continue;  // e.g. user.* on a symlink
                if (options_.rootless && (errno == EPERM || errno == EACCES)) {
                    ++stats_.skipped_xattrs;  // trusted.* and security.* other than capabilities need real root
                    continue;
                }
                throw_errno("setxattr", shown() + " (" + printable(xname) + ")");
            }
        }
    }

    void apply_owner_and_xattrs_fd(int fd, struct archive_entry* e) {
        check_ids(e);
        // New entries already belong to us: chown only when the tar says otherwise.
        if (needs_chown(e) && ::fchown(fd, static_cast<uid_t>(archive_entry_uid(e)), static_cast<gid_t>(archive_entry_gid(e))) != 0) {
            throw_chown(e);
        }
        set_xattrs(e, [fd](const char* n, const void* v, size_t s) { return ::fsetxattr(fd, n, v, s, 0); });
    }

    static void entry_times(struct archive_entry* e, struct timespec times[2]) {
        times[1].tv_sec = archive_entry_mtime(e);
        times[1].tv_nsec = archive_entry_mtime_nsec(e);
        if (archive_entry_atime_is_set(e)) {
            times[0].tv_sec = archive_entry_atime(e);
            times[0].tv_nsec = archive_entry_atime_nsec(e);
        } else {
            times[0] = times[1];
        }
    }

    void make_file(struct archive* a, int dir, const std::string& base, struct archive_entry* e) {
        // Created with its final permissions (the process umask is 0), except the setuid/setgid bits,
        // which chown or a write could clear: those are set by fchmod at the end.
        mode_t perm = archive_entry_perm(e) & 07777;
        UniqueFd fd(create_replacing(dir, base, "create", [&] {
            return ::openat(dir, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm & 01777);
        }));
        const void* block;
        size_t size;
        la_int64_t offset;
        la_int64_t end = 0;
        while (true) {
            int rc = archive_read_data_block(a, &block, &size, &offset);
            if (rc == ARCHIVE_EOF) break;
            if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) throw_archive(a);
            if (options_.reserve) options_.reserve->charge(size);
            // pwrite at libarchive's offsets keeps sparse entries sparse.
            const char* p = static_cast<const char*>(block);
            size_t left = size;
            off_t at = offset;
            while (left > 0) {
                ssize_t n = ::pwrite(fd.get(), p, left, at);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    throw_errno("write", shown());
                }
                p += n;
                left -= static_cast<size_t>(n);
                at += n;
            }
            end = std::max<la_int64_t>(end, offset + static_cast<la_int64_t>(size));
        }
        la_int64_t logical = archive_entry_size(e);
        if (logical > end && ::ftruncate(fd.get(), logical) != 0) throw_errno("truncate", shown());
        stats_.file_bytes += static_cast<std::uint64_t>(std::max<la_int64_t>(logical, end));
        apply_owner_and_xattrs_fd(fd.get(), e);
        if ((perm & 06000) && ::fchmod(fd.get(), perm) != 0) throw_errno("chmod", shown());
        struct timespec times[2];
        entry_times(e, times);
        if (::futimens(fd.get(), times) != 0) throw_errno("utimes", shown());
    }

    void make_dir(int dir, const std::string& base, const std::string& path, struct archive_entry* e) {
        bool existed = false;
        bool replaces_whiteout = false;
        if (::mkdirat(dir, base.c_str(), 0700) != 0) {
            if (errno != EEXIST) throw_errno("mkdir", shown());
            auto [st, err] = sys::try_lstat_at(dir, base);
            if (err && err != ENOENT) throw_errno(err, "stat", shown());
            existed = !err && S_ISDIR(st.st_mode);
            if (!existed) {  // a non-directory of that name (or nothing any more): replaced
                replaces_whiteout = !err && sys::is_whiteout(st);
                remove_existing(dir, base);
                if (::mkdirat(dir, base.c_str(), 0700) != 0) throw_errno("mkdir", shown());
            }
        }
        int raw = ::openat(dir, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (raw < 0) throw_errno("open", shown());
        UniqueFd fd(raw);
        // ".wh.NAME" then NAME/ in one layer: a new directory, with the lower one's contents hidden.
        if (replaces_whiteout) set_opaque(fd.get());
        // A directory made as a parent earlier now has an entry of its own.
        if (existed && !implicit_.empty()) implicit_.erase(sys::fstat_fd(fd.get(), shown()).st_ino);
        apply_owner_and_xattrs_fd(fd.get(), e);
        defer_dir(path, e);
        last_dir_ = path;
        last_dir_fd_ = std::move(fd);
    }

    // A later entry for the same path wins, as the tar order says. The owner was set on the entry itself.
    void defer_dir(const std::string& path, struct archive_entry* e) {
        sys::DirMetadata meta;
        meta.mode = static_cast<mode_t>(archive_entry_perm(e) & 07777);
        entry_times(e, meta.times);
        deferred_.record(path, meta);
    }

    // Metadata for entries that cannot be opened (symlinks, device nodes, fifos): by name in a parent
    // fd we own, never following the final component.
    void apply_by_name(int dir, const std::string& base, struct archive_entry* e, bool is_symlink) {
        check_ids(e);
        if (needs_chown(e) && ::fchownat(dir, base.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
                                         static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
            throw_chown(e);
        }
        if (!is_symlink) {
            // The node was just created by mknodat in a directory only we can reach; it is not a link.
            if (::fchmodat(dir, base.c_str(), archive_entry_perm(e) & 07777, 0) != 0) throw_errno("chmod", shown());
        }
        std::string via = "/proc/self/fd/" + std::to_string(dir) + "/" + base;
        set_xattrs(e, [&via](const char* n, const void* v, size_t s) { return ::lsetxattr(via.c_str(), n, v, s, 0); });
        struct timespec times[2];
        entry_times(e, times);
        if (::utimensat(dir, base.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("utimes", shown());
    }

    void make_symlink(int dir, const std::string& base, struct archive_entry* e) {
        const char* target = archive_entry_symlink(e);
        if (target == nullptr) target = "";
        create_replacing(dir, base, "symlink", [&] { return ::symlinkat(target, dir, base.c_str()); });
        apply_by_name(dir, base, e, true);
    }

    void make_node(int dir, const std::string& base, mode_t type, struct archive_entry* e) {
        dev_t dev = 0;
        if (type != AE_IFIFO) {
            unsigned long major = archive_entry_rdevmajor(e), minor = archive_entry_rdevminor(e);
            if (major >= (1u << 12) || minor >= (1u << 20)) {
                throw Error(Errc::Corrupt, shown() + ": device number " + std::to_string(major) + ":" +
                                               std::to_string(minor) + " out of range");
            }
            if (type == AE_IFCHR && major == 0 && minor == 0) {
                throw Error(Errc::UnsafePath, shown() + ": character device 0:0 is reserved for whiteouts "
                                                        "(use a .wh. name)");
            }
            dev = makedev(major, minor);
        }
        if (options_.rootless && type != AE_IFIFO) {
            ++stats_.skipped_devices;  // mknod of a device needs real root (podman and umoci skip them too)
            return;
        }
        mode_t kind = type == AE_IFCHR ? S_IFCHR : type == AE_IFBLK ? S_IFBLK : S_IFIFO;
        create_replacing(dir, base, "mknod", [&] { return ::mknodat(dir, base.c_str(), kind | 0600, dev); });
        apply_by_name(dir, base, e, false);
    }

    void make_hardlink(int dir, const std::string& base, const char* raw_target) {
        auto target = clean_entry_path(raw_target);
        if (!target || target->empty()) {
            throw Error(Errc::UnsafePath, shown() + ": hardlink target " + printable(raw_target) +
                                              " escapes the layer root");
        }
        auto [tparent, tbase] = split_parent(*target);
        auto [tdir, open_err] = sys::try_open_in_root(root_fd_, tparent, O_RDONLY | O_DIRECTORY);
        if (open_err) throw_errno(open_err, "hardlink target", printable(raw_target));
        auto [tst, target_err] = sys::try_lstat_at(tdir.get(), tbase);
        if (target_err == ENOENT) {
            throw Error(Errc::NotFound, shown() + ": hardlink target " + printable(raw_target) + " does not exist");
        }
        if (target_err) throw_errno(target_err, "stat", printable(raw_target));
        if (S_ISDIR(tst.st_mode)) {
            throw Error(Errc::UnsafePath, shown() + ": hardlink to a directory (" + printable(raw_target) + ")");
        }
        // A whiteout is not an entry of this layer: linking to it would make a whiteout without a .wh. name.
        if (sys::is_whiteout(tst)) {
            throw Error(Errc::NotFound, shown() + ": hardlink target " + printable(raw_target) +
                                            " does not exist (this layer whited it out)");
        }
        auto [existing, existing_err] = sys::try_lstat_at(dir, base);
        if (existing_err && existing_err != ENOENT) throw_errno(existing_err, "stat", shown());
        if (!existing_err) {
            if (existing.st_dev == tst.st_dev && existing.st_ino == tst.st_ino) return;
            remove_existing(dir, base);
        }
        // flags 0: link the target entry itself, even if it is a symlink, never what it points to.
        if (::linkat(tdir.get(), tbase.c_str(), dir, base.c_str(), 0) != 0) throw_errno("link", shown());
    }

    int root_fd_;
    const UnpackOptions& options_;
    uid_t euid_;  // owner of what we create: no chown needed when the tar says the same
    gid_t egid_;
    UnpackStats stats_;
    std::string name_;
    std::string path_;
    bool wrote_file_ = false;
    std::string cached_parent_;
    UniqueFd cached_parent_fd_;
    std::string last_dir_;  // the directory entry made last, still open
    UniqueFd last_dir_fd_;
    sys::DeferredDirs deferred_;
    std::map<ino_t, std::string> implicit_;       // directories made as parents, by inode
    std::map<ino_t, std::string> whiteout_dirs_;  // directories where whiteout devices were made
    std::string root_path_;                       // of root_fd_, for real_path()
    std::size_t implicit_bytes_ = 0;              // names kept in implicit_ and whiteout_dirs_ (capped)
    std::size_t whiteout_dir_bytes_ = 0;
    std::string blocked_at_, blocked_why_;        // why make_parents found no directory
    std::optional<std::pair<ino_t, bool>> opaque_cache_;  // under_opaque's last answer
    ino_t root_ino_ = 0;
};

}  // namespace

UnpackStats unpack_layer(sys::Reader& tar_stream, int root_fd, const UnpackOptions& options) {
    sys::BufferedViewReader view(tar_stream);
    return unpack_layer(view, root_fd, options);
}

UnpackStats unpack_layer(sys::ViewReader& tar_stream, int root_fd, const UnpackOptions& options) {
    std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
    if (!a) throw Error(Errc::Unsupported, "libarchive: out of memory");
    archive_read_support_format_tar(a.get());
    CallbackContext ctx{&tar_stream, options.cancel, nullptr};
    Unpacker unpacker(root_fd, options);
    auto rethrow_parked = [&] {
        if (ctx.error) std::rethrow_exception(ctx.error);
    };
    if (archive_read_open(a.get(), &ctx, nullptr, read_callback, nullptr) != ARCHIVE_OK) {
        rethrow_parked();
        throw_archive(a.get());
    }
    struct archive_entry* entry;
    while (true) {
        int rc = archive_read_next_header(a.get(), &entry);
        if (rc == ARCHIVE_EOF) break;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            rethrow_parked();
            throw_archive(a.get());
        }
        try {
            unpacker.entry(a.get(), entry);
        } catch (Error& e) {
            rethrow_parked();
            if (e.message().find(printable(unpacker.current_name())) == std::string::npos) {
                e.add_context(printable(unpacker.current_name()));
            }
            throw;
        }
        if (options.record) options.record->entry(unpacker.stats().entries, unpacker.current_path(), unpacker.wrote_file());
    }
    rethrow_parked();
    unpacker.finish();
    UnpackStats stats = unpacker.stats();
    stats.padded_end = ctx.padded;
    return stats;
}

namespace {

// Stops a stream that decompresses to more than it may.
class CappedReader final : public sys::Reader {
public:
    CappedReader(sys::Reader& inner, std::uint64_t cap) : inner_(inner), left_(cap) {}
    std::size_t read(void* buffer, std::size_t size) override {
        std::size_t n = inner_.read(buffer, size);
        if (n > left_) throw Error(Errc::SizeMismatch, "layer decompresses to more than allowed");
        left_ -= n;
        return n;
    }

private:
    sys::Reader& inner_;
    std::uint64_t left_;
};

}  // namespace

UnpackStats unpack_blob(sys::Reader& blob, int root_fd, const UnpackOptions& options, std::uint64_t max_uncompressed) {
    BlobStream stream(read_blob_head(blob), blob);
    CappedReader tar(stream, max_uncompressed);
    UnpackStats stats = unpack_layer(tar, root_fd, options);
    char rest[65536];
    while (tar.read(rest, sizeof rest) > 0) {
    }
    return stats;
}

std::string skipped_devices_note(std::uint64_t n) {
    return std::to_string(n) + (n == 1 ? " device node" : " device nodes") +
           " skipped (rootless: only the host's real root may create device nodes; containers get a fresh /dev)";
}

}  // namespace imgtool::layer
