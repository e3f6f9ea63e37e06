// A bounded single-producer pipe of byte chunks between the threads of one layer's unpack: the producer
// reads, verifies and decompresses the blob; each reader sees every chunk in order (the extractor, and a
// second reader that hashes the tar stream). A fixed pool of chunks bounds memory whatever the layer's
// size; a chunk is recycled once every reader still reading has passed it.
//
// Lifecycle: the producer commit()s, then close()s (or fail()s with its exception); a reader reads
// until 0 / an empty view (or the producer's exception is rethrown). A reader that stops early leave()s,
// so the others go on without it. abandon() stops everyone: the producer's acquire() returns nullptr and
// every read returns end of stream.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
    explicit ChunkPipe(std::size_t chunk_size = 256 << 10, std::size_t chunks = 8, std::size_t readers = 1);

    // Producer side. Returns a buffer to fill (nullptr once abandoned or every reader left); commit()
    // hands it over.
    std::vector<char>* acquire();
    void commit(std::vector<char>* chunk, std::size_t used);
    void close();
    void fail(std::exception_ptr error);

    // Reader side (reader < readers): copies up to `size` bytes; 0 at end of stream; rethrows the
    // producer's failure once the data committed before it is read.
    std::size_t read(std::size_t reader, void* buffer, std::size_t size);
    // Reader side, zero-copy: the rest of the reader's next chunk (empty at end of stream), held until the
    // reader's next call.
    std::span<const char> next(std::size_t reader);
    // This reader reads no more; the others go on. When the last one leaves, the producer is stopped.
    void leave(std::size_t reader);

    // Everyone gives up: wakes the producer and every reader.
    void abandon();
    bool abandoned() const;

private:
    struct Filled {
        std::vector<char>* chunk;
        std::size_t used;
        std::size_t pending;  // readers that have not released it yet
    };
    struct ReaderState {
        std::uint64_t position = 0;  // sequence number of the reader's current chunk
        std::size_t offset = 0;      // into that chunk, for read()
        bool holding = false;        // next() handed out `position - 1`, not yet released
        bool left = false;
    };
    // With mutex_ held. Returns true when a chunk went back to the free pool.
    bool release(std::uint64_t sequence);
    bool release_held(ReaderState& r);
    // Waits until the reader's next chunk is there; false at end of stream (or rethrows the failure).
    bool wait_for_chunk(std::unique_lock<std::mutex>& lock, ReaderState& r);

    std::vector<std::vector<char>> storage_;
    std::vector<std::vector<char>*> free_;
    std::deque<Filled> filled_;      // filled_[i] has sequence number first_ + i
    std::uint64_t first_ = 0;
    std::vector<ReaderState> readers_;
    std::size_t active_readers_;
    bool closed_ = false;
    bool abandoned_ = false;
    std::exception_ptr error_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
};

// One reader's view of a ChunkPipe as a Reader (copying) and a ViewReader (in place).
class PipeReader final : public sys::Reader, public sys::ViewReader {
public:
    explicit PipeReader(ChunkPipe& pipe, std::size_t reader = 0) : pipe_(pipe), reader_(reader) {}
    std::size_t read(void* buffer, std::size_t size) override { return pipe_.read(reader_, buffer, size); }
    std::span<const char> next() override { return pipe_.next(reader_); }
    void leave() { pipe_.leave(reader_); }

private:
    ChunkPipe& pipe_;
    std::size_t reader_;
};

}  // namespace imgtool::layer
