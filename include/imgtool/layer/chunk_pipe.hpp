// A bounded single-producer / single-consumer byte pipe between two threads of one layer's unpack:
// the producer reads, verifies and decompresses the blob; the consumer hashes the tar stream and
// extracts it. A fixed pool of chunks bounds memory whatever the layer's size.
//
// Lifecycle: the producer write()s, then close()s (or fail()s with its exception); the consumer read()s
// until 0 (or the producer's exception is rethrown). Either side may abandon(): the other side's calls
// then return immediately (write() returns false, read() returns 0).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <vector>

#include "imgtool/sys/reader.hpp"

namespace imgtool::layer {

class ChunkPipe {
public:
    // 8 x 256 KiB: large enough that handing chunks over costs nothing measurable, small enough that the
    // fresh pages every layer's pipe faults in stay cheap (1 MiB chunks cost 7% more CPU in a pull).
    explicit ChunkPipe(std::size_t chunk_size = 256 << 10, std::size_t chunks = 8);

    // Producer side. Returns a buffer to fill (nullptr once abandoned); commit() hands it over.
    std::vector<char>* acquire();
    void commit(std::vector<char>* chunk, std::size_t used);
    void close();
    void fail(std::exception_ptr error);

    // Consumer side: copies up to `size` bytes; 0 at end of stream; rethrows the producer's failure.
    std::size_t read(void* buffer, std::size_t size);
    // Consumer side, zero-copy: the rest of the next filled chunk (empty at end of stream), held until the
    // next call to next() or read().
    std::span<const char> next();

    // Either side gives up: wakes the other.
    void abandon();
    bool abandoned() const;

private:
    bool release_held();  // with mutex_ held

    struct Filled {
        std::vector<char>* chunk;
        std::size_t used;
    };
    std::vector<std::vector<char>> storage_;
    std::vector<std::vector<char>*> free_;
    std::deque<Filled> filled_;
    std::size_t offset_ = 0;  // into filled_.front()
    std::vector<char>* held_ = nullptr;  // returned by next(), freed by the consumer's next call
    bool closed_ = false;
    bool abandoned_ = false;
    std::exception_ptr error_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
};

// The consumer's view of a ChunkPipe as a Reader (copying) and a ViewReader (in place).
class PipeReader final : public sys::Reader, public sys::ViewReader {
public:
    explicit PipeReader(ChunkPipe& pipe) : pipe_(pipe) {}
    std::size_t read(void* buffer, std::size_t size) override { return pipe_.read(buffer, size); }
    std::span<const char> next() override { return pipe_.next(); }

private:
    ChunkPipe& pipe_;
};

}  // namespace imgtool::layer
