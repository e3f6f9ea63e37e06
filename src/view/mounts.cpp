#include "imgtool/view/mounts.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mount.hpp"
#include "imgtool/sys/mountinfo.hpp"
#include "imgtool/overlay/copy.hpp"
#include "imgtool/overlay/driver.hpp"
#include "imgtool/overlay/mount.hpp"
#include "imgtool/sys/user_path.hpp"

namespace imgtool::view {
namespace {

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// The copy tree's bind is at `target` in this namespace: the directory there is the tree itself.
bool tree_mounted_at(const store::Store& store, const store::MountRecord& record) {
    sys::UniqueFd tree;
    try {
        tree = store.open_copy_tree(record.name);
    } catch (const Error&) {
        return false;
    }
    struct stat want = sys::fstat_fd(tree.get(), record.target);
    struct stat got {};
    if (::stat(record.target.c_str(), &got) != 0) return false;
    return got.st_dev == want.st_dev && got.st_ino == want.st_ino;
}

// Whether mountinfo line `m` looks like the mount `record` made: an imgtool overlay, or a bind whose
// root is this record's tree in the store (the root field ends with mounts/NAME/tree wherever the
// store's filesystem is mounted).
bool looks_like(const sys::MountInfo& m, const store::MountRecord& record) {
    if (record.driver == "overlay") return m.fstype == "overlay" && overlay::is_view_source(m.source);
    if (!record.tree_in_store) return false;
    std::string tail = "/mounts/" + record.name + "/tree";
    return m.root.size() >= tail.size() && m.root.compare(m.root.size() - tail.size(), tail.size(), tail) == 0;
}

// The mount `record` made, found in this namespace's table by the ID recorded when it was made (not by
// its path: a directory above the target may have been renamed since). An ID the kernel reused for a
// mount that also looks like ours can only make a stale record look live: its data is kept, never
// removed under a live view.
std::optional<sys::MountInfo> mount_by_id(const store::MountRecord& record) {
    if (record.mount_id == 0) return std::nullopt;
    for (auto& m : sys::read_mountinfo()) {
        if (static_cast<std::uint64_t>(m.id) == record.mount_id && looks_like(m, record)) return m;
    }
    return std::nullopt;
}

// The ID of the mount just made on the directory open at `target_fd` (0 if it cannot be told): the
// topmost mount of the record's kind at the directory's current path whose parent is the directory's own mount.
std::uint64_t mount_id_on(int target_fd, const store::MountRecord& record) {
    struct statx below {};
    if (::statx(target_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &below) != 0 || !(below.stx_mask & STATX_MNT_ID)) return 0;
    char buf[PATH_MAX];
    ssize_t n = ::readlink(fd_path(target_fd).c_str(), buf, sizeof buf);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return 0;
    std::string at(buf, static_cast<std::size_t>(n));
    std::uint64_t found = 0;
    for (const auto& m : sys::read_mountinfo()) {
        if (static_cast<std::uint64_t>(m.parent) == below.stx_mnt_id && m.mount_point == at && looks_like(m, record)) {
            found = static_cast<std::uint64_t>(m.id);  // the last listed is on top
        }
    }
    return found;
}

// The mount ID of the mount `path` is on, without following a final symlink; 0 if unknown.
std::uint64_t mount_id_of(const std::string& path) {
    struct statx stx {};
    if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID, &stx) != 0) return 0;
    return (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0;
}

void unmount_busy_clear(const std::string& target) {
    int err = sys::try_unmount(target);
    if (err == EBUSY) {
        throw Error(Errc::Busy, target + ": target is busy (a process is using it, or something is mounted below it)");
    }
    if (err) throw_errno(err, "umount", target);
}

// The work directory beside a user's --upper, removed only if it is still the one imgtool made: its
// parent belongs to the user, who could have put something else of that name there.
void remove_work_dir(const store::MountRecord& record) {
    int raw = ::open(record.work.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) return;
    sys::UniqueFd dir(raw);
    struct stat st = sys::fstat_fd(dir.get(), record.work);
    if (st.st_dev != record.work_dev || st.st_ino != record.work_ino) {
        log::notice(record.work + ": not the work directory imgtool made; left alone");
        return;
    }
    sys::remove_contents(dir.get(), record.work);
    auto slash = record.work.rfind('/');
    int parent = ::open(record.work.substr(0, slash == 0 ? 1 : slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0) return;
    sys::UniqueFd parent_fd(parent);
    ::unlinkat(parent_fd.get(), record.work.c_str() + slash + 1, AT_REMOVEDIR);
}

}  // namespace

std::string canonical_path(const std::string& path) {
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf) == nullptr) throw_errno("resolve", path);
    return buf;
}

// The image's layers bottom first, each only at its topmost position: a layer repeated higher in the
// stack re-provides everything its lower copy holds and hides (same entries, same whiteouts), so the
// lower copy changes nothing, and overlayfs refuses to stack one directory twice.
std::vector<digest::Digest> distinct_layers(const store::ImageRecord& image) {
    std::vector<digest::Digest> out;
    for (std::size_t i = 0; i < image.layers.size(); ++i) {
        bool again_above = std::find(image.layers.begin() + static_cast<std::ptrdiff_t>(i) + 1, image.layers.end(),
                                     image.layers[i]) != image.layers.end();
        if (!again_above) out.push_back(image.layers[i]);
    }
    return out;
}

LayerStack open_layers(const store::Store& store, const store::ImageRecord& image) {
    LayerStack stack;
    for (const auto& d : distinct_layers(image)) {
        auto info = store.layer_info(d);
        if (!info) throw Error(Errc::NotFound, "layer " + d.str() + " of image " + image.id.str() + " is missing");
        stack.fds.push_back(store.open_layer(d));
        stack.paths.push_back(store.layer_dir(d));
        overlay::LayerRef ref{fd_path(stack.fds.back().get()), info->root_opaque, {}};
        if (info->skeleton) {
            stack.fds.push_back(store.open_layer(d, true));
            stack.paths.push_back(store.skeleton_dir(d));
            ref.skeleton = fd_path(stack.fds.back().get());
        }
        stack.refs.push_back(std::move(ref));
    }
    stack.empty_fd = store.open_empty();
    stack.empty_dir = fd_path(stack.empty_fd.get());
    stack.paths.push_back(store.empty_dir());
    return stack;
}

void LayerStack::add_top(sys::UniqueFd fd, const std::string& path) {
    refs.push_back({fd_path(fd.get()), false, {}});
    fds.push_back(std::move(fd));
    paths.insert(paths.end() - 1, path);  // the empty directory's path stays last
}

LayerStack LayerStack::reopened() const {
    LayerStack again;
    std::vector<std::string> renamed;  // "/proc/self/fd/OLD" -> "/proc/self/fd/NEW"
    auto reopen = [&](int old_fd, const std::string& path) {
        sys::UniqueFd fd = sys::open_at(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, path);
        struct stat want = sys::fstat_fd(old_fd, path), got = sys::fstat_fd(fd.get(), path);
        if (want.st_dev != got.st_dev || want.st_ino != got.st_ino) {
            throw Error(Errc::UnsafePath, path + ": changed while the container was being set up");
        }
        return fd;
    };
    for (std::size_t i = 0; i < fds.size(); ++i) {
        again.fds.push_back(reopen(fds[i].get(), paths[i]));
        again.paths.push_back(paths[i]);
    }
    auto translate = [&](const std::string& ref) {
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (ref == fd_path(fds[i].get())) return fd_path(again.fds[i].get());
        }
        throw Error(Errc::InvalidArgument, "layer " + ref + " is not part of the stack");
    };
    for (const auto& ref : refs) {
        again.refs.push_back({translate(ref.dir), ref.root_opaque, ref.skeleton.empty() ? "" : translate(ref.skeleton)});
    }
    again.empty_fd = reopen(empty_fd.get(), paths.back());
    again.empty_dir = fd_path(again.empty_fd.get());
    return again;
}

std::vector<overlay::LayerRef> layer_paths(const store::Store& store, const store::ImageRecord& image) {
    std::vector<overlay::LayerRef> refs;
    for (const auto& d : distinct_layers(image)) {
        auto info = store.layer_info(d);
        refs.push_back({store.layer_dir(d), info && info->root_opaque,
                        info && info->skeleton ? store.skeleton_dir(d) : std::string()});
    }
    return refs;
}

bool is_imgtool_overlay(const std::string& target) {
    for (const auto& m : sys::read_mountinfo()) {
        if (m.mount_point == target && m.fstype == "overlay" && overlay::is_view_source(m.source)) return true;
    }
    return false;
}

std::optional<store::MountRecord> find_mount(const store::Store& store, const std::string& canonical_target) {
    for (auto& r : store.mounts()) {
        if (r.target == canonical_target) return r;
    }
    return std::nullopt;
}

std::optional<store::MountRecord> find_moved_mount(const store::Store& store, const std::string& canonical_target) {
    std::uint64_t id = mount_id_of(canonical_target);
    if (id == 0) return std::nullopt;
    std::string ns = sys::mount_namespace_id();
    for (auto& r : store.mounts()) {
        if (r.mount_id != id || r.mount_namespace != ns) continue;
        auto m = mount_by_id(r);
        if (m && m->mount_point == canonical_target) {
            r.target = canonical_target;
            return r;
        }
    }
    return std::nullopt;
}

std::string current_target(const store::MountRecord& record) {
    if (record.mount_namespace != sys::mount_namespace_id()) return record.target;
    auto m = mount_by_id(record);
    return m ? m->mount_point : record.target;
}

namespace {

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The store whose view is mounted at `target` in this namespace, if one is and it says which: an
// overlay's source, or a copy tree's path when that path leads to the very directory mounted.
// nullopt: not an imgtool view; "": an imgtool view that does not name its store.
std::optional<std::string> view_store_at(const std::string& target) {
    std::optional<std::string> found;
    for (const auto& m : sys::read_mountinfo()) {
        if (m.mount_point != target) continue;  // the last one listed is on top
        if (m.fstype == "overlay" && overlay::is_view_source(m.source)) {
            found = overlay::store_of_view_source(m.source).value_or("");
        } else if (auto store = overlay::store_of_copy_tree(m.root)) {
            struct stat at {}, there {};
            bool same = ::stat(target.c_str(), &at) == 0 && ::stat(m.root.c_str(), &there) == 0 &&
                        at.st_dev == there.st_dev && at.st_ino == there.st_ino;
            found = same ? *store : std::string();
        } else {
            found.reset();
        }
    }
    return found;
}

}  // namespace

Error not_mounted_error(const store::Store& store, const std::string& arg, const std::optional<std::string>& canonical) {
    if (!canonical || !is_directory(*canonical)) {
        std::optional<store::ImageRecord> image;
        try {
            image = store.resolve(arg);
        } catch (const Error&) {
        }
        if (image) {
            std::string where;
            for (const auto& r : store.mounts()) {
                if (r.active && r.image == image->id) where += (where.empty() ? "" : ", ") + escape_control(r.target);
            }
            std::string shown = escape_control(arg);
            return Error(Errc::InvalidArgument,
                         shown + " is an image; umount takes the directory an image is mounted on" +
                             (where.empty() ? " (" + shown + " is not mounted; `imgtool mounts` lists the mounts)"
                                            : ": " + where + " (see `imgtool mounts`)"),
                         arg);
        }
    }
    if (!canonical) throw_errno(ENOENT, "resolve", arg);
    const std::string shown = escape_control(*canonical);
    if (auto other = view_store_at(*canonical)) {
        std::string ours = canonical_path(store.root());
        std::string theirs = other->empty() ? "" : *other;
        try {
            if (!theirs.empty()) theirs = canonical_path(theirs);
        } catch (const Error&) {
        }
        if (theirs.empty()) {
            return Error(Errc::NotFound, shown + ": mounted by imgtool with another store (not " + escape_control(ours) +
                                             "): give that store's --root to umount it", *canonical);
        }
        if (theirs != ours) {
            return Error(Errc::NotFound, shown + ": mounted by another store, " + escape_control(theirs) +
                                             " (not " + escape_control(ours) + "): umount it with `imgtool --root " +
                                             escape_control(shell_word(theirs)) + " umount " + escape_control(shell_word(*canonical)) + "`",
                         *canonical);
        }
    }
    return Error(Errc::NotFound, shown + ": not mounted by imgtool", *canonical);
}

void undo_mount(store::Store& store, const store::MountRecord& record, bool namespace_gone) {
    std::optional<sys::MountInfo> by_id = namespace_gone ? std::nullopt : mount_by_id(record);
    if (namespace_gone) {
        // Its mounts died with its namespace; one at the same path here is somebody else's.
    } else if (by_id) {
        // Wherever it is mounted now. Unmounted by path, so the path must still lead to that very mount:
        // otherwise (renamed again, or covered by another mount) nothing is removed.
        if (mount_id_of(by_id->mount_point) != record.mount_id) {
            throw Error(Errc::Busy, escape_control(by_id->mount_point) +
                                        ": the view mounted there is covered by another mount or was moved meanwhile; "
                                        "nothing was removed");
        }
        unmount_busy_clear(by_id->mount_point);
    } else if (record.driver == "overlay") {
        if (is_imgtool_overlay(record.target)) unmount_busy_clear(record.target);
    } else if (record.tree_in_store) {
        // Only our own tree is unmounted; whatever else is at the target is left alone.
        if (tree_mounted_at(store, record)) unmount_busy_clear(record.target);
    } else if (record.target_ino != 0) {
        // A copy made in place (no mount possible): its contents are removed only if the directory is
        // still the one that was filled (a record naming another directory removes nothing).
        int raw = ::open(record.target.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (raw >= 0) {
            sys::UniqueFd dir(raw);
            struct stat st = sys::fstat_fd(dir.get(), record.target);
            if (st.st_dev == record.target_dev && st.st_ino == record.target_ino) {
                sys::remove_contents(dir.get(), record.target);
            } else {
                log::notice(record.target + ": not the directory imgtool filled; its contents were left alone");
            }
        }
    }
    if (record.mode == "upper" && !record.work.empty()) remove_work_dir(record);
    store.remove_mount(record);
}

void clean_stale_mounts(store::Store& store) {
    std::string ns = sys::mount_namespace_id();
    for (const auto& r : store.mounts()) {
        // Another namespace's mounts are not ours to judge while that namespace lives (an `imgtool
        // unshare` session); once nobody is in it, its mounts are gone and the record is stale. A copy
        // made in place in another namespace is never judged here: its target path may mean another place.
        bool elsewhere = r.mount_namespace != ns;
        bool in_place_copy = r.driver == "copy" && !r.tree_in_store;
        if (elsewhere && (in_place_copy || sys::mount_namespace_in_use(r.mount_namespace))) continue;
        auto lock = store.lock_mount(r.name, false);
        if (!lock.locked()) continue;  // being set up right now
        // Judged again under the lock, from a fresh read: it may have become active meanwhile.
        std::optional<store::MountRecord> fresh;
        for (auto& m : store.mounts()) {
            if (m.name == r.name) fresh = m;
        }
        if (!fresh) continue;
        bool live = false;
        if (!elsewhere) {
            // Live if its target still is one of ours (records without an ID have only this rule), or
            // if the mount it made still exists wherever it is now: a directory above the target may
            // have been renamed by whoever owns it, which must not make imgtool drop a live view's data.
            if (fresh->driver == "overlay") {
                live = is_imgtool_overlay(fresh->target) || mount_by_id(*fresh).has_value();
            } else if (fresh->tree_in_store) {
                live = fresh->active && (tree_mounted_at(store, *fresh) || mount_by_id(*fresh).has_value());
            } else {
                live = fresh->active;
            }
        }
        if (live) continue;
        log::debug("removing stale mount record for " + fresh->target);
        undo_mount(store, *fresh, elsewhere);
    }
}

}  // namespace imgtool::view

// ---- making a view ---------------------------------------------------------------------------------

namespace imgtool::view {
namespace {

bool is_within(const std::string& path, const std::string& dir) {
    return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string proc_fd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// `path` made absolute against the working directory, "." and ".." and repeated slashes resolved by
// name (for messages about a path that does not exist, so that realpath cannot help).
std::string lexical_absolute(const std::string& path) {
    std::string start = path;
    if (start.empty() || start[0] != '/') {
        char cwd[PATH_MAX];
        start = std::string(::getcwd(cwd, sizeof cwd) != nullptr ? cwd : ".") + "/" + path;
    }
    std::vector<std::string> parts;
    for (auto& part : split(start, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (!parts.empty()) parts.pop_back();
        } else {
            parts.push_back(part);
        }
    }
    std::string out;
    for (const auto& part : parts) out += "/" + part;
    return out.empty() ? "/" : out;
}

// A directory the caller names (TARGET, --upper DIR), which must exist: imgtool never makes one
// (podman and docker's --mount likewise refuse a missing bind source). A missing one says what to create.
sys::UserPath open_existing_directory(const std::string& role, const std::string& path) {
    try {
        return sys::open_user_directory(path, O_RDONLY);
    } catch (const Error& e) {
        if (e.code() != std::error_code(ENOENT, std::generic_category())) throw;
        std::string wanted = lexical_absolute(path);
        throw Error(e.code(), overlay::missing_directory_message(role, escape_control(wanted), escape_control(e.path())), wanted);
    }
}

// TARGET must be an existing, empty directory outside the store that nothing is mounted on, reached
// without following anybody else's symlink; it is then mounted on through the fd opened here.
sys::UserPath open_target(const store::Store& store, const std::string& target_arg) {
    sys::UserPath opened = open_existing_directory("target", target_arg);
    const std::string& target = opened.resolved;
    if (is_within(target, canonical_path(store.root()))) {
        throw Error(Errc::InvalidArgument, target + ": target is inside the image store");
    }
    for (const auto& m : sys::read_mountinfo()) {
        if (m.mount_point == target) throw Error(Errc::Busy, target + ": target is already a mount point");
    }
    if (find_mount(store, target)) throw Error(Errc::Busy, target + ": target is already an imgtool mount");
    if (!sys::directory_is_empty(opened.fd.get(), target)) {
        throw Error(Errc::InvalidArgument, target + ": target directory is not empty");
    }
    return opened;
}

// overlayfs's work directory for a user's --upper DIR: ".DIR.imgtool-work" beside it, made by us (or left
// by an earlier mount of ours: owned by us, never a symlink). Someone else's directory there is refused.
sys::UniqueFd open_work_dir(const sys::UserPath& upper, std::string& shown) {
    std::string name = "." + upper.name + ".imgtool-work";
    auto slash = upper.resolved.rfind('/');
    shown = upper.resolved.substr(0, slash + 1) + name;
    if (::mkdirat(upper.parent.get(), name.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir", shown);
    sys::UniqueFd work = sys::open_at(upper.parent.get(), name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, shown);
    if (sys::fstat_fd(work.get(), shown).st_uid != ::geteuid()) {
        throw Error(Errc::UnsafePath, shown + ": exists and is not yours (imgtool makes it for --upper)");
    }
    return work;
}

// Fills the view with the copy driver. As root the tree is built in the store (mode 0700 above it, so
// nobody reaches its setuid files or device nodes) and bind-mounted on the target with the view's
// flags. An ordinary user's copy is made in the target itself, as plain files visible everywhere (a
// mount would live only as long as its user namespace): it cannot hold device nodes, and its setuid
// and setgid bits are stripped unless --suid, since they would run as the user.
void copy_view(store::Store& store, store::MountRecord& record, const LayerStack& layers, const MountRequest& request,
               unsigned attributes, int target_fd) {
    std::vector<std::string> bottom_first = overlay::visible_layer_dirs(layers.refs);
    sys::SpaceReserve reserve(store.root_fd(), sys::space_limits_for(store.root_fd(), request.min_free), store.root());
    reserve.check();  // a filesystem already below its reserve gets nothing
    overlay::CopyOptions options;
    options.reserve = &reserve;
    record.mode = request.writable ? "copy-rw" : "copy";
    if (request.rootless) {
        sys::UniqueFd dir = sys::open_at(target_fd, ".", O_RDONLY | O_DIRECTORY, 0, record.target);
        struct stat st = sys::fstat_fd(dir.get(), record.target);
        record.target_dev = st.st_dev;
        record.target_ino = st.st_ino;
        store.save_mount(record);
        options.strip_setid = !request.suid;
        options.skip_devices = true;  // a user namespace cannot make them anyway
        overlay::materialize(bottom_first, dir.get(), options);
        return;
    }
    record.tree_in_store = true;
    store.save_mount(record);
    sys::UniqueFd tree = store.make_copy_tree(record.name);
    overlay::materialize(bottom_first, tree.get(), options);
    sys::bind_at_with(tree.get(), target_fd, attributes, record.target);
}

}  // namespace

store::MountRecord mount_image(store::Store& store, const store::ImageRecord& image, const MountRequest& request) {
    overlay::DriverPlan driver = overlay::plan_driver(request.driver, !request.upper.empty());
    sys::UserPath opened_target = open_target(store, request.target);
    const std::string target = opened_target.resolved;
    LayerStack layers = open_layers(store, image);
    // nosuid, nodev: a view is for looking at an image, and TARGET may be reachable by others.
    unsigned attributes = (request.suid ? 0 : MOUNT_ATTR_NOSUID) | (request.dev ? 0 : MOUNT_ATTR_NODEV);

    store::MountRecord record{.name = sys::unique_name("m-"), .target = target, .image = image.id,
                              .driver = driver.first == overlay::Driver::Copy ? "copy" : "overlay",
                              .mode = "ro", .upper = {}, .work = {}, .owns_upper = false,
                              .mount_namespace = sys::mount_namespace_id(), .active = false};
    auto lock = store.lock_mount(record.name, true);
    std::optional<overlay::UpperDirs> upper;
    sys::UserPath opened_upper;
    sys::UniqueFd work_fd;
    if (request.writable && driver.first == overlay::Driver::Overlay) {
        auto [u, w] = store.make_mount_area(record.name);
        upper = overlay::UpperDirs{u, w};
        record.mode = "writable";
        record.owns_upper = true;
        record.upper = u;
        record.work = w;
    } else if (!request.upper.empty()) {
        // Reached like the target, never through another user's symlink, and used by fd. It must exist:
        // a mistyped DIR would otherwise silently start an empty upper and the changes go astray.
        opened_upper = open_existing_directory("upper directory", request.upper);
        const std::string& u = opened_upper.resolved;
        if (is_within(u, canonical_path(store.root())) || is_within(u, target) || is_within(target, u)) {
            throw Error(Errc::InvalidArgument, u + ": --upper must be outside the store and the target");
        }
        std::string w;
        work_fd = open_work_dir(opened_upper, w);
        struct stat wst = sys::fstat_fd(work_fd.get(), w);
        record.work_dev = wst.st_dev;
        record.work_ino = wst.st_ino;
        upper = overlay::UpperDirs{proc_fd(opened_upper.fd.get()), proc_fd(work_fd.get())};
        record.mode = "upper";
        record.upper = u;
        record.work = w;
    }
    // Recorded before anything is mounted: a crash from here on leaves a record to clean up.
    store.save_mount(record);
    try {
        overlay::MountSpec spec = overlay::plan_overlay(layers.refs, upper, layers.empty_dir);
        spec.user_xattr = request.rootless;
        spec.source = overlay::view_source(canonical_path(store.root()));  // whose view it is, for umount
        if (record.driver == "overlay") {
            try {
                overlay::mount_at(spec, opened_target.fd.get(), attributes);
            } catch (const Error& e) {
                if (!driver.fall_back_to_copy) throw;  // the kernel's reason is the answer
                log::notice(std::string("overlayfs unavailable (") + e.what() + "); using the copy driver");
                record.driver = "copy";
            }
        }
        if (record.driver == "copy") {
            if (!request.writable) attributes |= MOUNT_ATTR_RDONLY;
            copy_view(store, record, layers, request, attributes, opened_target.fd.get());
        }
        record.mount_id = mount_id_on(opened_target.fd.get(), record);
        record.active = true;
        store.save_mount(record);
    } catch (...) {
        undo_mount(store, record);
        throw;
    }
    return record;
}

}  // namespace imgtool::view
