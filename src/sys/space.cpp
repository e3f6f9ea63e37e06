#include "imgtool/sys/space.hpp"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::sys {
namespace {

constexpr std::uint64_t kGiB = 1ULL << 30;

struct statvfs fs_stats(int fd, const std::string& shown) {
    struct statvfs st {};
    if (::fstatvfs(fd, &st) != 0) throw_errno("statfs", shown);
    return st;
}

}  // namespace

SpaceLimits default_space_limits(int fd) {
    struct statvfs st = fs_stats(fd, "store");
    std::uint64_t size = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
    SpaceLimits limits;
    limits.min_free_bytes = std::min<std::uint64_t>(kGiB, size / 20);
    limits.min_free_inodes = std::min<std::uint64_t>(65536, static_cast<std::uint64_t>(st.f_files) / 20);
    return limits;
}

std::optional<MinFreeSetting> parse_min_free(std::string_view text) {
    if (text.empty()) return std::nullopt;
    if (text.back() == '%') {
        // from_chars takes a sign for doubles; a sign is junk here as it is for sizes.
        if (text.front() == '-') return std::nullopt;
        double percent = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, percent);
        if (ec != std::errc() || end != text.data() + text.size() - 1 || !(percent >= 0 && percent <= 100)) {
            return std::nullopt;
        }
        return MinFreeSetting{0, percent};
    }
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    std::string_view unit = text.substr(static_cast<std::size_t>(end - text.data()));
    if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.remove_suffix(1);
    if (unit.size() == 2 && (unit[1] == 'i' || unit[1] == 'I')) unit.remove_suffix(1);
    int shift = 0;
    if (unit.size() == 1) {
        switch (unit[0]) {
            case 'k': case 'K': shift = 10; break;
            case 'm': case 'M': shift = 20; break;
            case 'g': case 'G': shift = 30; break;
            case 't': case 'T': shift = 40; break;
            default: return std::nullopt;
        }
    } else if (!unit.empty()) {
        return std::nullopt;
    }
    if (shift && value > (~0ULL >> shift)) return std::nullopt;
    return MinFreeSetting{value << shift, -1};
}

SpaceLimits space_limits_for(int fd, const std::optional<MinFreeSetting>& setting) {
    if (!setting) return default_space_limits(fd);
    SpaceLimits limits;
    if (setting->percent >= 0) {
        struct statvfs st = fs_stats(fd, "store");
        double size = static_cast<double>(st.f_blocks) * static_cast<double>(st.f_frsize);
        limits.min_free_bytes = static_cast<std::uint64_t>(std::llround(size * setting->percent / 100.0));
        limits.min_free_inodes =
            static_cast<std::uint64_t>(std::llround(static_cast<double>(st.f_files) * setting->percent / 100.0));
    } else {
        limits.min_free_bytes = setting->bytes;
        // A byte reserve of 0 means "no reserve": the inode reserve goes with it.
        limits.min_free_inodes = setting->bytes == 0 ? 0 : default_space_limits(fd).min_free_inodes;
    }
    return limits;
}

SpaceReserve::SpaceReserve(int fd, SpaceLimits limits, std::string shown)
    : fd_(fd), limits_(limits), shown_(std::move(shown)) {
    // Unchecked writes between two looks stay a small share of the reserve (several writers may
    // each be one step ahead): a sixteenth of it, capped so that big reserves still get a look (one
    // statfs) every 64 MiB or 4096 entries. A floor of 1 MiB (64 entries) used to let one writer eat a
    // reserve below 16 MiB (1024 inodes) whole between two looks. A part of the reserve that is 0 is
    // never a reason to look (btrfs has no inode count: no statfs per file).
    constexpr std::uint64_t never = ~0ULL;
    byte_step_ = limits_.min_free_bytes ? std::clamp<std::uint64_t>(limits_.min_free_bytes / 16, 4096, 64 << 20) : never;
    entry_step_ = limits_.min_free_inodes ? std::clamp<std::uint64_t>(limits_.min_free_inodes / 16, 1, 4096) : never;
}

void SpaceReserve::charge(std::uint64_t bytes, std::uint64_t entries) {
    if (limits_.min_free_bytes == 0 && limits_.min_free_inodes == 0) return;
    std::uint64_t b = bytes_since_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::uint64_t e = entries_since_.fetch_add(entries, std::memory_order_relaxed) + entries;
    if (b < byte_step_ && e < entry_step_) return;
    check();
}

void SpaceReserve::check() {
    if (limits_.min_free_bytes == 0 && limits_.min_free_inodes == 0) return;
    std::lock_guard lock(check_mutex_);
    bytes_since_.store(0, std::memory_order_relaxed);
    entries_since_.store(0, std::memory_order_relaxed);
    struct statvfs st = fs_stats(fd_, shown_);
    std::uint64_t free_bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    bool bytes_low = limits_.min_free_bytes && free_bytes < limits_.min_free_bytes;
    // Filesystems without inode accounting (btrfs, some FUSE) report 0 files in all.
    bool inodes_low = limits_.min_free_inodes && st.f_files > 0 && st.f_favail < limits_.min_free_inodes;
    if (!bytes_low && !inodes_low) return;
    std::string what = bytes_low ? human_size(free_bytes) + " free, reserve " + human_size(limits_.min_free_bytes)
                                 : std::to_string(st.f_favail) + " inodes free, reserve " +
                                       std::to_string(limits_.min_free_inodes);
    throw Error(std::make_error_code(std::errc::no_space_on_device),
                shown_ + ": stopped before filling the filesystem (" + what + "; see --min-free)", shown_);
}

}  // namespace imgtool::sys
