// `imgtool commit`: a container's writable layer (or any overlay upper directory) becomes a new image
// on top of the image it ran. The upper is written as a layer tar (upper_tar.hpp) into a staging
// directory of the store's tmp/, hashed on the way (its sha256 is the diff_id); the config is the base
// image's with the layer appended (change.hpp); then both go through the import pipeline
// (import::pull over a BlobSource of its own), so the new layer is verified and unpacked like any
// pulled one and the store commits it atomically. A failure leaves the store as it was; the staging
// directory goes with this call.
//
// A running container is frozen (cgroup v2 cgroup.freeze of its own cgroup) while its upper is read,
// as docker pauses one; where it has no cgroup of its own it is read live and said so (Paused::No).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "imgtool/commit/upper_tar.hpp"
#include "imgtool/digest/digest.hpp"
#include "imgtool/store/store.hpp"

namespace imgtool::commit {

struct CommitOptions {
    std::string container;             // a container name or ID; or:
    std::string upper;                 // an upper directory (mount --upper / run --upper) ...
    std::string base;                  // ... and the image below it
    std::vector<std::string> changes;  // --change
    std::string message;               // -m
    std::string author;                // --author
    std::string tag;                   // NAME[:TAG], or empty
    bool rootless = false;             // the store is rootless: user.overlay.* is overlayfs's
    bool squash_owners = false;        // rootless with only the caller's id mapped
    bool pause = true;                 // freeze a running container while reading it
};

enum class Paused { NotRunning, Yes, No };

struct CommitResult {
    digest::Digest id = digest::Digest::sha256_hex(std::string(64, '0'));
    digest::Digest diff_id = digest::Digest::sha256_hex(std::string(64, '0'));
    std::uint64_t layer_bytes = 0;
    UpperStats stats;
    Paused paused = Paused::NotRunning;
    bool empty_upper = false;  // a container's writable layer held nothing at all (run --upper DIR?)
    std::vector<std::pair<std::string, digest::Digest>> moved_tags;
};

CommitResult commit(store::Store& store, const CommitOptions& options);

}  // namespace imgtool::commit
