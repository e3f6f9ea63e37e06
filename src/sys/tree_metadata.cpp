#include "imgtool/sys/tree_metadata.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::sys {

bool is_overlay_xattr(std::string_view name) {
    return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

bool is_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

void DeferredDirs::record(std::string_view path, const DirMetadata& meta) {
    if (nodes_.empty()) nodes_.push_back({});
    std::uint32_t node = 0;
    std::size_t pos = 0;
    while (pos <= path.size()) {
        std::size_t end = std::min(path.find('/', pos), path.size());
        std::string_view part = path.substr(pos, end - pos);
        pos = end + 1;
        if (part.empty()) continue;
        std::string key = std::to_string(node) + '/';
        key += part;
        auto [it, fresh] = children_.try_emplace(std::move(key), static_cast<std::uint32_t>(nodes_.size()));
        if (fresh) nodes_.push_back({node, std::string(part), false, {}});
        node = it->second;
    }
    Node& n = nodes_[node];
    n.recorded = true;
    n.meta = meta;
}

std::string DeferredDirs::path_of(std::uint32_t node) const {
    std::vector<const std::string*> names;
    for (; node != 0; node = nodes_[node].parent) names.push_back(&nodes_[node].name);
    std::string path;
    for (auto it = names.rbegin(); it != names.rend(); ++it) path += (path.empty() ? "" : "/") + **it;
    return path;
}

void DeferredDirs::apply(int root_fd) const {
    // Nodes are made parents first, so walking them backwards visits every child before its parent.
    for (std::size_t i = nodes_.size(); i-- > 0;) {
        const Node& n = nodes_[i];
        if (!n.recorded) continue;
        std::string path = path_of(static_cast<std::uint32_t>(i));
        UniqueFd fd;
        if (path.empty()) {
            fd = open_at(root_fd, ".", O_RDONLY | O_DIRECTORY);
        } else {
            auto opened = try_open_beneath(root_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            // Gone, or no longer a directory reachable without a symlink: a later entry or layer decided.
            int err = opened.err;
            if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV) continue;
            if (err) throw_errno(err, "open", printable(path));
            fd = std::move(opened.value);
        }
        const DirMetadata& m = n.meta;
        if (m.owner && ::fchown(fd.get(), m.owner->uid, m.owner->gid) != 0) throw_errno("chown", printable(path));
        if (::fchmod(fd.get(), m.mode) != 0) throw_errno("chmod", printable(path));
        if (::futimens(fd.get(), m.times) != 0) throw_errno("utimes", printable(path));
    }
}

}  // namespace imgtool::sys
