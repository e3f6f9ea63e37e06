#include "imgtool/overlay/plan.hpp"

#include <algorithm>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

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

namespace {
constexpr std::string_view kViewSource = "imgtool";
}  // namespace

std::string view_source(const std::string& store_root) {
    std::string source = std::string(kViewSource) + ":" + store_root;
    bool plain = store_root.empty() || store_root[0] != '/' || source.size() > 255 ||
                 std::any_of(store_root.begin(), store_root.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    return plain ? std::string(kViewSource) : source;
}

bool is_view_source(std::string_view source) {
    return source == kViewSource || (source.size() > kViewSource.size() + 1 && source.substr(0, kViewSource.size()) == kViewSource &&
                                     source[kViewSource.size()] == ':');
}

std::optional<std::string> store_of_view_source(std::string_view source) {
    if (source == kViewSource || !is_view_source(source)) return std::nullopt;
    return std::string(source.substr(kViewSource.size() + 1));
}

std::optional<std::string> store_of_copy_tree(std::string_view tree) {
    constexpr std::string_view kTree = "/tree";
    if (tree.size() <= kTree.size() || tree.substr(tree.size() - kTree.size()) != kTree) return std::nullopt;
    std::string_view rest = tree.substr(0, tree.size() - kTree.size());  // STORE/mounts/NAME
    auto slash = rest.rfind('/');
    if (slash == std::string_view::npos || slash + 1 == rest.size()) return std::nullopt;
    rest = rest.substr(0, slash);  // STORE/mounts
    constexpr std::string_view kMounts = "/mounts";
    if (rest.size() < kMounts.size() || rest.substr(rest.size() - kMounts.size()) != kMounts) return std::nullopt;
    std::string store(rest.substr(0, rest.size() - kMounts.size()));
    return store.empty() ? "/" : store;
}

std::string missing_directory_message(std::string_view role, const std::string& wanted, const std::string& missing) {
    std::string message = std::string(role) + " " + wanted + " does not exist";
    if (missing == wanted || missing.empty()) return message + "; create it first (mkdir " + shell_word(wanted) + ")";
    message += " (" + missing + " is missing); create it first";
    // A missing directory above it: mkdir -p. Anything else was reached through a symlink.
    bool above = wanted.size() > missing.size() && wanted.compare(0, missing.size(), missing) == 0 &&
                 (missing == "/" || wanted[missing.size()] == '/');
    return above ? message + " (mkdir -p " + shell_word(wanted) + ")" : message;
}

}  // namespace imgtool::overlay
