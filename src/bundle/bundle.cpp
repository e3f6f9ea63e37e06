#include "imgtool/bundle/bundle.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <optional>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/runtime_spec.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/process.hpp"
#include "imgtool/view/mounts.hpp"

namespace imgtool::bundle {
namespace {

// The names bundle writes beside rootfs, besides the marker.
const char* const kFiles[] = {"config.json", "hosts", "hostname", "resolv.conf"};

// DIR opened without following a symlink at its last component (O_NOFOLLOW: ELOOP for a symlink).
sys::UniqueFd open_dir_nofollow(const std::string& dir) {
    int raw = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) {
        if (errno == ELOOP) throw Error(Errc::InvalidArgument, dir + ": a symbolic link (give the directory itself)");
        if (errno == ENOTDIR) throw Error(Errc::InvalidArgument, dir + ": not a directory");
        throw_errno("open", dir);
    }
    return sys::UniqueFd(raw);
}

// "DIR/" names what DIR points to: the trailing slash would make a symlink's target the bundle.
std::string without_trailing_slashes(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir;
}

bool is_empty_dir(int fd, const std::string& shown) {
    int copy = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (copy < 0) throw_errno("open", shown);
    DIR* d = ::fdopendir(copy);
    if (!d) {
        ::close(copy);
        throw_errno("opendir", shown);
    }
    bool empty = true;
    while (struct dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (name != "." && name != "..") {
            empty = false;
            break;
        }
    }
    ::closedir(d);
    return empty;
}

// A new file in the bundle: never over anything (O_EXCL), never through a symlink.
void write_new(int dirfd, const std::string& name, std::string_view data, const std::string& shown) {
    sys::UniqueFd fd = sys::open_at(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644, shown);
    sys::write_all(fd.get(), data.data(), data.size(), shown);
    if (::fsync(fd.get()) != 0) throw_errno("fsync", shown);
}

// An account file of the image, as run reads it: inside the root (symlinks resolve there), a FIFO or
// an absent file counting as none.
std::string read_image_file(int root_fd, const std::string& path) {
    auto [fd, err] = sys::try_open_in_root(root_fd, path, O_RDONLY | O_NONBLOCK);
    if (err) return {};
    return sys::read_fd(fd.get(), path, 4 << 20);
}

// docker >= 28.0.2 masks each CPU's thermal_throttle, as run does (read from this host's sysfs).
std::vector<std::string> thermal_throttle_paths() {
    std::vector<std::string> paths;
    if (DIR* cpus = ::opendir("/sys/devices/system/cpu")) {
        while (struct dirent* e = ::readdir(cpus)) {
            std::string name = e->d_name;
            if (name.size() > 3 && name.compare(0, 3, "cpu") == 0 && std::isdigit(static_cast<unsigned char>(name[3]))) {
                struct stat st {};
                std::string path = "/sys/devices/system/cpu/" + name + "/thermal_throttle";
                if (::stat(path.c_str(), &st) == 0) paths.push_back(path);
            }
        }
        ::closedir(cpus);
    }
    return paths;
}

// What make_bundle has done so far, undone in reverse if it fails.
struct Undo {
    Undo(store::Store& s, std::string d) : store(s), dir(std::move(d)) {}
    Undo(const Undo&) = delete;
    Undo& operator=(const Undo&) = delete;

    store::Store& store;
    std::string dir;
    int dirfd = -1;
    bool made_dir = false;
    bool made_rootfs = false;
    std::optional<mode_t> old_mode;  // an existing DIR's mode before bundle set 0700
    std::string mounted;  // the rootfs's canonical path once mounted
    std::vector<std::string> files;
    bool armed = true;

    ~Undo() {
        if (!armed) return;
        try {
            if (!mounted.empty()) {
                if (auto record = view::find_mount(store, mounted)) {
                    auto lock = store.lock_mount(record->name, true);
                    view::undo_mount(store, *record);
                }
            }
        } catch (const Error&) {  // the first error is the one reported
        }
        for (auto it = files.rbegin(); it != files.rend(); ++it) ::unlinkat(dirfd, it->c_str(), 0);
        if (made_rootfs) ::unlinkat(dirfd, "rootfs", AT_REMOVEDIR);
        if (made_dir) ::rmdir(dir.c_str());
        if (old_mode) (void)::fchmod(dirfd, *old_mode);
    }
};

}  // namespace

Bundle make_bundle(store::Store& store, std::string_view reference, BundleRequest request) {
    if (rootless::active()) {
        throw Error(Errc::Unsupported,
                    "as an ordinary user: not supported yet (a rootless config.json needs a user namespace and "
                    "the id mappings of imgtool's store; docs/bundle.md)");
    }
    // Everything that can be refused for its options is, before DIR is touched.
    const store::ImageRecord image = store.resolve(reference);
    image::ImageConfig config = image::parse_config(store.read_blob(image.id), "config " + image.id.str());
    launch::RunOptions& options = request.options;
    if (options.default_hostname.empty()) options.default_hostname = sys::new_container_id().substr(0, 12);
    launch::LaunchSpec spec = launch::spec_from_image(config.config, options);
    const std::string hosts = launch::hosts_file(spec.hostname, options.add_hosts);
    const std::string resolv = launch::resolv_conf(request.host_resolv, spec.new_network, options.dns, options.dns_search);
    for (const auto& v : spec.volumes) {
        if (v.host.empty() || v.host[0] != '/') {
            throw Error(Errc::InvalidArgument, "-v " + printable(v.host) + ": the host path must be absolute in a bundle");
        }
    }

    const std::string dir = without_trailing_slashes(request.dir);
    if (dir.empty()) throw Error(Errc::InvalidArgument, "DIR is empty");
    // Root writes config.json there and a runtime runs it as root, with a rootfs that honours setuid:
    // DIR must be the caller's, in directories only root or the caller can change (the store's rule).
    store::Store::check_private_location(dir, "bundle directory",
                                         "another user could replace what the runtime runs; choose a directory of yours");
    sys::UniqueFd dirfd;  // declared before undo: its destructor still uses the fd
    Undo undo(store, dir);
    auto [st, err] = sys::try_lstat_at(AT_FDCWD, dir);
    if (err == ENOENT) {
        // The parent must exist; 0700: the rootfs honours setuid bits (as run's root does).
        if (::mkdir(dir.c_str(), 0700) != 0) throw_errno("mkdir", dir);
        undo.made_dir = true;
    } else if (err) {
        throw_errno(err, "stat", dir);
    } else if (S_ISLNK(st.st_mode)) {
        throw Error(Errc::InvalidArgument, dir + ": a symbolic link (give the directory itself)");
    } else if (!S_ISDIR(st.st_mode)) {
        throw Error(Errc::InvalidArgument, dir + ": exists and is not a directory");
    }
    dirfd = open_dir_nofollow(dir);
    undo.dirfd = dirfd.get();
    if (!undo.made_dir) {
        if (!is_empty_dir(dirfd.get(), dir)) throw Error(Errc::InvalidArgument, dir + ": not empty (DIR must be absent or an empty directory)");
        if (::fchmod(dirfd.get(), 0700) != 0) throw_errno("chmod", dir);
        undo.old_mode = st.st_mode & 07777;
    }
    Bundle bundle;
    bundle.dir = view::canonical_path(dir);
    bundle.rootfs = bundle.dir + "/rootfs";

    // The marker first: whatever a crash leaves, bundle --rm recognises.
    write_new(dirfd.get(), kMarker, "imgtool bundle\nimage " + image.id.str() + "\nmade_dir " + (undo.made_dir ? "1" : "0") + "\n",
              bundle.dir + "/" + kMarker);
    undo.files.push_back(kMarker);
    sys::mkdir_at(dirfd.get(), "rootfs", 0755, false);
    undo.made_rootfs = true;

    view::MountRequest mount;
    mount.target = bundle.rootfs;
    mount.driver = request.driver;
    mount.writable = true;  // runtimes write to the root; a store-owned upper, gone at umount
    mount.suid = true;      // as run's root: setuid programs work; nodev as run's (device nodes are the runtime's)
    view::clean_stale_mounts(store);
    view::mount_image(store, image, mount);
    undo.mounted = bundle.rootfs;

    sys::UniqueFd root = sys::open_at(dirfd.get(), "rootfs", O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, bundle.rootfs);
    launch::RuntimeSpecInputs inputs;
    inputs.user = launch::resolve_user(spec.user, launch::parse_passwd(read_image_file(root.get(), "/etc/passwd")),
                                       launch::parse_group(read_image_file(root.get(), "/etc/group")));
    inputs.extra_masked = thermal_throttle_paths();
    inputs.platform = options.seccomp_platform;
    // docker's init layer, bound over the image's files by config.json (absolute: runc and crun resolve
    // a relative bind source differently).
    const std::pair<const char*, std::string> own[] = {
        {"hosts", hosts}, {"hostname", spec.hostname + "\n"}, {"resolv.conf", resolv}};
    for (const auto& [name, text] : own) {
        write_new(dirfd.get(), name, text, bundle.dir + "/" + name);
        undo.files.push_back(name);
        spec.own_files.push_back({bundle.dir + "/" + name, std::string("/etc/") + name});
    }
    write_new(dirfd.get(), "config.json", launch::runtime_spec_json(spec, inputs), bundle.dir + "/config.json");
    undo.files.push_back("config.json");
    undo.armed = false;
    return bundle;
}

std::vector<std::string> remove_bundle(store::Store& store, const std::string& given) {
    const std::string dir = without_trailing_slashes(given);
    auto [st, err] = sys::try_lstat_at(AT_FDCWD, dir);
    if (err) throw_errno(err, "stat", dir);
    if (S_ISLNK(st.st_mode)) throw Error(Errc::InvalidArgument, dir + ": a symbolic link (give the directory itself)");
    sys::UniqueFd dirfd = open_dir_nofollow(dir);
    const std::string canonical = view::canonical_path(dir);
    auto [marker, merr] = sys::try_open_beneath(dirfd.get(), kMarker, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    std::string text;
    if (!merr) text = sys::read_fd(marker.get(), canonical + "/" + kMarker, 4096);
    if (merr || text.rfind("imgtool bundle\n", 0) != 0) {
        throw Error(Errc::InvalidArgument, canonical + ": not a bundle made by `imgtool bundle` (no " + kMarker + ")");
    }
    const bool made_dir = text.find("\nmade_dir 1\n") != std::string::npos;

    std::vector<std::string> left;
    if (auto record = view::find_mount(store, canonical + "/rootfs")) {
        auto lock = store.lock_mount(record->name, true);
        view::undo_mount(store, *record);
    } else if (auto [rootfs, rerr] = sys::try_lstat_at(dirfd.get(), "rootfs"); !rerr && S_ISDIR(rootfs.st_mode) &&
               rootfs.st_dev != st.st_dev) {
        // A rootfs this store did not mount (another --root's): nothing is touched, not even the files,
        // so that the right store's --rm can still undo it all.
        throw view::not_mounted_error(store, canonical + "/rootfs", canonical + "/rootfs");
    }
    // unlinkat never follows a symlink; only regular files are bundle's.
    for (const char* name : kFiles) {
        auto [fst, ferr] = sys::try_lstat_at(dirfd.get(), name);
        if (ferr == ENOENT) continue;
        if (ferr) throw_errno(ferr, "stat", canonical + "/" + name);
        if (!S_ISREG(fst.st_mode)) {
            left.push_back(std::string(name) + ": not a regular file, not bundle's");
            continue;
        }
        if (::unlinkat(dirfd.get(), name, 0) != 0) throw_errno("unlink", canonical + "/" + name);
    }
    auto [rst, rerr] = sys::try_lstat_at(dirfd.get(), "rootfs");
    if (!rerr && S_ISDIR(rst.st_mode)) {
        if (::unlinkat(dirfd.get(), "rootfs", AT_REMOVEDIR) != 0) {
            if (errno != ENOTEMPTY && errno != EEXIST && errno != EBUSY) throw_errno("rmdir", canonical + "/rootfs");
            left.push_back(std::string("rootfs: ") + (errno == EBUSY ? "still a mount point" : "not empty"));
        }
    } else if (!rerr) {
        left.push_back("rootfs: not a directory, not bundle's");
    }
    // With something left the marker stays, so that --rm can finish once it is dealt with.
    if (!left.empty()) return left;
    if (::unlinkat(dirfd.get(), kMarker, 0) != 0 && errno != ENOENT) throw_errno("unlink", canonical + "/" + kMarker);
    if (made_dir && is_empty_dir(dirfd.get(), canonical)) {
        dirfd.reset();
        if (::rmdir(canonical.c_str()) != 0 && errno != ENOTEMPTY && errno != EEXIST) throw_errno("rmdir", canonical);
    }
    return left;
}

}  // namespace imgtool::bundle
