#include "imgtool/sys/mountinfo.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::sys {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
    auto octal = [](char c) { return c >= '0' && c <= '7'; };
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

std::vector<MountInfo> parse_mountinfo(std::string_view text) {
    std::vector<MountInfo> out;
    for (const std::string& line : split(text, '\n')) {
        if (line.empty()) continue;
        std::vector<std::string> f = split(line, ' ');
        // id parent major:minor root mount_point options [optional fields...] - fstype source super_options
        std::size_t dash = 0;
        for (std::size_t i = 6; i < f.size(); ++i) {
            if (f[i] == "-") {
                dash = i;
                break;
            }
        }
        if (f.size() < 10 || dash == 0 || dash + 3 > f.size()) continue;
        MountInfo m;
        try {
            m.id = std::stoi(f[0]);
            m.parent = std::stoi(f[1]);
        } catch (const std::exception&) {
            continue;
        }
        m.root = unescape(f[3]);
        m.mount_point = unescape(f[4]);
        m.options = f[5];
        m.fstype = f[dash + 1];
        m.source = unescape(f[dash + 2]);
        m.super_options = dash + 3 < f.size() ? f[dash + 3] : "";
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<MountInfo> read_mountinfo() {
    return parse_mountinfo(read_file_at(AT_FDCWD, "/proc/self/mountinfo", 64 << 20));
}

std::string mount_namespace_id() {
    char buf[64];
    ssize_t n = ::readlink("/proc/self/ns/mnt", buf, sizeof buf - 1);
    if (n < 0) throw_errno("readlink", "/proc/self/ns/mnt");
    return std::string(buf, static_cast<std::size_t>(n));
}

bool mount_namespace_in_use(const std::string& id) {
    UniqueFd proc = open_at(AT_FDCWD, "/proc", O_RDONLY | O_DIRECTORY, 0, "/proc");
    for (const std::string& name : list_directory(proc.get(), "/proc")) {
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        char buf[64];
        // Processes we may not inspect (other users') cannot hold a namespace of ours without our ids.
        ssize_t n = ::readlinkat(proc.get(), (name + "/ns/mnt").c_str(), buf, sizeof buf);
        if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)) == id) return true;
    }
    return false;
}

}  // namespace imgtool::sys
