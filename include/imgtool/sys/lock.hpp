// Open-file-description byte-range locks (F_OFD_SETLKW). One lock file serves many independent locks:
// each lock is one byte at its own offset. OFD locks belong to the open file description, so threads of
// one process exclude each other too, and a read lock can be converted to a write lock and back
// atomically (used to clean leftovers only when no other imgtool process is active).
#pragma once

#include <cstdint>
#include <string>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

enum class LockMode { Shared, Exclusive };

class RangeLock {
public:
    RangeLock() = default;
    // Blocks until the byte at `offset` of the file behind `fd` is locked in `mode`.
    RangeLock(int fd, std::uint64_t offset, LockMode mode, std::string shown);
    // Non-blocking; returns an unlocked RangeLock if someone else holds a conflicting lock.
    static RangeLock try_lock(int fd, std::uint64_t offset, LockMode mode, std::string shown);
    RangeLock(RangeLock&& other) noexcept;
    RangeLock& operator=(RangeLock&& other) noexcept;
    RangeLock(const RangeLock&) = delete;
    RangeLock& operator=(const RangeLock&) = delete;
    ~RangeLock();

    bool locked() const noexcept { return static_cast<bool>(fd_); }
    // Atomically converts the lock (blocking if needed).
    void convert(LockMode mode);

private:
    void unlock() noexcept;

    UniqueFd fd_;  // own open file description: OFD locks are released when it closes
    std::uint64_t offset_ = 0;
    std::string shown_;
};

}  // namespace imgtool::sys
