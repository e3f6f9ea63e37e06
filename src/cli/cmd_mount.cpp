#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cstdio>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/overlay/copy.hpp"
#include "imgtool/overlay/mount.hpp"
#include "imgtool/overlay/plan.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mountinfo.hpp"
#include "imgtool/sys/user_path.hpp"
#include "imgtool/sys/space.hpp"
#include "mounts.hpp"

namespace imgtool::cli {
namespace {

bool is_within(const std::string& path, const std::string& dir) {
    return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

// TARGET must be an existing, empty directory outside the store that nothing is mounted on, reached
// without following anybody else's symlink; it is then mounted on through the fd opened here.
sys::UserPath open_target(const store::Store& store, const std::string& target_arg) {
    sys::UserPath opened = sys::open_user_directory(target_arg, O_RDONLY);
    const std::string& target = opened.resolved;
    if (is_within(target, canonical_path(store.root()))) {
        throw Error(Errc::InvalidArgument, target + ": target is inside the image store");
    }
    for (const auto& m : sys::read_mountinfo()) {
        if (m.mount_point == target) throw Error(Errc::Busy, target + ": target is already a mount point");
    }
    if (find_mount(store, target)) throw Error(Errc::Busy, target + ": target is already an imgtool mount");
    bool empty = sys::directory_is_empty(opened.fd.get(), target);
    if (!empty) throw Error(Errc::InvalidArgument, target + ": target directory is not empty");
    return opened;
}

// Outside `imgtool unshare`, an ordinary user's overlay would live in a namespace that ends with
// this command: refuse it up front. A copy (--driver copy) is plain files and works anywhere.
Error overlay_needs_unshare(const std::string& verb) {
    return Error(Errc::Unsupported,
                 "as an ordinary user an overlay mount exists only inside imgtool's user and mount namespace: "
                 "start one with `imgtool unshare`, then run `imgtool " + verb + "` in it (or use --driver copy)");
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

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace

namespace {

struct MountArgs {
    std::string image, target, driver, upper, min_free;
    bool writable = false, suid = false, dev = false;
};

// Fills the view with the copy driver. As root the tree is built in the store (mode 0700 above it, so
// nobody reaches its setuid files or device nodes) and bind-mounted on the target with the view's
// flags. An ordinary user's copy is made in the target itself, as plain files visible everywhere (a
// mount would live only as long as its user namespace): it cannot hold device nodes, and its setuid
// and setgid bits are stripped unless --suid, since they would run as the user.
void copy_view(store::Store& store, store::MountRecord& record, const LayerStack& layers, const MountArgs& args,
               unsigned attributes, bool in_place, int target_fd) {
    std::vector<std::string> bottom_first = overlay::visible_layer_dirs(layers.refs);
    sys::SpaceReserve reserve(store.root_fd(), sys::space_limits_for(store.root_fd(), min_free_option(args.min_free)),
                              store.root());
    reserve.check();  // a filesystem already below its reserve gets nothing
    overlay::CopyOptions options;
    options.reserve = &reserve;
    record.mode = args.writable ? "copy-rw" : "copy";
    if (in_place) {
        sys::UniqueFd dir = sys::open_at(target_fd, ".", O_RDONLY | O_DIRECTORY, 0, record.target);
        struct stat st = sys::fstat_fd(dir.get(), record.target);
        record.target_dev = st.st_dev;
        record.target_ino = st.st_ino;
        store.save_mount(record);
        options.strip_setid = !args.suid;
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

void add_mount(CLI::App& app, Globals& globals, Action& action) {
    auto args = std::make_shared<MountArgs>();
    CLI::App* cmd = app.add_subcommand("mount", "mount an image's merged root filesystem at TARGET");
    cmd->add_option("--driver", args->driver, "overlay (default) or copy")->check(CLI::IsMember({"overlay", "copy"}));
    auto* writable = cmd->add_flag("--writable", args->writable, "writable view; changes are discarded by umount");
    cmd->add_option("--upper", args->upper, "writable view whose changes go to DIR and are kept")->excludes(writable);
    cmd->add_flag("--suid", args->suid,
                  "DANGEROUS: honour setuid/setgid bits in the view (anyone who can reach TARGET may gain the "
                  "owners' privileges); default nosuid");
    cmd->add_flag("--dev", args->dev,
                  "DANGEROUS: make the image's device nodes usable in the view (anyone who can reach TARGET may "
                  "open them); default nodev");
    cmd->add_option("--min-free", args->min_free,
                    "copy driver: stop before the store's filesystem has less free than SIZE or PERCENT% "
                    "(default: 5%, at most 1G; 0 disables)");
    cmd->add_option("IMAGE", args->image, "image ID, unique ID prefix, or tag")->required();
    cmd->add_option("TARGET", args->target, "empty directory to mount on")->required();
    cmd->callback([&globals, &action, args] {
        action = [&globals, args] {
            if (globals.fresh_user_namespace && args->driver != "copy") throw overlay_needs_unshare("mount");
            min_free_option(args->min_free);  // refuse junk before anything is done
            store::Store store(globals.store_root());
            check_rootless_id_map(store);
            clean_stale_mounts(store);
            store::ImageRecord img = store.resolve(args->image);
            sys::UserPath opened_target = open_target(store, args->target);
            const std::string target = opened_target.resolved;
            LayerStack layers = open_layers(store, img);
            // nosuid, nodev: a view is for looking at an image, and TARGET may be reachable by others.
            unsigned attributes = (args->suid ? 0 : MOUNT_ATTR_NOSUID) | (args->dev ? 0 : MOUNT_ATTR_NODEV);

            store::MountRecord record{.name = sys::unique_name("m-"), .target = target, .image = img.id,
                                      .driver = args->driver.empty() ? "overlay" : args->driver,
                                      .mode = "ro", .upper = {}, .work = {}, .owns_upper = false,
                                      .mount_namespace = sys::mount_namespace_id(), .active = false};
            auto lock = store.lock_mount(record.name, true);
            std::optional<overlay::UpperDirs> upper;
            sys::UserPath opened_upper;
            sys::UniqueFd work_fd;
            if (args->writable && record.driver != "copy") {
                auto [u, w] = store.make_mount_area(record.name);
                upper = overlay::UpperDirs{u, w};
                record.mode = "writable";
                record.owns_upper = true;
            } else if (!args->upper.empty()) {
                if (record.driver == "copy") {
                    throw Error(Errc::Unsupported, "--upper needs the overlay driver (the copy driver has no "
                                                   "separate upper layer; use --writable for a throw-away copy)");
                }
                // Reached like the target, never through another user's symlink, and used by fd.
                opened_upper = sys::open_user_directory(args->upper, O_RDONLY, true);
                const std::string& u = opened_upper.resolved;
                if (is_within(u, canonical_path(store.root())) || is_within(u, target) || is_within(target, u)) {
                    throw Error(Errc::InvalidArgument, u + ": --upper must be outside the store and the target");
                }
                std::string w;
                work_fd = open_work_dir(opened_upper, w);
                struct stat wst = sys::fstat_fd(work_fd.get(), w);
                record.work_dev = wst.st_dev;
                record.work_ino = wst.st_ino;
                upper = overlay::UpperDirs{fd_path(opened_upper.fd.get()), fd_path(work_fd.get())};
                record.mode = "upper";
                record.upper = u;
                record.work = w;
            }
            if (upper && record.mode != "upper") {
                record.upper = upper->upper;
                record.work = upper->work;
            }
            // Recorded before anything is mounted: a crash from here on leaves a record to clean up.
            store.save_mount(record);
            try {
                overlay::MountSpec spec = overlay::plan_overlay(layers.refs, upper, layers.empty_dir);
                spec.user_xattr = rootless::active();
                if (record.driver == "overlay") {
                    try {
                        overlay::mount_at(spec, opened_target.fd.get(), attributes);
                    } catch (const Error& e) {
                        if (!args->driver.empty()) throw;  // --driver overlay: the kernel's reason is the answer
                        if (upper) throw;                  // writable views need overlayfs
                        log::notice(std::string("overlayfs unavailable (") + e.what() + "); using the copy driver");
                        record.driver = "copy";
                    }
                }
                if (record.driver == "copy") {
                    if (!args->writable) attributes |= MOUNT_ATTR_RDONLY;
                    copy_view(store, record, layers, *args, attributes, rootless::active(), opened_target.fd.get());
                }
                record.active = true;
                store.save_mount(record);
            } catch (...) {
                undo_mount(store, record);
                throw;
            }
            std::printf("%s\n", escape_control(target).c_str());
            return 0;
        };
    });
}

void add_umount(CLI::App& app, Globals& globals, Action& action) {
    auto target = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("umount", "unmount what `imgtool mount` mounted at TARGET");
    cmd->alias("unmount");
    cmd->add_option("TARGET", *target, "mount point")->required();
    cmd->callback([&globals, &action, target] {
        action = [&globals, target] {
            store::Store store(globals.store_root());
            std::string canonical = canonical_path(*target);
            // Rootless: first drop the records of ended unshare sessions (their mounts are gone).
            if (globals.fresh_user_namespace) clean_stale_mounts(store);
            auto record = find_mount(store, canonical);
            if (!record) {
                if (!globals.fresh_user_namespace) clean_stale_mounts(store);
                throw Error(Errc::NotFound, canonical + ": not mounted by imgtool");
            }
            if (globals.fresh_user_namespace && record->driver == "overlay") throw overlay_needs_unshare("umount");
            {
                // Also the record of a crashed `mount` on this target: undoing it is what was asked.
                auto lock = store.lock_mount(record->name, true);
                undo_mount(store, *record);
            }
            clean_stale_mounts(store);
            return 0;
        };
    });
}

void add_mounts(CLI::App& app, Globals& globals, Action& action) {
    CLI::App* cmd = app.add_subcommand("mounts", "list active imgtool mounts");
    cmd->callback([&globals, &action] {
        action = [&globals] {
            store::Store store(globals.store_root());
            clean_stale_mounts(store);  // never list a mount that is gone
            std::printf("%-14s %-8s %-9s %s\n", "IMAGE ID", "DRIVER", "MODE", "TARGET");
            for (const auto& r : store.mounts()) {
                if (!r.active) continue;
                // Targets are paths people chose: escaped, so a name cannot forge a row.
                std::printf("%-14s %-8s %-9s %s\n", r.image.short_hex().c_str(), escape_control(r.driver).c_str(),
                            escape_control(r.mode).c_str(), escape_control(r.target).c_str());
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
