#include "imgtool/layer/chunk_pipe.hpp"

#include <algorithm>
#include <cstring>

namespace imgtool::layer {

ChunkPipe::ChunkPipe(std::size_t chunk_size, std::size_t chunks) : storage_(chunks, std::vector<char>(chunk_size)) {
    for (auto& c : storage_) free_.push_back(&c);
}

std::vector<char>* ChunkPipe::acquire() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return abandoned_ || !free_.empty(); });
    if (abandoned_) return nullptr;
    std::vector<char>* chunk = free_.back();
    free_.pop_back();
    return chunk;
}

void ChunkPipe::commit(std::vector<char>* chunk, std::size_t used) {
    {
        std::lock_guard lock(mutex_);
        if (used == 0) {
            free_.push_back(chunk);
            return;
        }
        filled_.push_back({chunk, used});
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

std::span<const char> ChunkPipe::next() {
    std::unique_lock lock(mutex_);
    bool freed = release_held();
    if (freed) changed_.notify_all();
    changed_.wait(lock, [&] { return abandoned_ || closed_ || !filled_.empty(); });
    if (filled_.empty()) {
        if (error_ && !abandoned_) std::rethrow_exception(error_);
        return {};
    }
    Filled front = filled_.front();
    filled_.pop_front();
    std::size_t offset = offset_;
    offset_ = 0;
    held_ = front.chunk;
    return {front.chunk->data() + offset, front.used - offset};
}

bool ChunkPipe::release_held() {
    if (held_ == nullptr) return false;
    free_.push_back(held_);
    held_ = nullptr;
    return true;
}

std::size_t ChunkPipe::read(void* buffer, std::size_t size) {
    std::unique_lock lock(mutex_);
    if (release_held()) changed_.notify_all();
    changed_.wait(lock, [&] { return abandoned_ || closed_ || !filled_.empty(); });
    if (filled_.empty()) {
        // Data already handed over is consumed before a producer failure is reported.
        if (error_ && !abandoned_) std::rethrow_exception(error_);
        return 0;
    }
    Filled& front = filled_.front();
    std::size_t n = std::min(size, front.used - offset_);
    std::memcpy(buffer, front.chunk->data() + offset_, n);
    offset_ += n;
    if (offset_ == front.used) {
        free_.push_back(front.chunk);
        filled_.pop_front();
        offset_ = 0;
        lock.unlock();
        changed_.notify_all();
    }
    return n;
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
