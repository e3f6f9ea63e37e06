// Views of an image's merged tree for people (`imgtool mount`) and their bookkeeping: the image's
// layers opened for a mount, making a view (overlayfs or the copy driver, nosuid,nodev), which recorded
// views are live, and removal of what a crashed `mount` left behind. Records are read from the store
// and treated as untrusted: nothing is unmounted or removed unless the mount table (or the directory's
// identity) confirms it is what the record says.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/overlay/plan.hpp"
#include "imgtool/store/store.hpp"
#include "imgtool/sys/space.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::view {

// An image's layer directories opened through Store::open_layer (no symlink below the store root can
// redirect them); refs name them "/proc/self/fd/N", so the kernel mounts exactly what was checked.
// Keep it alive until the mount (or the copy) is made.
struct LayerStack {
    std::vector<sys::UniqueFd> fds;
    std::vector<std::string> paths;       // the store paths the fds were opened at (same order)
    std::vector<overlay::LayerRef> refs;  // bottom first
    sys::UniqueFd empty_fd;
    std::string empty_dir;

    // The same directories opened again in the calling process's mount namespace (a container's new
    // one: overlayfs refuses layers whose mounts belong to another namespace), each checked to be the
    // very directory opened before (device and inode), so nothing swapped in between is used.
    LayerStack reopened() const;
    // Stacks directory `fd` (opened at `path`) on top of the layers.
    void add_top(sys::UniqueFd fd, const std::string& path);
};
LayerStack open_layers(const store::Store& store, const store::ImageRecord& image);
// The same layers by their store paths, for people (inspect's GraphDriver data).
std::vector<overlay::LayerRef> layer_paths(const store::Store& store, const store::ImageRecord& image);

// True if `target` is an overlay mount made by imgtool in this mount namespace.
bool is_imgtool_overlay(const std::string& target);
// Removes records (and their store-owned uppers and trees) left by crashed `mount`s in this mount
// namespace, and records of mount namespaces nobody is in any more (an ended `imgtool unshare` session).
void clean_stale_mounts(store::Store& store);
std::optional<store::MountRecord> find_mount(const store::Store& store, const std::string& canonical_target);
// The record whose mount (by its recorded ID, and still looking like ours) is mounted at
// `canonical_target` in this namespace though the record names another path (a directory above the
// target was renamed); returned with `target` set to where it is now.
std::optional<store::MountRecord> find_moved_mount(const store::Store& store, const std::string& canonical_target);
// Where the record's mount is now in this namespace (found by its ID), else the recorded target.
std::string current_target(const store::MountRecord& record);
// Undoes one recorded mount: unmount (overlay, or the bind of a copy tree) or empty the target (a
// rootless copy made outside `imgtool unshare`), then drop the record and what the store holds for it.
void undo_mount(store::Store& store, const store::MountRecord& record, bool namespace_gone = false);
// Why `umount ARG` has nothing of this store's to undo: ARG names an image, not a directory (umount
// takes the directory; the message lists where this store has that image mounted), or ARG is a view
// another store made (named, from the overlay's source or the copy tree's path), or just not an
// imgtool mount. `canonical` is ARG resolved, if it resolves.
Error not_mounted_error(const store::Store& store, const std::string& arg, const std::optional<std::string>& canonical);
// realpath(3), with a clear error.
std::string canonical_path(const std::string& path);

// What `imgtool mount` was asked for.
struct MountRequest {
    std::string target;  // as given: reached without following another user's symlink
    std::string driver;  // "", "overlay" or "copy" (overlay::plan_driver)
    std::string upper;   // --upper DIR: changes kept there (overlayfs only)
    bool writable = false;  // changes discarded by umount
    bool suid = false;      // DANGEROUS: setuid bits work in the view
    bool dev = false;       // DANGEROUS: device nodes work in the view
    bool rootless = false;  // an ordinary user's store: user.* markers; a copy is made in place
    std::optional<sys::MinFreeSetting> min_free;  // the copy driver's reserve
};

// Mounts `image` on request.target and records it; returns the active record. A failure undoes
// everything (record, store-owned upper, copy tree) and throws.
store::MountRecord mount_image(store::Store& store, const store::ImageRecord& image, const MountRequest& request);

}  // namespace imgtool::view
