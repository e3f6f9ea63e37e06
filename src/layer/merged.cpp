#include "imgtool/layer/merged.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/tree_metadata.hpp"

namespace imgtool::layer {
namespace {

bool is_opaque(int dir, const char* xattr) {
    char v = 0;
    return ::fgetxattr(dir, xattr, &v, 1) == 1 && v == 'y';
}

}  // namespace

MergedEntry merged_lookup(const std::vector<StackedLayer>& layers, const std::string& path, const char* opaque_xattr) {
    // The directories that merge at the current prefix, top first.
    std::vector<sys::UniqueFd> merging;
    for (const StackedLayer& layer : layers) {
        merging.push_back(sys::open_at(layer.fd, ".", O_RDONLY | O_DIRECTORY));
        if (layer.root_opaque) break;
    }
    std::string prefix;
    std::vector<std::string> parts;
    for (auto& part : split(path, '/')) {
        if (!part.empty()) parts.push_back(part);
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        prefix += (prefix.empty() ? "" : "/") + part;
        std::vector<sys::UniqueFd> next;
        for (const sys::UniqueFd& dir : merging) {
            auto [st, err] = sys::try_lstat_at(dir.get(), part);
            if (err == ENOENT) continue;
            if (err) throw_errno(err, "stat", prefix);
            if (sys::is_whiteout(st)) break;  // hidden from here down
            if (!S_ISDIR(st.st_mode)) {
                // The topmost entry decides the type; a non-directory below a directory ends the merge.
                if (next.empty()) return {MergedKind::Other, prefix};
                break;
            }
            next.push_back(sys::open_at(dir.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, prefix));
            if (is_opaque(next.back().get(), opaque_xattr)) break;
        }
        if (next.empty()) return {};
        merging = std::move(next);
    }
    return {MergedKind::Directory, {}};
}

}  // namespace imgtool::layer
