// libarchive as the oracle for layer::TarCheck's walk: the same bytes through archive_read_* (read as
// the unpacker reads them: regular files' data block by block, everything else skipped), and a
// comparison of the entries both saw. Used by tar_check_libarchive_test.cpp and fuzz_tar_check.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/layer/tar_check.hpp"

namespace tar_oracle {

struct Entry {
    std::uint64_t offset = 0;
    std::string name;
    std::string link;  // hard link, else symlink target ("" when neither)
    bool warned = false;
    bool sparse = false;  // libarchive holds a sparse map for it
};

struct Result {
    std::vector<Entry> entries;
    bool eof = false;  // ARCHIVE_EOF, as opposed to an error
    std::string error;
};

struct Feed {
    std::string_view data;
    std::size_t chunk;  // bytes handed out per callback (libarchive's reads must not depend on it)
    std::size_t at = 0;
};

inline la_ssize_t read_chunk(struct archive*, void* opaque, const void** out) {
    auto* f = static_cast<Feed*>(opaque);
    std::size_t n = std::min(f->chunk, f->data.size() - f->at);
    *out = f->data.data() + f->at;
    f->at += n;
    return static_cast<la_ssize_t>(n);
}

inline Result libarchive_walk(std::string_view tar, std::size_t chunk) {
    Result r;
    struct archive* a = archive_read_new();
    archive_read_support_format_tar(a);
    Feed feed{tar, chunk};
    if (archive_read_open(a, &feed, nullptr, read_chunk, nullptr) != ARCHIVE_OK) {
        r.error = archive_error_string(a) ? archive_error_string(a) : "open failed";
        archive_read_free(a);
        return r;
    }
    struct archive_entry* e;
    while (true) {
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF) {
            r.eof = true;
            break;
        }
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            r.error = archive_error_string(a) ? archive_error_string(a) : "error";
            break;
        }
        Entry out;
        out.offset = static_cast<std::uint64_t>(archive_read_header_position(a));
        out.name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
        const char* link = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : archive_entry_symlink(e);
        out.link = link ? link : "";
        out.warned = rc == ARCHIVE_WARN;
        out.sparse = archive_entry_sparse_count(e) > 0;
        r.entries.push_back(out);
        if (archive_entry_filetype(e) == AE_IFREG && archive_entry_hardlink(e) == nullptr) {
            const void* block;
            size_t size;
            la_int64_t offset;
            int drc;
            while ((drc = archive_read_data_block(a, &block, &size, &offset)) == ARCHIVE_OK || drc == ARCHIVE_WARN) {
            }
            if (drc != ARCHIVE_EOF) {
                r.error = archive_error_string(a) ? archive_error_string(a) : "data error";
                break;
            }
        }
    }
    archive_read_free(a);
    return r;
}

struct Checked {
    std::vector<imgtool::layer::TarCheckedEntry> entries;
    std::vector<std::string> names, links;  // owned copies of the views
    imgtool::layer::TarCheck::State state{};
    std::string finding;
};

inline Checked checker_walk(std::string_view tar, std::size_t chunk) {
    Checked c;
    imgtool::layer::TarCheck check;
    check.set_observer([&c](const imgtool::layer::TarCheckedEntry& e) {
        c.entries.push_back(e);
        c.names.emplace_back(e.name);
        c.links.emplace_back(e.link);
    });
    for (std::size_t at = 0; at < tar.size(); at += chunk) check.feed(tar.substr(at, chunk));
    c.state = check.state();
    if (check.finding()) c.finding = check.finding()->message();
    return c;
}

// "" when the checker's walk is libarchive's; else what differs. Invariants:
// - every entry the checker passed is libarchive's entry of the same number, at the same offset, with
//   the same name (and link target, where the checker knows one);
// - libarchive never returns more entries than the checker passed, unless the checker refused;
// - when the checker saw the end of the archive, so did libarchive; when it stopped (input libarchive
//   refuses), libarchive failed.
inline std::string compare(const Checked& c, const Result& r) {
    using State = imgtool::layer::TarCheck::State;
    for (std::size_t i = 0; i < c.entries.size(); ++i) {
        if (i >= r.entries.size()) {
            return "checker passed entry " + std::to_string(i + 1) + " (" + c.names[i] +
                   ") that libarchive did not return (" + (r.eof ? "EOF" : r.error) + ")";
        }
        const Entry& e = r.entries[i];
        if (e.offset != c.entries[i].offset || e.name != c.names[i]) {
            return "entry " + std::to_string(i + 1) + ": checker " + c.names[i] + " at " +
                   std::to_string(c.entries[i].offset) + ", libarchive " + e.name + " at " + std::to_string(e.offset);
        }
        if (!c.links[i].empty() && c.links[i] != e.link) {
            return "entry " + std::to_string(i + 1) + ": checker link " + c.links[i] + ", libarchive " + e.link;
        }
    }
    if (c.state == State::Refused) return {};
    if (r.entries.size() > c.entries.size()) {
        return "libarchive returned entry " + std::to_string(c.entries.size() + 1) + " (" +
               r.entries[c.entries.size()].name + ") the checker did not pass";
    }
    if (c.state == State::End && !r.eof) return "checker saw the end, libarchive failed: " + r.error;
    if (c.state == State::Stopped && r.eof) return "checker stopped, libarchive reached the end";
    return {};
}

}  // namespace tar_oracle
