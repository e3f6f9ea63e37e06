// Layer compression: detection by magic bytes (docker archives mislabel media types) and streaming
// decompressors. gzip goes through ISA-L's inflate (about 3x zlib); zstd through libzstd. Both accept
// multi-member / multi-frame streams and reject trailing garbage and truncation.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "imgtool/sys/reader.hpp"

namespace imgtool::layer {

enum class Compression { None, Gzip, Zstd };
std::string compression_name(Compression c);

// From the first bytes of a blob (at least 4 are needed to see zstd).
Compression detect_compression(std::string_view head);
// From an OCI/Docker media type; nullopt if it does not say (or is not a layer type).
std::optional<Compression> compression_for_media_type(std::string_view media_type);

// Replays `prefix`, then continues with `rest`: lets detection peek without losing bytes.
class PrefixReader final : public sys::Reader {
public:
    PrefixReader(std::string prefix, sys::Reader& rest) : prefix_(std::move(prefix)), rest_(rest) {}
    std::size_t read(void* buffer, std::size_t size) override;

private:
    std::string prefix_;
    std::size_t offset_ = 0;
    sys::Reader& rest_;
};

// A Reader producing the decompressed stream of `compressed`.
std::unique_ptr<sys::Reader> make_decompressor(Compression c, sys::Reader& compressed);

}  // namespace imgtool::layer
