#include "imgtool/sys/user_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <algorithm>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::sys {
namespace {

// In a user namespace the host's root shows as the overflow id: its symlinks (/lib -> usr/lib, /var/run
// -> /run) must still be followed there.
bool trusted_owner(uid_t uid) {
    if (uid == 0 || uid == ::geteuid()) return true;
    static const uid_t overflow = [] {
        try {
            return static_cast<uid_t>(std::stoul(read_file_at(AT_FDCWD, "/proc/sys/kernel/overflowuid", 64)));
        } catch (const std::exception&) {
            return static_cast<uid_t>(65534);
        }
    }();
    static const bool in_user_namespace = [] {
        try {
            return read_file_at(AT_FDCWD, "/proc/self/uid_map", 1 << 16).find("         0          0 4294967295") ==
                   std::string::npos;
        } catch (const Error&) {
            return false;
        }
    }();
    return in_user_namespace && uid == overflow;
}

bool closed_to_others(const struct stat& st) {
    if (!trusted_owner(st.st_uid)) return false;
    bool group_can = (st.st_mode & S_IXGRP) && st.st_gid != 0 && st.st_gid != ::getegid();
    return !(st.st_mode & S_IXOTH) && !group_can;
}

std::string join(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

}  // namespace

UserPath open_user_directory(const std::string& path, int flags, bool create_missing) {
    if (path.empty()) throw Error(Errc::InvalidArgument, "empty path");
    std::string start = path;
    if (start[0] != '/') {
        char cwd[PATH_MAX];
        if (::getcwd(cwd, sizeof cwd) == nullptr) throw_errno("getcwd", path);
        start = std::string(cwd) + "/" + path;
    }
    std::vector<std::string> todo;  // a stack: the next component last
    for (auto& part : split(start, '/')) {
        if (!part.empty() && part != ".") todo.push_back(part);
    }
    std::reverse(todo.begin(), todo.end());

    UserPath out;
    UniqueFd current = open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
    std::string resolved = "/";
    out.private_to_caller = closed_to_others(fstat_fd(current.get(), "/"));
    int links = 0;
    while (!todo.empty()) {
        std::string part = std::move(todo.back());
        todo.pop_back();
        bool last = todo.empty();
        if (part == "..") {
            current = open_at(current.get(), "..", O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, resolved + "/..");
            resolved = resolved == "/" ? "/" : resolved.substr(0, std::max<std::size_t>(1, resolved.rfind('/')));
            if (!last) continue;
            part = ".";  // the path ends in "..": open the directory reached
        }
        std::string next = join(resolved, part);
        struct stat st {};
        if (part != "." && ::fstatat(current.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT || !last || !create_missing) throw_errno("open", next);
            if (::mkdirat(current.get(), part.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir", next);
            if (::fstatat(current.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("open", next);
        }
        if (part != "." && S_ISLNK(st.st_mode)) {
            if (!trusted_owner(st.st_uid)) {
                throw Error(Errc::UnsafePath, printable(path) + ": goes through the symlink " + printable(next) +
                                                  ", owned by uid " + std::to_string(st.st_uid) +
                                                  " (a symlink another user controls is never followed)",
                            next);
            }
            if (++links > 40) throw Error(std::error_code(ELOOP, std::generic_category()), printable(path) + ": too many symlinks");
            std::string target(PATH_MAX, '\0');
            ssize_t n = ::readlinkat(current.get(), part.c_str(), target.data(), target.size());
            if (n < 0) throw_errno("readlink", next);
            target.resize(static_cast<std::size_t>(n));
            std::vector<std::string> parts;
            for (auto& p : split(target, '/')) {
                if (!p.empty() && p != ".") parts.push_back(p);
            }
            if (parts.empty()) parts.push_back(".");
            for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
            if (!target.empty() && target[0] == '/') {
                current = open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
                resolved = "/";
            }
            continue;
        }
        if (last) {
            out.fd = open_at(current.get(), part, flags | O_DIRECTORY | O_NOFOLLOW, 0, next);
            out.parent = open_at(current.get(), part == "." ? ".." : ".", O_PATH | O_DIRECTORY);
            out.name = part;
            out.resolved = part == "." ? resolved : next;
            if (part == ".") {
                out.name = resolved == "/" ? "." : resolved.substr(resolved.rfind('/') + 1);
            }
            if (closed_to_others(fstat_fd(out.fd.get(), next))) out.private_to_caller = true;
            return out;
        }
        current = open_at(current.get(), part, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, next);
        resolved = next;
        if (closed_to_others(fstat_fd(current.get(), next))) out.private_to_caller = true;
    }
    // The path named "/" (or only "." and ".."): the directory reached.
    out.fd = open_at(current.get(), ".", flags | O_DIRECTORY, 0, resolved);
    out.parent = open_at(current.get(), resolved == "/" ? "." : "..", O_PATH | O_DIRECTORY);
    out.name = resolved == "/" ? "." : resolved.substr(resolved.rfind('/') + 1);
    out.resolved = resolved;
    return out;
}

}  // namespace imgtool::sys
