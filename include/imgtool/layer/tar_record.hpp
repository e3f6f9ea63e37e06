// The tar record of a layer: what it takes, besides the unpacked tree, to give back the layer's tar
// byte for byte (the tar-split idea: containers/storage keeps the same kind of record).
//
// At unpack, TarRecordWriter is fed the same raw uncompressed bytes the unpacker reads. A TarCheck
// walk (the one that follows libarchive's framing) tells it where each entry's data lies; the data of
// plain regular files is left out and referred to by entry index and size, every other byte (headers,
// PAX and GNU long-name headers, padding, the end-of-archive blocks, anything after them, the data of
// links and sparse files) is kept as it was. The unpacker tells the writer, per entry, the path it
// wrote; a file entry's reference then becomes "content of diff/<path>, <size> bytes".
//
// A layer whose content cannot come back from diff/ this way (a file's data the unpacker did not keep,
// a path written twice so the first content is gone, a stream the walk could not follow) gets a record
// that says only "not reproducible: <reason>", and `save` refuses it by that reason.
//
// The record is a zstd stream (headers are mostly zeros: a few percent of the layer, often less) of
//   "imgtool-tar-record 1\n"
//   ops: 'R' u64 n, n raw bytes | 'F' u64 size, u32 n, n bytes of path | 'N' u32 n, reason | 'E' u64 total
// (integers little-endian). Readers treat it as untrusted: every length is bounded by what is left
// of the stated layer size, paths are opened beneath diff/ with no symlink, and a file must be a
// regular file of exactly the stated size; the caller checks the regenerated stream's digest.
//
// Lifecycle: one writer per unpack (same thread as the unpacker); finish() writes the record file.
// Memory: the ops not yet resolved (at most the unpacker's read-ahead) and the set of file paths.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "imgtool/sys/reader.hpp"

namespace imgtool::layer {

inline constexpr const char* kTarRecordName = "tar-record";

class TarRecordWriter {
public:
    TarRecordWriter();
    ~TarRecordWriter();
    TarRecordWriter(const TarRecordWriter&) = delete;
    TarRecordWriter& operator=(const TarRecordWriter&) = delete;

    // Where the record goes (an open, empty file in the staging directory); before the first feed.
    void open(int fd);
    // The raw tar stream, in order, in chunks of any size, all of it (bytes after the end blocks too).
    void feed(std::span<const char> bytes);
    // Entry `index` (1-based, libarchive's order) was handled by the unpacker at `path` (below the
    // layer root, cleaned; empty for the root); `wrote_file`: its data went to that regular file.
    void entry(std::uint64_t index, const std::string& path, bool wrote_file);
    // Marks the layer not reproducible (the first reason is kept).
    void give_up(std::string reason);
    // Completes the record (not synced: the staging's syncfs covers it). Returns the reason when the
    // layer is not reproducible (the record then says only that), else empty.
    std::string finish();
    // Compressed bytes written by finish.
    std::uint64_t record_bytes() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A tee: passes the views of `inner` on and feeds them to `writer` (the pull's extractor reads through it).
class RecordingViewReader final : public sys::ViewReader {
public:
    RecordingViewReader(sys::ViewReader& inner, TarRecordWriter& writer) : inner_(inner), writer_(writer) {}
    std::span<const char> next() override {
        std::span<const char> view = inner_.next();
        if (!view.empty()) writer_.feed(view);
        return view;
    }

private:
    sys::ViewReader& inner_;
    TarRecordWriter& writer_;
};

using TarSink = std::function<void(const char* data, std::size_t size)>;

// Regenerates the layer's tar from the record `record_fd` and the tree `diff_fd` (a directory fd;
// files are opened beneath it with no symlink) into `out`, which gets at most `expected_size` bytes.
// Throws Errc::Corrupt naming what does not fit (not reproducible, a file changed size, a record
// that lies). Returns the bytes written (== expected_size when it returns).
std::uint64_t regenerate_tar(int record_fd, int diff_fd, std::uint64_t expected_size, const TarSink& out);

}  // namespace imgtool::layer
