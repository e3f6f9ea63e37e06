// SpaceReserve: keeps imgtool from filling the filesystem it writes to (a 10 MB gzip bomb can expand
// to terabytes). Writers charge what they write; once `step` bytes (or entries) were charged since the
// last look, the filesystem's free space is read with fstatvfs and writing stops with ENOSPC once it
// would fall below the reserve. Between two looks at most `step` bytes per writer go unchecked, and the
// step is a small fraction of the reserve, so the reserve is never eaten. Thread-safe: parallel layer
// unpackers share one.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace imgtool::sys {

struct SpaceLimits {
    std::uint64_t min_free_bytes = 0;   // 0: no byte reserve
    std::uint64_t min_free_inodes = 0;  // 0: no inode reserve
};

// The default reserve for the filesystem of `fd`: the smaller of 1 GiB and 5% of its size, and of
// 64 Ki inodes and 5% of its inodes.
SpaceLimits default_space_limits(int fd);

// Parses a --min-free value: "0" (no reserve), a size ("512M", "2G", "1048576", K/M/G/T binary
// units), or a percentage of the filesystem ("5%"). nullopt when it is none of these.
struct MinFreeSetting {
    std::uint64_t bytes = 0;
    double percent = -1;  // >= 0: a share of the filesystem instead of bytes
};
std::optional<MinFreeSetting> parse_min_free(std::string_view text);
// The limits for `fd` under a setting (nullopt: the default).
SpaceLimits space_limits_for(int fd, const std::optional<MinFreeSetting>& setting);

class SpaceReserve {
public:
    // `fd`: any fd on the filesystem written to; `shown`: its name for the error message.
    SpaceReserve(int fd, SpaceLimits limits, std::string shown);
    SpaceReserve(const SpaceReserve&) = delete;
    SpaceReserve& operator=(const SpaceReserve&) = delete;

    // Records `bytes` of data and `entries` new inodes about to be written; throws
    // Error(ENOSPC) naming the reserve when the filesystem is (nearly) down to it.
    void charge(std::uint64_t bytes, std::uint64_t entries = 0);
    // Looks at the filesystem now, whatever was charged (before a big write of known size).
    void check();
    const SpaceLimits& limits() const { return limits_; }

private:
    int fd_;
    SpaceLimits limits_;
    std::string shown_;
    std::uint64_t byte_step_;
    std::uint64_t entry_step_;
    std::atomic<std::uint64_t> bytes_since_{0};
    std::atomic<std::uint64_t> entries_since_{0};
    std::mutex check_mutex_;
};

}  // namespace imgtool::sys
