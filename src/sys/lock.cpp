#include "imgtool/sys/lock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "imgtool/core/error.hpp"

namespace imgtool::sys {
namespace {

// Returns 0 or the errno; EAGAIN/EACCES from a non-blocking attempt mean "held by someone else".
int set_lock(int fd, std::uint64_t offset, short type, bool wait) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(offset);
    fl.l_len = 1;
    while (::fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0) {
        if (errno != EINTR) return errno;
    }
    return 0;
}

short type_of(LockMode mode) { return mode == LockMode::Shared ? F_RDLCK : F_WRLCK; }

UniqueFd reopen(int fd, const std::string& shown) {
    // A fresh open file description per lock: OFD locks held through one description do not conflict
    // with each other, so sharing a description would let two of our own threads both "hold" a lock.
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    int nfd = ::open(self.c_str(), O_RDWR | O_CLOEXEC);
    if (nfd < 0) throw_errno("open", shown);
    return UniqueFd(nfd);
}

}  // namespace

RangeLock::RangeLock(int fd, std::uint64_t offset, LockMode mode, std::string shown)
    : fd_(reopen(fd, shown)), offset_(offset), shown_(std::move(shown)) {
    if (int err = set_lock(fd_.get(), offset_, type_of(mode), true)) throw_errno(err, "lock", shown_);
}

RangeLock RangeLock::try_lock(int fd, std::uint64_t offset, LockMode mode, std::string shown) {
    RangeLock lock;
    lock.fd_ = reopen(fd, shown);
    lock.offset_ = offset;
    lock.shown_ = std::move(shown);
    int err = set_lock(lock.fd_.get(), offset, type_of(mode), false);
    if (err == EAGAIN || err == EACCES) {
        lock.fd_.reset();
    } else if (err != 0) {
        throw_errno(err, "lock", lock.shown_);
    }
    return lock;
}

RangeLock::RangeLock(RangeLock&& other) noexcept
    : fd_(std::move(other.fd_)), offset_(other.offset_), shown_(std::move(other.shown_)) {}

RangeLock& RangeLock::operator=(RangeLock&& other) noexcept {
    if (this != &other) {
        unlock();
        fd_ = std::move(other.fd_);
        offset_ = other.offset_;
        shown_ = std::move(other.shown_);
    }
    return *this;
}

RangeLock::~RangeLock() { unlock(); }

void RangeLock::convert(LockMode mode) {
    if (int err = set_lock(fd_.get(), offset_, type_of(mode), true)) throw_errno(err, "lock", shown_);
}

void RangeLock::unlock() noexcept {
    if (fd_) {
        set_lock(fd_.get(), offset_, F_UNLCK, false);
        fd_.reset();
    }
}

}  // namespace imgtool::sys
