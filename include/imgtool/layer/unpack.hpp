// Streaming layer extraction into one layer directory, in overlayfs-native form.
//
// The tar stream is parsed by libarchive (archive_read_*); every entry is then created by us with
// fd-relative syscalls under `root_fd`: parents are resolved with openat2(RESOLVE_IN_ROOT), so no name,
// symlink or hardlink can reach outside the layer directory, and metadata is applied to the entry's own
// fd or with AT_SYMLINK_NOFOLLOW, never through a link. Directory modes and times are applied in one
// final pass, re-resolved without following symlinks (a directory replaced by a symlink is skipped).
//
// Whiteouts (docs/layers.md has the rules and the peers' behaviour behind them):
// - ".wh.NAME" hides NAME of the lower layers only and becomes a 0/0 character device NAME. An entry
//   NAME of the same layer, before or after it, is kept; if that entry is a directory it is made
//   opaque (the lower directory's contents stay hidden), as umoci does.
// - ".wh..wh..opq" marks its directory opaque (trusted.overlay.opaque=y, user.overlay.opaque=y when
//   rootless) wherever it appears; whiteouts inside an opaque directory of the same layer are redundant
//   and dropped, and so are whiteouts whose parent is not a directory in this layer.
// - Only ".wh." names make whiteouts: raw 0/0 character devices are refused, overlay xattrs in the tar
//   are dropped, and a hardlink to a whiteout is refused.
// Parents the tar does not list are created (0755, root) and reported as implicit_dirs: they merge with
// a lower directory, and the import refuses an image where a lower layer has a non-directory there.
//
// Nothing here is shared between calls, so layers unpack in parallel threads. Files are created with
// their final permissions: the process umask must be 0 (imgtool's main sets it).
#pragma once

#include <atomic>
#include <cstdint>
#include <climits>
#include <string>
#include <vector>

#include "imgtool/sys/reader.hpp"
#include "imgtool/sys/space.hpp"

namespace imgtool::layer {

class TarRecordWriter;

struct UnpackStats {
    std::uint64_t entries = 0;
    std::uint64_t file_bytes = 0;  // logical size of regular files written
    std::uint64_t whiteouts = 0;
    std::uint64_t dropped_xattrs = 0;
    std::uint64_t skipped_devices = 0;   // rootless: device nodes cannot be made
    std::uint64_t skipped_xattrs = 0;    // rootless: trusted.* and the like cannot be set
    std::uint64_t squashed_owners = 0;   // entries whose owner was not kept (squash_owners)
    std::uint64_t dropped_whiteouts = 0; // redundant: inside an opaque directory, or under a non-directory
    bool root_opaque = false;  // ".wh..wh..opq" at the layer root: this layer hides every layer below it
    // The stream ended before its end-of-archive blocks and the zeros were supplied (see unpack.cpp):
    // the caller must know it ended between entries (layer::TarCheck::ended_cleanly).
    bool padded_end = false;
    // Directories the tar never lists, created as parents (real paths relative to the layer root, sorted).
    std::vector<std::string> implicit_dirs;
    // Non-opaque directories holding whiteout devices (sorted). overlayfs shows a whiteout as a broken
    // entry in a directory no lower layer has; the store gives such layers a skeleton lower layer of
    // these directories so they always merge (overlay::LayerRef::skeleton).
    std::vector<std::string> whiteout_dirs;
};

// The one-line note for `n` (> 0) skipped device nodes, counted right ("1 device node skipped") and
// with the reason: an unprivileged user's namespace cannot mknod a device (the kernel keeps that to
// the initial namespace's root); fifos are made, and a container's /dev is the runtime's anyway.
std::string skipped_devices_note(std::uint64_t n);

// More implicit directories than this in one layer is refused (each is checked against the lower
// layers at import).
inline constexpr std::size_t kMaxImplicitDirs = 65536;
inline constexpr std::size_t kMaxImplicitBytes = 16 << 20;  // of their names; the same for directories holding whiteouts

struct UnpackOptions {
    // Rootless (inside a user namespace): opaque directories are marked with user.overlay.opaque (mount
    // with "userxattr"), device nodes are skipped, xattrs the namespace may not set are skipped; all counted.
    bool rootless = false;
    // Only our own id is mapped: entries stay ours and their owners are counted as squashed.
    bool squash_owners = false;
    const std::atomic<bool>* cancel = nullptr;                   // checked between reads
    sys::SpaceReserve* reserve = nullptr;                        // charged per entry and per data block
    // Told, after each entry, its path and whether its data went to a regular file (the caller feeds
    // it the raw stream: layer/tar_record.hpp).
    TarRecordWriter* record = nullptr;
};

// Reads the tar stream to its end-of-archive marker (the caller drains and hashes the rest).
UnpackStats unpack_layer(sys::ViewReader& tar_stream, int root_fd, const UnpackOptions& options);
// The same over a copying Reader, through a 1 MiB buffer.
UnpackStats unpack_layer(sys::Reader& tar_stream, int root_fd, const UnpackOptions& options);

// A layer blob in one thread: compression detected from its head, decompressed, unpacked, the rest of
// the stream read to its end (the caller hashes `blob` as it wishes). More than `max_uncompressed`
// bytes is an error. The pull's pipeline does the same on several threads; this serves single-threaded
// callers (the fuzz target, tests).
UnpackStats unpack_blob(sys::Reader& blob, int root_fd, const UnpackOptions& options,
                        std::uint64_t max_uncompressed = UINT64_MAX);

}  // namespace imgtool::layer
