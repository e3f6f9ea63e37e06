// Performs a MountSpec: the new mount API first (no length limit on lowers), mount(2) with a one-page
// data string where the kernel lacks "lowerdir+". Errors carry the kernel's own reason.
#pragma once

#include <string>

#include "imgtool/overlay/plan.hpp"
#include "imgtool/sys/mount.hpp"

namespace imgtool::overlay {

// `attributes`: MOUNT_ATTR_* flags (nosuid, nodev) besides the spec's read-only.
sys::MountGuard mount(const MountSpec& spec, const std::string& target, unsigned attributes = 0);
// Mounts on a directory fd (inside a container being set up). `attributes`: MOUNT_ATTR_* (e.g. nodev).
void mount_at(const MountSpec& spec, int target_fd, unsigned attributes);

}  // namespace imgtool::overlay
