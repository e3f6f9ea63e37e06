#include <cstdio>

#include "commands.hpp"
#include "imgtool/view/mounts.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/image/types.hpp"

namespace imgtool::cli {

void add_rm(CLI::App& app, Globals& globals, Action& action) {
    auto refs = std::make_shared<std::vector<std::string>>();
    CLI::App* cmd = app.add_subcommand("rm", "remove images (or one tag of a multiply-tagged image)");
    cmd->alias("rmi");
    cmd->add_option("IMAGE", *refs, "image ID, unique ID prefix, or tag")->required();
    cmd->callback([&globals, &action, refs] {
        action = [&globals, refs] {
            store::Store store(globals.store_root(), store::Access::Exclusive);
            for (const auto& ref : *refs) {
                store::ImageRecord img = store.resolve(ref);
                // As docker: removing by tag when the image has other tags only removes that tag.
                std::string as_tag;
                try {
                    as_tag = image::normalize_tag(ref);
                } catch (const Error&) {
                }
                if (store.tags_of(img.id).size() > 1 && store.untag(as_tag, img.id)) {
                    std::printf("Untagged: %s\n", as_tag.c_str());
                    continue;
                }
                // As docker: an image a running container uses stays.
                for (const auto& c : store.running_containers()) {
                    if (c.image == img.id) {
                        throw Error(Errc::Busy, "image " + img.id.short_hex() + " is being used by running container " +
                                                    c.id.substr(0, 12));
                    }
                }
                // As podman: an image whose view is mounted stays until it is unmounted.
                view::clean_stale_mounts(store);
                for (const auto& m : store.mounts()) {
                    if (m.image == img.id) {
                        throw Error(Errc::Busy, "image " + img.id.short_hex() + " is mounted at " + m.target +
                                                    ": run `imgtool umount " + m.target + "` first");
                    }
                }
                store.remove_image(img.id);
                std::printf("Deleted: %s\n", img.id.str().c_str());
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
