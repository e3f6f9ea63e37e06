#include "imgtool/layer/chunk_pipe.hpp"

#include <algorithm>
#include <cstring>

namespace imgtool::layer {

ChunkPipe::ChunkPipe(std::size_t chunk_size, std::size_t chunks, std::size_t readers)
    : storage_(chunks, std::vector<char>(chunk_size)), readers_(readers), active_readers_(readers) {
    for (auto& c : storage_) free_.push_back(&c);
}

std::vector<char>* ChunkPipe::acquire() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return abandoned_ || active_readers_ == 0 || !free_.empty(); });
    if (abandoned_ || active_readers_ == 0) return nullptr;
    std::vector<char>* chunk = free_.back();
    free_.pop_back();
    return chunk;
}

void ChunkPipe::commit(std::vector<char>* chunk, std::size_t used) {
    {
        std::lock_guard lock(mutex_);
        if (used == 0 || active_readers_ == 0) {
            free_.push_back(chunk);
            return;
        }
        filled_.push_back({chunk, used, active_readers_});
    }
    changed_.notify_all();
}

void ChunkPipe::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    changed_.notify_all();
}

void ChunkPipe::fail(std::exception_ptr error) {
    {
        std::lock_guard lock(mutex_);
        error_ = std::move(error);
        closed_ = true;
    }
    changed_.notify_all();
}

bool ChunkPipe::release(std::uint64_t sequence) {
    Filled& f = filled_[static_cast<std::size_t>(sequence - first_)];
    if (--f.pending > 0) return false;
    // Readers go in order, so chunks are released front first; free every fully released one.
    bool freed = false;
    while (!filled_.empty() && filled_.front().pending == 0) {
        free_.push_back(filled_.front().chunk);
        filled_.pop_front();
        ++first_;
        freed = true;
    }
    return freed;
}

bool ChunkPipe::release_held(ReaderState& r) {
    if (!r.holding) return false;
    r.holding = false;
    return release(r.position - 1);
}

bool ChunkPipe::wait_for_chunk(std::unique_lock<std::mutex>& lock, ReaderState& r) {
    changed_.wait(lock, [&] { return abandoned_ || closed_ || r.position < first_ + filled_.size(); });
    if (abandoned_ || r.position >= first_ + filled_.size()) {
        // Data already handed over is consumed before a producer failure is reported.
        if (error_ && !abandoned_) std::rethrow_exception(error_);
        return false;
    }
    return true;
}

std::span<const char> ChunkPipe::next(std::size_t reader) {
    std::unique_lock lock(mutex_);
    ReaderState& r = readers_[reader];
    if (release_held(r)) changed_.notify_all();
    if (r.left || !wait_for_chunk(lock, r)) return {};
    Filled& f = filled_[static_cast<std::size_t>(r.position - first_)];
    std::size_t offset = r.offset;
    r.offset = 0;
    ++r.position;
    r.holding = true;
    return {f.chunk->data() + offset, f.used - offset};
}

std::size_t ChunkPipe::read(std::size_t reader, void* buffer, std::size_t size) {
    std::unique_lock lock(mutex_);
    ReaderState& r = readers_[reader];
    // A chunk freed here must reach the producer before this reader waits for the next one.
    if (release_held(r)) changed_.notify_all();
    if (r.left || !wait_for_chunk(lock, r)) return 0;
    Filled& f = filled_[static_cast<std::size_t>(r.position - first_)];
    std::size_t n = std::min(size, f.used - r.offset);
    std::memcpy(buffer, f.chunk->data() + r.offset, n);
    r.offset += n;
    bool freed = false;
    if (r.offset == f.used) {
        r.offset = 0;
        freed = release(r.position++);
    }
    lock.unlock();
    if (freed) changed_.notify_all();
    return n;
}

void ChunkPipe::leave(std::size_t reader) {
    {
        std::lock_guard lock(mutex_);
        ReaderState& r = readers_[reader];
        if (r.left) return;
        release_held(r);
        // Give up the claim on every chunk not yet read.
        // (Releasing may pop chunks off the front, but first_ + filled_.size() stays the same.)
        for (std::uint64_t s = r.position; s < first_ + filled_.size(); ++s) release(s);
        r.left = true;
        r.position = UINT64_MAX;
        --active_readers_;
    }
    changed_.notify_all();
}

void ChunkPipe::abandon() {
    {
        std::lock_guard lock(mutex_);
        abandoned_ = true;
    }
    changed_.notify_all();
}

bool ChunkPipe::abandoned() const {
    std::lock_guard lock(mutex_);
    return abandoned_;
}

}  // namespace imgtool::layer
