#include "imgtool/sys/reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "imgtool/core/error.hpp"

namespace imgtool::sys {

FileRangeReader::FileRangeReader(std::shared_ptr<const UniqueFd> fd, std::uint64_t offset, std::uint64_t length,
                                 std::string shown)
    : fd_(std::move(fd)), position_(offset), end_(offset + length), shown_(std::move(shown)) {}

std::size_t FileRangeReader::read(void* buffer, std::size_t size) {
    std::uint64_t want = std::min<std::uint64_t>(size, end_ - position_);
    if (want == 0) return 0;
    while (true) {
        ssize_t n = ::pread(fd_->get(), buffer, want, static_cast<off_t>(position_));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("read", shown_);
        }
        if (n == 0) throw Error(Errc::SizeMismatch, shown_ + ": unexpected end of file", shown_);
        position_ += static_cast<std::uint64_t>(n);
        return static_cast<std::size_t>(n);
    }
}

}  // namespace imgtool::sys
