// Helpers shared by the unit tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>

#include "imgtool/core/error.hpp"
#include "imgtool/sys/reader.hpp"

namespace test_support {

// The error_code of the imgtool::Error that fn throws, or an empty code if it throws none.
template <typename Fn>
std::error_code thrown_code(Fn&& fn) {
    try {
        fn();
    } catch (const imgtool::Error& e) {
        return e.code();
    }
    return {};
}

// A Reader over an in-memory buffer, handing out at most `chunk` bytes per read.
class MemoryReader final : public imgtool::sys::Reader {
public:
    explicit MemoryReader(std::string data, std::size_t chunk = SIZE_MAX) : data_(std::move(data)), chunk_(chunk) {}
    std::size_t read(void* buffer, std::size_t size) override {
        std::size_t n = std::min({size, chunk_, data_.size() - offset_});
        std::memcpy(buffer, data_.data() + offset_, n);
        offset_ += n;
        return n;
    }

private:
    std::string data_;
    std::size_t chunk_;
    std::size_t offset_ = 0;
};

}  // namespace test_support
