#include "rootless_store.hpp"

#include "imgtool/rootless/userns.hpp"

namespace imgtool::cli {

void check_rootless_id_map(store::Store& store) {
    if (!rootless::active()) return;
    store.check_id_map("uid_map\n" + rootless::id_map_text(rootless::own_uid_map()) + "gid_map\n" +
                       rootless::id_map_text(rootless::own_gid_map()));
}

}  // namespace imgtool::cli
