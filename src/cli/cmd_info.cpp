// `imgtool info`: what imgtool would do on this machine and what its store holds, as `podman info`
// shows it (YAML-like key: value; --format json, the same object). Everything here only reads: a
// store that does not exist is reported as such, never created, and the probes make no mount.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/launch/features.hpp"
#include "imgtool/overlay/driver.hpp"
#include "imgtool/rootless/idmap.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/store/space.hpp"

namespace imgtool::cli {
namespace {

using ojson = nlohmann::ordered_json;

ojson id_map_json(const std::vector<rootless::IdMapLine>& map) {
    ojson out = ojson::array();
    for (const auto& l : map) out.push_back({{"container_id", l.inside}, {"host_id", l.outside}, {"size", l.count}});
    return out;
}

ojson ranges_json(const std::vector<rootless::IdRange>& ranges) {
    ojson out = ojson::array();
    for (const auto& r : ranges) out.push_back({{"start", r.start}, {"size", r.count}});
    return out;
}

std::string scalar(const ojson& v) {
    if (v.is_string()) {
        std::string s = escape_control(v.get<std::string>());
        return s.empty() ? "\"\"" : s;
    }
    return v.dump();
}

// podman's layout: nested keys indented by two, lists as "- item".
void print_yaml(const ojson& v, int indent) {
    const std::string pad(static_cast<std::size_t>(indent), ' ');
    for (const auto& [key, value] : v.items()) {
        if (value.is_object()) {
            std::printf("%s%s:\n", pad.c_str(), key.c_str());
            print_yaml(value, indent + 2);
        } else if (value.is_array()) {
            if (value.empty()) {
                std::printf("%s%s: []\n", pad.c_str(), key.c_str());
                continue;
            }
            std::printf("%s%s:\n", pad.c_str(), key.c_str());
            for (const auto& item : value) {
                if (!item.is_object()) {
                    std::printf("%s- %s\n", pad.c_str(), scalar(item).c_str());
                    continue;
                }
                bool first = true;
                for (const auto& [k, x] : item.items()) {
                    std::printf("%s%s%s: %s\n", pad.c_str(), first ? "- " : "  ", k.c_str(), scalar(x).c_str());
                    first = false;
                }
            }
        } else {
            std::printf("%s%s: %s\n", pad.c_str(), key.c_str(), scalar(value).c_str());
        }
    }
}

ojson store_json(const std::string& root, const overlay::DriverFacts& facts) {
    ojson out;
    out["graphRoot"] = root;
    overlay::DriverChoice driver = overlay::explain_default_driver(facts);
    out["graphDriverName"] = driver.driver == overlay::Driver::Overlay ? "overlay" : "copy";
    out["graphDriverReason"] = driver.reason;
    out["graphOptions"] = {{"lowers", driver.lowers}, {"userxattr", driver.user_xattr}};
    // Only a store imgtool made (its lock file is the first thing made) is opened: looking must not
    // create one, nor complete a directory that merely exists.
    struct stat st {};
    bool exists = ::lstat((root + "/lock").c_str(), &st) == 0;
    out["exists"] = exists;
    // Opening a store completes its layout (the directories a newer imgtool added): a store missing
    // any is reported as found but not opened, so that info still changes nothing.
    bool complete = exists;
    for (const char* dir : store::Store::layout_directories()) {
        complete = complete && ::lstat((root + "/" + dir).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (exists) out["complete"] = complete;
    exists = complete;
    std::size_t images = 0, layers = 0, containers = 0, mounts = 0;
    std::uint64_t size = 0;
    if (exists) {
        // Observe: no lock taken, nothing cleaned: a read of records that are only ever renamed into place.
        store::Store store(root, store::Access::Observe);
        images = store.images().size();
        auto ids = store.layer_ids();
        layers = ids.size();
        for (const auto& id : ids) size += store.layer_size(id);
        containers = store.containers(true).size();
        for (const auto& m : store.mounts()) mounts += m.active ? 1 : 0;
    }
    out["imageStore"] = {{"number", images}};
    out["layerStore"] = {{"number", layers}, {"size", size}};
    out["containerStore"] = {{"number", containers}};
    out["mounts"] = {{"number", mounts}};
    return out;
}

}  // namespace

void add_info(CLI::App& app, Globals& globals, Action& action) {
    auto format = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("info", "show the store, the storage driver and what this kernel offers");
    examples(*cmd, {"imgtool info", "imgtool info --format json"});
    cmd->add_option("--format", *format, "output format: text (default, podman's key: value) or json")
        ->check(CLI::IsMember({"text", "json"}));
    cmd->callback([&app, &globals, &action, format] {
        action = [&app, &globals, format] {
            const bool rootless = rootless::active();
            launch::KernelFeatures k = launch::detect_features();
            overlay::DriverFacts facts = overlay::probe_driver_facts(rootless, globals.fresh_user_namespace);
            ojson host;
            host["kernel"] = k.kernel;
            host["rootless"] = rootless;
            host["idMappings"] = {{"uidmap", id_map_json(rootless::own_uid_map())},
                                  {"gidmap", id_map_json(rootless::own_gid_map())}};
            if (rootless) {
                host["subordinateIds"] = {{"subuid", ranges_json(rootless::own_subordinate_uids())},
                                          {"subgid", ranges_json(rootless::own_subordinate_gids())}};
            }
            host["cgroupVersion"] = k.cgroups.version;
            host["cgroupControllers"] = k.cgroups.v1_controllers;
            host["cgroupV2Mount"] = k.cgroups.v2_mount;
            host["cgroupV2Controllers"] = k.cgroups.v2_controllers;
            host["features"] = {{"newMountAPI", k.new_mount_api},
                                {"idmappedMounts", k.idmapped_mounts},
                                {"overlay", facts.overlay_filesystem},
                                {"overlayLowerdirPlus", facts.lowerdir_plus == 0 || (facts.lowerdir_plus == EPERM && facts.kernel_6_8)},
                                {"seccomp", k.seccomp},
                                {"seccompActions", k.seccomp_actions},
                                {"userNamespaces", k.user_namespaces},
                                {"maxUserNamespaces", k.max_user_namespaces}};
            if (!k.new_mount_api_note.empty()) host["features"]["newMountAPINote"] = k.new_mount_api_note;
            std::string version = app.version();
            if (version.rfind("imgtool ", 0) == 0) version.erase(0, 8);
            ojson out;
            out["host"] = std::move(host);
            out["store"] = store_json(globals.store_root(), facts);
            out["version"] = {{"version", version}};
            if (*format == "json") {
                std::printf("%s\n", out.dump(2, ' ', false, ojson::error_handler_t::replace).c_str());
            } else {
                print_yaml(out, 0);
            }
            return 0;
        };
    });
}

}  // namespace imgtool::cli
