#include "imgtool/layer/tar_record.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <climits>
#include <cstring>
#include <deque>
#include <unordered_set>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/layer/compression.hpp"
#include "imgtool/layer/tar_check.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::layer {
namespace {

constexpr std::string_view kMagic = "imgtool-tar-record 1\n";
constexpr std::size_t kMaxRawOp = 1 << 20;     // raw bytes per 'R' op, as written
constexpr std::size_t kOutChunk = 256 << 10;   // compressed output buffered before a write
constexpr std::size_t kMaxReason = 4096;
constexpr std::uint64_t kMaxInline = 64 << 20;  // entry data kept in the record (not elided)
constexpr std::uint64_t kMaxRaw = 256 << 20;    // raw bytes kept, when over half the stream

void put_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// zstd into an fd, through one buffer.
class ZstdFileWriter {
public:
    explicit ZstdFileWriter(int fd) : fd_(fd), ctx_(ZSTD_createCCtx()), out_(kOutChunk) {
        if (!ctx_) throw Error(Errc::Unsupported, "zstd: out of memory");
        // Level 1 with a 256 KiB window: headers compress about as well as at level 3 (they are mostly
        // zeros and repeated fields), with a fraction of the CPU and memory (several layers unpack at once).
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, 1);
        ZSTD_CCtx_setParameter(ctx_, ZSTD_c_windowLog, 18);
    }
    ~ZstdFileWriter() { ZSTD_freeCCtx(ctx_); }
    ZstdFileWriter(const ZstdFileWriter&) = delete;
    ZstdFileWriter& operator=(const ZstdFileWriter&) = delete;

    void write(const char* data, std::size_t size) { run(data, size, ZSTD_e_continue); }
    void write(std::string_view s) { write(s.data(), s.size()); }
    void finish() { run(nullptr, 0, ZSTD_e_end); }
    std::uint64_t written() const { return written_; }

private:
    void run(const char* data, std::size_t size, ZSTD_EndDirective mode) {
        ZSTD_inBuffer in{data, size, 0};
        while (true) {
            ZSTD_outBuffer out{out_.data(), out_.size(), 0};
            std::size_t left = ZSTD_compressStream2(ctx_, &out, &in, mode);
            if (ZSTD_isError(left)) throw Error(Errc::Corrupt, std::string("zstd: ") + ZSTD_getErrorName(left));
            if (out.pos > 0) {
                sys::write_all(fd_, out_.data(), out.pos, kTarRecordName);
                written_ += out.pos;
            }
            bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
            if (done) break;
        }
    }

    int fd_;
    ZSTD_CCtx* ctx_;
    std::vector<char> out_;
    std::uint64_t written_ = 0;
};

}  // namespace

struct TarRecordWriter::Impl {
    // Data of a plain file entry, left out of the record.
    struct Range {
        std::uint64_t begin = 0, end = 0, index = 0;
        bool opened = false;
    };
    // An op waiting to be written: raw bytes, or a file reference waiting for its path.
    struct Op {
        bool file = false;
        std::string raw;
        std::uint64_t index = 0, size = 0;
        std::string path;
        bool resolved = false;
    };

    Impl() {
        check.set_observer([this](const TarCheckedEntry& e) {
            if (e.plain_data) {
                ranges.push_back(Range{e.data_offset, e.data_offset + e.data_size, e.index});
            } else if (e.data_size > 0) {
                // Data that is not a file's content as it lies in the tree (a sparse file's map and
                // chunks, a hard link's data): kept in the record, within reason.
                inline_bytes += e.data_size;
                if (inline_bytes > kMaxInline) {
                    give_up("more than " + std::to_string(kMaxInline >> 20) +
                            " MiB of entry data that is not kept as-is in the tree (sparse files), last " +
                            printable(std::string(e.name)));
                }
            }
        });
    }

    void feed(std::span<const char> bytes) {
        if (!reason.empty()) return;
        check.feed(bytes);
        if (!reason.empty()) return;
        std::uint64_t start = position;
        position += bytes.size();
        std::uint64_t pos = start;
        while (pos < position) {
            if (!ranges.empty() && ranges.front().begin <= pos) {
                Range& r = ranges.front();
                if (!r.opened) {
                    r.opened = true;
                    pending.push_back(Op{.file = true, .raw = {}, .index = r.index, .size = r.end - r.begin, .path = {}, .resolved = false});
                }
                pos = std::min(position, r.end);
                if (pos == r.end) ranges.pop_front();
                continue;
            }
            std::uint64_t stop = ranges.empty() ? position : std::min(position, ranges.front().begin);
            append_raw(bytes.data() + (pos - start), static_cast<std::size_t>(stop - pos));
            pos = stop;
        }
    }

    void append_raw(const char* data, std::size_t size) {
        // Headers are a small part of any real layer; a stream that is mostly bytes no file holds
        // (gigabytes after the end blocks) would make the record as big as the layer.
        if (!reason.empty()) return;
        raw_bytes += size;
        if (raw_bytes > kMaxRaw && raw_bytes > position / 2) {
            return give_up("more than " + std::to_string(kMaxRaw >> 20) + " MiB of the tar, over half of it, is not file content");
        }
        while (size > 0) {
            if (pending.empty() || pending.back().file || pending.back().raw.size() >= kMaxRawOp) pending.push_back(Op{});
            std::string& raw = pending.back().raw;
            std::size_t n = std::min(size, kMaxRawOp - raw.size());
            raw.append(data, n);
            data += n;
            size -= n;
        }
        flush(false);
    }

    void entry(std::uint64_t index, const std::string& path, bool wrote_file) {
        if (!reason.empty()) return;
        if (!path.empty() && file_paths.count(path)) {
            return give_up("entry " + std::to_string(index) + " (" + printable(path) +
                           ") replaces a file an earlier entry wrote, whose content is gone");
        }
        // File ops come in entry order: the first unresolved one is the lowest index still expected.
        for (Op& op : pending) {
            if (!op.file || op.resolved) continue;
            if (op.index < index) {
                return give_up("entry " + std::to_string(op.index) + ": its data is not in the tree");
            }
            if (op.index == index) {
                if (!wrote_file) {
                    return give_up("entry " + std::to_string(index) + " (" + printable(path) +
                                   "): its data is not kept as a file");
                }
                op.path = path;
                op.resolved = true;
                file_paths.insert(path);
            }
            break;
        }
        flush(false);
    }

    // Writes the ops that are complete, in order (all of them at the end).
    void flush(bool all) {
        if (!reason.empty()) return;
        while (!pending.empty()) {
            Op& op = pending.front();
            if (op.file) {
                if (!op.resolved) {
                    if (all) return give_up("entry " + std::to_string(op.index) + ": its data is not in the tree");
                    return;
                }
                std::string head = "F";
                put_u64(head, op.size);
                put_u32(head, static_cast<std::uint32_t>(op.path.size()));
                out->write(head);
                out->write(op.path);
            } else {
                if (!all && pending.size() == 1) return;  // may still grow
                std::string head = "R";
                put_u64(head, op.raw.size());
                out->write(head);
                out->write(op.raw);
            }
            pending.pop_front();
        }
    }

    void give_up(std::string why) {
        if (reason.empty()) reason = why.empty() ? "unknown reason" : std::move(why);
        pending.clear();
        ranges.clear();
        file_paths.clear();
    }

    TarCheck check;
    std::uint64_t position = 0;
    std::deque<Range> ranges;
    std::deque<Op> pending;
    std::unordered_set<std::string> file_paths;  // files whose content the record refers to
    std::string reason;                          // not reproducible, why
    std::unique_ptr<ZstdFileWriter> out;
    int fd = -1;
    std::uint64_t record_bytes = 0;
    std::uint64_t inline_bytes = 0;
    std::uint64_t raw_bytes = 0;
};

TarRecordWriter::TarRecordWriter() : impl_(std::make_unique<Impl>()) {}
TarRecordWriter::~TarRecordWriter() = default;

void TarRecordWriter::feed(std::span<const char> bytes) {
    if (!impl_->out) throw Error(Errc::InvalidArgument, "tar record: no output");
    impl_->feed(bytes);
}

void TarRecordWriter::entry(std::uint64_t index, const std::string& path, bool wrote_file) {
    impl_->entry(index, path, wrote_file);
}

void TarRecordWriter::give_up(std::string reason) { impl_->give_up(std::move(reason)); }

void TarRecordWriter::open(int fd) {
    impl_->fd = fd;
    impl_->out = std::make_unique<ZstdFileWriter>(fd);
    impl_->out->write(kMagic);
}

std::string TarRecordWriter::finish() {
    Impl& d = *impl_;
    if (!d.out) throw Error(Errc::InvalidArgument, "tar record: no output");
    if (d.reason.empty()) {
        if (d.check.state() == TarCheck::State::Stopped || d.check.state() == TarCheck::State::Refused) {
            d.give_up("the tar's framing could not be followed");
        } else if (!d.ranges.empty() && d.ranges.front().begin < d.position) {
            d.give_up("the stream ends inside a file's data");
        }
    }
    d.flush(true);
    if (d.reason.empty()) {
        std::string tail = "E";
        put_u64(tail, d.position);
        d.out->write(tail);
        d.out->finish();
        d.record_bytes = d.out->written();
        return {};
    }
    // Start over with a record that only says why.
    if (::ftruncate(d.fd, 0) != 0 || ::lseek(d.fd, 0, SEEK_SET) != 0) throw_errno("truncate", kTarRecordName);
    ZstdFileWriter out(d.fd);
    out.write(kMagic);
    std::string reason = d.reason.substr(0, kMaxReason);
    std::string op = "N";
    put_u32(op, static_cast<std::uint32_t>(reason.size()));
    out.write(op);
    out.write(reason);
    out.finish();
    d.record_bytes = out.written();
    return d.reason;
}

std::uint64_t TarRecordWriter::record_bytes() const { return impl_->record_bytes; }

// ---- reading back ----

namespace {

class FdReader final : public sys::Reader {
public:
    explicit FdReader(int fd) : fd_(fd) {}
    std::size_t read(void* buffer, std::size_t size) override {
        while (true) {
            ssize_t n = ::read(fd_, buffer, size);
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno != EINTR) throw_errno("read", kTarRecordName);
        }
    }

private:
    int fd_;
};

// The record's decompressed bytes, read exactly.
class RecordStream {
public:
    explicit RecordStream(int fd) : file_(fd), zstd_(make_decompressor(Compression::Zstd, file_)) {}
    void exact(void* buffer, std::size_t size) {
        auto* p = static_cast<char*>(buffer);
        while (size > 0) {
            std::size_t n = zstd_->read(p, size);
            if (n == 0) throw Error(Errc::Corrupt, "tar record: truncated");
            p += n;
            size -= n;
        }
    }
    std::uint64_t u64() {
        unsigned char b[8];
        exact(b, 8);
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
        return v;
    }
    std::uint32_t u32() {
        unsigned char b[4];
        exact(b, 4);
        return static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
               (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
    }
    bool at_end() {
        char c;
        return zstd_->read(&c, 1) == 0;
    }

private:
    FdReader file_;
    std::unique_ptr<sys::Reader> zstd_;
};

[[noreturn]] void corrupt(const std::string& what) { throw Error(Errc::Corrupt, "tar record: " + what); }

// A path as the writer stores them: relative, no empty, "." or ".." component (openat2 would refuse
// an escape anyway; this names the lie).
bool plain_relative(const std::string& path) {
    if (path.empty() || path.front() == '/' || path.find('\0') != std::string::npos) return false;
    for (const std::string& part : split(path, '/')) {
        if (part.empty() || part == "." || part == "..") return false;
    }
    return true;
}

}  // namespace

std::uint64_t regenerate_tar(int record_fd, int diff_fd, std::uint64_t expected_size, const TarSink& out) {
    RecordStream in(record_fd);
    std::string magic(kMagic.size(), '\0');
    in.exact(magic.data(), magic.size());
    if (magic != kMagic) corrupt("not a tar record");
    std::vector<char> buffer(256 << 10);
    std::uint64_t written = 0;
    auto room = [&](std::uint64_t n, const char* what) {
        if (n > expected_size - written) {
            corrupt(std::string(what) + " goes past the layer's size (" + std::to_string(expected_size) + " bytes)");
        }
    };
    while (true) {
        char op = 0;
        in.exact(&op, 1);
        if (op == 'R') {
            std::uint64_t n = in.u64();
            room(n, "raw bytes");
            while (n > 0) {
                std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n, buffer.size()));
                in.exact(buffer.data(), chunk);
                out(buffer.data(), chunk);
                written += chunk;
                n -= chunk;
            }
        } else if (op == 'F') {
            std::uint64_t size = in.u64();
            std::uint32_t length = in.u32();
            if (length == 0 || length >= PATH_MAX) corrupt("bad path length");
            std::string path(length, '\0');
            in.exact(path.data(), length);
            if (!plain_relative(path)) corrupt("bad path " + printable(path));
            room(size, "file content");
            auto [fd, err] = sys::try_open_beneath(diff_fd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
            if (err) throw_errno(err, "open", printable(path));
            struct stat st = sys::fstat_fd(fd.get(), printable(path));
            if (!S_ISREG(st.st_mode)) throw Error(Errc::Corrupt, printable(path) + ": not a regular file in the layer tree");
            if (static_cast<std::uint64_t>(st.st_size) != size) {
                throw Error(Errc::SizeMismatch, printable(path) + ": " + std::to_string(st.st_size) +
                                                    " bytes in the layer tree, the layer had " + std::to_string(size));
            }
            std::uint64_t left = size;
            while (left > 0) {
                std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
                ssize_t n = ::read(fd.get(), buffer.data(), want);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    throw_errno("read", printable(path));
                }
                if (n == 0) throw Error(Errc::SizeMismatch, printable(path) + ": shorter than its size");
                out(buffer.data(), static_cast<std::size_t>(n));
                written += static_cast<std::uint64_t>(n);
                left -= static_cast<std::uint64_t>(n);
            }
        } else if (op == 'N') {
            std::uint32_t length = in.u32();
            if (length > kMaxReason) corrupt("bad reason length");
            std::string reason(length, '\0');
            in.exact(reason.data(), length);
            throw Error(Errc::Unsupported, "not reproducible: " + printable(reason));
        } else if (op == 'E') {
            std::uint64_t total = in.u64();
            if (total != written || written != expected_size) {
                corrupt("describes " + std::to_string(written) + " bytes, the layer has " + std::to_string(expected_size));
            }
            if (!in.at_end()) corrupt("bytes after its end");
            return written;
        } else {
            corrupt("unknown op");
        }
    }
}

}  // namespace imgtool::layer
