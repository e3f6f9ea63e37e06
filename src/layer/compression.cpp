#include "imgtool/layer/compression.hpp"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <cstring>
#include <vector>

#include "imgtool/core/error.hpp"

namespace imgtool::layer {
namespace {

constexpr std::size_t kInputChunk = 1 << 20;

class GzipReader final : public sys::Reader {
public:
    explicit GzipReader(sys::Reader& source) : source_(source), input_(kInputChunk), state_(new inflate_state()) {
        start_member();
    }

    std::size_t read(void* buffer, std::size_t size) override {
        while (true) {
            if (state_->block_state == ISAL_BLOCK_FINISH) {
                // One member done. Another may follow (pigz, concatenated gzip); anything else is garbage.
                if (state_->avail_in == 0 && !refill()) return 0;
                if (state_->avail_in >= 1 && state_->next_in[0] != 0x1f) {
                    throw Error(Errc::Corrupt, "corrupt gzip stream: trailing garbage after the last member");
                }
                start_member();
            }
            if (state_->avail_in == 0 && !input_eof_) refill();
            state_->next_out = static_cast<std::uint8_t*>(buffer);
            state_->avail_out = static_cast<std::uint32_t>(std::min<std::size_t>(size, 1u << 30));
            int rc = isal_inflate(state_.get());
            if (rc != ISAL_DECOMP_OK) throw Error(Errc::Corrupt, "corrupt gzip stream (ISA-L error " + std::to_string(rc) + ")");
            std::size_t produced = static_cast<std::size_t>(static_cast<std::uint8_t*>(state_->next_out) -
                                                            static_cast<std::uint8_t*>(buffer));
            if (produced > 0) return produced;
            if (state_->block_state != ISAL_BLOCK_FINISH && state_->avail_in == 0 && input_eof_) {
                throw Error(Errc::Corrupt, "corrupt gzip stream: truncated");
            }
        }
    }

private:
    void start_member() {
        std::uint8_t* next = state_->next_in;
        std::uint32_t avail = state_->avail_in;
        isal_inflate_init(state_.get());
        state_->crc_flag = ISAL_GZIP;  // parse the gzip header and verify each member's CRC32
        state_->next_in = next;
        state_->avail_in = avail;
    }
    // Fills the whole input buffer (or up to end of stream): ISA-L does not accept a gzip header split
    // across two calls, and large chunks are faster anyway.
    bool refill() {
        std::size_t n = 0;
        while (n < input_.size()) {
            std::size_t got = source_.read(input_.data() + n, input_.size() - n);
            if (got == 0) {
                input_eof_ = true;
                break;
            }
            n += got;
        }
        if (n == 0) return false;
        state_->next_in = input_.data();
        state_->avail_in = static_cast<std::uint32_t>(n);
        return true;
    }

    sys::Reader& source_;
    std::vector<std::uint8_t> input_;
    std::unique_ptr<inflate_state> state_;
    bool input_eof_ = false;
};

class ZstdReader final : public sys::Reader {
public:
    explicit ZstdReader(sys::Reader& source) : source_(source), input_(kInputChunk), stream_(ZSTD_createDStream()) {
        if (stream_ == nullptr) throw Error(Errc::Unsupported, "zstd: cannot allocate a decompression stream");
        ZSTD_DCtx_setParameter(stream_, ZSTD_d_windowLogMax, 27);  // bound memory: at most a 128 MiB window
    }
    ~ZstdReader() override { ZSTD_freeDStream(stream_); }

    std::size_t read(void* buffer, std::size_t size) override {
        ZSTD_outBuffer out{buffer, size, 0};
        while (out.pos == 0) {
            if (in_.pos == in_.size) {
                std::size_t n = source_.read(input_.data(), input_.size());
                if (n == 0) {
                    if (frame_open_) throw Error(Errc::Corrupt, "corrupt zstd stream: truncated");
                    if (!seen_input_) throw Error(Errc::Corrupt, "corrupt zstd stream: empty");
                    return 0;
                }
                seen_input_ = true;
                in_ = ZSTD_inBuffer{input_.data(), n, 0};
            }
            std::size_t rc = ZSTD_decompressStream(stream_, &out, &in_);
            if (ZSTD_isError(rc)) throw Error(Errc::Corrupt, std::string("corrupt zstd stream: ") + ZSTD_getErrorName(rc));
            frame_open_ = rc != 0;
        }
        return out.pos;
    }

private:
    sys::Reader& source_;
    std::vector<char> input_;
    ZSTD_inBuffer in_{nullptr, 0, 0};
    ZSTD_DStream* stream_;
    bool frame_open_ = false;
    bool seen_input_ = false;
};

class PassThrough final : public sys::Reader {
public:
    explicit PassThrough(sys::Reader& source) : source_(source) {}
    std::size_t read(void* buffer, std::size_t size) override { return source_.read(buffer, size); }

private:
    sys::Reader& source_;
};

}  // namespace

std::string compression_name(Compression c) {
    switch (c) {
        case Compression::None: return "none";
        case Compression::Gzip: return "gzip";
        case Compression::Zstd: return "zstd";
    }
    return "?";
}

Compression detect_compression(std::string_view head) {
    auto b = [&](std::size_t i) { return static_cast<unsigned char>(head[i]); };
    if (head.size() >= 2 && b(0) == 0x1f && b(1) == 0x8b) return Compression::Gzip;
    if (head.size() >= 4 && b(0) == 0x28 && b(1) == 0xb5 && b(2) == 0x2f && b(3) == 0xfd) return Compression::Zstd;
    return Compression::None;
}

std::size_t PrefixReader::read(void* buffer, std::size_t size) {
    if (offset_ < prefix_.size()) {
        std::size_t n = std::min(size, prefix_.size() - offset_);
        std::memcpy(buffer, prefix_.data() + offset_, n);
        offset_ += n;
        return n;
    }
    return rest_.read(buffer, size);
}

std::unique_ptr<sys::Reader> make_decompressor(Compression c, sys::Reader& compressed) {
    switch (c) {
        case Compression::Gzip: return std::make_unique<GzipReader>(compressed);
        case Compression::Zstd: return std::make_unique<ZstdReader>(compressed);
        case Compression::None: break;
    }
    return std::make_unique<PassThrough>(compressed);
}

BlobHead read_blob_head(sys::Reader& blob) {
    BlobHead head{std::string(8, '\0'), Compression::None};
    std::size_t got = 0;
    while (got < head.bytes.size()) {
        std::size_t n = blob.read(head.bytes.data() + got, head.bytes.size() - got);
        if (n == 0) break;
        got += n;
    }
    head.bytes.resize(got);
    head.compression = detect_compression(head.bytes);
    return head;
}

BlobStream::BlobStream(BlobHead head, sys::Reader& blob)
    : replay_(std::move(head.bytes), blob), decompressed_(make_decompressor(head.compression, replay_)) {}

}  // namespace imgtool::layer
