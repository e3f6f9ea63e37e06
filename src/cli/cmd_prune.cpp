// `imgtool prune`: removes dangling images (with -a every image no mount or container uses), then
// every layer, init layer and blob no remaining image needs, and what interrupted commands left in
// tmp/ and partial/; says what it removed and how much it freed. Asks first unless -f, as
// `podman image prune` does: the question goes to stdout and the answer is read from stdin, terminal
// or not (podman 4.3 reads a closed stdin as an error: "Error: EOF").
#include <cstdio>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/store/space.hpp"
#include "imgtool/view/mounts.hpp"

namespace imgtool::cli {
namespace {

struct PruneArgs {
    bool all = false;
    bool force = false;
};

// True to go on. Throws at end of input: nobody answered (a script that forgot -f).
bool confirmed(bool all) {
    std::printf("WARNING! This will remove:\n");
    std::printf(all ? "  - all images not used by a mount or a container\n"
                    : "  - all dangling images (without a tag, not used by a mount or a container)\n");
    std::printf("  - all layers, init layers and blobs no remaining image uses\n");
    std::printf("  - leftovers of interrupted imgtool commands (tmp/, partial downloads)\n");
    std::printf("Are you sure you want to continue? [y/N] ");
    std::fflush(stdout);
    std::string answer;
    if (!std::getline(std::cin, answer)) {
        std::printf("\n");
        throw Error(Errc::InvalidArgument, "no answer on standard input: nothing removed (use -f to prune without asking)");
    }
    return answer == "y" || answer == "Y" || answer == "yes" || answer == "Yes" || answer == "YES";
}

int run_prune(Globals& globals, const PruneArgs& args) {
    if (!args.force && !confirmed(args.all)) return 0;
    // Exclusive: waits until no other imgtool command works on the store (an import stages its layers
    // in tmp/ and commits them before its image record: nothing of it may look unreferenced here), and
    // keeps them out until done. Containers and mounts outlive their commands: their records count.
    store::Store store(globals.store_root(), store::Access::Prune);
    view::clean_stale_mounts(store);
    store::PruneInput input;
    input.images = with_context("cannot prune (an unreadable record would make its image's layers look unused)",
                                [&] { return store.images_strict(); });
    input.tags = store.tags();
    input.in_use = store::images_in_use(store);
    input.layers = store.layer_ids();
    input.inits = store.init_ids();
    input.blobs = store.blob_ids();
    input.all = args.all;
    store::PrunePlan plan = store::plan_prune(input);

    std::uint64_t total = 0;
    if (!plan.images.empty()) std::printf("Deleted Images:\n");
    for (const auto& image : plan.images) {
        store.remove_image_record(image.id);
        for (const auto& name : plan.untagged[image.id]) std::printf("untagged: %s\n", escape_control(name).c_str());
        std::printf("deleted: %s\n", image.id.str().c_str());
    }
    if (!plan.layers.empty()) std::printf("Deleted Layers:\n");
    for (const auto& layer : plan.layers) {
        total += store.remove_layer(layer).bytes;
        std::printf("%s\n", layer.str().c_str());
    }
    std::vector<store::Store::Freed> other;
    for (const auto& init : plan.inits) other.push_back(store.remove_init(init));
    for (const auto& blob : plan.blobs) other.push_back(store.remove_blob(blob));
    for (auto& freed : store.prune_leftovers()) other.push_back(std::move(freed));
    if (!other.empty()) std::printf("Deleted Other:\n");
    for (const auto& freed : other) {
        total += freed.bytes;
        std::printf("%s\n", escape_control(freed.path).c_str());
    }
    std::printf("Total reclaimed space: %s\n", human_size(total).c_str());
    return 0;
}

}  // namespace

void add_prune(CLI::App& app, Globals& globals, Action& action) {
    auto args = std::make_shared<PruneArgs>();
    CLI::App* cmd = app.add_subcommand("prune", "remove dangling images, unused layers and leftovers of interrupted commands");
    examples(*cmd, {"imgtool prune", "imgtool prune -a -f"});
    cmd->add_flag("-a,--all", args->all, "remove every image not used by a mount or a container, not only dangling ones");
    cmd->add_flag("-f,--force", args->force, "do not ask for confirmation");
    cmd->callback([&globals, &action, args] { action = [&globals, args] { return run_prune(globals, *args); }; });
}

}  // namespace imgtool::cli
