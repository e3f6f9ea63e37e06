// Readers that hash what passes through them.
//
// VerifyingReader reads exactly `expected_size` bytes of a blob (never more: the underlying Reader is
// bounded) and, at end of stream, checks size and digest; a mismatch throws DigestMismatch/SizeMismatch.
// HashingReader hashes and counts an unbounded stream (the uncompressed layer, for its diff_id).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "imgtool/digest/digest.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/sys/reader.hpp"

namespace imgtool::digest {

class HashingReader final : public sys::Reader {
public:
    explicit HashingReader(sys::Reader& source) : source_(source) {}
    std::size_t read(void* buffer, std::size_t size) override;
    // Reads the rest of the stream (e.g. bytes after a tar's end-of-archive blocks) so the hash covers it.
    void drain();
    std::uint64_t bytes() const noexcept { return bytes_; }
    Digest finish() { return hash_.finish(); }

private:
    sys::Reader& source_;
    Sha256 hash_;
    std::uint64_t bytes_ = 0;
};

class VerifyingReader final : public sys::Reader {
public:
    // expected_digest may be absent (docker classic layers carry none); the size is then not checked either.
    VerifyingReader(sys::Reader& source, std::optional<Digest> expected_digest, std::uint64_t expected_size);
    std::size_t read(void* buffer, std::size_t size) override;
    std::uint64_t bytes() const noexcept { return bytes_; }
    // What the stated size says is still to come.
    std::uint64_t remaining() const noexcept { return bytes_ < expected_size_ ? expected_size_ - bytes_ : 0; }
    void drain();
    // Stop hashing, keep checking the size: for callers that verify the same bytes' digest elsewhere
    // (an uncompressed layer whose blob digest is its diff_id). Call before the first read.
    void check_size_only() { size_only_ = true; }

private:
    void check();

    sys::Reader& source_;
    std::optional<Digest> expected_;
    std::uint64_t expected_size_;
    Sha256 hash_;
    std::uint64_t bytes_ = 0;
    bool verified_ = false;
    bool size_only_ = false;
    std::string mismatch_;  // once found, every later read at end of stream reports it again
    bool size_mismatch_ = false;
};

}  // namespace imgtool::digest
