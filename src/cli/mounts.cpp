#include "mounts.hpp"

#include <fcntl.h>
#include <sys/mount.h>

#include <climits>
#include <cstdlib>

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/mountinfo.hpp"

namespace imgtool::cli {

std::string canonical_path(const std::string& path) {
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf) == nullptr) throw_errno("resolve", path);
    return buf;
}

std::vector<overlay::LayerRef> layer_refs(const store::Store& store, const store::ImageRecord& image) {
    std::vector<overlay::LayerRef> layers;
    for (const auto& d : image.layers) {
        auto info = store.layer_info(d);
        if (!info) throw Error(Errc::NotFound, "layer " + d.str() + " of image " + image.id.str() + " is missing");
        layers.push_back({store.layer_dir(d), info->root_opaque});
    }
    return layers;
}

bool is_imgtool_overlay(const std::string& target) {
    for (const auto& m : sys::read_mountinfo()) {
        if (m.mount_point == target && m.fstype == "overlay" && m.source == "imgtool") return true;
    }
    return false;
}

std::optional<store::MountRecord> find_mount(const store::Store& store, const std::string& canonical_target) {
    for (auto& r : store.mounts()) {
        if (r.target == canonical_target) return r;
    }
    return std::nullopt;
}

void undo_mount(store::Store& store, const store::MountRecord& record, bool namespace_gone) {
    if (record.driver == "overlay" && namespace_gone) {
        // Its mount died with its namespace; one at the same path here is somebody else's.
    } else if (record.driver == "overlay") {
        if (is_imgtool_overlay(record.target)) {
            try {
                sys::unmount(record.target);
            } catch (const Error& e) {
                if (e.code() == std::errc::device_or_resource_busy) {
                    throw Error(Errc::Busy, record.target + ": target is busy (a process is using the mount)");
                }
                throw;
            }
        }
    } else if (sys::lstat_at(AT_FDCWD, record.target)) {
        // The copy driver only ever writes into a target it found empty: all of it is ours.
        sys::UniqueFd dir = sys::open_at(AT_FDCWD, record.target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, record.target);
        sys::remove_contents(dir.get(), record.target);
    }
    if (record.mode == "upper" && !record.work.empty()) sys::remove_tree_at(AT_FDCWD, record.work);
    store.remove_mount(record);
}

void clean_stale_mounts(store::Store& store) {
    std::string ns = sys::mount_namespace_id();
    for (const auto& r : store.mounts()) {
        // Another namespace's overlay is not ours to judge while that namespace lives (an `imgtool
        // unshare` session); once nobody is in it, its mounts are gone and the record is stale.
        // A copy made in another namespace is never judged here: its target path may mean another place.
        bool elsewhere = r.mount_namespace != ns;
        if (elsewhere && (r.driver != "overlay" || sys::mount_namespace_in_use(r.mount_namespace))) continue;
        auto lock = store.lock_mount(r.name, false);
        if (!lock.locked()) continue;  // being set up right now
        // Judged again under the lock, from a fresh read: it may have become active meanwhile.
        std::optional<store::MountRecord> fresh;
        for (auto& m : store.mounts()) {
            if (m.name == r.name) fresh = m;
        }
        if (!fresh) continue;
        bool live = elsewhere ? false : fresh->driver == "overlay" ? is_imgtool_overlay(fresh->target) : fresh->active;
        if (live) continue;
        log::debug("removing stale mount record for " + fresh->target);
        undo_mount(store, *fresh, elsewhere);
    }
}

}  // namespace imgtool::cli
