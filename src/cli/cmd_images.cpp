#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/output/template.hpp"

namespace imgtool::cli {

namespace {
// "2023-11-14T22:13:20Z" -> seconds since the epoch (0 if unparsable).
std::time_t parse_rfc3339(const std::string& text) {
    std::tm tm{};
    if (::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
    return ::timegm(&tm);
}

// The template's fields: docker's and podman's names for what imgtool has (`images --format '{{json .}}'`).
const std::vector<output::Field>& image_fields() {
    static const std::vector<output::Field> fields = {
        output::leaf("Repository"), output::leaf("Tag"),     output::leaf("ID", "IMAGE ID"),
        output::leaf("Digest"),     output::leaf("CreatedAt"), output::leaf("CreatedSince", "CREATED"),
        output::leaf("Size"),
    };
    return fields;
}

}  // namespace

std::string ago(const std::string& created) {
    std::time_t then = parse_rfc3339(created);
    if (then == 0) return "N/A";
    return output::human_duration(static_cast<long long>(std::time(nullptr) - then)) + " ago";
}

std::string go_time(const std::string& created) {
    std::time_t then = parse_rfc3339(created);
    if (then == 0) return created;
    std::tm tm{};
    ::gmtime_r(&then, &tm);
    char text[64];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
    return text;
}

void add_images(CLI::App& app, Globals& globals, Action& action) {
    auto format = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("images", "list images in the store");
    examples(*cmd, {"imgtool images", "imgtool images --format json"});
    cmd->add_option("--format", *format,
                    "table (default), json, or a Go template: '{{.Repository}}:{{.Tag}} {{.ID}}', "
                    "'table {{.Repository}}\\t{{.Size}}', '{{json .}}'; fields: Repository, Tag, ID, Digest, "
                    "CreatedAt, CreatedSince, Size");
    cmd->callback([&globals, &action, format] {
        action = [&globals, format] {
            output::Format f = output::parse_format(*format, image_fields());  // before the store: a typo costs nothing
            store::Store store(globals.store_root());
            auto images = store.images();
            std::multimap<std::string, std::string> tags_by_id;
            for (const auto& [name, id] : store.tags()) tags_by_id.emplace(id.str(), name);
            struct Row {
                std::string repo, tag;
                const store::ImageRecord* image;
            };
            std::vector<Row> rows;
            for (const auto& img : images) {
                auto [begin, end] = tags_by_id.equal_range(img.id.str());
                if (begin == end) rows.push_back({"<none>", "<none>", &img});
                for (auto it = begin; it != end; ++it) {
                    auto colon = it->second.rfind(':');
                    rows.push_back({it->second.substr(0, colon), it->second.substr(colon + 1), &img});
                }
            }
            if (f.style == output::Format::Style::Json) {
                nlohmann::json out = nlohmann::json::array();
                for (const auto& r : rows) {
                    // RepoTags and RepoDigests as docker's image inspect: lists, empty for an untagged image.
                    nlohmann::json repo_tags = nlohmann::json::array();
                    auto [begin, end] = tags_by_id.equal_range(r.image->id.str());
                    for (auto it = begin; it != end; ++it) repo_tags.push_back(it->second);
                    nlohmann::json entry = {{"Repository", r.repo},      {"Tag", r.tag},
                                            {"ID", r.image->id.str()},   {"Created", r.image->created},
                                            {"Size", r.image->size},     {"RepoTags", repo_tags},
                                            {"RepoDigests", r.image->repo_digests}};
                    if (r.image->manifest_digest) entry["Digest"] = r.image->manifest_digest->str();
                    out.push_back(entry);
                }
                std::printf("%s\n", out.dump(2, ' ', true, nlohmann::json::error_handler_t::replace).c_str());
                return 0;
            }
            if (f.style == output::Format::Style::Template) {
                std::vector<nlohmann::json> items;
                for (const auto& r : rows) {
                    items.push_back({{"Repository", r.repo},
                                     {"Tag", r.tag},
                                     {"ID", r.image->id.short_hex()},
                                     {"Digest", r.image->manifest_digest ? r.image->manifest_digest->str() : "<none>"},
                                     {"CreatedAt", go_time(r.image->created)},
                                     {"CreatedSince", ago(r.image->created)},
                                     {"Size", human_size(r.image->size)}});
                }
                std::fputs(output::render_all(f.tmpl, items).c_str(), stdout);
                return 0;
            }
            // The columns are at least as wide as they always were, wider when a cell needs it
            // ("Less than a second ago").
            std::vector<std::vector<std::string>> table = {{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}};
            for (const auto& r : rows) {
                table.push_back({escape_control(r.repo), escape_control(r.tag), r.image->id.short_hex(), ago(r.image->created),
                                 human_size(r.image->size)});
            }
            // docker's fixed widths (40, 15, 14, 20 with the space after), wider for a wider cell.
            std::fputs(output::align_rows(table, 3, {38, 13, 12, 18}).c_str(), stdout);
            return 0;
        };
    });
}

}  // namespace imgtool::cli
