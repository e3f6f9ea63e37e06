#include "commands.hpp"
#include "imgtool/image/types.hpp"

namespace imgtool::cli {

void add_tag(CLI::App& app, Globals& globals, Action& action) {
    struct Args {
        std::string image;
        std::string name;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = app.add_subcommand("tag", "give an image another name");
    examples(*cmd, {"imgtool tag alpine myalpine:v1"});
    cmd->add_option("IMAGE", args->image, "image ID, unique ID prefix, or tag")->required();
    cmd->add_option("NAME", args->name, "new name, NAME[:TAG]")->required();
    cmd->callback([&globals, &action, args] {
        action = [&globals, args] {
            store::Store store(globals.store_root());
            store::ImageRecord img = store.resolve(args->image);
            store.set_tag(image::normalize_tag(args->name), img.id);
            return 0;
        };
    });
}

}  // namespace imgtool::cli
