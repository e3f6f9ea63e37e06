// Pull-style byte streams. A Reader fills the caller's buffer and returns 0 only at end of stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

class Reader {
public:
    virtual ~Reader() = default;
    // Reads up to `size` bytes; 0 means end of stream. Throws imgtool::Error on failure.
    virtual std::size_t read(void* buffer, std::size_t size) = 0;
};

// Zero-copy pull stream: next() returns the next bytes, empty only at end of stream. The view stays valid
// until the following call, so a consumer such as libarchive reads the producer's buffer in place.
class ViewReader {
public:
    virtual ~ViewReader() = default;
    virtual std::span<const char> next() = 0;
};

// A Reader seen as a ViewReader, through one owned buffer.
class BufferedViewReader final : public ViewReader {
public:
    explicit BufferedViewReader(Reader& source, std::size_t buffer_size = 1 << 20)
        : source_(source), buffer_(buffer_size) {}
    std::span<const char> next() override { return {buffer_.data(), source_.read(buffer_.data(), buffer_.size())}; }

private:
    Reader& source_;
    std::vector<char> buffer_;
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
