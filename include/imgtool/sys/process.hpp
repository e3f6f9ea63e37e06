// Telling a live process from a pid that was reused: its start time (field 22 of /proc/PID/stat, in
// clock ticks since boot) identifies it together with the pid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace imgtool::sys {

// The start time of process `pid`, or nullopt if it does not exist or has exited (a zombie).
std::optional<std::uint64_t> process_start_time(int pid);

// A new container's ID: 32 bytes from the kernel's random source, as 64 lowercase hex digits (docker's
// form; the first 12 are the short ID).
std::string new_container_id();

}  // namespace imgtool::sys
