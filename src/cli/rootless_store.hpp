// A rootless store holds owners as the host ids its namespace mapped them to: the layers are right
// only for that id map. The map is recorded in the store (`idmap`) when the first layer arrives, and
// commands that unpack or present layers refuse a store made under another map (the user's
// /etc/subuid ranges changed, or uidmap was installed or removed), instead of showing wrong owners.
#pragma once

#include "imgtool/store/store.hpp"

namespace imgtool::cli {

// No-op for root. Throws Errc::InvalidArgument (one line saying what to do) on a mismatch.
void check_rootless_id_map(store::Store& store);

}  // namespace imgtool::cli
