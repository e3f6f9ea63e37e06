// What a stack of layer directories shows at one path, by overlayfs's lookup rules, without mounting
// it: the import uses it to find where a layer's implicit directories (parents the tar never listed)
// would land on something lower layers made a non-directory (a merged-/usr `bin -> usr/bin`).
//
// Rules (overlayfs, Documentation/filesystems/overlayfs.rst): each component is looked up from the top
// layer down; a whiteout (0/0 character device) hides the name; a non-directory ends the lookup; a
// directory merges with lower directories of the same name until a layer's directory is opaque; a
// layer whose root is opaque hides every layer below it.
#pragma once

#include <string>
#include <vector>

namespace imgtool::layer {

struct StackedLayer {
    int fd;                    // the layer's root directory (any open mode; never followed through)
    bool root_opaque = false;  // ".wh..wh..opq" at its root
};

enum class MergedKind { Absent, Directory, Other };

struct MergedEntry {
    MergedKind kind = MergedKind::Absent;
    std::string blocked_at;  // for Other: the path of the non-directory that was found (a prefix of path)
};

// `layers` top first; `path` relative ("a/b"); `opaque_xattr` "trusted.overlay.opaque" or
// "user.overlay.opaque" (rootless stores). Missing components make the result Absent. A non-directory
// at `path` or at one of its prefixes gives Other with blocked_at naming it.
MergedEntry merged_lookup(const std::vector<StackedLayer>& layers, const std::string& path, const char* opaque_xattr);

}  // namespace imgtool::layer
