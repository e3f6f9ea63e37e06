// Telling a live process from a pid that was reused: its start time (field 22 of /proc/PID/stat, in
// clock ticks since boot) identifies it together with the pid.
#pragma once

#include <cstdint>
#include <optional>

namespace imgtool::sys {

// The start time of process `pid`, or nullopt if it does not exist or has exited (a zombie).
std::optional<std::uint64_t> process_start_time(int pid);

}  // namespace imgtool::sys
