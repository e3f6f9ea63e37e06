// /proc/self/mountinfo, parsed into values. `parse_mountinfo` is pure (unit-tested); `read_mountinfo`
// reads the calling process's table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace imgtool::sys {

struct MountInfo {
    int id = 0;
    int parent = 0;
    std::string root;         // path within the filesystem that is mounted
    std::string mount_point;  // unescaped (\040 -> ' ')
    std::string options;
    std::string fstype;
    std::string source;
    std::string super_options;
};

std::vector<MountInfo> parse_mountinfo(std::string_view text);
std::vector<MountInfo> read_mountinfo();
// The mount namespace of this process, as "mnt:[4026531841]".
std::string mount_namespace_id();
// Whether any process we may inspect is in mount namespace `id`: a namespace nobody is in is gone,
// and its mounts with it.
bool mount_namespace_in_use(const std::string& id);

}  // namespace imgtool::sys
