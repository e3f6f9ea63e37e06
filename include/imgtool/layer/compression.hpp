// Layer compression: detection by magic bytes (docker archives mislabel media types) and streaming
// decompressors. gzip goes through ISA-L's inflate (about 3x zlib); zstd through libzstd. Both accept
// multi-member / multi-frame streams and reject trailing garbage and truncation.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "imgtool/sys/reader.hpp"

namespace imgtool::layer {

enum class Compression { None, Gzip, Zstd };
std::string compression_name(Compression c);

// From the first bytes of a blob (at least 4 are needed to see zstd). A manifest's media type is never
// asked: image::is_layer_media_type only checks that it names a layer.
Compression detect_compression(std::string_view head);

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

// A blob's first bytes (8, fewer only at end of stream), read to detect its compression; they are
// replayed to the decompressor (BlobStream).
struct BlobHead {
    std::string bytes;
    Compression compression = Compression::None;
};
BlobHead read_blob_head(sys::Reader& blob);

// The uncompressed stream of a blob whose head was read: the head replayed, then the rest of `blob`,
// through the detected decompressor.
class BlobStream final : public sys::Reader {
public:
    BlobStream(BlobHead head, sys::Reader& blob);
    std::size_t read(void* buffer, std::size_t size) override { return decompressed_->read(buffer, size); }

private:
    PrefixReader replay_;
    std::unique_ptr<sys::Reader> decompressed_;
};

}  // namespace imgtool::layer
