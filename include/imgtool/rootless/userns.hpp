// Rootless mode: as an ordinary user, imgtool enters a user namespace in which it is root, mapped from
// the user's subordinate ids (podman's layout, see idmap.hpp), and does its work there.
//
// enter_user_namespace() forks. The child unshares a user namespace and waits while the parent, still
// in the initial namespace, writes the child's maps with the setuid helpers newuidmap/newgidmap (package
// uidmap) - or, without subordinate ranges or helpers, maps only the user's own id itself. The child then
// becomes uid/gid 0 and returns to do the command; the parent forwards signals to it and exits with its
// status, so callers and shells see one process that behaves like the command.
#pragma once

#include <vector>

#include "imgtool/rootless/idmap.hpp"

namespace imgtool::rootless {

// True in a user namespace other than the initial one: imgtool then works in rootless mode (user.*
// overlay xattrs, host device nodes bound instead of made, owners limited to the mapped ids).
bool active();

// This process's own maps (/proc/self/uid_map, gid_map).
std::vector<IdMapLine> own_uid_map();
std::vector<IdMapLine> own_gid_map();

// Only the user's own id is mapped (no subordinate ids): image owners cannot be kept.
bool single_id_mapped();

// The subordinate ranges (/etc/subuid, /etc/subgid) of the user this process acts for: the host id
// its namespace maps to 0 (itself outside a user namespace). For `imgtool info`.
std::vector<IdRange> own_subordinate_uids();
std::vector<IdRange> own_subordinate_gids();

// Returns in the child, as root of a fresh user namespace; the parent never returns (it exits with the
// child's status) unless setting up the namespace fails, which throws imgtool::Error in the parent.
void enter_user_namespace();

}  // namespace imgtool::rootless
