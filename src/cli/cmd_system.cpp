// `imgtool system df` (also `imgtool df`): the store's disk usage, as `podman system df` and
// `docker system df -v` show it: images, their layers shared and unique, containers.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/store/space.hpp"

namespace imgtool::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct DfArgs {
    bool verbose = false;
    std::string format;
};

std::string percent(std::uint64_t part, std::uint64_t whole) {
    return std::to_string(whole == 0 ? 0 : static_cast<unsigned>(part * 100 / whole)) + "%";
}

int run_df(Globals& globals, const DfArgs& args) {
    store::Store store(globals.store_root());
    store::UsageInput input;
    input.images = store.images_strict();
    input.tags = store.tags();
    input.in_use = store::images_in_use(store, &input.containers);
    for (const auto& layer : store.layer_ids()) input.layer_sizes[layer] = store.layer_size(layer);
    store::Usage usage = store::account_usage(input);

    struct ContainerRow {
        store::Store::Container c;
        std::uint64_t size;
    };
    std::vector<ContainerRow> containers;
    std::uint64_t containers_size = 0, containers_reclaimable = 0;
    std::size_t containers_active = 0;
    for (auto& c : store.containers(true)) {
        std::uint64_t size = store.container_size(c);
        containers_size += size;
        if (c.state == store::Store::ContainerState::Exited) {
            containers_reclaimable += size;
        } else {
            ++containers_active;
        }
        containers.push_back({std::move(c), size});
    }

    if (args.format == "json") {
        ojson out;
        out["Images"] = {{"Total", usage.images.size()}, {"Active", usage.active_images},
                         {"Size", usage.images_size}, {"Reclaimable", usage.reclaimable}};
        out["Layers"] = {{"Total", usage.layers},
                         {"Active", usage.active_layers},
                         {"Shared", usage.shared_layers},
                         {"SharedSize", usage.shared_bytes},
                         {"Unique", usage.unique_layers},
                         {"UniqueSize", usage.unique_bytes},
                         {"Unreferenced", usage.unreferenced_layers},
                         {"UnreferencedSize", usage.unreferenced_bytes}};
        out["Containers"] = {{"Total", containers.size()}, {"Active", containers_active},
                             {"Size", containers_size}, {"Reclaimable", containers_reclaimable}};
        ojson rows = ojson::array();
        for (const auto& i : usage.images) {
            rows.push_back({{"Id", i.id.str()}, {"RepoTags", i.tags}, {"Created", i.created}, {"Size", i.size},
                            {"SharedSize", i.shared}, {"UniqueSize", i.unique}, {"Containers", i.containers}});
        }
        out["ImageDetails"] = std::move(rows);
        ojson crow = ojson::array();
        for (const auto& [c, size] : containers) {
            crow.push_back({{"Id", c.id}, {"Name", c.name}, {"Image", c.image.str()}, {"Size", size},
                            {"Status", c.state == store::Store::ContainerState::Exited ? "exited" : "running"}});
        }
        out["ContainerDetails"] = std::move(crow);
        std::printf("%s\n", out.dump(2, ' ', false, ojson::error_handler_t::replace).c_str());
        return 0;
    }

    auto row = [](const char* type, std::size_t total, std::size_t active, std::uint64_t size, std::uint64_t reclaim) {
        std::string r = human_size(reclaim) + " (" + percent(reclaim, size) + ")";
        std::printf("%-14s %-11zu %-11zu %-11s %s\n", type, total, active, human_size(size).c_str(), r.c_str());
    };
    std::printf("%-14s %-11s %-11s %-11s %s\n", "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE");
    row("Images", usage.images.size(), usage.active_images, usage.images_size, usage.reclaimable);
    row("Layers", usage.layers, usage.active_layers, usage.images_size + usage.unreferenced_bytes,
        usage.images_size + usage.unreferenced_bytes - (usage.images_size - usage.reclaimable));
    row("Containers", containers.size(), containers_active, containers_size, containers_reclaimable);
    std::printf("\nLayers: %zu shared (%s), %zu unique (%s), %zu unreferenced (%s)\n", usage.shared_layers,
                human_size(usage.shared_bytes).c_str(), usage.unique_layers, human_size(usage.unique_bytes).c_str(),
                usage.unreferenced_layers, human_size(usage.unreferenced_bytes).c_str());
    if (!args.verbose) return 0;

    std::printf("\nImages space usage:\n\n%-40s %-15s %-14s %-20s %-11s %-12s %-12s %s\n", "REPOSITORY", "TAG", "IMAGE ID",
                "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS");
    for (const auto& i : usage.images) {
        std::vector<std::string> names = i.tags.empty() ? std::vector<std::string>{"<none>:<none>"} : i.tags;
        for (const auto& name : names) {
            auto colon = name.rfind(':');
            std::printf("%-40s %-15s %-14s %-20s %-11s %-12s %-12s %u\n", escape_control(name.substr(0, colon)).c_str(),
                        escape_control(name.substr(colon + 1)).c_str(), i.id.short_hex().c_str(), ago(i.created).c_str(),
                        human_size(i.size).c_str(), human_size(i.shared).c_str(), human_size(i.unique).c_str(),
                        i.containers);
        }
    }
    std::printf("\nContainers space usage:\n\n%-14s %-14s %-30s %-11s %-10s %s\n", "CONTAINER ID", "IMAGE", "COMMAND",
                "SIZE", "STATUS", "NAMES");
    for (const auto& [c, size] : containers) {
        std::string command;
        for (const auto& a : c.command) command += (command.empty() ? "" : " ") + a;
        if (command.size() > 30) command = command.substr(0, 27) + "...";
        std::printf("%-14s %-14s %-30s %-11s %-10s %s\n", c.id.substr(0, 12).c_str(), c.image.short_hex().c_str(),
                    escape_control(command).c_str(), human_size(size).c_str(),
                    c.state == store::Store::ContainerState::Exited ? "exited" : "running", escape_control(c.name).c_str());
    }
    return 0;
}

void add_df_options(CLI::App* cmd, DfArgs& args) {
    cmd->add_flag("-v,--verbose", args.verbose, "also one row per image (shared and unique size) and per container");
    cmd->add_option("--format", args.format, "output format: table (default) or json")
        ->check(CLI::IsMember({"table", "json"}));
}

}  // namespace

void add_system(CLI::App& app, Globals& globals, Action& action) {
    auto args = std::make_shared<DfArgs>();
    CLI::App* system = app.add_subcommand("system", "manage the store as a whole (system df)");
    system->require_subcommand(1, 1);
    CLI::App* df = system->add_subcommand("df", "show the store's disk usage: images, layers shared and unique, containers");
    examples(*df, {"imgtool system df", "imgtool system df -v"});
    add_df_options(df, *args);
    df->callback([&globals, &action, args] { action = [&globals, args] { return run_df(globals, *args); }; });
    // `imgtool df`, docker-compose style shorthand for the same.
    CLI::App* shorthand = app.add_subcommand("df", "the same as `system df`");
    examples(*shorthand, {"imgtool df", "imgtool df -v --format json"});
    add_df_options(shorthand, *args);
    shorthand->callback([&globals, &action, args] { action = [&globals, args] { return run_df(globals, *args); }; });
    // After `df` is added: a subcommand starts with its parent's footer.
    examples(*system, {"imgtool system df", "imgtool system df -v --format json"});
}

}  // namespace imgtool::cli
