// The store's space, as data: what `imgtool system df` reports and what `imgtool prune` removes.
// Both are pure functions of what the store holds (records, layer sizes, what is in use), so they are
// unit-tested without a disk; the Store's space methods (store.hpp) read those facts and remove what a
// PrunePlan names.
//
// Rules:
// - an image is in use while a mount (`imgtool mount`) or a container (running, starting, or stopped
//   and kept: `ps -a`) uses it; prune never removes one in use;
// - dangling: an image without a tag (prune's default); `all`: every image not in use;
// - a layer is referenced while a remaining image lists it; every other layer in layers/ goes (those of
//   the removed images and those no record ever named: an import cut short between its steps);
// - an init layer (inits/<id>) goes when no remaining image has that ID; a blob (manifest or config)
//   when no remaining image names it;
// - sizes: a layer's bytes count once in a store total, however many images share it; an image's
//   shared size is the bytes of its layers that another image also lists, its unique size the rest.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "imgtool/store/store.hpp"

namespace imgtool::store {

struct PruneInput {
    std::vector<ImageRecord> images;
    std::map<std::string, digest::Digest> tags;
    std::set<digest::Digest> in_use;  // images mounted or used by a container
    std::vector<digest::Digest> layers;  // present in layers/
    std::vector<digest::Digest> inits;   // present in inits/
    std::vector<digest::Digest> blobs;   // present in blobs/sha256/
    bool all = false;
};

struct PrunePlan {
    std::vector<ImageRecord> images;  // to remove, with the tags each loses
    std::map<digest::Digest, std::vector<std::string>> untagged;
    std::vector<digest::Digest> layers;  // unreferenced once those images are gone
    std::vector<digest::Digest> inits;
    std::vector<digest::Digest> blobs;
};

PrunePlan plan_prune(const PruneInput& input);

struct UsageInput {
    std::vector<ImageRecord> images;
    std::map<std::string, digest::Digest> tags;
    std::map<digest::Digest, std::uint64_t> layer_sizes;  // every layer present in layers/
    std::set<digest::Digest> in_use;
    std::map<digest::Digest, unsigned> containers;  // per image: its containers (ps -a)
};

struct ImageUsage {
    digest::Digest id;
    std::vector<std::string> tags;  // sorted
    std::string created;
    std::uint64_t size = 0;    // its layers (each once)
    std::uint64_t shared = 0;  // of those, the bytes of layers another image lists too
    std::uint64_t unique = 0;  // size - shared
    unsigned containers = 0;
    bool active = false;  // in use (mount or container)
};

struct Usage {
    std::vector<ImageUsage> images;  // as given
    std::size_t active_images = 0;
    std::uint64_t images_size = 0;   // bytes of every layer an image lists, each once
    std::uint64_t reclaimable = 0;   // of those, the bytes no image in use lists (prune -a frees them)
    std::size_t layers = 0;          // in layers/
    std::size_t shared_layers = 0;   // listed by two images or more
    std::uint64_t shared_bytes = 0;
    std::size_t unique_layers = 0;   // listed by exactly one image
    std::uint64_t unique_bytes = 0;
    std::size_t unreferenced_layers = 0;  // listed by none (prune removes them)
    std::uint64_t unreferenced_bytes = 0;
    std::size_t active_layers = 0;   // listed by an image in use
};

Usage account_usage(const UsageInput& input);

// The images recorded mounts (any record, also one being set up) and containers (ps -a: running,
// starting, stopped and kept) use; with per-image container counts.
std::set<digest::Digest> images_in_use(const Store& store, std::map<digest::Digest, unsigned>* containers = nullptr);

}  // namespace imgtool::store
