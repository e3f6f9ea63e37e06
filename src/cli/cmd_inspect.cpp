#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/output/template.hpp"
#include "imgtool/overlay/plan.hpp"
#include "imgtool/view/mounts.hpp"

namespace imgtool::cli {

namespace {

using output::Field;
using output::leaf;

// The template's fields: the keys inspect prints (docker image inspect's names), nested as printed.
const std::vector<Field>& inspect_fields() {
    static const std::vector<Field> fields = {
        leaf("Id"),
        leaf("RepoTags"),
        leaf("RepoDigests"),
        leaf("Created"),
        leaf("Architecture"),
        leaf("Os"),
        leaf("Variant"),
        leaf("Size"),
        Field{"Config", "", {leaf("User"), Field{"ExposedPorts", "", {}, true}, leaf("Env"), leaf("Entrypoint"), leaf("Cmd"),
                             Field{"Volumes", "", {}, true}, leaf("WorkingDir"), Field{"Labels", "", {}, true}, leaf("StopSignal"),
                             leaf("ArgsEscaped"),
                             Field{"Healthcheck", "", {leaf("Test"), leaf("Interval"), leaf("Timeout"), leaf("StartPeriod"),
                                                      leaf("StartInterval"), leaf("Retries")}, false},
                             leaf("OnBuild"), leaf("Shell")},
              false},
        Field{"RootFS", "", {leaf("Type"), leaf("Layers")}, false},
        Field{"GraphDriver", "", {leaf("Name"), Field{"Data", "", {leaf("LowerDir")}, false}}, false},
        leaf("ManifestDigest"),
    };
    return fields;
}

}  // namespace

void add_inspect(CLI::App& app, Globals& globals, Action& action) {
    auto refs = std::make_shared<std::vector<std::string>>();
    auto format = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("inspect", "show an image's metadata as JSON (docker image inspect fields)");
    examples(*cmd, {"imgtool inspect alpine"});
    cmd->add_option("IMAGE", *refs, "image ID, unique ID prefix, or tag")->required();
    cmd->add_option("--format", *format,
                    "json (default) or a Go template, one line per image: '{{.Id}}', '{{.Config.Cmd}}', "
                    "'{{json .Config.Env}}'; fields: the keys of the JSON");
    cmd->callback([&globals, &action, refs, format] {
        action = [&globals, refs, format] {
            if (*format == "table") {
                throw Error(Errc::InvalidArgument, "--format table: inspect prints JSON or a template (\"table {{.Id}}\\t{{.Os}}\")");
            }
            output::Format f = output::parse_format(*format, inspect_fields());
            store::Store store(globals.store_root());
            nlohmann::json out = nlohmann::json::array();
            auto tags = store.tags();
            for (const auto& ref : *refs) {
                store::ImageRecord img = store.resolve(ref);
                image::ImageConfig config = image::parse_config(store.read_blob(img.id), "config " + img.id.str());
                nlohmann::json repo_tags = nlohmann::json::array();
                for (const auto& [name, id] : tags) {
                    if (id == img.id) repo_tags.push_back(name);
                }
                nlohmann::json layers = nlohmann::json::array();
                for (const auto& l : img.layers) layers.push_back(l.str());
                // The directories a mount stacks: layers under a root-opaque layer are hidden.
                std::string lower;
                for (const auto& dir : overlay::visible_lowers(view::layer_paths(store, img))) {
                    lower += (lower.empty() ? "" : ":") + dir;
                }
                nlohmann::json entry = {
                    {"Id", img.id.str()},
                    {"RepoTags", repo_tags},
                    {"RepoDigests", img.repo_digests},
                    {"Created", config.created},
                    {"Architecture", config.platform.architecture},
                    {"Os", config.platform.os},
                    {"Size", img.size},
                    {"Config", nlohmann::json(config.config)},  // image::to_json: the fields the image has
                    {"RootFS", {{"Type", "layers"}, {"Layers", layers}}},
                    {"GraphDriver", {{"Name", "overlay"}, {"Data", {{"LowerDir", lower}}}}},
                };
                if (!config.platform.variant.empty()) entry["Variant"] = config.platform.variant;
                if (img.manifest_digest) entry["ManifestDigest"] = img.manifest_digest->str();
                out.push_back(entry);
            }
            if (f.style == output::Format::Style::Template) {
                std::fputs(output::render_all(f.tmpl, std::vector<nlohmann::json>(out.begin(), out.end())).c_str(), stdout);
                return 0;
            }
            // ASCII only: every other character as \uXXXX, so what an image's labels or env hold (C1
            // controls, bidirectional overrides) is shown, never acted upon by the terminal.
            std::printf("%s\n", out.dump(4, ' ', true).c_str());
            return 0;
        };
    });
}

}  // namespace imgtool::cli
