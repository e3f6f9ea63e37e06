#include "imgtool/sys/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::sys {

std::vector<std::string> process_stat_fields(int pid) {
    if (pid <= 0) return {};
    std::string stat;
    try {
        stat = read_file_at(AT_FDCWD, "/proc/" + std::to_string(pid) + "/stat", 4096);
    } catch (const Error&) {
        return {};  // gone
    }
    // Fields count from the last ')': the command name may hold spaces and parentheses.
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 > stat.size()) return {};
    return split(stat.substr(close + 2), ' ');
}

std::optional<std::uint64_t> process_start_time(int pid) {
    std::vector<std::string> fields = process_stat_fields(pid);
    if (fields.size() <= 19 || fields[0] == "Z") return std::nullopt;  // field 3 is the state
    try {
        return std::stoull(fields[19]);  // field 22
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

UniqueFd open_process(int pid, std::uint64_t start_time) {
    UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!fd) return fd;
    // Checked after the pidfd exists: the pidfd pins this process, whatever happens to the pid later.
    auto now = process_start_time(pid);
    if (!now || *now != start_time) return UniqueFd();
    return fd;
}

bool wait_for_exit(int pidfd, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        struct pollfd p {pidfd, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
        if (rc > 0) return true;
        if (rc == 0) return false;
        if (errno != EINTR) throw_errno("poll", "pidfd");
    }
}

std::string new_container_id() {
    unsigned char bytes[32];
    std::size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("getrandom", "container ID");
        got += static_cast<std::size_t>(n);
    }
    static const char kHex[] = "0123456789abcdef";
    std::string id;
    for (unsigned char b : bytes) {
        id += kHex[b >> 4];
        id += kHex[b & 15];
    }
    return id;
}

}  // namespace imgtool::sys
