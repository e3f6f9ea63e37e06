#include <cstdio>
#include <ctime>
#include <map>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::cli {

namespace {
// "2023-11-14T22:13:20Z" -> seconds since the epoch (0 if unparsable).
std::time_t parse_rfc3339(const std::string& text) {
    std::tm tm{};
    if (::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
    return ::timegm(&tm);
}

}  // namespace

std::string ago(const std::string& created) {
    std::time_t then = parse_rfc3339(created);
    if (then == 0) return "N/A";
    long long s = static_cast<long long>(std::time(nullptr) - then);
    struct Unit {
        long long seconds;
        const char* name;
    };
    static const Unit units[] = {{365LL * 86400, "year"}, {30LL * 86400, "month"}, {7LL * 86400, "week"},
                                 {86400, "day"},          {3600, "hour"},          {60, "minute"}};
    for (const Unit& u : units) {
        if (s >= u.seconds) {
            long long n = s / u.seconds;
            return std::to_string(n) + " " + u.name + (n == 1 ? "" : "s") + " ago";
        }
    }
    return "Less than a minute ago";
}

void add_images(CLI::App& app, Globals& globals, Action& action) {
    auto format = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("images", "list images in the store");
    examples(*cmd, {"imgtool images", "imgtool images --format json"});
    cmd->add_option("--format", *format, "output format: table (default) or json")->check(CLI::IsMember({"table", "json"}));
    cmd->callback([&globals, &action, format] {
        action = [&globals, format] {
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
            if (*format == "json") {
                nlohmann::json out = nlohmann::json::array();
                for (const auto& r : rows) {
                    out.push_back({{"Repository", r.repo}, {"Tag", r.tag}, {"ID", r.image->id.str()},
                                   {"Created", r.image->created}, {"Size", r.image->size}});
                }
                std::printf("%s\n", out.dump(2).c_str());
                return 0;
            }
            std::printf("%-40s %-15s %-14s %-20s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
            for (const auto& r : rows) {
                std::printf("%-40s %-15s %-14s %-20s %s\n", r.repo.c_str(), r.tag.c_str(), r.image->id.short_hex().c_str(),
                            ago(r.image->created).c_str(), human_size(r.image->size).c_str());
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
