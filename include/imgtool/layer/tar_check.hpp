// Streaming check of a layer tar's raw headers for entries that tar readers read differently.
//
// imgtool unpacks a layer with libarchive; whoever reviewed the image (a scanner, another runtime)
// probably read the same bytes with Go's archive/tar, GNU tar, Python's tarfile or Rust's tar crate.
// Where those readers give an entry another name or link target, or disagree on where the next entry
// starts, what was reviewed is not what gets unpacked: such a layer is refused, never read one way
// silently. libarchive exposes no raw headers, so this module walks them itself, in step with
// libarchive 3.6 (archive_read_support_format_tar.c): sizes in octal or base-256, PAX `size` records,
// GNU long names and links, old GNU sparse extension blocks, GNU sparse maps (0.0, 0.1, 1.0), the hard
// link size heuristic, "regular file named x/ is a directory", end of archive. docs/layers.md ("Known
// reader differences") lists what is refused and why.
//
// Invariants: on input libarchive accepts, the walk visits exactly the headers libarchive visits
// (tests/unit/tar_check_libarchive_test.cpp compares the two on generated archives); on input
// libarchive refuses (bad checksum, oversized extension header, truncation, bad sparse map) the
// checker stops without a finding, since that layer fails anyway.
//
// Lifecycle: feed() the uncompressed stream in order, in chunks of any size (headers may straddle
// them); finding() is the first ambiguous entry, final once the whole stream was fed. Pure: no
// syscalls, no work per data byte (data is skipped by count), memory bounded by libarchive's 1 MiB
// limit on an extension header.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace imgtool::layer {

// The first entry the readers disagree about.
struct TarFinding {
    std::uint64_t entry = 0;   // 1-based, in the order libarchive returns entries
    std::uint64_t offset = 0;  // of the entry's first header block (its extension headers included)
    std::string name;          // as libarchive reads it (what imgtool would write); may be empty
    std::string reason;        // what the headers say, ending in what the readers disagree on
    // "entry 3 (pax2): both a PAX path and a GNU long name (gnu2); tar readers disagree on its name"
    std::string message() const;
};

// An entry that passed, as libarchive will return it (for tests and debugging).
struct TarCheckedEntry {
    std::uint64_t index = 0;   // 1-based
    std::uint64_t offset = 0;  // archive_read_header_position() of the entry
    std::string_view name;     // archive_entry_pathname()
    std::string_view link;     // the link target, for typeflags '1' and '2'
    char typeflag = 0;
    // Where the entry's data lies in the stream, and whether those bytes are the file's content as
    // libarchive hands it out (a regular file, not sparse, not a directory by its name): what a tar
    // record may leave out (layer/tar_record.hpp).
    std::uint64_t data_offset = 0;
    std::uint64_t data_size = 0;
    bool plain_data = false;
};

class TarCheck {
public:
    enum class State {
        Checking,  // more headers expected
        End,       // end-of-archive block seen: libarchive reads nothing after it
        Stopped,   // input libarchive refuses: nothing more to check
        Refused,   // finding() is set
    };

    TarCheck();
    ~TarCheck();
    TarCheck(const TarCheck&) = delete;
    TarCheck& operator=(const TarCheck&) = delete;

    void feed(std::span<const char> bytes);

    State state() const;
    // Fed a whole stream, whether it ended between entries or in the block padding after an entry's
    // data, with or without end-of-archive blocks: go-archive reads such a tar whole (umoci 0.4.7's
    // insert writes them), libarchive needs the padding and end blocks supplied (the unpacker does).
    // False when the stream ended inside a header or an entry's data: the layer is truncated.
    bool ended_cleanly() const;
    const std::optional<TarFinding>& finding() const;
    std::uint64_t entries() const;  // entries that passed
    // Called for each entry that passed, before its data is skipped.
    void set_observer(std::function<void(const TarCheckedEntry&)> observer);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imgtool::layer
