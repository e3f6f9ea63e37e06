// A container's root filesystem, as `run` hands it to the launcher: the image's layers with the
// container's writable layer on top (overlayfs, or a copy by overlay::plan_driver's rule), mounted
// nodev, in the container's own mount namespace.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <sys/stat.h>

#include "imgtool/overlay/driver.hpp"
#include "imgtool/overlay/plan.hpp"
#include "imgtool/view/mounts.hpp"

namespace imgtool::view {

// A user's --upper DIR for a container: reached without following another user's symlink, and only
// where nobody else can reach (the container writes there as root: its setuid files and device nodes
// would work for them). Errc::UnsafePath otherwise.
struct ContainerUpper {
    std::string path;       // resolved
    struct stat identity {};  // checked again in the container's mount namespace
};
ContainerUpper open_container_upper(const std::string& path);

// docker's init layer: stacks on `layers` the image's init layer (store::Store::image_init_layer),
// made on the image's first run, holding empty /etc/hosts, /etc/hostname and /etc/resolv.conf to bind
// the container's own files on. Without it each container creates them in its writable layer: a
// copy-up of /etc and three files, removed again at its end. Nothing is stacked where the image's /etc
// is not a directory (a symlink...): there each container's set-up resolves it as before.
void add_init_layer(store::Store& store, const store::ImageRecord& image, LayerStack& layers);

struct ContainerRootPlan {
    const LayerStack* layers = nullptr;
    overlay::UpperDirs upper;                    // the store's writable layer (upper may be replaced below)
    std::optional<ContainerUpper> user_upper;    // --upper DIR instead of the store's upper
    overlay::DriverPlan driver;
    bool user_xattr = false;                     // rootless layers
};

// The function the launcher calls in the container's mount namespace with the directory to mount on.
// Layers (and the user's upper) are re-opened there and checked to be the same directories: overlayfs
// refuses layers whose mounts belong to another namespace.
std::function<void(int target_dir_fd)> container_root(ContainerRootPlan plan);

}  // namespace imgtool::view
