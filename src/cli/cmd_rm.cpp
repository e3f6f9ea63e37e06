#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "commands.hpp"
#include "imgtool/view/mounts.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/reference.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/sys/process.hpp"

namespace imgtool::cli {
namespace {

using Container = store::Store::Container;
using ContainerState = store::Store::ContainerState;

// As podman: removing an image names every tag it removes ("Untagged: NAME"), then the image
// ("Deleted: ID"). A name of an image with other names removes only that name; an ID of an image
// with several names is refused unless forced.
void remove_image(store::Store& store, const std::string& ref, bool force) {
    store::ImageRecord img = store.resolve(ref);
    // The name the reference found, in resolve's order (docker's normalised name, localhost/NAME, the
    // text as an older imgtool stored it); none when it found the image by ID or digest.
    std::vector<std::string> names = store.tags_of(img.id);
    std::string as_tag;
    for (const std::string& candidate : image::local_lookup(ref).names) {
        if (std::find(names.begin(), names.end(), candidate) != names.end()) {
            as_tag = candidate;
            break;
        }
    }
    bool by_name = !as_tag.empty();
    if (by_name && names.size() > 1) {
        if (store.untag(as_tag, img.id)) std::printf("Untagged: %s\n", escape_control(as_tag).c_str());
        return;
    }
    if (!by_name && names.size() > 1 && !force) {
        std::string list;
        for (const auto& name : names) list += (list.empty() ? "" : " ") + name;
        // podman 4.3's words (`podman rmi ID`).
        throw Error(Errc::Busy, "unable to delete image \"" + img.id.hex() + "\" by ID with more than one tag ([" +
                                    printable(list) + "]): please force removal");
    }
    // As docker: an image a container uses stays, running or kept after it stopped.
    for (const auto& c : store.containers(true)) {
        if (c.image != img.id) continue;
        if (c.state == ContainerState::Exited) {
            throw Error(Errc::Busy, "image " + img.id.short_hex() + " is being used by stopped container " + c.id.substr(0, 12) +
                                        ": `imgtool rm " + c.id.substr(0, 12) + "` first");
        }
        throw Error(Errc::Busy, "image " + img.id.short_hex() + " is being used by running container " + c.id.substr(0, 12));
    }
    // As podman: an image whose view is mounted stays until it is unmounted.
    view::clean_stale_mounts(store);
    for (const auto& m : store.mounts()) {
        if (m.image == img.id) {
            throw Error(Errc::Busy, "image " + img.id.short_hex() + " is mounted at " + m.target + ": run `imgtool umount " +
                                        shell_word(m.target) + "` first");
        }
    }
    store.remove_image(img.id);
    for (const auto& name : names) std::printf("Untagged: %s\n", escape_control(name).c_str());
    std::printf("Deleted: %s\n", img.id.str().c_str());
}

// rm -f of a running container: SIGKILL to its supervisor (the whole container goes with it), then
// wait until its run has recorded the end (a detached one) or removed the area (a foreground one).
Container kill_container(store::Store& store, Container c) {
    if (c.pid != 0) {
        sys::UniqueFd process = sys::open_process(c.pid, c.start_time);
        if (process && ::syscall(SYS_pidfd_send_signal, process.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH) {
            // Rootless, --init's PID 1 runs as the container's user, whom this user namespace (a sibling
            // of the container's) may not signal: the run process it dies with is the caller's own.
            sys::UniqueFd run = errno == EPERM && c.run_pid ? sys::open_process(c.run_pid, c.run_start_time) : sys::UniqueFd();
            if (!run || ::syscall(SYS_pidfd_send_signal, run.get(), SIGKILL, nullptr, 0) != 0) {
                throw_errno("signal", "container " + c.id.substr(0, 12));
            }
        }
        if (process) sys::wait_for_exit(process.get(), std::chrono::seconds(10));
    }
    for (int tries = 0; tries < 100; ++tries) {
        try {
            c = store.find_container(c.id);
        } catch (const Error& e) {
            if (e.code() == make_error_code(Errc::NotFound)) return c;  // a foreground run cleaned up after it
            throw;
        }
        if (c.state == ContainerState::Exited) return c;
        ::usleep(50 * 1000);
    }
    throw Error(Errc::Busy, "container " + c.id.substr(0, 12) + " did not end after SIGKILL");
}

struct RmArgs {
    bool force = false;
    std::vector<std::string> refs;
};

}  // namespace

void add_rm(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<RmArgs>();
    CLI::App* cmd = app.add_subcommand("rm", "remove containers; a name that is no container's removes an image, as rmi");
    examples(*cmd, {"imgtool rm web", "imgtool rm -f web"});
    cmd->add_flag("-f,--force", a->force, "kill a running container first; remove an image named by ID that has several tags");
    cmd->add_option("NAME", a->refs, "container name or ID (prefix), else image ID, unique ID prefix or tag")->required();
    cmd->callback([&globals, &action, a] {
        action = [&globals, a] {
            std::optional<store::Store> images;
            store::Store store(globals.store_root());
            for (const auto& ref : a->refs) {
                std::optional<Container> c;
                try {
                    c = store.find_container(ref);
                } catch (const Error& e) {
                    if (e.code() != make_error_code(Errc::NotFound)) throw;
                }
                if (!c) {
                    // The exclusive hold rmi needs, taken once; the shared one would make it wait for us.
                    if (!images) {
                        store.release_activity();
                        images.emplace(globals.store_root(), store::Access::Exclusive);
                    }
                    try {
                        remove_image(*images, ref, a->force);
                    } catch (const Error& e) {
                        if (e.code() != make_error_code(Errc::NotFound)) throw;
                        throw Error(Errc::NotFound, "no such container or image: " + printable(ref));
                    }
                    continue;
                }
                if (c->state != ContainerState::Exited) {
                    if (!a->force) {
                        throw Error(Errc::Busy, "container " + c->id.substr(0, 12) + " is running: stop it first, or rm -f");
                    }
                    *c = kill_container(store, *c);
                }
                if (c->kept) store.remove_container(*c);
                std::printf("%s\n", escape_control(ref).c_str());
            }
            return 0;
        };
    });
}

void add_rmi(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<RmArgs>();
    CLI::App* cmd = app.add_subcommand("rmi", "remove images (or one tag of a multiply-tagged image)");
    examples(*cmd, {"imgtool rmi alpine:3.19"});
    cmd->add_flag("-f,--force", a->force, "remove an image named by ID that has several tags, with all its tags");
    cmd->add_option("IMAGE", a->refs, "image ID, unique ID prefix, or tag")->required();
    cmd->callback([&globals, &action, a] {
        action = [&globals, a] {
            store::Store store(globals.store_root(), store::Access::Exclusive);
            for (const auto& ref : a->refs) remove_image(store, ref, a->force);
            return 0;
        };
    });
}

}  // namespace imgtool::cli
