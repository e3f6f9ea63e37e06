#include "imgtool/overlay/plan.hpp"

#include "imgtool/core/error.hpp"

namespace imgtool::overlay {
namespace {

std::string escape(const std::string& path) {
    std::string out;
    for (char c : path) {
        if (c == ':' || c == ',' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

std::vector<std::string> visible_lowers(const std::vector<LayerRef>& layers) {
    std::vector<std::string> lowers;
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        lowers.push_back(it->dir);
        if (!it->skeleton.empty()) lowers.push_back(it->skeleton);
        if (it->root_opaque) break;  // everything below is hidden
    }
    return lowers;
}

std::vector<std::string> visible_layer_dirs(const std::vector<LayerRef>& layers) {
    std::vector<std::string> dirs;
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        dirs.push_back(it->dir);
        if (it->root_opaque) break;
    }
    return {dirs.rbegin(), dirs.rend()};
}

MountSpec plan_overlay(const std::vector<LayerRef>& layers, const std::optional<UpperDirs>& upper,
                       const std::string& empty_dir) {
    if (layers.empty()) throw Error(Errc::InvalidArgument, "the image has no layers to mount");
    MountSpec spec;
    spec.lowers = visible_lowers(layers);
    if (spec.lowers.size() > kMaxLowers) {
        throw Error(Errc::Unsupported, "the image has " + std::to_string(spec.lowers.size()) +
                                           " visible layers; overlayfs stacks at most " + std::to_string(kMaxLowers));
    }
    if (spec.lowers.size() == 1 && !upper) spec.lowers.push_back(empty_dir);
    spec.upper = upper;
    spec.read_only = !upper.has_value();
    return spec;
}

std::vector<std::pair<std::string, std::string>> fsconfig_parameters(const MountSpec& spec) {
    std::vector<std::pair<std::string, std::string>> params;
    params.emplace_back("source", spec.source);
    for (const auto& lower : spec.lowers) params.emplace_back("lowerdir+", lower);
    if (spec.upper) {
        params.emplace_back("upperdir", spec.upper->upper);
        params.emplace_back("workdir", spec.upper->work);
    }
    if (spec.user_xattr) params.emplace_back("userxattr", "");
    return params;
}

std::optional<std::string> legacy_mount_data(const MountSpec& spec) {
    std::string data = "lowerdir=";
    for (std::size_t i = 0; i < spec.lowers.size(); ++i) {
        if (i) data += ':';
        data += escape(spec.lowers[i]);
    }
    if (spec.upper) data += ",upperdir=" + escape(spec.upper->upper) + ",workdir=" + escape(spec.upper->work);
    if (spec.user_xattr) data += ",userxattr";
    if (data.size() > kLegacyDataMax) return std::nullopt;
    return data;
}

}  // namespace imgtool::overlay
