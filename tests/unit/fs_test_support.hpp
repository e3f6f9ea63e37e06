// Helpers for the unit tests that touch a real filesystem (tree removal, the copy driver): scratch
// directories, small tree builders, fd counting, and running a check in a private mount namespace.
#pragma once

#include <doctest/doctest.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include "imgtool/sys/files.hpp"

namespace fs_test {

// Aborts the test with errno's text: setting up a test must not fail silently.
inline void check_sys(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

// A fresh directory below `parent` (default: the current directory, the build tree under ctest),
// removed with the tree remover at the end when the test left anything behind.
class Scratch {
public:
    explicit Scratch(const std::string& parent = ".") {
        std::string tmpl = parent + "/scratch-XXXXXX";
        check_sys(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp " + tmpl);
        path_ = tmpl;
        fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        check_sys(fd_ >= 0, "open " + path_);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() {
        ::close(fd_);
        try {
            imgtool::sys::remove_tree_at(AT_FDCWD, path_);
        } catch (...) {
        }
    }
    int fd() const { return fd_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

// A parent for scratch trees that only exercise logic: /dev/shm (tmpfs) when there is one, since
// building 10,000-deep trees on a busy disk costs seconds; else the current directory.
inline std::string memory_parent() {
    return ::access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : ".";
}

inline void make_dir(int dirfd, const std::string& path, mode_t mode = 0755) {
    check_sys(::mkdirat(dirfd, path.c_str(), mode) == 0, "mkdir " + path);
}

inline void write_file(int dirfd, const std::string& path, const std::string& data, mode_t mode = 0644) {
    int fd = ::openat(dirfd, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    check_sys(fd >= 0, "create " + path);
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    ::close(fd);
    check_sys(ok, "write " + path);
}

inline bool exists(int dirfd, const std::string& path) {
    struct stat st {};
    return ::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

inline std::string read_file(int dirfd, const std::string& path) {
    return imgtool::sys::read_file_at(dirfd, path, 64 << 20);
}

// Builds `depth` nested directories dirfd/name/name/..., with `files` small files in each, iteratively
// (paths that deep exceed PATH_MAX). Existing levels are reused.
inline void make_chain(int dirfd, const std::string& name, std::size_t depth, int files = 1,
                       const std::string& file_prefix = "f") {
    int cur = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    check_sys(cur >= 0, "dup");
    for (std::size_t i = 0; i < depth; ++i) {
        if (::mkdirat(cur, name.c_str(), 0755) != 0 && errno != EEXIST) check_sys(false, "mkdir chain");
        int next = ::openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        ::close(cur);
        check_sys(next >= 0, "open chain");
        cur = next;
        for (int f = 0; f < files; ++f) write_file(cur, file_prefix + std::to_string(f), "x");
    }
    ::close(cur);
}

// Number of files below dirfd/path (recursively, without following symlinks).
inline std::size_t count_files(int dirfd, const std::string& path) {
    int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    std::size_t n = 0;
    // Iterative over a stack of fds is not needed here: the trees counted are a few hundred deep.
    DIR* d = ::fdopendir(fd);
    while (struct dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        if (e->d_type == DT_DIR) {
            n += count_files(::dirfd(d), e->d_name);
        } else {
            ++n;
        }
    }
    ::closedir(d);
    return n;
}

inline std::size_t open_fds() {
    std::size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n - 1;  // the listing's own fd
}

// Runs `fn` in a forked child that has its own mount namespace (and, when not root, its own user
// namespace mapping the caller to root), so whatever it mounts disappears with it and the host's mount
// table is never touched. `fn` returns "" on success, else what went wrong; a thrown exception counts
// as a failure. Returns nullopt when the kernel refuses the namespaces, with the reason in `why`.
inline std::optional<std::string> in_mount_namespace(const std::function<std::string()>& fn, std::string& why) {
    int pipefd[2];
    check_sys(::pipe2(pipefd, O_CLOEXEC) == 0, "pipe");
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    pid_t pid = ::fork();
    check_sys(pid >= 0, "fork");
    if (pid == 0) {
        ::close(pipefd[0]);
        auto report = [&](const std::string& text) {
            ssize_t ignored = ::write(pipefd[1], text.data(), text.size());
            (void)ignored;
            ::_exit(0);
        };
        int flags = CLONE_NEWNS | (uid == 0 ? 0 : CLONE_NEWUSER);
        if (::unshare(flags) != 0) report(std::string("SKIP unshare: ") + std::strerror(errno));
        if (uid != 0) {
            auto put = [](const char* file, const std::string& text) {
                int fd = ::open(file, O_WRONLY | O_CLOEXEC);
                bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
                if (fd >= 0) ::close(fd);
                return ok;
            };
            if (!put("/proc/self/setgroups", "deny") || !put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
                !put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1")) {
                report(std::string("SKIP id map: ") + std::strerror(errno));
            }
        }
        // Nothing mounted here may propagate back to the host.
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            report(std::string("SKIP make / private: ") + std::strerror(errno));
        }
        std::string result;
        try {
            result = fn();
        } catch (const std::exception& e) {
            result = std::string("exception: ") + e.what();
        }
        report(result.empty() ? "OK" : result);
    }
    ::close(pipefd[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child died (status " + std::to_string(status) + ")";
    if (out.rfind("SKIP ", 0) == 0) {
        why = out.substr(5);
        return std::nullopt;
    }
    return out == "OK" ? std::string() : out;
}

// Runs fn in a private mount namespace and CHECKs its result. Unprivileged, a kernel that refuses the
// namespaces makes the test skip with the reason; as root it must work, so there it fails.
inline void check_in_mount_namespace(const std::function<std::string()>& fn) {
    std::string why;
    std::optional<std::string> result = in_mount_namespace(fn, why);
    if (!result) {
        if (::geteuid() == 0) FAIL("root could not make a private mount namespace: " << why);
        MESSAGE("skipped: the kernel refuses an unprivileged mount namespace (" << why << ")");
        return;
    }
    CHECK_MESSAGE(result->empty(), *result);
}

}  // namespace fs_test
