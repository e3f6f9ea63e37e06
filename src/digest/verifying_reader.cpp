#include "imgtool/digest/verifying_reader.hpp"

#include <vector>

#include "imgtool/core/error.hpp"

namespace imgtool::digest {

std::size_t HashingReader::read(void* buffer, std::size_t size) {
    std::size_t n = source_.read(buffer, size);
    hash_.update(buffer, n);
    bytes_ += n;
    return n;
}

void HashingReader::drain() {
    std::vector<char> buffer(1 << 16);
    while (read(buffer.data(), buffer.size()) != 0) {
    }
}

VerifyingReader::VerifyingReader(sys::Reader& source, std::optional<Digest> expected_digest,
                                 std::uint64_t expected_size)
    : source_(source), expected_(std::move(expected_digest)), expected_size_(expected_size) {}

std::size_t VerifyingReader::read(void* buffer, std::size_t size) {
    std::size_t n = source_.read(buffer, size);
    if (n == 0) {
        check();
        return 0;
    }
    // Without a stated digest there is nothing to compare a hash with: do not compute one.
    if (expected_ && !size_only_) hash_.update(buffer, n);
    bytes_ += n;
    return n;
}

void VerifyingReader::drain() {
    std::vector<char> buffer(1 << 16);
    while (read(buffer.data(), buffer.size()) != 0) {
    }
}

void VerifyingReader::check() {
    if (verified_ || !expected_) return;
    if (mismatch_.empty()) {
        if (bytes_ != expected_size_) {
            size_mismatch_ = true;
            mismatch_ = "size mismatch: expected " + std::to_string(expected_size_) + " bytes, got " + std::to_string(bytes_);
        } else if (size_only_) {
            verified_ = true;
            return;
        } else {
            Digest got = hash_.finish();
            if (got == *expected_) {
                verified_ = true;
                return;
            }
            mismatch_ = "digest mismatch: expected " + expected_->str() + ", got " + got.str();
        }
    }
    throw Error(size_mismatch_ ? Errc::SizeMismatch : Errc::DigestMismatch, mismatch_);
}

}  // namespace imgtool::digest
