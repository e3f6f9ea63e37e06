// The import pipeline: plan (from a BlobSource) -> lock the layers -> verify, decompress and unpack
// every missing layer in parallel, one pass per layer (layer module) -> check the stacks -> commit
// layers, then blobs, records and names (store module). Nothing is committed unless every layer of every
// image verifies; a failure leaves the store as it was.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imgtool/digest/digest.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/import/blob_source.hpp"
#include "imgtool/store/store.hpp"
#include "imgtool/sys/space.hpp"

namespace imgtool::import {

struct PullOptions {
    std::optional<image::Platform> platform;
    std::vector<std::string> extra_tags;
    bool progress = false;  // live per-layer progress on stderr
    unsigned jobs = 0;      // parallel layers; 0 = number of cores
    bool rootless = false;       // unpack for a user namespace (layer::UnpackOptions::rootless)
    bool squash_owners = false;  // only our own id is mapped
    std::optional<sys::MinFreeSetting> min_free;  // free-space reserve on the store's filesystem (default: sys's)
};

// What a rootless pull could not keep, over all layers unpacked.
struct PullLosses {
    std::uint64_t skipped_devices = 0;
    std::uint64_t skipped_xattrs = 0;
    std::uint64_t squashed_owners = 0;
};

struct PullResult {
    digest::Digest id;
    std::vector<std::string> tags;
    unsigned layers_unpacked = 0;
    unsigned layers_reused = 0;
    std::vector<std::pair<std::string, digest::Digest>> moved_tags;  // tags taken from another image
};

std::vector<PullResult> pull(store::Store& store, BlobSource& source, const PullOptions& options,
                             PullLosses* losses = nullptr);

}  // namespace imgtool::import
