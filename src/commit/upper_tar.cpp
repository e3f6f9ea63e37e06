#include "imgtool/commit/upper_tar.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::commit {
namespace {

constexpr std::size_t kBlock = 512;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

// Writes `value` as zero-padded octal filling `width - 1` digits and a NUL; false if it does not fit.
bool put_octal(char* field, std::size_t width, std::uint64_t value) {
    std::string digits;
    do {
        digits.insert(digits.begin(), static_cast<char>('0' + (value & 7)));
        value >>= 3;
    } while (value != 0);
    if (digits.size() > width - 1) return false;
    std::memset(field, '0', width - 1 - digits.size());
    std::memcpy(field + (width - 1 - digits.size()), digits.data(), digits.size());
    field[width - 1] = '\0';
    return true;
}

// "LEN key=value\n", LEN counting itself.
std::string pax_record(std::string_view key, std::string_view value) {
    std::size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
    std::size_t len = body + 1;
    while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
    return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

// Fills a ustar header (name split into prefix/name when it fits) and its checksum.
std::string ustar_block(std::string_view name, char type, std::uint32_t mode, std::uint64_t uid, std::uint64_t gid,
                        std::uint64_t size, std::int64_t mtime, std::string_view link, unsigned devmajor,
                        unsigned devminor) {
    std::string h(kBlock, '\0');
    if (name.size() <= 100) {
        std::memcpy(&h[0], name.data(), name.size());
    } else {
        // prefix (<= 155) "/" name (<= 100), split at a slash; the caller sent a PAX path otherwise.
        bool split = false;
        for (std::size_t slash = name.find('/'); slash != std::string_view::npos; slash = name.find('/', slash + 1)) {
            if (slash <= 155 && name.size() - slash - 1 <= 100 && slash + 1 < name.size()) {
                std::memcpy(&h[345], name.data(), slash);
                std::memcpy(&h[0], name.data() + slash + 1, name.size() - slash - 1);
                split = true;
                break;
            }
        }
        if (!split) std::memcpy(&h[0], name.data(), 100);  // the PAX path is the real one
    }
    put_octal(&h[100], 8, mode & 07777);
    if (!put_octal(&h[108], 8, uid)) put_octal(&h[108], 8, 0);
    if (!put_octal(&h[116], 8, gid)) put_octal(&h[116], 8, 0);
    if (!put_octal(&h[124], 12, size)) put_octal(&h[124], 12, 0);
    if (mtime < 0 || !put_octal(&h[136], 12, static_cast<std::uint64_t>(mtime))) put_octal(&h[136], 12, 0);
    h[156] = type;
    std::memcpy(&h[157], link.data(), std::min<std::size_t>(link.size(), 100));
    std::memcpy(&h[257], "ustar", 6);  // "ustar\0"
    std::memcpy(&h[263], "00", 2);
    if (type == '3' || type == '4') {
        put_octal(&h[329], 8, devmajor);
        put_octal(&h[337], 8, devminor);
    }
    std::memset(&h[148], ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    put_octal(&h[148], 7, sum);  // six digits, NUL, then the space already there
    h[155] = ' ';
    return h;
}

bool fits_ustar_name(std::string_view name) {
    if (name.size() <= 100) return true;
    for (std::size_t slash = name.find('/'); slash != std::string_view::npos; slash = name.find('/', slash + 1)) {
        if (slash <= 155 && name.size() - slash - 1 <= 100 && slash + 1 < name.size()) return true;
    }
    return false;
}

}  // namespace

std::string tar_header(const TarEntry& e) {
    std::string name = e.type == '5' ? e.path + "/" : e.path;
    std::string records;
    if (!fits_ustar_name(name)) records += pax_record("path", name);
    if (e.link.size() > 100) records += pax_record("linkpath", e.link);
    if (e.size > 077777777777ULL) records += pax_record("size", std::to_string(e.size));
    if (e.uid > 07777777) records += pax_record("uid", std::to_string(e.uid));
    if (e.gid > 07777777) records += pax_record("gid", std::to_string(e.gid));
    if (e.mtime < 0 || static_cast<std::uint64_t>(e.mtime) > 077777777777ULL) records += pax_record("mtime", std::to_string(e.mtime));
    for (const auto& [key, value] : e.xattrs) records += pax_record("SCHILY.xattr." + key, value);
    std::string out;
    if (!records.empty()) {
        // The extension header's own name only has to be harmless; Go's convention.
        std::string base = e.path.substr(e.path.rfind('/') == std::string::npos ? 0 : e.path.rfind('/') + 1);
        std::string pax_name = "PaxHeaders.0/" + base.substr(0, 80);
        out += ustar_block(pax_name, 'x', 0644, 0, 0, records.size(), 0, {}, 0, 0);
        out += records;
        out += tar_padding(records.size());
    }
    out += ustar_block(name, e.type, e.mode, e.uid, e.gid, e.type == '0' ? e.size : 0, e.mtime, e.link, 0, 0);
    return out;
}

std::string tar_padding(std::uint64_t size) { return std::string((kBlock - size % kBlock) % kBlock, '\0'); }
std::string tar_trailer() { return std::string(2 * kBlock, '\0'); }

std::string whiteout_name(std::string_view path) {
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) return std::string(kWhiteoutPrefix) + std::string(path);
    return std::string(path.substr(0, slash + 1)) + std::string(kWhiteoutPrefix) + std::string(path.substr(slash + 1));
}

std::string opaque_marker_name(std::string_view dir) { return std::string(dir) + "/" + std::string(kOpaqueMarker); }

bool is_runtime_file(std::string_view path) {
    return path == "etc/hosts" || path == "etc/hostname" || path == "etc/resolv.conf" || path == "dev/console";
}

bool is_runtime_mount_dir(std::string_view path) { return path == "dev" || path == "proc" || path == "sys"; }

OverlayXattr classify_overlay_xattr(std::string_view name, std::string_view value, bool rootless) {
    std::string_view ours = rootless ? "user.overlay." : "trusted.overlay.";
    std::string_view theirs = rootless ? "trusted.overlay." : "user.overlay.";
    if (name.substr(0, theirs.size()) == theirs) return OverlayXattr::Ignored;
    if (name.substr(0, ours.size()) != ours) return OverlayXattr::None;
    std::string_view what = name.substr(ours.size());
    if (what == "opaque") return value == "y" ? OverlayXattr::Opaque : OverlayXattr::Refused;
    if (what == "redirect" || what == "metacopy") return OverlayXattr::Refused;
    return OverlayXattr::Ignored;
}

namespace {

class Walker {
public:
    Walker(const std::function<void(const void*, std::size_t)>& sink, const UpperOptions& options)
        : sink_(sink), options_(options), buffer_(1 << 20) {}

    UpperStats run(int upper_fd) {
        struct stat root = sys::fstat_fd(upper_fd, "upper");
        if (!S_ISDIR(root.st_mode)) throw Error(Errc::InvalidArgument, "the upper is not a directory");
        dev_ = root.st_dev;
        walk_dir(upper_fd, "", 0);
        emit(tar_trailer());
        return stats_;
    }

private:
    [[noreturn]] void refuse(const std::string& path, const std::string& why) const {
        throw Error(Errc::UnsafePath, "upper " + printable(path) + ": " + why);
    }

    void emit(std::string_view bytes) { sink_(bytes.data(), bytes.size()); }

    void emit_entry(const TarEntry& e) {
        emit(tar_header(e));
        ++stats_.entries;
    }

    // The xattrs of an open file or directory, sorted; overlayfs's own classified. Sets `opaque`.
    std::vector<std::pair<std::string, std::string>> read_xattrs(int fd, const std::string& path, bool& opaque) {
        opaque = false;
        std::vector<std::pair<std::string, std::string>> out;
        std::string names(4096, '\0');
        ssize_t n;
        while ((n = ::flistxattr(fd, names.data(), names.size())) < 0 && errno == ERANGE) names.resize(names.size() * 4);
        if (n < 0) {
            if (errno == ENOTSUP) return out;
            throw_errno("list xattrs", "upper " + printable(path));
        }
        names.resize(static_cast<std::size_t>(n));
        for (const auto& name : split(names, '\0')) {
            if (name.empty()) continue;
            std::string value(256, '\0');
            ssize_t v;
            while ((v = ::fgetxattr(fd, name.c_str(), value.data(), value.size())) < 0 && errno == ERANGE &&
                   value.size() < (1 << 17)) {
                value.resize(value.size() * 4);
            }
            if (v < 0) {
                if (errno == ENODATA) continue;  // removed meanwhile
                throw_errno("get xattr " + printable(name), "upper " + printable(path));
            }
            value.resize(static_cast<std::size_t>(v));
            switch (classify_overlay_xattr(name, value, options_.rootless)) {
            case OverlayXattr::Opaque: opaque = true; ++stats_.dropped_xattrs; continue;
            case OverlayXattr::Ignored: ++stats_.dropped_xattrs; continue;
            case OverlayXattr::Refused:
                refuse(path, "has overlayfs's " + printable(name) + (name.ends_with("redirect")
                                  ? " (a directory renamed inside the container): a layer tar cannot express it; "
                                    "commit from an overlay mounted with redirect_dir=off"
                                  : name.ends_with("metacopy")
                                        ? " (a metadata-only copy-up): a layer tar cannot express it; commit from an "
                                          "overlay mounted with metacopy=off"
                                        : ": unknown value"));
            case OverlayXattr::None: break;
            }
            if (name == "user.overlay.opaque" || name == "trusted.overlay.opaque") continue;
            if (name == "security.selinux") continue;  // the host's labelling, not the image's
            out.emplace_back(name, std::move(value));
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    static bool same_inode(const struct stat& a, const struct stat& b) {
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino && (a.st_mode & S_IFMT) == (b.st_mode & S_IFMT);
    }

    TarEntry base_entry(const std::string& path, char type, const struct stat& st) const {
        TarEntry e;
        e.path = path;
        e.type = type;
        e.mode = st.st_mode & 07777;
        e.uid = st.st_uid;
        e.gid = st.st_gid;
        e.mtime = st.st_mtim.tv_sec;
        return e;
    }

    void walk_dir(int dir_fd, const std::string& prefix, unsigned depth) {
        if (depth > options_.max_depth) refuse(prefix, "nested deeper than " + std::to_string(options_.max_depth) + " directories");
        for (const std::string& name : sys::list_directory(dir_fd, "upper " + printable(prefix))) {
            std::string path = prefix.empty() ? name : prefix + "/" + name;
            auto [st, err] = sys::try_lstat_at(dir_fd, name);
            if (err == ENOENT) continue;  // removed meanwhile (a running container)
            if (err) throw_errno(err, "stat", "upper " + printable(path));
            if (st.st_dev != dev_) refuse(path, "on another filesystem (a mount inside the upper)");
            if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
                TarEntry e = base_entry(whiteout_name(path), '0', st);
                e.mode = 0;
                e.uid = e.gid = 0;
                emit_entry(e);
                ++stats_.whiteouts;
                continue;
            }
            if (name.rfind(kWhiteoutPrefix, 0) == 0) {
                refuse(path, "a name beginning with .wh. would read as a whiteout in a layer tar");
            }
            if (S_ISDIR(st.st_mode)) {
                entry_dir(dir_fd, name, path, st, depth);
            } else if (is_runtime_file(path)) {
                ++stats_.left_out;
            } else if (S_ISREG(st.st_mode)) {
                entry_file(dir_fd, name, path, st);
            } else if (S_ISLNK(st.st_mode)) {
                entry_symlink(dir_fd, name, path, st);
            } else if (S_ISFIFO(st.st_mode)) {
                emit_entry(base_entry(path, '6', st));
            } else if (S_ISSOCK(st.st_mode)) {
                ++stats_.skipped_sockets;  // as docker: a tar has no sockets
            } else {
                refuse(path, std::string(S_ISBLK(st.st_mode) ? "a block" : "a character") + " device (" +
                                 std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)) +
                                 "): device nodes are not committed (a container's /dev is the runtime's)");
            }
        }
    }

    void entry_dir(int dir_fd, const std::string& name, const std::string& path, const struct stat& seen, unsigned depth) {
        int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) throw_errno("open", "upper " + printable(path));
        sys::UniqueFd dir(fd);
        struct stat st = sys::fstat_fd(dir.get(), "upper " + printable(path));
        if (!same_inode(st, seen)) refuse(path, "replaced while being committed");
        bool opaque = false;
        auto xattrs = read_xattrs(dir.get(), path, opaque);
        if (is_runtime_mount_dir(path) && !opaque && sys::directory_is_empty(dir.get(), path)) {
            ++stats_.left_out;
            return;
        }
        TarEntry e = base_entry(path, '5', st);
        e.xattrs = std::move(xattrs);
        emit_entry(e);
        if (opaque) {
            TarEntry marker = base_entry(opaque_marker_name(path), '0', st);
            marker.mode = 0;
            marker.uid = marker.gid = 0;
            emit_entry(marker);
            ++stats_.opaque_dirs;
        }
        walk_dir(dir.get(), path, depth + 1);
    }

    void entry_symlink(int dir_fd, const std::string& name, const std::string& path, const struct stat& st) {
        std::string target(4096, '\0');
        ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (n < 0) {
            if (errno == EINVAL) refuse(path, "replaced while being committed");
            throw_errno("readlink", "upper " + printable(path));
        }
        if (static_cast<std::size_t>(n) >= target.size()) refuse(path, "symlink target too long");
        target.resize(static_cast<std::size_t>(n));
        TarEntry e = base_entry(path, '2', st);
        e.link = target;
        emit_entry(e);
    }

    void entry_file(int dir_fd, const std::string& name, const std::string& path, const struct stat& seen) {
        // O_PATH first: opening a node swapped in for the file could block (FIFO) or act (a device);
        // once fstat says regular, reopening that very inode through /proc/self/fd is safe.
        int pfd = ::openat(dir_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0) throw_errno("open", "upper " + printable(path));
        sys::UniqueFd opath(pfd);
        struct stat st = sys::fstat_fd(opath.get(), "upper " + printable(path));
        if (!same_inode(st, seen) || !S_ISREG(st.st_mode)) refuse(path, "replaced while being committed");
        std::string via = "/proc/self/fd/" + std::to_string(opath.get());
        int fd = ::open(via.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) throw_errno("open", "upper " + printable(path));
        sys::UniqueFd file(fd);
        struct stat again = sys::fstat_fd(file.get(), "upper " + printable(path));
        if (!same_inode(again, st)) refuse(path, "replaced while being committed");
        bool opaque = false;
        auto xattrs = read_xattrs(file.get(), path, opaque);
        if (st.st_nlink > 1) {
            auto [it, first] = links_.try_emplace(st.st_ino, path);
            if (!first) {
                TarEntry e = base_entry(path, '1', st);
                e.link = it->second;
                e.xattrs = std::move(xattrs);
                emit_entry(e);
                ++stats_.hardlinks;
                return;
            }
        }
        TarEntry e = base_entry(path, '0', st);
        e.size = static_cast<std::uint64_t>(again.st_size);
        e.xattrs = std::move(xattrs);
        emit_entry(e);
        std::uint64_t left = e.size;
        while (left > 0) {
            ssize_t n = ::read(file.get(), buffer_.data(), std::min<std::uint64_t>(buffer_.size(), left));
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("read", "upper " + printable(path));
            }
            if (n == 0) refuse(path, "shrank while being committed");
            sink_(buffer_.data(), static_cast<std::size_t>(n));
            left -= static_cast<std::uint64_t>(n);
        }
        char extra;
        ssize_t more = ::read(file.get(), &extra, 1);
        if (more > 0) refuse(path, "grew while being committed");
        emit(tar_padding(e.size));
    }

    const std::function<void(const void*, std::size_t)>& sink_;
    UpperOptions options_;
    std::vector<char> buffer_;
    dev_t dev_ = 0;
    std::map<ino_t, std::string> links_;
    UpperStats stats_;
};

}  // namespace

UpperStats write_upper_tar(int upper_fd, const std::function<void(const void*, std::size_t)>& sink,
                           const UpperOptions& options) {
    return Walker(sink, options).run(upper_fd);
}

}  // namespace imgtool::commit
