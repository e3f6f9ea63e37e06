// Pure pieces of rootless operation: the user's subordinate id ranges (/etc/subuid, /etc/subgid), the
// id map a user namespace gets from them, and reading a process's own map back. No syscalls.
//
// The map is podman's: id 0 inside is the user's own id; 1, 2, ... inside are the subordinate ranges in
// file order, so image owners 1..N land in the user's subordinate range. Without ranges only 0 is mapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace imgtool::rootless {

struct IdRange {
    std::uint32_t start = 0;
    std::uint32_t count = 0;
};

// Lines "NAME:START:COUNT" or "ID:START:COUNT" that belong to `user` (name) or `id`; malformed lines and
// empty ranges are skipped, as shadow-utils does.
std::vector<IdRange> parse_subid_file(std::string_view text, std::string_view user, std::uint32_t id);

struct IdMapLine {
    std::uint32_t inside = 0;
    std::uint32_t outside = 0;
    std::uint32_t count = 0;
};

// The kernel accepts at most this many lines in uid_map.
inline constexpr std::size_t kMaxIdMapLines = 340;

// 0 -> own_id, then the ranges packed from 1 upwards (ranges that contain own_id are left out).
std::vector<IdMapLine> plan_id_map(std::uint32_t own_id, const std::vector<IdRange>& ranges);

// "inside outside count" per line: what /proc/PID/uid_map takes.
std::string id_map_text(const std::vector<IdMapLine>& map);
// newuidmap/newgidmap's arguments after the program name: PID then the triples.
std::vector<std::string> newidmap_arguments(pid_t pid, const std::vector<IdMapLine>& map);

// Parses /proc/PID/uid_map (or gid_map) text; throws Errc::Corrupt on a malformed line.
std::vector<IdMapLine> parse_id_map(std::string_view text);
// The initial user namespace maps all 2^32-1 ids onto themselves.
bool is_initial_id_map(const std::vector<IdMapLine>& map);
std::uint64_t mapped_id_count(const std::vector<IdMapLine>& map);
// Whether `inside` is covered by the map.
bool id_is_mapped(const std::vector<IdMapLine>& map, std::uint64_t inside);

}  // namespace imgtool::rootless
