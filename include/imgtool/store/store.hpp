// The content-addressed image store.
//
// Layout (docs/store.md):
//   ROOT/                  mode 0700, owned by the caller; no parent writable by anyone else
//                          (check_location): host users cannot reach setuid files in layers
//                          (CVE-2021-41091) nor swap the store under the caller
//     lock                 byte-range locks: activity, metadata, one byte per layer
//     idmap                rootless only: the id map the layers were unpacked under
//     blobs/sha256/<hex>   manifests and configs, verified, read-only
//     layers/<hex>/        one per diff_id: diff/ (the tree, overlayfs-native), layer.json,
//                          skel/ (directories holding whiteouts; a lower layer under diff/),
//                          implicit.json (directories the tar never listed)
//     images/<hex>.json    one record per image ID (config digest)
//     tags.json            name:tag -> image ID
//     mounts/<name>.json   active `imgtool mount`s; mounts/<name>/{upper,work} for --writable,
//                          mounts/<name>/tree for a copy-driver view (bind-mounted on the target)
//     empty/               an empty directory (bottom lower for single-layer read-only views)
//     partial/<hex>        a registry blob's first bytes as far as an interrupted pull got them, so the
//                          next pull resumes there; unverified until complete (then checked whole
//                          before use), removed once its layer is committed, by rm, or after a day
//     tmp/                 staging and every temporary file; garbage once no imgtool process is active
//
// Lifecycle and invariants:
// - Everything becomes visible by rename(2) of a complete, synced object made in tmp/: a layer
//   directory, a blob, a record. A name under layers/, blobs/ or images/ is therefore always complete,
//   and a crash leaves nothing outside tmp/.
// - Everything read back is untrusted input: records are size-capped and parsed strictly, layer
//   directories are opened without following symlinks (open_layer) and handed to the kernel as
//   /proc/self/fd paths, so nothing the store holds can point a mount outside it.
// - Every process holds the activity lock shared while it works; whoever gets it exclusively (nobody
//   else active) removes tmp/ leftovers of crashed processes. `rm` holds it exclusively.
// - Unpacking a layer holds that layer's lock, so two pulls sharing a layer unpack it once; locks are
//   always taken in ascending order, so pulls cannot deadlock.
// - Image records and tags are written last, under the metadata lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/digest/digest.hpp"
#include "imgtool/sys/lock.hpp"
#include "imgtool/sys/unique_fd.hpp"
#include <sys/types.h>

namespace imgtool::store {

struct ImageRecord {
    digest::Digest id;
    std::optional<digest::Digest> manifest_digest;
    std::vector<digest::Digest> layers;  // diff_ids, bottom first
    std::string created;
    std::string architecture;
    std::string os;
    std::uint64_t size = 0;  // sum of uncompressed layer sizes
    std::vector<std::string> repo_digests;  // "name@sha256:<manifest>" for each registry pull, as docker's RepoDigests
};

struct LayerInfo {
    digest::Digest diff_id;
    std::uint64_t size = 0;  // uncompressed tar bytes
    std::uint64_t entries = 0;
    std::optional<digest::Digest> blob_digest;
    std::string compression;
    bool root_opaque = false;  // hides all lower layers (see overlay::plan_lowers)
    bool skeleton = false;     // has skel/: stacked right under diff/ (see layer::UnpackStats)
    std::uint64_t implicit_dirs = 0;  // entries of implicit.json
    std::uint64_t dropped_xattrs = 0;  // overlay xattrs the tar carried, dropped (never acted upon)
};

// A mount made by `imgtool mount`, recorded so that `umount` touches only what imgtool mounted.
struct MountRecord {
    std::string name;    // mounts/<name>.json, and mounts/<name>/ for a store-owned upper
    std::string target;  // canonical absolute path
    digest::Digest image;
    std::string driver;  // "overlay" | "copy"
    std::string mode;    // "ro" | "writable" | "upper" | "copy"
    std::string upper;   // writable modes
    std::string work;
    bool owns_upper = false;      // upper/work live in the store and go away at umount
    std::string mount_namespace;  // where the mount lives: other namespaces never clean it
    bool active = false;          // false while being set up: a crash leaves it inactive
    bool tree_in_store = false;   // copy driver: the tree is mounts/<name>/tree, bind-mounted on target
    // copy driver without a bind mount (rootless outside `imgtool unshare`): the target directory's
    // identity when it was filled, checked again before its contents are removed.
    std::uint64_t target_dev = 0;
    std::uint64_t target_ino = 0;
    // --upper: the work directory imgtool made beside the user's upper, checked again before removal.
    std::uint64_t work_dev = 0;
    std::uint64_t work_ino = 0;
    // The mount's ID (mountinfo's first field, statx STATX_MNT_ID) when it was made; 0: unknown (older
    // records, or no mount). A view is judged by it, not by its path: a directory above the target
    // may be renamed while the view lives.
    std::uint64_t mount_id = 0;
};

// Shared: most commands; Exclusive: rm of images, which must not pull layers from under a reader;
// Observe: only reads container records (exec, logs): no lock, no cleaning, so it neither waits nor
// holds anything for as long as it lives, and it works outside imgtool's user namespace, where an
// ordinary user cannot remove what the namespace's ids own.
// Prune: Exclusive, but the leftovers in tmp/ stay until prune_leftovers() removes them and says what
// they were (`imgtool prune`).
enum class Access { Shared, Exclusive, Observe, Prune };

// A staging directory under tmp/; removed on destruction unless committed.
class Staging {
public:
    Staging(Staging&&) noexcept;
    Staging& operator=(Staging&&) noexcept;
    ~Staging();
    int diff_fd() const { return diff_fd_.get(); }
    std::string path() const;  // absolute
    std::string name() const { return name_; }
    // Leaves the directory in place when this object goes (a detached container's area).
    void keep() noexcept { name_.clear(); }
    int dir_fd() const { return dir_fd_.get(); }

private:
    friend class Store;
    Staging(int tmp_fd, std::string tmp_path, std::string name, sys::UniqueFd dir, sys::UniqueFd diff)
        : tmp_fd_(tmp_fd), tmp_path_(std::move(tmp_path)), name_(std::move(name)), dir_fd_(std::move(dir)),
          diff_fd_(std::move(diff)) {}
    int tmp_fd_ = -1;
    std::string tmp_path_;
    std::string name_;
    sys::UniqueFd dir_fd_;
    sys::UniqueFd diff_fd_;
};

class Store {
public:
    // --root's default: $IMGTOOL_ROOT, else /var/lib/imgtool for root, else (rootless, including root of
    // a user namespace) $XDG_DATA_HOME/imgtool or ~/.local/share/imgtool.
    static std::string default_root(bool rootless);
    // The directories every store has (opening a store makes the missing ones), parents first.
    static const std::vector<const char*>& layout_directories();

    // Refuses a store location someone else could tamper with, as git's safe.directory does: the
    // store directory (if it exists) must be a real directory owned by the caller, and every existing
    // directory from / down to it (symlinks on the way resolved and their directories checked too)
    // owned by root or the caller and not writable by others (sticky directories such as /tmp are
    // fine). In a user namespace, owners that are not mapped (the host's root among them) count as
    // root. Throws Errc::UnsafePath naming the directory and why.
    static void check_location(const std::string& root);
    // The same rule for another directory that must stay the caller's (bundle's DIR): `what` and `hint`
    // go into the message ("refusing WHAT: DIR is writable by everyone (HINT)").
    static void check_private_location(const std::string& path, const std::string& what, const std::string& hint);

    Store(const std::string& root, Access access = Access::Shared);
    const std::string& root() const { return root_; }
    int root_fd() const { return root_fd_.get(); }

    // --- blobs ---
    bool has_blob(const digest::Digest& d) const;
    void put_blob(const digest::Digest& d, std::string_view bytes);
    std::string read_blob(const digest::Digest& d) const;

    // --- layers ---
    std::string layer_dir(const digest::Digest& diff_id) const;  // absolute path of the diff/ tree (for people)
    std::string skeleton_dir(const digest::Digest& diff_id) const;  // absolute path of skel/ (for people)
    std::string empty_dir() const { return root_ + "/empty"; }     // always empty; a bottom lower
    // The layer's diff/ (or skel/) directory, opened O_PATH without following any symlink below the
    // store root: what a mount may use (as "/proc/self/fd/N"), whatever the store's contents say.
    sys::UniqueFd open_layer(const digest::Digest& diff_id, bool skeleton = false) const;
    sys::UniqueFd open_empty() const;
    // The layer's implicit directories (see layer::UnpackStats::implicit_dirs).
    std::vector<std::string> implicit_dirs(const digest::Digest& diff_id) const;
    bool has_layer(const digest::Digest& diff_id) const;
    std::optional<LayerInfo> layer_info(const digest::Digest& diff_id) const;
    sys::RangeLock lock_layer(const digest::Digest& diff_id);
    Staging new_staging();
    // Flushes everything written so far in the store's filesystem (one syncfs for all staged layers).
    void sync();
    // Renames a synced staging dir to layers/<hex>. Returns false if the layer was already there.
    // `implicit` is written as implicit.json (info.implicit_dirs must be its size).
    bool commit_layer(Staging&& staging, const LayerInfo& info, const std::vector<std::string>& implicit = {});

    // --- partial downloads ---
    // partial/<hex> of a blob, opened read-write (created empty if missing) and locked for this
    // process (flock, released with the fd); nullopt if another process holds it (then the caller
    // downloads without keeping anything).
    std::optional<sys::UniqueFd> open_partial(const digest::Digest& blob, const std::string& origin);
    // Removes the blob's partial files, whatever their origin.
    void remove_partial(const digest::Digest& blob);
    // Removes the partial downloads no process holds that were last written more than `max_age`
    // seconds ago (0: all of them).
    void prune_partials(std::int64_t max_age_seconds);

    // --- images and tags ---
    sys::RangeLock lock_metadata();
    std::vector<ImageRecord> images() const;
    std::optional<ImageRecord> image(const digest::Digest& id) const;
    void save_image(const ImageRecord& record);
    std::map<std::string, digest::Digest> tags() const;
    // Refuses (Errc::Unsupported) tags that would not fit in tags.json's read limit: nothing may write
    // what every later command could not read back.
    void check_tags_fit(const std::map<std::string, digest::Digest>& tags) const;
    void save_tags(const std::map<std::string, digest::Digest>& tags);
    // Names `id` as `name` (a normalised NAME:TAG), under the metadata lock; returns the image the name
    // named before, if another.
    std::optional<digest::Digest> set_tag(const std::string& name, const digest::Digest& id);
    // Removes one name, under the metadata lock; false if it did not name `id`.
    bool untag(const std::string& name, const digest::Digest& id);
    // The names of `id`, sorted.
    std::vector<std::string> tags_of(const digest::Digest& id) const;

    // What an import commits once its layers are in: every image's blobs and record, then all their
    // names in one write, under one metadata lock. The names are checked to fit before anything is
    // written. Returns, per name that named another image before, that image.
    struct ImageCommit {
        ImageRecord record;
        std::optional<std::string> manifest_bytes;  // stored (verified by the caller) when set
        std::string config_bytes;
        std::vector<std::string> tags;
    };
    std::map<std::string, digest::Digest> commit_images(const std::vector<ImageCommit>& images);
    // Full image ID or "sha256:" ID first (a tag can never shadow an ID), then a tag, then a unique
    // hex prefix (>= 4) -> the record.
    ImageRecord resolve(std::string_view reference) const;
    // Deletes the record, its tags and the layers no other image uses. Needs Access::Exclusive.
    void remove_image(const digest::Digest& id);
    // Only the record and its tags (the image is gone; its layers, blobs and init layer stay for the
    // caller: prune). Needs Access::Exclusive or Access::Prune.
    void remove_image_record(const digest::Digest& id);

    // --- containers ---
    // A container's area in tmp/ holds container.json (what run wrote before starting it, locked by
    // run while it lives) and, once started, a container.pid naming its process. A detached container
    // (run -d) also has container.kept: its area, log and writable layer outlive it until `rm`, and
    // container.exit records how it ended.
    enum class ContainerState { Created, Running, Exited };
    struct Container {
        std::string id;           // 64 hex
        std::string name;         // --name, or empty
        digest::Digest image;
        std::string image_name;   // the reference run was given
        std::vector<std::string> command;
        std::string created;      // RFC 3339, UTC (write_record: now, when empty)
        int pid = 0;              // of the supervisor (or --init's PID 1) while it runs, else 0
        std::uint64_t start_time = 0;  // of pid (process_start_time): with the pid, the process's identity
        // The imgtool process that runs it (run, or run -d's monitor), which the container dies with: an
        // ordinary user outside the container's user namespace can always kill it.
        int run_pid = 0;
        std::uint64_t run_start_time = 0;
        ContainerState state = ContainerState::Created;
        bool kept = false;        // detached: stays after it stops, until `rm`
        int exit_code = -1;       // Exited: the status run returned; -1 when its monitor died first
        std::string finished;     // Exited: RFC 3339, UTC, or empty
        std::string area;         // its directory's name in tmp/
        std::string process;      // run's record of the container's process (JSON: launch/exec.hpp)
    };
    // A container's private area in tmp/: root/ (its mount point), upper/ and work/ (its writable
    // layer). Removed on destruction unless kept; a crash leaves it for the next command to clean,
    // unless the container's process (record_process) still lives or it is kept.
    class ContainerArea {
    public:
        ContainerArea(ContainerArea&&) noexcept = default;
        std::string root_dir() const { return staging_.path() + "/root"; }
        std::string upper_dir() const { return staging_.path() + "/diff"; }
        std::string work_dir() const { return staging_.path() + "/work"; }
        // Writes container.pid ("<pid> <starttime> <run pid> <its starttime>", run: this process) atomically: while that process lives, no command
        // removes the area.
        void record_process(int pid) const;
        // Writes container.json, what containers() reports, and holds a lock on it for the area's life
        // in this process: a container being set up counts before its process exists (two
        // `run --name X` cannot both start). With `kept`, the area outlives this object (run -d).
        void write_record(const Container& record, bool kept);
        // Writes a file of the container's own (its /etc/hosts...) into the area and returns its path.
        // No fsync: it lives as long as the container.
        std::string write_file(const std::string& name, std::string_view data) const;
        // The detached container's log (stdout and stderr), opened for appending.
        sys::UniqueFd open_log() const;
        // A kept container ended with `status`: container.exit says so, and container.pid goes.
        void record_exit(int status) const;

    private:
        friend class Store;
        explicit ContainerArea(Staging staging) : staging_(std::move(staging)) {}
        Staging staging_;
        sys::UniqueFd record_fd_;
    };
    ContainerArea new_container_area();

    // Image `id`'s init layer (inits/<hex>/, docker's init layer): the mount points every container of
    // the image needs, made once by `fill` (given the new directory, in tmp/, then renamed into place:
    // a concurrent run's copy wins and ours goes), shared read-only as a lower layer, removed with the
    // image. Returns the directory, open O_PATH, and its path.
    std::pair<sys::UniqueFd, std::string> image_init_layer(const digest::Digest& id,
                                                           const std::function<void(int dir_fd)>& fill);

    // Running and starting containers; with `all`, stopped kept ones too (docker ps -a).
    std::vector<Container> containers(bool all) const;
    std::vector<Container> running_containers() const { return containers(false); }
    // The container `ref` names: its name, its full ID or a unique ID prefix (docker's rule). Throws
    // NotFound ("no such container") or InvalidArgument (an ambiguous prefix).
    Container find_container(const std::string& ref, bool all = true) const;
    // Removes a stopped container's area (its log and writable layer). Throws Busy while it runs.
    void remove_container(const Container& container);
    // Opens one of a container's files in its area ("container.log"...), read-only.
    sys::UniqueFd open_container_file(const Container& container, const std::string& name) const;

    // Lets go of this process's hold on the store (the shared activity lock), for a process that lives
    // long but whose stake is recorded otherwise: a running container, whose area and image are kept
    // by its container.pid and container.json. After this, only the container area may be used.
    void release_activity() noexcept { activity_ = sys::RangeLock(); }

    // --- space: `system df` and `prune` (src/store/space.cpp) ---
    // What one removal freed: its path below the store root and its size.
    struct Freed {
        std::string path;
        std::uint64_t bytes = 0;
    };
    // Every image record, strictly: one that cannot be read throws (Errc::Corrupt, naming it), since
    // anything computed without it would count its layers as unreferenced.
    std::vector<ImageRecord> images_strict() const;
    // The diff_ids in layers/, inits/ and blobs/sha256/ (names that are not 64 hex digits: none of
    // the store's, never listed, never removed).
    std::vector<digest::Digest> layer_ids() const;
    std::vector<digest::Digest> init_ids() const;
    std::vector<digest::Digest> blob_ids() const;
    // A layer's size: as recorded at import (layer.json), else measured (sys::tree_size_at: no symlink
    // followed, no other mount entered).
    std::uint64_t layer_size(const digest::Digest& diff_id) const;
    // A container's writable layer, measured.
    std::uint64_t container_size(const Container& container) const;
    // Remove one unreferenced object (renamed into tmp/ first, then removed without following
    // symlinks). Need Access::Exclusive or Access::Prune. Missing: nothing freed.
    Freed remove_layer(const digest::Digest& diff_id);
    Freed remove_init(const digest::Digest& image_id);
    Freed remove_blob(const digest::Digest& blob);
    // Access::Prune: what clean_leftovers removes (no live or kept container's area), each measured
    // first; and partial downloads no pull holds.
    std::vector<Freed> prune_leftovers();

    // --- rootless ---
    // A rootless store holds owners as the host ids its namespace mapped them to: its layers are right
    // only for that map. `current` (the uid and gid maps as text) is recorded when the store is first
    // used; a different map later, once layers exist, is refused (Errc::InvalidArgument, one line
    // saying what to do) instead of showing wrong owners.
    void check_id_map(const std::string& current);

    // --- mounts ---
    // Creates mounts/<name>/{upper,work} and returns them (absolute).
    std::pair<std::string, std::string> make_mount_area(const std::string& name);
    // Creates mounts/<name>/tree for a copy-driver view and returns it open (O_RDONLY|O_DIRECTORY).
    sys::UniqueFd make_copy_tree(const std::string& name);
    sys::UniqueFd open_copy_tree(const std::string& name) const;
    // Writes ROOT/name atomically (temporary in tmp/).
    void write_root_file(const std::string& name, std::string_view data);
    // Held by the process setting a mount up; a cleaner only removes records whose lock it can take.
    sys::RangeLock lock_mount(const std::string& name, bool wait);
    void save_mount(const MountRecord& record);
    std::vector<MountRecord> mounts() const;
    // Removes the record and the store-owned upper/work, if any.
    void remove_mount(const MountRecord& record);

private:
    // Removes tmp/'s leftovers (what no live or kept container owns); with `freed`, says what each was.
    void clean_leftovers(std::vector<Freed>* freed = nullptr);
    // Writes dirfd/name atomically: the temporary lives in tmp/, so a crash never leaves one beside
    // the target; rename across, then fsync the directory.
    void write_atomically(int dirfd, const std::string& name, std::string_view data, mode_t mode,
                          const std::string& shown) const;
    
    std::string root_;
    sys::UniqueFd root_fd_;
    sys::UniqueFd lock_fd_;
    sys::UniqueFd tmp_fd_;
    sys::RangeLock activity_;
    Access access_;
};

}  // namespace imgtool::store
