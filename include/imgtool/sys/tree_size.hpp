// Measuring a tree the store holds but does not trust (a layer, a container's writable layer, a
// leftover in tmp/): the walk never follows a symlink (a link counts its own length), never enters a
// directory on another mount, and counts a hard-linked file once.
#pragma once

#include <cstdint>
#include <string>

namespace imgtool::sys {

struct TreeSize {
    std::uint64_t bytes = 0;    // apparent sizes (st_size) of files and symlinks; directories count 0
    std::uint64_t entries = 0;  // every entry seen, the top included
    bool complete = true;       // false: deeper than the walk goes, another mount, or an unreadable directory
};

// dirfd/name (not followed if it is a symlink). Missing: zero. Never throws for what it finds inside;
// an unreadable part is left out and marks the result incomplete.
TreeSize tree_size_at(int dirfd, const std::string& name);

}  // namespace imgtool::sys
