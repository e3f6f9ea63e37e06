#include <cerrno>
#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "rootless_store.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/output/template.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/view/mounts.hpp"

namespace imgtool::cli {
namespace {

// Outside `imgtool unshare`, an ordinary user's overlay would live in a namespace that ends with
// this command: refuse it up front. A copy (--driver copy) is plain files and works anywhere.
Error overlay_needs_unshare(const std::string& verb) {
    return Error(Errc::Unsupported,
                 "as an ordinary user an overlay mount exists only inside imgtool's user and mount namespace: "
                 "start one with `imgtool unshare`, then run `imgtool " + verb + "` in it (or use --driver copy)");
}

}  // namespace

void add_mount(CLI::App& app, Globals& globals, Action& action) {
    struct Args {
        std::string image, min_free;
        view::MountRequest request;
    };
    auto args = std::make_shared<Args>();
    view::MountRequest& r = args->request;
    CLI::App* cmd = app.add_subcommand("mount", "mount an image's merged root filesystem at TARGET");
    examples(*cmd, {"imgtool mount alpine /mnt/alpine", "imgtool mount --upper ./changes alpine /mnt/alpine"});
    cmd->add_option("--driver", r.driver, "overlay (default) or copy")->check(CLI::IsMember({"overlay", "copy"}));
    auto* writable = cmd->add_flag("--writable", r.writable, "writable view; changes are discarded by umount");
    cmd->add_option("--upper", r.upper, "writable view whose changes go to DIR and are kept")->excludes(writable);
    cmd->add_flag("--suid", r.suid,
                  "DANGEROUS: honour setuid/setgid bits in the view (anyone who can reach TARGET may gain the "
                  "owners' privileges); default nosuid");
    cmd->add_flag("--dev", r.dev,
                  "DANGEROUS: make the image's device nodes usable in the view (anyone who can reach TARGET may "
                  "open them); default nodev");
    cmd->add_option("--min-free", args->min_free,
                    "copy driver: stop before the store's filesystem has less free than SIZE or PERCENT% "
                    "(default: 5%, at most 1G; 0 disables)");
    cmd->add_option("IMAGE", args->image, "image ID, unique ID prefix, or tag")->required();
    cmd->add_option("TARGET", r.target, "empty directory to mount on")->required();
    cmd->callback([&globals, &action, args] {
        action = [&globals, args] {
            view::MountRequest request = args->request;
            if (globals.fresh_user_namespace && request.driver != "copy") throw overlay_needs_unshare("mount");
            request.min_free = min_free_option(args->min_free);  // junk refused before anything is done
            request.rootless = rootless::active();
            store::Store store(globals.store_root());
            check_rootless_id_map(store);
            view::clean_stale_mounts(store);
            store::MountRecord record = view::mount_image(store, store.resolve(args->image), request);
            std::printf("%s\n", escape_control(record.target).c_str());
            return 0;
        };
    });
}

void add_umount(CLI::App& app, Globals& globals, Action& action) {
    auto target = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("umount", "unmount what `imgtool mount` mounted at TARGET");
    examples(*cmd, {"imgtool umount /mnt/alpine"});
    cmd->alias("unmount");
    cmd->add_option("TARGET", *target, "mount point")->required();
    cmd->callback([&globals, &action, target] {
        action = [&globals, target] {
            store::Store store(globals.store_root());
            std::optional<std::string> canonical;
            try {
                canonical = view::canonical_path(*target);
            } catch (const Error& e) {
                // Not a path: an image's name or ID, perhaps (the message says where it is mounted).
                if (e.code() != std::error_code(ENOENT, std::generic_category())) throw;
            }
            // Rootless: first drop the records of ended unshare sessions (their mounts are gone).
            if (globals.fresh_user_namespace) view::clean_stale_mounts(store);
            auto record = canonical ? view::find_mount(store, *canonical) : std::nullopt;
            // A view whose target's parent directories were renamed: found by its mount's ID.
            if (!record && canonical) record = view::find_moved_mount(store, *canonical);
            if (!record) {
                if (!globals.fresh_user_namespace) view::clean_stale_mounts(store);
                throw view::not_mounted_error(store, *target, canonical);
            }
            if (globals.fresh_user_namespace && record->driver == "overlay") throw overlay_needs_unshare("umount");
            {
                // Also the record of a crashed `mount` on this target: undoing it is what was asked.
                auto lock = store.lock_mount(record->name, true);
                view::undo_mount(store, *record);
            }
            view::clean_stale_mounts(store);
            return 0;
        };
    });
}

namespace {
const std::vector<output::Field>& mount_fields() {
    static const std::vector<output::Field> fields = {
        output::leaf("ID", "IMAGE ID"), output::leaf("Image"), output::leaf("Driver"),
        output::leaf("Mode"),           output::leaf("Target"), output::leaf("Upper"),
    };
    return fields;
}
}  // namespace

void add_mounts(CLI::App& app, Globals& globals, Action& action) {
    auto format = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("mounts", "list active imgtool mounts");
    examples(*cmd, {"imgtool mounts"});
    cmd->add_option("--format", *format,
                    "table (default), json, or a Go template: '{{.Target}}', 'table {{.ID}}\\t{{.Target}}', '{{json .}}'; "
                    "fields: ID, Image, Driver, Mode, Target, Upper");
    cmd->callback([&globals, &action, format] {
        action = [&globals, format] {
            output::Format f = output::parse_format(*format, mount_fields());
            store::Store store(globals.store_root());
            view::clean_stale_mounts(store);  // never list a mount that is gone
            if (f.style != output::Format::Style::Table) {
                bool json = f.style == output::Format::Style::Json;
                std::vector<nlohmann::json> items;
                for (const auto& r : store.mounts()) {
                    if (!r.active) continue;
                    auto names = store.tags_of(r.image);
                    items.push_back({{"ID", json ? r.image.str() : r.image.short_hex()},
                                     {"Image", names.empty() ? r.image.short_hex() : names.front()},
                                     {"Driver", r.driver},
                                     {"Mode", r.mode},
                                     {"Target", view::current_target(r)},
                                     {"Upper", r.upper}});
                }
                std::string text = json ? nlohmann::json(items).dump(2, ' ', true, nlohmann::json::error_handler_t::replace) + "\n"
                                        : output::render_all(f.tmpl, items);
                std::fputs(text.c_str(), stdout);
                return 0;
            }
            std::printf("%-14s %-8s %-9s %s\n", "IMAGE ID", "DRIVER", "MODE", "TARGET");
            for (const auto& r : store.mounts()) {
                if (!r.active) continue;
                // Targets are paths people chose: escaped, so a name cannot forge a row.
                std::printf("%-14s %-8s %-9s %s\n", r.image.short_hex().c_str(), escape_control(r.driver).c_str(),
                            escape_control(r.mode).c_str(), escape_control(view::current_target(r)).c_str());
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
