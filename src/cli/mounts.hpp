// Bookkeeping shared by mount, umount, mounts and rm: which recorded mounts are live, and removal of
// what a crashed `imgtool mount` left behind.
#pragma once

#include <optional>
#include <string>

#include "imgtool/overlay/plan.hpp"
#include "imgtool/store/store.hpp"

namespace imgtool::cli {

// True if `target` is an overlay mount made by imgtool in this mount namespace.
bool is_imgtool_overlay(const std::string& target);
// Removes records (and their store-owned uppers) left by crashed `mount`s in this mount namespace, and
// overlay records of mount namespaces nobody is in any more (an ended `imgtool unshare` session).
void clean_stale_mounts(store::Store& store);
std::optional<store::MountRecord> find_mount(const store::Store& store, const std::string& canonical_target);
// Undoes one recorded mount: unmount (overlay) or empty the target (copy), then drop the record.
void undo_mount(store::Store& store, const store::MountRecord& record, bool namespace_gone = false);
// The image's layer directories for overlay::plan_overlay (bottom first); a missing layer is an error.
std::vector<overlay::LayerRef> layer_refs(const store::Store& store, const store::ImageRecord& image);
// realpath(3), with a clear error.
std::string canonical_path(const std::string& path);

}  // namespace imgtool::cli
