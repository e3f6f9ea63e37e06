#include "rootless_store.hpp"

#include <fcntl.h>

#include "imgtool/core/error.hpp"
#include "imgtool/rootless/userns.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::cli {
namespace {

constexpr const char* kIdMapFile = "idmap";

std::string current_id_map() {
    return "uid_map\n" + rootless::id_map_text(rootless::own_uid_map()) + "gid_map\n" +
           rootless::id_map_text(rootless::own_gid_map());
}

bool store_has_layers(const store::Store& store) {
    sys::UniqueFd layers = sys::open_beneath(store.root_fd(), "layers", O_RDONLY | O_DIRECTORY);
    return !sys::directory_is_empty(layers.get(), store.root() + "/layers");
}

}  // namespace

void check_rootless_id_map(store::Store& store) {
    if (!rootless::active()) return;
    const std::string current = current_id_map();
    std::string recorded;
    try {
        recorded = sys::read_file_at(store.root_fd(), kIdMapFile, 1 << 16);
    } catch (const Error& e) {
        if (e.code() != std::errc::no_such_file_or_directory) throw;
    }
    if (recorded == current) return;
    if (!recorded.empty() && store_has_layers(store)) {
        throw Error(Errc::InvalidArgument,
                    store.root() + ": this store was unpacked under another id map than yours now (your ranges in "
                                   "/etc/subuid or /etc/subgid changed, or uidmap was installed or removed): its "
                                   "owners would be wrong; remove it (imgtool unshare rm -rf " + store.root() +
                                   ") and pull again");
    }
    store.write_root_file(kIdMapFile, current);
}

}  // namespace imgtool::cli
