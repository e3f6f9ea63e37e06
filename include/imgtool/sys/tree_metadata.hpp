// What the two writers of layer trees share, the unpacker (layer/unpack) and the copy driver
// (overlay/copy): which extended attributes belong to overlayfs, what a whiteout looks like on disk, and
// directory metadata deferred to one final pass.
//
// DeferredDirs lifecycle: record() while the tree is being filled (each directory stays writable and
// its times keep changing as children are added), then apply() once, at the end. It holds names only,
// never fds: what apply() touches is re-resolved then, with no symlink allowed on the way.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace imgtool::sys {

// trusted.overlay.* and user.overlay.* (opaque, redirect, metacopy...): overlayfs's own metadata. It must
// only ever come from imgtool's whiteout handling, never from a tar or be copied from a layer, where it
// could act as a whiteout or a redirect.
bool is_overlay_xattr(std::string_view name);

// A whiteout as overlayfs stores it in a layer directory: a 0/0 character device.
bool is_whiteout(const struct stat& st);

struct Owner {
    uid_t uid = 0;
    gid_t gid = 0;
};

struct DirMetadata {
    mode_t mode = 0;              // permission bits (setgid and sticky included)
    struct timespec times[2]{};   // atime, mtime
    std::optional<Owner> owner;   // chowned to this at the end; nullopt: the owner is left as it is
};

// Directory metadata applied after a tree is filled: modes and times last, because creating children
// changes a directory's times and a restrictive mode could block them; owners too where the writer keeps
// directories its own (0700) until the end.
//
// One node per directory path, as a tree of names: recording one deep directory a million times costs
// one node, and a million distinct directories cost their names, not their full paths.
class DeferredDirs {
public:
    // Records `meta` for directory `path`, relative to the tree's root ("" is the root itself; empty
    // components are ignored). A later record for the same path replaces the earlier one.
    void record(std::string_view path, const DirMetadata& meta);

    // Applies owner, mode and times to every recorded directory below root_fd, deepest first (a
    // restrictive mode on a parent must not keep a child from being opened). Each directory is
    // re-resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): one that was removed or replaced
    // since it was recorded (by a file, or by a symlink, which is never followed) is skipped. Any other
    // failure throws, naming the directory.
    void apply(int root_fd) const;

    // Directories in the tree of names: those recorded and their ancestors.
    std::size_t node_count() const { return nodes_.size(); }

private:
    struct Node {
        std::uint32_t parent = 0;  // index in nodes_; the root is node 0, its own parent
        std::string name;
        bool recorded = false;     // record() named this path (else it is only on the way to one)
        DirMetadata meta;
    };

    std::string path_of(std::uint32_t node) const;

    std::vector<Node> nodes_;
    std::unordered_map<std::string, std::uint32_t> children_;  // "<parent index>/<name>" -> node
};

}  // namespace imgtool::sys
