// Pull-style byte streams. A Reader fills the caller's buffer and returns 0 only at end of stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

class Reader {
public:
    virtual ~Reader() = default;
    // Reads up to `size` bytes; 0 means end of stream. Throws imgtool::Error on failure.
    virtual std::size_t read(void* buffer, std::size_t size) = 0;
};

// Reads [offset, offset + length) of a file with pread, so many readers can share one fd across threads.
class FileRangeReader final : public Reader {
public:
    FileRangeReader(std::shared_ptr<const UniqueFd> fd, std::uint64_t offset, std::uint64_t length,
                    std::string shown);
    std::size_t read(void* buffer, std::size_t size) override;

private:
    std::shared_ptr<const UniqueFd> fd_;
    std::uint64_t position_;
    std::uint64_t end_;
    std::string shown_;
};

}  // namespace imgtool::sys
