// Performs a MountSpec: the new mount API first (no length limit on lowers), mount(2) with a one-page
// data string where the kernel lacks "lowerdir+". Errors carry the kernel's own reason.
#pragma once

#include <string>

#include "imgtool/overlay/plan.hpp"
#include "imgtool/sys/mount.hpp"

namespace imgtool::overlay {

// Mounts on a directory fd: a view's target or a container's root, opened and checked by the caller,
// so the mount can land nowhere else. `attributes`: MOUNT_ATTR_* (nosuid, nodev) besides the spec's
// read-only. Throws with the kernel's reason.
void mount_at(const MountSpec& spec, int target_fd, unsigned attributes);

}  // namespace imgtool::overlay
