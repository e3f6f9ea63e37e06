#include "imgtool/store/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/image/reference.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/process.hpp"
#include "imgtool/sys/tree_size.hpp"

namespace imgtool::store {
namespace {

using json = nlohmann::json;
using digest::Digest;

constexpr std::uint64_t kActivityLock = 0;
constexpr std::uint64_t kMetadataLock = 1;
constexpr std::uint64_t kLayerLockBase = 1ULL << 32;
constexpr std::uint64_t kMountLockBase = 1ULL << 48;
constexpr std::uint64_t kMaxRecordBytes = 4 << 20;
// tags.json holds every name of every image: at most image::kMaxTagsPerImage names of at most 255 bytes
// per image, so this stays far above what any realistic store needs while bounding what is read.
constexpr std::uint64_t kMaxTagsBytes = 64 << 20;
constexpr std::uint64_t kMaxImplicitBytes = 32 << 20;

// Whether dirfd/name exists (never followed); any failure but ENOENT is an error.
bool exists(int dirfd, const std::string& name) {
    auto [st, err] = sys::try_lstat_at(dirfd, name);
    if (err && err != ENOENT) throw_errno(err, "stat", name);
    return !err;
}

// Every record the store reads back is capped and parsed strictly; a failure names the file.
json read_record(int dirfd, const std::string& name, std::uint64_t max_bytes, const std::string& shown, const char* what) {
    json j = json::parse(sys::read_file_at(dirfd, name, max_bytes), nullptr, false);
    if (j.is_discarded()) throw Error(Errc::Corrupt, shown + ": corrupt " + what);
    return j;
}

std::uint64_t layer_lock_offset(const Digest& d) {
    // 40 bits of the digest: distinct layers practically never share a lock byte (and sharing one
    // would only serialise them).
    return kLayerLockBase + std::stoull(d.hex().substr(0, 10), nullptr, 16);
}


// RepoDigests one image record keeps (far above real use; keeps the record far below its read cap).
constexpr std::size_t kMaxRepoDigests = 256;

json record_to_json(const ImageRecord& r) {
    json j = {{"id", r.id.str()},     {"created", r.created}, {"architecture", r.architecture},
              {"os", r.os},           {"size", r.size},       {"layers", json::array()}};
    if (r.manifest_digest) j["manifest_digest"] = r.manifest_digest->str();
    for (const auto& l : r.layers) j["layers"].push_back(l.str());
    if (!r.repo_digests.empty()) j["repo_digests"] = r.repo_digests;
    return j;
}

ImageRecord record_from_json(const json& j, const std::string& shown) {
    try {
        ImageRecord r{.id = Digest::parse(j.at("id").get<std::string>()),
                      .manifest_digest = std::nullopt,
                      .layers = {},
                      .created = j.value("created", ""),
                      .architecture = j.value("architecture", ""),
                      .os = j.value("os", ""),
                      .size = j.value("size", std::uint64_t{0}),
                      .repo_digests = {}};
        if (j.contains("repo_digests")) r.repo_digests = j.at("repo_digests").get<std::vector<std::string>>();
        if (j.contains("manifest_digest")) r.manifest_digest = Digest::parse(j.at("manifest_digest").get<std::string>());
        for (const auto& l : j.at("layers")) r.layers.push_back(Digest::parse(l.get<std::string>()));
        return r;
    } catch (const json::exception& e) {
        throw Error(Errc::Corrupt, shown + ": corrupt image record: " + e.what());
    }
}

}  // namespace

// ---- Staging ----

Staging::Staging(Staging&& o) noexcept
    : tmp_fd_(o.tmp_fd_), tmp_path_(std::move(o.tmp_path_)), name_(std::move(o.name_)), dir_fd_(std::move(o.dir_fd_)), diff_fd_(std::move(o.diff_fd_)) {
    o.name_.clear();
}

Staging& Staging::operator=(Staging&& o) noexcept {
    if (this != &o) {
        this->~Staging();
        new (this) Staging(std::move(o));
    }
    return *this;
}

std::string Staging::path() const { return tmp_path_ + "/" + name_; }

Staging::~Staging() {
    if (name_.empty()) return;
    diff_fd_.reset();
    dir_fd_.reset();
    try {
        sys::remove_tree_at(tmp_fd_, name_);
    } catch (const Error& e) {
        log::notice(std::string("cannot remove staging directory: ") + e.what());
    }
}

// ---- Store ----

// ---- mounts ----

namespace {

json mount_to_json(const MountRecord& m) {
    return {{"name", m.name},   {"target", m.target},         {"image", m.image.str()},
            {"driver", m.driver}, {"mode", m.mode},           {"upper", m.upper},
            {"work", m.work},   {"owns_upper", m.owns_upper}, {"mount_namespace", m.mount_namespace},
            {"active", m.active}, {"tree_in_store", m.tree_in_store}, {"target_dev", m.target_dev},
            {"target_ino", m.target_ino}, {"work_dev", m.work_dev}, {"work_ino", m.work_ino},
            {"mount_id", m.mount_id}};
}

MountRecord mount_from_json(const json& j, const std::string& shown) {
    try {
        return MountRecord{.name = j.at("name").get<std::string>(),
                           .target = j.at("target").get<std::string>(),
                           .image = Digest::parse(j.at("image").get<std::string>()),
                           .driver = j.at("driver").get<std::string>(),
                           .mode = j.at("mode").get<std::string>(),
                           .upper = j.value("upper", ""),
                           .work = j.value("work", ""),
                           .owns_upper = j.value("owns_upper", false),
                           .mount_namespace = j.value("mount_namespace", ""),
                           .active = j.value("active", false),
                           .tree_in_store = j.value("tree_in_store", false),
                           .target_dev = j.value("target_dev", std::uint64_t{0}),
                           .target_ino = j.value("target_ino", std::uint64_t{0}),
                           .work_dev = j.value("work_dev", std::uint64_t{0}),
                           .work_ino = j.value("work_ino", std::uint64_t{0}),
                           .mount_id = j.value("mount_id", std::uint64_t{0})};
    } catch (const json::exception& e) {
        throw Error(Errc::Corrupt, shown + ": corrupt mount record: " + e.what());
    }
}

bool valid_mount_name(const std::string& name) {
    return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

}  // namespace

std::pair<std::string, std::string> Store::make_mount_area(const std::string& name) {
    if (!valid_mount_name(name)) throw Error(Errc::InvalidArgument, "invalid mount name " + name);
    sys::UniqueFd mounts_dir = sys::open_beneath(root_fd_.get(), "mounts", O_RDONLY | O_DIRECTORY);
    sys::mkdir_at(mounts_dir.get(), name, 0700, false);
    sys::UniqueFd area = sys::open_beneath(mounts_dir.get(), name, O_RDONLY | O_DIRECTORY);
    sys::mkdir_at(area.get(), "upper", 0755, false);
    sys::mkdir_at(area.get(), "work", 0700, false);
    std::string base = root_ + "/mounts/" + name;
    return {base + "/upper", base + "/work"};
}

sys::UniqueFd Store::make_copy_tree(const std::string& name) {
    if (!valid_mount_name(name)) throw Error(Errc::InvalidArgument, "invalid mount name " + name);
    sys::UniqueFd mounts_dir = sys::open_beneath(root_fd_.get(), "mounts", O_RDONLY | O_DIRECTORY);
    sys::mkdir_at(mounts_dir.get(), name, 0700, false);
    sys::UniqueFd area = sys::open_beneath(mounts_dir.get(), name, O_RDONLY | O_DIRECTORY);
    sys::mkdir_at(area.get(), "tree", 0755, false);
    return sys::open_beneath(area.get(), "tree", O_RDONLY | O_DIRECTORY);
}

sys::UniqueFd Store::open_copy_tree(const std::string& name) const {
    if (!valid_mount_name(name)) throw Error(Errc::InvalidArgument, "invalid mount name " + name);
    return sys::open_beneath(root_fd_.get(), "mounts/" + name + "/tree", O_PATH | O_DIRECTORY);
}

void Store::write_root_file(const std::string& name, std::string_view data) {
    write_atomically(root_fd_.get(), name, data, 0600, root_ + "/" + name);
}

void Store::write_atomically(int dirfd, const std::string& name, std::string_view data, mode_t mode,
                             const std::string& shown) const {
    std::string temp = sys::unique_name("write-");
    sys::UniqueFd fd = sys::open_at(tmp_fd_.get(), temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode, shown);
    try {
        sys::write_all(fd.get(), data.data(), data.size(), shown);
        if (::fchmod(fd.get(), mode) != 0) throw_errno("chmod", shown);
        sys::fsync_fd(fd.get(), shown);
        if (::renameat(tmp_fd_.get(), temp.c_str(), dirfd, name.c_str()) != 0) throw_errno("rename", shown);
    } catch (...) {
        ::unlinkat(tmp_fd_.get(), temp.c_str(), 0);
        throw;
    }
    sys::fsync_fd(dirfd, shown);
}

sys::RangeLock Store::lock_mount(const std::string& name, bool wait) {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a: mount names are ours, any spread will do
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
    std::uint64_t offset = kMountLockBase + (h & 0xffffffffffULL);
    if (wait) return sys::RangeLock(lock_fd_.get(), offset, sys::LockMode::Exclusive, root_ + "/lock");
    return sys::RangeLock::try_lock(lock_fd_.get(), offset, sys::LockMode::Exclusive, root_ + "/lock");
}

void Store::save_mount(const MountRecord& record) {
    if (!valid_mount_name(record.name)) throw Error(Errc::InvalidArgument, "invalid mount name " + record.name);
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "mounts", O_RDONLY | O_DIRECTORY);
    write_atomically(dir.get(), record.name + ".json", mount_to_json(record).dump(2) + "\n", 0600,
                     root_ + "/mounts/" + record.name + ".json");
}

std::vector<MountRecord> Store::mounts() const {
    std::vector<MountRecord> out;
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "mounts", O_RDONLY | O_DIRECTORY);
    for (const std::string& name : sys::list_directory(dir.get(), root_ + "/mounts")) {
        if (name.size() <= 5 || name.substr(name.size() - 5) != ".json") continue;
        json j = read_record(dir.get(), name, kMaxRecordBytes, root_ + "/mounts/" + name, "mount record");
        out.push_back(mount_from_json(j, root_ + "/mounts/" + name));
    }
    return out;
}

void Store::remove_mount(const MountRecord& record) {
    if (!valid_mount_name(record.name)) throw Error(Errc::InvalidArgument, "invalid mount name " + record.name);
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "mounts", O_RDONLY | O_DIRECTORY);
    if (record.owns_upper || record.tree_in_store) sys::remove_tree_at(dir.get(), record.name);
    if (::unlinkat(dir.get(), (record.name + ".json").c_str(), 0) != 0 && errno != ENOENT) {
        throw_errno("unlink", root_ + "/mounts/" + record.name + ".json");
    }
    sys::fsync_fd(dir.get(), root_ + "/mounts");
}

std::string Store::default_root(bool rootless) {
    if (const char* env = std::getenv("IMGTOOL_ROOT"); env != nullptr && *env != '\0') return env;
    if (!rootless) return "/var/lib/imgtool";
    // Ordinary users get their own store, as podman does: root and rootless stores never mix.
    if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg == '/') return std::string(xdg) + "/imgtool";
    if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') return std::string(home) + "/.local/share/imgtool";
    throw Error(Errc::InvalidArgument, "no store location: set --root, IMGTOOL_ROOT or HOME");
}

namespace {

std::string absolute(const std::string& path) {
    if (!path.empty() && path[0] == '/') return path;
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) throw_errno("getcwd", path);
    return std::string(cwd) + "/" + path;
}

// The kernel's stand-in owner for ids a user namespace does not map (the host's root among them).
uid_t overflow_uid() {
    static const uid_t uid = [] {
        try {
            return static_cast<uid_t>(std::stoul(sys::read_file_at(AT_FDCWD, "/proc/sys/kernel/overflowuid", 64)));
        } catch (const std::exception&) {
            return static_cast<uid_t>(65534);
        }
    }();
    return uid;
}

bool in_user_namespace() {
    try {
        return sys::read_file_at(AT_FDCWD, "/proc/self/uid_map", 1 << 16).find("         0          0 4294967295") ==
               std::string::npos;
    } catch (const Error&) {
        return false;
    }
}

// What a checked location is for, in messages.
struct LocationRole {
    std::string what;  // "store location"
    std::string hint;  // what someone else could do, and what to do instead
};
const LocationRole kStoreRole{"store location", "someone else could replace the store; choose another --root"};

[[noreturn]] void unsafe(const std::string& dir, const std::string& why, const LocationRole& role = kStoreRole) {
    throw Error(Errc::UnsafePath, "refusing " + role.what + ": " + dir + " " + why + " (" + role.hint + ")", dir);
}

// An existing directory on the way to the store: only root or the caller may be able to change it.
void check_ancestor(const std::string& dir, const struct stat& st, const LocationRole& role) {
    uid_t me = ::geteuid();
    bool trusted_owner = st.st_uid == 0 || st.st_uid == me || (in_user_namespace() && st.st_uid == overflow_uid());
    if (!trusted_owner) unsafe(dir, "is owned by uid " + std::to_string(st.st_uid), role);
    bool sticky = st.st_mode & S_ISVTX;
    if ((st.st_mode & S_IWOTH) && !sticky) unsafe(dir, "is writable by everyone", role);
    // Group write is fine for the caller's own group (user private groups), not for a shared one.
    if ((st.st_mode & S_IWGRP) && !sticky && st.st_gid != ::getegid() && st.st_gid != 0) {
        unsafe(dir, "is writable by group " + std::to_string(st.st_gid), role);
    }
}

}  // namespace

void Store::check_location(const std::string& root) { check_private_location(root, kStoreRole.what, kStoreRole.hint); }

void Store::check_private_location(const std::string& root, const std::string& what, const std::string& hint) {
    const LocationRole role{what, hint};
    std::vector<std::string> todo;
    for (auto& part : split(absolute(root), '/')) {
        if (!part.empty() && part != ".") todo.push_back(part);
    }
    std::reverse(todo.begin(), todo.end());  // a stack: next component last
    std::string current = "/";
    struct stat st {};
    if (::lstat("/", &st) != 0) throw_errno("stat", "/");
    check_ancestor("/", st, role);
    int links = 0;
    while (!todo.empty()) {
        std::string part = std::move(todo.back());
        todo.pop_back();
        if (part == "..") {
            current = current == "/" ? "/" : current.substr(0, std::max<std::size_t>(1, current.rfind('/')));
            continue;
        }
        std::string next = current == "/" ? "/" + part : current + "/" + part;
        if (::lstat(next.c_str(), &st) != 0) {
            if (errno == ENOENT) return;  // the rest is made by the caller, in checked directories
            throw_errno("stat", next);
        }
        bool last = todo.empty();
        if (S_ISLNK(st.st_mode)) {
            // A symlink is as trustworthy as the directory holding it, which was checked; its target
            // is walked and checked in turn. The store root itself is never a symlink.
            if (last) unsafe(next, "is a symlink", role);
            if (++links > 40) throw Error(std::error_code(ELOOP, std::generic_category()), next + ": too many symlinks");
            std::string target(PATH_MAX, '\0');
            ssize_t n = ::readlink(next.c_str(), target.data(), target.size());
            if (n < 0) throw_errno("readlink", next);
            target.resize(static_cast<std::size_t>(n));
            std::vector<std::string> parts;
            for (auto& p : split(target, '/')) {
                if (!p.empty() && p != ".") parts.push_back(p);
            }
            for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
            if (!target.empty() && target[0] == '/') current = "/";
            continue;
        }
        if (!S_ISDIR(st.st_mode)) unsafe(next, "is not a directory", role);
        if (last) {
            if (st.st_uid != ::geteuid()) unsafe(next, "is owned by uid " + std::to_string(st.st_uid) + ", not by you", role);
        } else {
            check_ancestor(next, st, role);
        }
        current = next;
    }
}

const std::vector<const char*>& Store::layout_directories() {
    static const std::vector<const char*> dirs = {"blobs", "blobs/sha256", "layers", "images", "inits",
                                                  "mounts", "empty", "tmp", "partial"};
    return dirs;
}

Store::Store(const std::string& root_arg, Access access) : root_(absolute(root_arg)), access_(access) {
    const std::string& root = root_;
    check_location(root);
    // Create what is missing (0700, ours) below the checked, existing part.
    for (std::size_t pos = 1; pos <= root.size();) {
        std::size_t next = std::min(root.find('/', pos), root.size());
        std::string prefix = root.substr(0, next);
        if (!prefix.empty() && ::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir", prefix);
        pos = next + 1;
    }
    // O_NOFOLLOW: whatever check_location saw, the store root itself is never reached through a symlink.
    root_fd_ = sys::open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, root);
    struct stat st = sys::fstat_fd(root_fd_.get(), root);
    if (st.st_uid != ::geteuid()) {
        unsafe(root, "is owned by uid " + std::to_string(st.st_uid) + ", not by you");
    }
    if ((st.st_mode & 07777) != 0700 && ::fchmod(root_fd_.get(), 0700) != 0) throw_errno("chmod", root);
    lock_fd_ = sys::open_at(root_fd_.get(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0600, root + "/lock");
    for (const char* dir : layout_directories()) {
        sys::mkdir_at(root_fd_.get(), dir, 0700, true);
    }
    tmp_fd_ = sys::open_beneath(root_fd_.get(), "tmp", O_RDONLY | O_DIRECTORY);
    if (access == Access::Observe) return;

    // If nobody else is active, this process may clear what crashed processes left in tmp/.
    // (Access::Prune clears them itself, in prune_leftovers, to say what they were.)
    activity_ = sys::RangeLock::try_lock(lock_fd_.get(), kActivityLock, sys::LockMode::Exclusive, root + "/lock");
    if (activity_.locked()) {
        if (access != Access::Prune) clean_leftovers();
        if (access == Access::Shared) activity_.convert(sys::LockMode::Shared);
    } else {
        activity_ = sys::RangeLock(lock_fd_.get(), kActivityLock,
                                   access == Access::Shared ? sys::LockMode::Shared : sys::LockMode::Exclusive,
                                   root + "/lock");
        if (access == Access::Exclusive) clean_leftovers();
    }
}

namespace {

constexpr const char* kContainerPidFile = "container.pid";

// A container's writable layer in tmp/ names its process in "container.pid" ("PID STARTTIME"): while
// that process lives (same start time: pids are reused), nothing may delete the layer under it.
// The pid of the live process container.pid names (and its start time), or 0. `run` is the process
// that runs the container (imgtool run, or run -d's monitor), 0 if gone.
int container_pid(int tmp_fd, const std::string& name, std::uint64_t* start_time = nullptr, int* run = nullptr,
                  std::uint64_t* run_start = nullptr) {
    int raw = ::openat(tmp_fd, (name + "/" + kContainerPidFile).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) return 0;
    sys::UniqueFd fd(raw);
    std::string text;
    try {
        text = sys::read_fd(fd.get(), name, 256);
    } catch (const Error&) {
        return 0;
    }
    unsigned long long pid = 0, start = 0, run_pid = 0, run_started = 0;
    int fields = std::sscanf(text.c_str(), "%llu %llu %llu %llu", &pid, &start, &run_pid, &run_started);
    if (fields < 2 || pid == 0 || pid > 0x7fffffff || run_pid > 0x7fffffff) return 0;
    auto now = sys::process_start_time(static_cast<int>(pid));
    if (start_time) *start_time = start;
    if (run && fields == 4) {
        *run = static_cast<int>(run_pid);
        *run_start = run_started;
    }
    return now && *now == start ? static_cast<int>(pid) : 0;
}

bool container_alive(int tmp_fd, const std::string& name) { return container_pid(tmp_fd, name) != 0; }

constexpr const char* kContainerKeptFile = "container.kept";

// A detached container's area stays after it stops, until `rm` (it holds the log and the writable
// layer a user may still want).
bool container_kept(int tmp_fd, const std::string& name) {
    struct stat st {};
    return ::fstatat(tmp_fd, (name + "/" + kContainerKeptFile).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

void Store::clean_leftovers(std::vector<Freed>* freed) {
    for (const std::string& name : sys::list_directory(tmp_fd_.get(), root_ + "/tmp")) {
        if (container_alive(tmp_fd_.get(), name)) {
            log::debug("keeping " + root_ + "/tmp/" + name + ": its container still runs");
            continue;
        }
        if (container_kept(tmp_fd_.get(), name)) continue;  // a stopped detached container: `rm` removes it
        log::debug("removing leftover " + root_ + "/tmp/" + name);
        if (freed) freed->push_back({"tmp/" + name, sys::tree_size_at(tmp_fd_.get(), name).bytes});
        sys::remove_tree_at(tmp_fd_.get(), name);  // never follows symlinks
    }
    // Stores written before every temporary moved to tmp/ may hold ".NAME.tmp-PID-HEX" files beside
    // their targets.
    for (const char* dir : {".", "blobs/sha256", "images", "mounts"}) {
        sys::UniqueFd fd = sys::open_beneath(root_fd_.get(), dir, O_RDONLY | O_DIRECTORY);
        for (const std::string& name : sys::list_directory(fd.get(), root_ + "/" + dir)) {
            if (name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos) {
                log::debug("removing leftover " + root_ + "/" + dir + "/" + name);
                if (freed) freed->push_back({std::string(dir) + "/" + name, sys::tree_size_at(fd.get(), name).bytes});
                ::unlinkat(fd.get(), name.c_str(), 0);
            }
        }
    }
}

bool Store::has_blob(const Digest& d) const {
    return exists(root_fd_.get(), "blobs/sha256/" + d.hex());
}

void Store::put_blob(const Digest& d, std::string_view bytes) {
    Digest got = digest::Sha256::of(bytes);
    if (got != d) throw Error(Errc::DigestMismatch, "blob " + d.str() + ": digest mismatch: got " + got.str());
    if (has_blob(d)) return;
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "blobs/sha256", O_RDONLY | O_DIRECTORY);
    write_atomically(dir.get(), d.hex(), bytes, 0444, root_ + "/blobs/sha256/" + d.hex());
}

std::string Store::read_blob(const Digest& d) const {
    return sys::read_file_at(root_fd_.get(), "blobs/sha256/" + d.hex(), 64 << 20);
}

std::string Store::layer_dir(const Digest& diff_id) const { return root_ + "/layers/" + diff_id.hex() + "/diff"; }
std::string Store::skeleton_dir(const Digest& diff_id) const { return root_ + "/layers/" + diff_id.hex() + "/skel"; }

sys::UniqueFd Store::open_layer(const Digest& diff_id, bool skeleton) const {
    std::string rel = "layers/" + diff_id.hex() + (skeleton ? "/skel" : "/diff");
    // No symlink anywhere below the store root, and a directory: a tampered store cannot make a mount
    // stack the host's root or anything else outside the store.
    return with_context("layer " + diff_id.str(), [&] {
        return sys::open_beneath(root_fd_.get(), rel, O_PATH | O_DIRECTORY);
    });
}

sys::UniqueFd Store::open_empty() const { return sys::open_beneath(root_fd_.get(), "empty", O_PATH | O_DIRECTORY); }

std::vector<std::string> Store::implicit_dirs(const Digest& diff_id) const {
    std::vector<std::string> out;
    std::string name = "layers/" + diff_id.hex() + "/implicit.json";
    if (!exists(root_fd_.get(), name)) return out;
    json j = read_record(root_fd_.get(), name, kMaxImplicitBytes, root_ + "/" + name, "layer record");
    if (!j.is_array()) throw Error(Errc::Corrupt, root_ + "/" + name + ": corrupt layer record");
    for (const auto& path : j) {
        if (!path.is_string()) throw Error(Errc::Corrupt, root_ + "/" + name + ": corrupt layer record");
        out.push_back(path.get<std::string>());
    }
    return out;
}

bool Store::has_layer(const Digest& diff_id) const {
    return exists(root_fd_.get(), "layers/" + diff_id.hex());
}

std::optional<LayerInfo> Store::layer_info(const Digest& diff_id) const {
    std::string name = "layers/" + diff_id.hex() + "/layer.json";
    if (!exists(root_fd_.get(), name)) return std::nullopt;
    json j = read_record(root_fd_.get(), name, kMaxRecordBytes, root_ + "/" + name, "layer record");
    LayerInfo info{.diff_id = diff_id,
                   .size = j.value("size", std::uint64_t{0}),
                   .entries = j.value("entries", std::uint64_t{0}),
                   .blob_digest = std::nullopt,
                   .compression = j.value("compression", ""),
                   .root_opaque = j.value("root_opaque", false),
                   .skeleton = j.value("skeleton", false),
                   .implicit_dirs = j.value("implicit_dirs", std::uint64_t{0}),
                   .dropped_xattrs = j.value("dropped_xattrs", std::uint64_t{0})};
    if (j.contains("blob")) info.blob_digest = Digest::parse(j["blob"].get<std::string>());
    return info;
}

sys::RangeLock Store::lock_layer(const Digest& diff_id) {
    return sys::RangeLock(lock_fd_.get(), layer_lock_offset(diff_id), sys::LockMode::Exclusive, root_ + "/lock");
}

Staging Store::new_staging() {
    std::string name = sys::unique_name("layer-");
    sys::mkdir_at(tmp_fd_.get(), name, 0700, false);
    sys::UniqueFd dir = sys::open_beneath(tmp_fd_.get(), name, O_RDONLY | O_DIRECTORY);
    sys::mkdir_at(dir.get(), "diff", 0755, false);
    sys::UniqueFd diff = sys::open_beneath(dir.get(), "diff", O_RDONLY | O_DIRECTORY);
    return Staging(tmp_fd_.get(), root_ + "/tmp", name, std::move(dir), std::move(diff));
}

void Store::sync() {
    if (::syncfs(root_fd_.get()) != 0) throw_errno("syncfs", root_);
}

bool Store::commit_layer(Staging&& staging, const LayerInfo& info, const std::vector<std::string>& implicit) {
    json j = {{"diff_id", info.diff_id.str()}, {"size", info.size}, {"entries", info.entries},
              {"compression", info.compression}, {"root_opaque", info.root_opaque}, {"skeleton", info.skeleton},
              {"implicit_dirs", info.implicit_dirs}, {"dropped_xattrs", info.dropped_xattrs}};
    if (info.blob_digest) j["blob"] = info.blob_digest->str();
    std::string shown = root_ + "/layers/" + info.diff_id.hex();
    write_atomically(staging.dir_fd(), "layer.json", j.dump(), 0444, shown + "/layer.json");
    if (!implicit.empty()) {
        write_atomically(staging.dir_fd(), "implicit.json", json(implicit).dump(-1, ' ', false, json::error_handler_t::replace),
                         0444, shown + "/implicit.json");
    }
    sys::UniqueFd layers = sys::open_beneath(root_fd_.get(), "layers", O_RDONLY | O_DIRECTORY);
    if (::renameat(tmp_fd_.get(), staging.name_.c_str(), layers.get(), info.diff_id.hex().c_str()) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) return false;  // a racing writer won: ours is discarded
        throw_errno("rename", root_ + "/layers/" + info.diff_id.hex());
    }
    staging.name_.clear();
    sys::fsync_fd(layers.get(), root_ + "/layers");
    return true;
}

sys::RangeLock Store::lock_metadata() {
    return sys::RangeLock(lock_fd_.get(), kMetadataLock, sys::LockMode::Exclusive, root_ + "/lock");
}

std::vector<ImageRecord> Store::images() const {
    std::vector<ImageRecord> out;
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "images", O_RDONLY | O_DIRECTORY);
    for (const std::string& name : sys::list_directory(dir.get(), root_ + "/images")) {
        if (name.size() != 69 || name.substr(64) != ".json" || !is_lower_hex(name.substr(0, 64))) continue;
        // One unreadable record must not hide every other image (or block `rm` of it by full ID).
        try {
            if (auto r = image(Digest::sha256_hex(name.substr(0, 64)))) out.push_back(*r);
        } catch (const Error& e) {
            log::notice(std::string("skipping ") + e.what());
        }
    }
    return out;
}

std::optional<ImageRecord> Store::image(const Digest& id) const {
    std::string name = "images/" + id.hex() + ".json";
    if (!exists(root_fd_.get(), name)) return std::nullopt;
    json j = read_record(root_fd_.get(), name, kMaxRecordBytes, root_ + "/" + name, "image record");
    return record_from_json(j, root_ + "/" + name);
}

void Store::save_image(const ImageRecord& record) {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "images", O_RDONLY | O_DIRECTORY);
    write_atomically(dir.get(), record.id.hex() + ".json", record_to_json(record).dump(2) + "\n", 0600,
                     root_ + "/images/" + record.id.hex() + ".json");
}

std::map<std::string, Digest> Store::tags() const {
    std::map<std::string, Digest> out;
    if (!exists(root_fd_.get(), "tags.json")) return out;
    json j = read_record(root_fd_.get(), "tags.json", kMaxTagsBytes, root_ + "/tags.json", "tag record");
    if (!j.is_object()) throw Error(Errc::Corrupt, root_ + "/tags.json: corrupt tag record");
    for (auto& [name, id] : j.items()) out.emplace(name, Digest::parse(id.get<std::string>()));
    return out;
}

namespace {

std::string tags_document(const std::map<std::string, Digest>& tags) {
    json j = json::object();
    for (const auto& [name, id] : tags) j[name] = id.str();
    return j.dump(2) + "\n";
}

}  // namespace

void Store::check_tags_fit(const std::map<std::string, Digest>& tags) const {
    // Each line is `  "name": "sha256:<64 hex>",` : an estimate without building the document.
    std::uint64_t bytes = 4;
    for (const auto& [name, id] : tags) bytes += name.size() + id.str().size() + 10;
    if (bytes > kMaxTagsBytes) {
        throw Error(Errc::Unsupported, root_ + "/tags.json: the store would hold " + std::to_string(tags.size()) +
                                           " tags (" + std::to_string(bytes) + " bytes, at most " +
                                           std::to_string(kMaxTagsBytes) + "): remove images or tags first");
    }
}

void Store::save_tags(const std::map<std::string, Digest>& tags) {
    check_tags_fit(tags);
    write_atomically(root_fd_.get(), "tags.json", tags_document(tags), 0600, root_ + "/tags.json");
}

ImageRecord Store::resolve(std::string_view reference) const {
    std::string ref(reference);
    std::optional<image::LocalLookup> lookup;
    auto no_such = [&](const std::string& why = {}) {
        std::string shown = ref.empty() ? std::string("\"\" (an empty reference)") : printable(ref);
        if (!why.empty()) return Error(Errc::NotFound, "no such image: " + shown + " (" + why + ")");
        // The nearest stored name, compared with the name as the store would hold it.
        std::vector<std::string> names;
        for (const auto& [name, id] : tags()) names.push_back(name);
        std::vector<std::string> wanted = lookup && !lookup->names.empty() ? lookup->names : std::vector<std::string>{ref};
        for (const auto& w : wanted) {
            if (std::string near = closest_match(w, names, 3); !near.empty()) {
                return Error(Errc::NotFound, "no such image: " + shown + " (did you mean " + printable(near) + "?)");
            }
        }
        return Error(Errc::NotFound, "no such image: " + shown);
    };
    if (ref.empty()) throw no_such();
    bool prefixed = ref.rfind("sha256:", 0) == 0;
    std::string hex = prefixed ? ref.substr(7) : ref;
    bool id_like = hex.size() >= 4 && hex.size() <= 64 && is_lower_hex(hex);
    // A full ID always means that image: a tag spelled like an ID (refused at import, but stores may be
    // old) can never shadow it.
    if (id_like && hex.size() == 64) {
        if (auto r = image(Digest::sha256_hex(hex))) return *r;
        throw no_such();
    }
    if (!prefixed) {
        // The names the reference may mean, in order (image::local_lookup, docs/store.md "Names"):
        // docker's normalised name ("bb", "library/bb", "docker.io/library/bb:latest" are all stored as
        // "bb:latest"), podman's localhost/ name, then the text as typed (stores of older imgtools).
        lookup = image::local_lookup(ref);
        // NAME@sha256:...: the image a registry pull recorded under that digest.
        if (lookup->repo_digest) {
            for (const auto& record : images()) {
                if (std::find(record.repo_digests.begin(), record.repo_digests.end(), *lookup->repo_digest) !=
                    record.repo_digests.end()) {
                    return record;
                }
            }
            throw no_such();
        }
        auto all_tags = tags();
        for (const std::string& name : lookup->names) {
            auto it = all_tags.find(name);
            if (it == all_tags.end()) continue;
            auto r = image(it->second);
            if (!r) continue;
            // A tag spelled like another image's short ID (an image author can choose its tags):
            // name both rather than run either.
            if (id_like) {
                for (const auto& other : images()) {
                    if (other.id != r->id && other.id.hex().compare(0, hex.size(), hex) == 0) {
                        throw Error(Errc::Ambiguous, "image reference " + printable(ref) + " is both the tag " +
                                                         name + " (image " + r->id.short_hex() +
                                                         ") and a prefix of image " + other.id.short_hex() +
                                                         "'s ID: use the full ID or NAME:TAG");
                    }
                }
            }
            return *r;
        }
    }
    if (!id_like) {
        if (!hex.empty() && hex.size() < 4 && is_lower_hex(hex)) {
            throw no_such("an ID prefix needs at least 4 hex characters");
        }
        throw no_such();
    }
    std::vector<ImageRecord> matches;
    for (auto& r : images()) {
        if (r.id.hex().compare(0, hex.size(), hex) == 0) matches.push_back(r);
    }
    if (matches.empty()) throw no_such();
    if (matches.size() > 1) {
        throw Error(Errc::Ambiguous, "image reference " + printable(ref) + " is ambiguous (" +
                                         std::to_string(matches.size()) + " images match)");
    }
    return matches.front();
}

std::optional<sys::UniqueFd> Store::open_partial(const Digest& blob, const std::string& origin) {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "partial", O_RDONLY | O_DIRECTORY);
    // Named by blob and origin: bytes one registry sent never become the prefix of another's blob.
    const std::string name = blob.hex() + "-" + digest::Sha256::of(origin).hex().substr(0, 16);
    const std::string shown = root_ + "/partial/" + name;
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto [fd, err] = sys::try_open_beneath(dir.get(), name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0600);
        if (!err) {
            struct stat st = sys::fstat_fd(fd.get(), shown);
            if (S_ISREG(st.st_mode) && st.st_nlink == 1) {
                if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                    if (errno == EWOULDBLOCK) return std::nullopt;  // another pull of this blob keeps it
                    throw_errno("flock", shown);
                }
                return std::move(fd);
            }
        }
        // Not a file this store made (a symlink, a FIFO, a directory, a hard link to a file elsewhere):
        // removed, never written through, and made again.
        log::debug(shown + ": not a partial download of this store; replaced");
        sys::remove_tree_at(dir.get(), name);
    }
    return std::nullopt;
}

void Store::remove_partial(const Digest& blob) {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "partial", O_RDONLY | O_DIRECTORY);
    for (const std::string& name : sys::list_directory(dir.get(), root_ + "/partial")) {
        if (name.rfind(blob.hex(), 0) != 0) continue;
        if (::unlinkat(dir.get(), name.c_str(), 0) != 0 && errno != ENOENT) throw_errno("unlink", root_ + "/partial/" + name);
    }
}

void Store::prune_partials(std::int64_t max_age_seconds) {
    sys::UniqueFd dir = sys::open_beneath(root_fd_.get(), "partial", O_RDONLY | O_DIRECTORY);
    const std::int64_t now = ::time(nullptr);
    for (const std::string& name : sys::list_directory(dir.get(), root_ + "/partial")) {
        auto [fd, err] = sys::try_open_beneath(dir.get(), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        if (err) {
            ::unlinkat(dir.get(), name.c_str(), 0);  // not a file we made (a symlink, a FIFO...): it goes
            continue;
        }
        struct stat st = sys::fstat_fd(fd.get(), name);
        if (max_age_seconds > 0 && now - st.st_mtime < max_age_seconds) continue;
        // Held by a pull that is using it: left alone.
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
        ::unlinkat(dir.get(), name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
    }
}

void Store::remove_image(const Digest& id) {
    prune_partials(0);  // rm is the user's way to reclaim space: interrupted downloads go too
    if (access_ != Access::Exclusive && access_ != Access::Prune) throw Error(Errc::Busy, "remove needs exclusive access to the store");
    auto record = image(id);
    if (!record) throw Error(Errc::NotFound, "no such image: " + id.str());
    // Record and tags first: once they are gone the image is gone, even if layer removal is cut short.
    remove_image_record(id);

    std::set<Digest> still_used;
    std::set<Digest> blobs_used;
    for (const auto& other : images()) {
        still_used.insert(other.layers.begin(), other.layers.end());
        blobs_used.insert(other.id);
        if (other.manifest_digest) blobs_used.insert(*other.manifest_digest);
    }
    sys::UniqueFd blobs = sys::open_beneath(root_fd_.get(), "blobs/sha256", O_RDONLY | O_DIRECTORY);
    for (const auto& blob : {std::optional<Digest>(record->id), record->manifest_digest}) {
        if (blob && !blobs_used.count(*blob) && ::unlinkat(blobs.get(), blob->hex().c_str(), 0) != 0 && errno != ENOENT) {
            throw_errno("unlink", root_ + "/blobs/sha256/" + blob->hex());
        }
    }
    // Its init layer (none in stores older than init layers, or before its first run).
    if (::faccessat(root_fd_.get(), ("inits/" + id.hex()).c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        sys::UniqueFd inits = sys::open_beneath(root_fd_.get(), "inits", O_RDONLY | O_DIRECTORY);
        std::string trash = sys::unique_name("trash-");
        if (::renameat(inits.get(), id.hex().c_str(), tmp_fd_.get(), trash.c_str()) != 0) {
            throw_errno("rename", root_ + "/inits/" + id.hex());
        }
        sys::remove_tree_at(tmp_fd_.get(), trash);
    }
    sys::UniqueFd layers = sys::open_beneath(root_fd_.get(), "layers", O_RDONLY | O_DIRECTORY);
    for (const Digest& layer : record->layers) {
        if (still_used.count(layer) || !has_layer(layer)) continue;
        // Rename out of layers/ first so a half-removed layer is never visible under its name.
        std::string trash = sys::unique_name("trash-");
        if (::renameat(layers.get(), layer.hex().c_str(), tmp_fd_.get(), trash.c_str()) != 0) {
            throw_errno("rename", root_ + "/layers/" + layer.hex());
        }
        sys::remove_tree_at(tmp_fd_.get(), trash);
    }
}


void Store::remove_image_record(const Digest& id) {
    if (access_ != Access::Exclusive && access_ != Access::Prune) throw Error(Errc::Busy, "remove needs exclusive access to the store");
    auto all_tags = tags();
    if (std::erase_if(all_tags, [&](const auto& kv) { return kv.second == id; }) > 0) save_tags(all_tags);
    sys::UniqueFd images_dir = sys::open_beneath(root_fd_.get(), "images", O_RDONLY | O_DIRECTORY);
    if (::unlinkat(images_dir.get(), (id.hex() + ".json").c_str(), 0) != 0) throw_errno("unlink", id.str());
    sys::fsync_fd(images_dir.get(), root_ + "/images");
}

// ---- tags ----

std::optional<Digest> Store::set_tag(const std::string& name, const Digest& id) {
    auto lock = lock_metadata();
    auto all = tags();
    std::optional<Digest> before;
    if (auto it = all.find(name); it != all.end() && it->second != id) before = it->second;
    all.insert_or_assign(name, id);
    save_tags(all);
    return before;
}

bool Store::untag(const std::string& name, const Digest& id) {
    auto lock = lock_metadata();
    auto all = tags();
    auto it = all.find(name);
    if (it == all.end() || it->second != id) return false;
    all.erase(it);
    save_tags(all);
    return true;
}

std::vector<std::string> Store::tags_of(const Digest& id) const {
    std::vector<std::string> out;
    for (const auto& [name, target] : tags()) {
        if (target == id) out.push_back(name);
    }
    return out;
}

std::map<std::string, Digest> Store::commit_images(const std::vector<ImageCommit>& images) {
    auto lock = lock_metadata();
    auto all = tags();
    const auto before = all;
    std::map<std::string, Digest> moved;
    for (const auto& image : images) {
        for (const auto& name : image.tags) {
            auto [it, fresh] = all.try_emplace(name, image.record.id);
            if (!fresh && it->second != image.record.id) {
                moved.insert_or_assign(name, it->second);
                it->second = image.record.id;
            }
        }
    }
    check_tags_fit(all);  // before anything is written
    bool tagged = false;
    for (const auto& image : images) {
        if (image.manifest_bytes && image.record.manifest_digest) put_blob(*image.record.manifest_digest, *image.manifest_bytes);
        put_blob(image.record.id, image.config_bytes);
        ImageRecord record = image.record;
        // The same image re-imported without a (verified) manifest keeps the one it has.
        std::optional<ImageRecord> existing = this->image(record.id);
        if (existing) {
            if (!record.manifest_digest) record.manifest_digest = existing->manifest_digest;
            // Every registry digest the image was pulled by stays, newest first, bounded like its tags.
            for (const auto& d : existing->repo_digests) {
                if (record.repo_digests.size() >= kMaxRepoDigests) break;
                if (std::find(record.repo_digests.begin(), record.repo_digests.end(), d) == record.repo_digests.end()) {
                    record.repo_digests.push_back(d);
                }
            }
        }
        // A re-pull of an unchanged image writes nothing (each write is an fsync'd rename).
        if (!existing || record_to_json(*existing) != record_to_json(record)) save_image(record);
        tagged = tagged || !image.tags.empty();
    }
    if (tagged && all != before) save_tags(all);
    // A name moved from an image to another image of the same batch is not news.
    for (auto it = moved.begin(); it != moved.end();) {
        bool ours = false;
        for (const auto& image : images) ours = ours || image.record.id == it->second;
        it = ours ? moved.erase(it) : std::next(it);
    }
    return moved;
}

// ---- containers ----

std::pair<sys::UniqueFd, std::string> Store::image_init_layer(const Digest& id,
                                                              const std::function<void(int dir_fd)>& fill) {
    sys::UniqueFd inits = sys::open_beneath(root_fd_.get(), "inits", O_RDONLY | O_DIRECTORY);
    const std::string name = id.hex();
    const std::string path = root_ + "/inits/" + name;
    int raw = ::openat(inits.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw >= 0) return {sys::UniqueFd(raw), path};
    if (errno != ENOENT) throw_errno("open", path);
    const std::string made = sys::unique_name("init-");
    sys::mkdir_at(tmp_fd_.get(), made, 0755, false);
    try {
        sys::UniqueFd dir = sys::open_beneath(tmp_fd_.get(), made, O_RDONLY | O_DIRECTORY);
        fill(dir.get());
        // ENOTEMPTY/EEXIST: another run made it meanwhile; theirs is as good.
        if (::renameat(tmp_fd_.get(), made.c_str(), inits.get(), name.c_str()) != 0) {
            if (errno != ENOTEMPTY && errno != EEXIST) throw_errno("rename", path);
            sys::remove_tree_at(tmp_fd_.get(), made);
        }
    } catch (...) {
        sys::remove_tree_at(tmp_fd_.get(), made);
        throw;
    }
    return {sys::open_beneath(inits.get(), name, O_PATH | O_DIRECTORY), path};
}

Store::ContainerArea Store::new_container_area() {
    Staging staging = new_staging();  // diff/ is the writable layer's upper
    sys::mkdir_at(staging.dir_fd(), "root", 0755, false);
    sys::mkdir_at(staging.dir_fd(), "work", 0700, false);
    return ContainerArea(std::move(staging));
}

namespace {
constexpr const char* kContainerRecordFile = "container.json";
constexpr const char* kContainerLogFile = "container.log";
constexpr const char* kContainerExitFile = "container.exit";
}  // namespace

void Store::ContainerArea::write_record(const Container& record, bool kept) {
    json doc = {{"Id", record.id}, {"Name", record.name}, {"Image", record.image.str()},
                {"ImageName", record.image_name}, {"Command", record.command},
                {"Created", record.created.empty() ? utc_now_rfc3339() : record.created}};
    if (!record.process.empty()) doc["Process"] = json::parse(record.process);
    std::string text = doc.dump();
    sys::UniqueFd fd = sys::open_at(staging_.dir_fd(), kContainerRecordFile, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0644,
                                    kContainerRecordFile);
    if (::flock(fd.get(), LOCK_SH) != 0) throw_errno("lock", kContainerRecordFile);
    sys::write_all(fd.get(), text.data(), text.size(), kContainerRecordFile);
    record_fd_ = std::move(fd);
    if (kept) {
        // Marked before anything runs: from here on no cleaner takes the area, and only `rm` removes it.
        sys::open_at(staging_.dir_fd(), kContainerKeptFile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, kContainerKeptFile);
        staging_.keep();
    }
}

sys::UniqueFd Store::ContainerArea::open_log() const {
    return sys::open_at(staging_.dir_fd(), kContainerLogFile, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0640,
                        kContainerLogFile);
}

void Store::ContainerArea::record_exit(int status) const {
    std::string text = std::to_string(status) + " " + utc_now_rfc3339() + "\n";
    sys::UniqueFd fd = sys::open_at(staging_.dir_fd(), kContainerExitFile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
                                    0644, kContainerExitFile);
    sys::write_all(fd.get(), text.data(), text.size(), kContainerExitFile);
    ::unlinkat(staging_.dir_fd(), kContainerPidFile, 0);
}

std::vector<Store::Container> Store::containers(bool all) const {
    std::vector<Container> found;
    for (const std::string& name : sys::list_directory(tmp_fd_.get(), root_ + "/tmp")) {
        std::uint64_t start_time = 0, run_start = 0;
        int run = 0;
        int pid = container_pid(tmp_fd_.get(), name, &start_time, &run, &run_start);
        int raw = ::openat(tmp_fd_.get(), (name + "/" + kContainerRecordFile).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (raw < 0) continue;
        sys::UniqueFd fd(raw);
        bool kept = container_kept(tmp_fd_.get(), name);
        // Starting (run holds the record's lock) or running (its process lives); else stopped (kept)
        // or a leftover.
        bool starting = pid == 0 && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0;
        ContainerState state = pid ? ContainerState::Running : starting ? ContainerState::Created : ContainerState::Exited;
        if (state == ContainerState::Exited && !(all && kept)) continue;
        try {
            json doc = json::parse(sys::read_fd(fd.get(), kContainerRecordFile, 1 << 20));
            Container c{.id = doc.at("Id").get<std::string>(),
                        .name = doc.value("Name", ""),
                        .image = Digest::parse(doc.at("Image").get<std::string>()),
                        .image_name = doc.at("ImageName").get<std::string>(),
                        .command = doc.at("Command").get<std::vector<std::string>>(),
                        .created = doc.value("Created", ""),
                        .pid = pid,
                        .start_time = pid ? start_time : 0,
                        .run_pid = pid ? run : 0,
                        .run_start_time = pid ? run_start : 0,
                        .state = state,
                        .kept = kept,
                        .exit_code = -1,
                        .finished = {},
                        .area = name,
                        .process = doc.contains("Process") ? doc["Process"].dump() : std::string()};
            if (state == ContainerState::Exited) {
                int exit_fd = ::openat(tmp_fd_.get(), (name + "/" + kContainerExitFile).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (exit_fd >= 0) {
                    sys::UniqueFd owned(exit_fd);
                    std::string text = sys::read_fd(owned.get(), kContainerExitFile, 256);
                    char when[64] = "";
                    if (std::sscanf(text.c_str(), "%d %63s", &c.exit_code, when) >= 1) c.finished = when;
                }
            }
            found.push_back(std::move(c));
        } catch (const std::exception& e) {
            // An area of an older imgtool, or one cut short: not ours to describe.
            log::debug("container area " + name + ": " + e.what());
        }
    }
    return found;
}

Store::Container Store::find_container(const std::string& ref, bool all) const {
    std::vector<Container> matches;
    for (auto& c : containers(all)) {
        if (!ref.empty() && c.name == ref) return c;  // a name wins, as in docker
        if (!ref.empty() && c.id.rfind(ref, 0) == 0) matches.push_back(std::move(c));
    }
    if (matches.empty()) throw Error(Errc::NotFound, "no such container: " + printable(ref));
    if (matches.size() > 1) throw Error(Errc::InvalidArgument, "container ID prefix " + printable(ref) + " is ambiguous");
    return matches.front();
}

void Store::remove_container(const Container& container) {
    if (container.state != ContainerState::Exited || container_alive(tmp_fd_.get(), container.area)) {
        throw Error(Errc::Busy, "container " + container.id.substr(0, 12) + " is running: stop it first, or rm -f");
    }
    // Claimed first, so a second `rm` or a reader sees it go at once; then removed (never following
    // symlinks: the writable layer holds whatever the container wrote).
    std::string doomed = sys::unique_name(".removing-");
    if (::renameat(tmp_fd_.get(), container.area.c_str(), tmp_fd_.get(), doomed.c_str()) != 0) {
        throw_errno("rename", root_ + "/tmp/" + container.area);
    }
    sys::remove_tree_at(tmp_fd_.get(), doomed);
}

sys::UniqueFd Store::open_container_file(const Container& container, const std::string& name) const {
    return sys::open_beneath(tmp_fd_.get(), container.area + "/" + name, O_RDONLY);
}

std::string Store::ContainerArea::write_file(const std::string& name, std::string_view data) const {
    sys::UniqueFd fd = sys::open_at(staging_.dir_fd(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, name);
    sys::write_all(fd.get(), data.data(), data.size(), name);
    return staging_.path() + "/" + name;
}

void Store::ContainerArea::record_process(int pid) const {
    auto start = sys::process_start_time(pid);
    if (!start) throw Error(Errc::NotFound, "container process " + std::to_string(pid) + " is gone");
    auto own_start = sys::process_start_time(::getpid());
    std::string text = std::to_string(pid) + " " + std::to_string(*start) + " " + std::to_string(::getpid()) + " " +
                       std::to_string(own_start.value_or(0)) + "\n";
    std::string temp = sys::unique_name(".container.pid.");
    sys::UniqueFd fd = sys::open_at(staging_.dir_fd(), temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, kContainerPidFile);
    try {
        sys::write_all(fd.get(), text.data(), text.size(), kContainerPidFile);
        // Whoever reads it sees all of it or none of it (no fsync: the container would not survive a
        // crash of the machine either).
        if (::renameat(staging_.dir_fd(), temp.c_str(), staging_.dir_fd(), kContainerPidFile) != 0) {
            throw_errno("rename", kContainerPidFile);
        }
    } catch (...) {
        ::unlinkat(staging_.dir_fd(), temp.c_str(), 0);
        throw;
    }
}

// ---- rootless ----

void Store::check_id_map(const std::string& current) {
    constexpr const char* kIdMapFile = "idmap";
    std::string recorded;
    if (exists(root_fd_.get(), kIdMapFile)) recorded = sys::read_file_at(root_fd_.get(), kIdMapFile, 1 << 16);
    if (recorded == current) return;
    sys::UniqueFd layers = sys::open_beneath(root_fd_.get(), "layers", O_RDONLY | O_DIRECTORY);
    if (!recorded.empty() && !sys::directory_is_empty(layers.get(), root_ + "/layers")) {
        throw Error(Errc::InvalidArgument,
                    root_ + ": this store was unpacked under another id map than yours now (your ranges in "
                            "/etc/subuid or /etc/subgid changed, or uidmap was installed or removed): its owners "
                            "would be wrong; remove it (imgtool unshare rm -rf " + root_ + ") and pull again");
    }
    write_root_file(kIdMapFile, current);
}

}  // namespace imgtool::store
