#include <unistd.h>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/save/save.hpp"

namespace imgtool::cli {
namespace {

// The names to record for a reference: the tag it names, else (an ID) every tag of the image.
std::vector<std::string> names_for(const store::Store& store, const std::string& reference, const digest::Digest& id) {
    auto tags = store.tags();
    try {
        std::string name = image::normalize_tag(reference);
        if (auto it = tags.find(name); it != tags.end() && it->second == id) return {name};
    } catch (const imgtool::Error&) {
        // not a name: an ID or an ID prefix
    }
    return store.tags_of(id);
}

}  // namespace

void add_save(CLI::App& app, Globals& globals, Action& action) {
    struct Args {
        std::vector<std::string> images;
        std::string output;
        std::string format = "docker-archive";
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = app.add_subcommand("save", "write images as a docker archive, an OCI archive or an OCI layout");
    examples(*cmd, {"imgtool save -o alpine.tar alpine", "imgtool save --format oci-dir -o ./layout alpine"});
    cmd->add_option("-o,--output", args->output, "file (or directory for oci-dir) to create; - for standard output");
    cmd->add_option("--format", args->format, "docker-archive (default), oci-archive or oci-dir");
    cmd->add_option("IMAGE", args->images, "image ID, unique ID prefix, or tag")->required();
    cmd->callback([&globals, &action, args] {
        action = [&globals, args] {
            save::SaveOptions options;
            options.format = save::parse_format(args->format);
            options.output = args->output == "-" ? "" : args->output;
            options.file_mode = 0666 & ~globals.user_umask;
            if (options.output.empty()) {
                if (options.format == save::Format::OciDir) throw imgtool::Error(imgtool::Errc::InvalidArgument, "oci-dir needs -o DIRECTORY");
                if (args->output.empty() && ::isatty(STDOUT_FILENO) == 1) {
                    throw imgtool::Error(imgtool::Errc::InvalidArgument, "refusing to write an archive to a terminal (use -o FILE, or -o - to insist)");
                }
            }
            store::Store store(globals.store_root());
            std::vector<save::SaveRequest> requests;
            for (const std::string& ref : args->images) {
                store::ImageRecord img = store.resolve(ref);
                requests.push_back({ref, img, names_for(store, ref, img.id)});
            }
            save::save_images(store, requests, options);
            return 0;
        };
    });
}

}  // namespace imgtool::cli
