// ChunkPipe between threads: bytes arrive in order through read() and next() to every reader, a bounded pool of
// chunks is recycled, and a producer failure reaches the consumer after the data handed over before it.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <thread>

#include "imgtool/layer/chunk_pipe.hpp"

using imgtool::layer::ChunkPipe;
using imgtool::layer::PipeReader;

namespace {

// Writes `data` through `pipe` in chunks of at most the pipe's chunk size, then closes it.
void produce(ChunkPipe& pipe, const std::string& data, std::size_t chunk_size) {
    std::size_t at = 0;
    while (at < data.size()) {
        std::vector<char>* chunk = pipe.acquire();
        if (chunk == nullptr) return;
        std::size_t n = std::min(chunk_size, data.size() - at);
        std::copy(data.begin() + static_cast<long>(at), data.begin() + static_cast<long>(at + n), chunk->begin());
        pipe.commit(chunk, n);
        at += n;
    }
    pipe.close();
}

// Everything the reader sees through next(), to the end of the stream.
std::string read_views(PipeReader& reader) {
    std::string got;
    while (true) {
        auto view = reader.next();
        if (view.empty()) return got;
        got.append(view.data(), view.size());
    }
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
    return s;
}

}  // namespace

TEST_CASE("ChunkPipe::next hands over every chunk in order, recycling a pool smaller than the stream") {
    const std::string data = pattern(10 * 16 + 5);  // 11 chunks through a pool of 2
    ChunkPipe pipe(16, 2);
    std::thread producer([&] { produce(pipe, data, 16); });
    PipeReader reader(pipe);
    std::string got = read_views(reader);
    producer.join();
    CHECK(got == data);
}

TEST_CASE("ChunkPipe mixes read() and next(): a partly read chunk continues where read() stopped") {
    const std::string data = pattern(40);
    ChunkPipe pipe(16, 2);
    std::thread producer([&] { produce(pipe, data, 16); });
    PipeReader reader(pipe);
    char head[5];
    REQUIRE(reader.read(head, sizeof head) == 5);
    std::string got(head, 5);
    auto view = reader.next();
    CHECK(view.size() == 11);  // the rest of the first chunk
    got.append(view.data(), view.size());
    std::vector<char> rest(64);
    while (std::size_t n = reader.read(rest.data(), rest.size())) got.append(rest.data(), n);
    producer.join();
    CHECK(got == data);
}

TEST_CASE("ChunkPipe reports a producer failure after the data committed before it") {
    ChunkPipe pipe(8, 2);
    std::thread producer([&] {
        std::vector<char>* chunk = pipe.acquire();
        std::fill(chunk->begin(), chunk->end(), 'x');
        pipe.commit(chunk, 8);
        pipe.fail(std::make_exception_ptr(std::runtime_error("blob unreadable")));
    });
    PipeReader reader(pipe);
    CHECK(reader.next().size() == 8);
    CHECK_THROWS_WITH_AS(reader.next(), "blob unreadable", std::runtime_error);
    producer.join();
}

TEST_CASE("ChunkPipe::abandon releases a producer waiting for a free chunk") {
    ChunkPipe pipe(8, 1);
    std::thread producer([&] {
        std::vector<char>* chunk = pipe.acquire();
        pipe.commit(chunk, 8);
        CHECK(pipe.acquire() == nullptr);  // blocks until the consumer abandons
    });
    PipeReader reader(pipe);
    CHECK(reader.next().size() == 8);  // holds the only chunk
    pipe.abandon();
    producer.join();
}

TEST_CASE("ChunkPipe with two readers: each sees every byte, and the pool is recycled only when both passed") {
    const std::string data = pattern(20 * 16 + 3);  // 21 chunks through a pool of 3
    ChunkPipe pipe(16, 3, 2);
    std::thread producer([&] { produce(pipe, data, 16); });
    std::string by_copy;
    std::thread copier([&] {
        PipeReader reader(pipe, 1);
        std::vector<char> buffer(7);  // odd size: chunks are released part way through read()s
        while (std::size_t n = reader.read(buffer.data(), buffer.size())) by_copy.append(buffer.data(), n);
    });
    PipeReader reader(pipe, 0);
    std::string in_place = read_views(reader);
    producer.join();
    copier.join();
    CHECK(in_place == data);
    CHECK(by_copy == data);
}

TEST_CASE("ChunkPipe::leave lets the other reader go on alone; the last one to leave stops the producer") {
    const std::string data = pattern(12 * 8);
    ChunkPipe pipe(8, 2, 2);
    std::thread producer([&] { produce(pipe, data, 8); });
    PipeReader first(pipe, 0), second(pipe, 1);
    CHECK(first.next().size() == 8);
    first.leave();  // holds a chunk and has unread ones: all are given up
    CHECK(first.next().empty());
    std::string got = read_views(second);
    producer.join();
    CHECK(got == data);

    ChunkPipe stopped(8, 1, 2);
    std::thread blocked([&] {
        std::vector<char>* chunk = stopped.acquire();
        stopped.commit(chunk, 8);
        CHECK(stopped.acquire() == nullptr);  // blocks until both readers have left
    });
    PipeReader a(stopped, 0), b(stopped, 1);
    CHECK(a.next().size() == 8);
    a.leave();
    b.leave();
    blocked.join();
}

TEST_CASE("ChunkPipe::read after next() hands the held chunk back to a producer waiting for it") {
    const std::string data = pattern(16);
    ChunkPipe pipe(8, 1);  // one chunk: the producer waits until the reader gives it back
    std::thread producer([&] { produce(pipe, data, 8); });
    PipeReader reader(pipe);
    auto view = reader.next();
    std::string got(view.data(), view.size());
    std::vector<char> rest(16);
    while (std::size_t n = reader.read(rest.data(), rest.size())) got.append(rest.data(), n);
    producer.join();
    CHECK(got == data);
}
