// The store's space: the pure df accounting and prune planning (space.hpp), and the Store's methods
// that read the facts they need and remove what a plan names (store.hpp, "space").
#include "imgtool/store/space.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/tree_size.hpp"

namespace imgtool::store {

using digest::Digest;

PrunePlan plan_prune(const PruneInput& input) {
    PrunePlan plan;
    std::map<Digest, std::vector<std::string>> names;
    for (const auto& [name, id] : input.tags) names[id].push_back(name);
    std::set<Digest> kept_images, kept_layers, kept_blobs;
    for (const auto& image : input.images) {
        bool dangling = names.find(image.id) == names.end();
        bool goes = !input.in_use.count(image.id) && (input.all || dangling);
        if (goes) {
            plan.images.push_back(image);
            if (!dangling) plan.untagged[image.id] = names[image.id];
            continue;
        }
        kept_images.insert(image.id);
        kept_layers.insert(image.layers.begin(), image.layers.end());
        kept_blobs.insert(image.id);
        if (image.manifest_digest) kept_blobs.insert(*image.manifest_digest);
    }
    // An image in use whose record is gone (a mount of an image removed by an older imgtool) still
    // keeps its init layer: nothing here can tell which layers it needs, so none of them is planned
    // away either unless no image lists them (they are then unreachable anyway).
    for (const auto& id : input.in_use) kept_images.insert(id);
    for (const auto& layer : input.layers) {
        if (!kept_layers.count(layer)) plan.layers.push_back(layer);
    }
    for (const auto& init : input.inits) {
        if (!kept_images.count(init)) plan.inits.push_back(init);
    }
    for (const auto& blob : input.blobs) {
        if (!kept_blobs.count(blob) && !kept_images.count(blob)) plan.blobs.push_back(blob);
    }
    return plan;
}

Usage account_usage(const UsageInput& input) {
    Usage usage;
    std::map<Digest, unsigned> listed_by;  // how many images list each layer
    std::set<Digest> active_layers;
    for (const auto& image : input.images) {
        std::set<Digest> own(image.layers.begin(), image.layers.end());
        for (const auto& layer : own) ++listed_by[layer];
        if (input.in_use.count(image.id)) active_layers.insert(own.begin(), own.end());
    }
    auto size_of = [&](const Digest& layer) {
        auto it = input.layer_sizes.find(layer);
        return it == input.layer_sizes.end() ? std::uint64_t{0} : it->second;
    };
    std::map<Digest, std::vector<std::string>> names;
    for (const auto& [name, id] : input.tags) names[id].push_back(name);
    for (const auto& image : input.images) {
        ImageUsage row{.id = image.id,
                       .tags = names[image.id],
                       .created = image.created,
                       .size = 0,
                       .shared = 0,
                       .unique = 0,
                       .containers = 0,
                       .active = input.in_use.count(image.id) > 0};
        std::sort(row.tags.begin(), row.tags.end());
        if (auto it = input.containers.find(image.id); it != input.containers.end()) row.containers = it->second;
        for (const auto& layer : std::set<Digest>(image.layers.begin(), image.layers.end())) {
            row.size += size_of(layer);
            if (listed_by[layer] > 1) row.shared += size_of(layer);
        }
        row.unique = row.size - row.shared;
        if (row.active) ++usage.active_images;
        usage.images.push_back(std::move(row));
    }
    for (const auto& [layer, count] : listed_by) {
        usage.images_size += size_of(layer);
        if (!active_layers.count(layer)) usage.reclaimable += size_of(layer);
    }
    for (const auto& [layer, bytes] : input.layer_sizes) {
        ++usage.layers;
        auto it = listed_by.find(layer);
        unsigned count = it == listed_by.end() ? 0 : it->second;
        if (count == 0) {
            ++usage.unreferenced_layers;
            usage.unreferenced_bytes += bytes;
        } else if (count == 1) {
            ++usage.unique_layers;
            usage.unique_bytes += bytes;
        } else {
            ++usage.shared_layers;
            usage.shared_bytes += bytes;
        }
        if (active_layers.count(layer)) ++usage.active_layers;
    }
    return usage;
}

// ---- the Store's side ----

std::set<Digest> images_in_use(const Store& store, std::map<Digest, unsigned>* containers) {
    std::set<Digest> used;
    for (const auto& m : store.mounts()) used.insert(m.image);
    for (const auto& c : store.containers(true)) {
        used.insert(c.image);
        if (containers) ++(*containers)[c.image];
    }
    return used;
}

namespace {

// The entries of dirfd named by 64 lower-case hex digits (optionally followed by `suffix`), as digests.
std::vector<Digest> hex_names(int dirfd, const std::string& shown, const std::string& suffix = "") {
    std::vector<Digest> out;
    for (const std::string& name : sys::list_directory(dirfd, shown)) {
        if (name.size() != 64 + suffix.size() || name.compare(64, std::string::npos, suffix) != 0) continue;
        std::string hex = name.substr(0, 64);
        if (is_lower_hex(hex)) out.push_back(Digest::sha256_hex(hex));
    }
    return out;
}

}  // namespace

std::vector<ImageRecord> Store::images_strict() const {
    std::vector<ImageRecord> out;
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "images", O_RDONLY | O_DIRECTORY);
    for (const Digest& id : hex_names(dir.get(), root_ + "/images", ".json")) {
        auto record = with_context("image record " + id.short_hex(), [&] { return image(id); });
        if (record) out.push_back(std::move(*record));
    }
    return out;
}

std::vector<Digest> Store::layer_ids() const {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "layers", O_RDONLY | O_DIRECTORY);
    return hex_names(dir.get(), root_ + "/layers");
}

std::vector<Digest> Store::init_ids() const {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "inits", O_RDONLY | O_DIRECTORY);
    return hex_names(dir.get(), root_ + "/inits");
}

std::vector<Digest> Store::blob_ids() const {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "blobs/sha256", O_RDONLY | O_DIRECTORY);
    return hex_names(dir.get(), root_ + "/blobs/sha256");
}

std::uint64_t Store::layer_size(const Digest& diff_id) const {
    std::optional<LayerInfo> info;
    try {
        info = layer_info(diff_id);
    } catch (const Error&) {
        // An unreadable layer.json: measured instead.
    }
    if (info && info->size > 0) return info->size;
    sys::UniqueFd layers = sys::open_beneath(root_fd_.get(), "layers", O_RDONLY | O_DIRECTORY);
    return sys::tree_size_at(layers.get(), diff_id.hex()).bytes;
}

std::uint64_t Store::container_size(const Container& container) const {
    auto [area, err] = sys::try_open_beneath(tmp_fd_.get(), container.area, O_RDONLY | O_DIRECTORY);
    if (err) return 0;
    return sys::tree_size_at(area.get(), "diff").bytes;
}

namespace {

// Moves dir/name into tmp/ (so a half-removed object is never visible under its name), measures it and
// removes it, never following a symlink.
// `known`: its size as recorded (a layer's), else it is measured.
Store::Freed remove_via_tmp(int dirfd, const std::string& name, int tmp_fd, const std::string& shown,
                            std::optional<std::uint64_t> known = std::nullopt) {
    std::string trash = sys::unique_name("trash-");
    if (::renameat(dirfd, name.c_str(), tmp_fd, trash.c_str()) != 0) {
        if (errno == ENOENT) return {shown, 0};
        throw_errno("rename", shown);
    }
    Store::Freed freed{shown, known ? *known : sys::tree_size_at(tmp_fd, trash).bytes};
    sys::remove_tree_at(tmp_fd, trash);
    return freed;
}

}  // namespace

Store::Freed Store::remove_layer(const Digest& diff_id) {
    if (access_ != Access::Exclusive && access_ != Access::Prune) throw Error(Errc::Busy, "removing a layer needs exclusive access to the store");
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "layers", O_RDONLY | O_DIRECTORY);
    if (!has_layer(diff_id)) return {"layers/" + diff_id.hex(), 0};
    return remove_via_tmp(dir.get(), diff_id.hex(), tmp_fd_.get(), "layers/" + diff_id.hex(), layer_size(diff_id));
}

Store::Freed Store::remove_init(const Digest& image_id) {
    if (access_ != Access::Exclusive && access_ != Access::Prune) throw Error(Errc::Busy, "removing an init layer needs exclusive access to the store");
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "inits", O_RDONLY | O_DIRECTORY);
    return remove_via_tmp(dir.get(), image_id.hex(), tmp_fd_.get(), "inits/" + image_id.hex());
}

Store::Freed Store::remove_blob(const Digest& blob) {
    if (access_ != Access::Exclusive && access_ != Access::Prune) throw Error(Errc::Busy, "removing a blob needs exclusive access to the store");
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "blobs/sha256", O_RDONLY | O_DIRECTORY);
    return remove_via_tmp(dir.get(), blob.hex(), tmp_fd_.get(), "blobs/sha256/" + blob.hex());
}

std::vector<Store::Freed> Store::prune_leftovers() {
    if (access_ != Access::Prune) throw Error(Errc::Busy, "pruning tmp/ needs Access::Prune");
    std::vector<Freed> freed;
    clean_leftovers(&freed);
    // Interrupted registry downloads no pull holds (a pull holds its file's flock while it runs).
    sys::UniqueFd partial = sys::open_beneath(root_fd_.get(), "partial", O_RDONLY | O_DIRECTORY);
    std::map<std::string, std::uint64_t> before;
    for (const std::string& name : sys::list_directory(partial.get(), root_ + "/partial")) {
        before[name] = sys::tree_size_at(partial.get(), name).bytes;
    }
    prune_partials(0);
    for (const auto& [name, bytes] : before) {
        auto [st, err] = sys::try_lstat_at(partial.get(), name);
        if (err == ENOENT) freed.push_back({"partial/" + name, bytes});
    }
    return freed;
}

}  // namespace imgtool::store
