// `imgtool bundle`: an OCI runtime bundle of an image, for crun or runc. Owns DIR's layout:
//   DIR/config.json                      runtime-spec 1.0.2, launch::runtime_spec_json of run's LaunchSpec
//   DIR/hosts, DIR/hostname, DIR/resolv.conf   docker's init files, bound over /etc/... by config.json
//   DIR/rootfs                           the image's merged tree: a writable `imgtool mount` (overlay with
//                                        a store-owned upper, or the copy driver), recorded like mount's,
//                                        so `imgtool umount DIR/rootfs` works
//   DIR/.imgtool-bundle                  the marker: bundle --rm touches only a DIR that has it
// Lifecycle: make_bundle needs DIR absent or an empty directory, makes it 0700 (the rootfs honours
// setuid bits, as run's root does, so no one else may reach it), and on any failure undoes what it did.
// remove_bundle unmounts the rootfs (if the store recorded that mount) and removes only the names above,
// without following a symlink; rootfs and DIR only when empty, DIR only when bundle made it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "imgtool/launch/spec.hpp"
#include "imgtool/store/store.hpp"

namespace imgtool::bundle {

inline constexpr const char* kMarker = ".imgtool-bundle";

struct BundleRequest {
    std::string dir;
    std::string driver;           // "", "overlay" or "copy" (overlay::plan_driver)
    launch::RunOptions options;   // run's process options; default_hostname: a new short ID if empty
    std::string host_resolv;      // the host's /etc/resolv.conf text (run's rules make the container's)
};

struct Bundle {
    std::string dir;     // canonical
    std::string rootfs;  // canonical, the mount's target
};

// The bundle of the image `reference` names (an ID, a unique ID prefix or a tag). Throws imgtool::Error:
// Unsupported as an ordinary user (first of all); InvalidArgument for bad options, then for DIR that is
// neither absent nor an empty directory (before DIR is touched).
Bundle make_bundle(store::Store& store, std::string_view reference, BundleRequest request);

// What was left in place (names relative to DIR, with the reason), for the caller to report.
std::vector<std::string> remove_bundle(store::Store& store, const std::string& dir);

}  // namespace imgtool::bundle
