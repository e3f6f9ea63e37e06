// Pure classification of tar entry names: where an entry lands inside its layer directory, and whether
// it is a whiteout. No syscalls; unit-tested directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace imgtool::layer {

// Cleans a tar entry name to a path relative to the layer root ("" is the root itself), the way docker
// does: a leading "/" is dropped (contained), "." and empty components vanish, ".." pops a component,
// and a ".." that would climb above the root is refused (nullopt).
std::optional<std::string> clean_entry_path(std::string_view name);

enum class WhiteoutKind {
    None,     // an ordinary name
    Whiteout, // ".wh.NAME": delete NAME from lower layers
    Opaque,   // ".wh..wh..opq": hide the lower layers' contents of the parent directory
    Meta,     // other ".wh..wh." names: aufs bookkeeping, ignored as docker and containerd do
    Invalid,  // ".wh.", ".wh..", ".wh...": would name the directory itself or its parent
};

struct Whiteout {
    WhiteoutKind kind = WhiteoutKind::None;
    std::string target;  // for Whiteout: the name it deletes
};

Whiteout classify_whiteout(std::string_view base_name);

}  // namespace imgtool::layer
