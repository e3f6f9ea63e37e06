// What to mount, as data. Planning is pure (no syscalls) so it is unit-tested without root; performing
// the plan is overlay::mount (mount.hpp), which only translates it into syscalls.
//
// Rules encoded here:
// - lowers are listed top layer first, as overlayfs wants them;
// - a layer whose root carries an opaque marker hides every layer below it: those are dropped from the
//   stack (overlayfs ignores the opaque xattr on a layer's root directory);
// - overlayfs needs two lowers when there is no upper: a single visible layer is stacked on an empty
//   directory (a bind mount would show the layer's whiteout devices);
// - the kernel stacks at most kMaxLowers layers;
// - the legacy mount(2) data string must fit in one page; the new mount API (fsconfig "lowerdir+",
//   Linux >= 6.8) has no such limit and is preferred.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgtool::overlay {

inline constexpr std::size_t kMaxLowers = 500;
inline constexpr std::size_t kLegacyDataMax = 4095;  // one page minus the NUL

struct LayerRef {
    std::string dir;  // the layer's diff/ directory
    bool root_opaque = false;
    // The layer's skeleton (directories holding its whiteouts), stacked right under it so those
    // directories always merge: overlayfs shows a whiteout as a broken entry in a directory that no
    // lower layer has. Empty: none.
    std::string skeleton = {};
};

struct UpperDirs {
    std::string upper;
    std::string work;
};

struct MountSpec {
    std::string fstype = "overlay";
    std::string source = "imgtool";
    std::vector<std::string> lowers;  // top first
    std::optional<UpperDirs> upper;   // absent: a read-only view
    bool read_only = true;
    bool user_xattr = false;  // rootless: layers carry user.overlay.* xattrs ("userxattr")
};

// The layers a merged view shows, top first, each followed by its skeleton: the stack stops at the
// first layer (from the top) whose root is opaque. `layers` bottom first. Also what `inspect` reports
// as GraphDriver.Data.LowerDir.
std::vector<std::string> visible_lowers(const std::vector<LayerRef>& layers);
// The same layers' diff/ directories only, bottom first: what the copy driver applies (it deletes
// for whiteouts, so skeletons mean nothing to it).
std::vector<std::string> visible_layer_dirs(const std::vector<LayerRef>& layers);

// `layers` bottom first (as images list them); `empty_dir` is an empty directory used as the bottom
// lower when only one layer is visible and there is no upper. Throws Errc::InvalidArgument for no
// layers and Errc::Unsupported for more than the kernel can stack.
MountSpec plan_overlay(const std::vector<LayerRef>& layers, const std::optional<UpperDirs>& upper,
                       const std::string& empty_dir);

// The fsconfig(2) parameters for the new mount API, in order.
std::vector<std::pair<std::string, std::string>> fsconfig_parameters(const MountSpec& spec);

// The mount(2) data string ("lowerdir=a:b,upperdir=..,workdir=.."), with ':' ',' '\' escaped;
// nullopt if it does not fit in a page.
std::optional<std::string> legacy_mount_data(const MountSpec& spec);

// ---- which store a view belongs to ----------------------------------------------------------------
// An `imgtool mount` overlay's source names its store ("imgtool:/var/lib/imgtool"), so that `umount`
// with another --root can say whose it is. Only a label for messages: unmounting still needs this
// store's record. A root too long for fsconfig's 256-byte strings (or with a control character)
// gives plain "imgtool", as older views have.
std::string view_source(const std::string& store_root);
// "imgtool" or "imgtool:...": a view imgtool made.
bool is_view_source(std::string_view source);
// The store named by a view's source, if it names one.
std::optional<std::string> store_of_view_source(std::string_view source);
// A copy view is a bind of STORE/mounts/NAME/tree: STORE, if `tree` has that shape.
std::optional<std::string> store_of_copy_tree(std::string_view tree);

// "ROLE WANTED does not exist; create it first (mkdir WANTED)": `missing` is the absolute path the
// walk found missing, `wanted` the directory asked for (absolute, lexically normalised); when a
// directory above it is missing, `mkdir -p`; a missing place a symlink leads to is only named.
std::string missing_directory_message(std::string_view role, const std::string& wanted, const std::string& missing);

}  // namespace imgtool::overlay
