// The pull-local pipeline: plan (image module) -> verify, decompress and unpack every missing layer in
// parallel, one pass per layer (layer module) -> commit layers, blobs, records, tags (store module).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imgtool/digest/digest.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/store/store.hpp"
#include "imgtool/sys/space.hpp"

namespace imgtool::cli {

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

std::vector<PullResult> pull_local(store::Store& store, const std::string& source_path, const PullOptions& options,
                                   PullLosses* losses = nullptr);

}  // namespace imgtool::cli
