// Telling a live process from a pid that was reused: its start time (field 22 of /proc/PID/stat, in
// clock ticks since boot) identifies it together with the pid.
#pragma once

#include <cstdint>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

// The fields of /proc/PID/stat from field 3 (the state) on, split at spaces after the command name
// (which may hold spaces and parentheses); empty if the process does not exist. Field N is [N - 3].
std::vector<std::string> process_stat_fields(int pid);

// The start time of process `pid`, or nullopt if it does not exist or has exited (a zombie).
std::optional<std::uint64_t> process_start_time(int pid);

// A pidfd (pidfd_open) for `pid` if it is still the process that started at `start_time`, else an
// invalid fd: signals sent through it can never reach a process that reused the pid.
UniqueFd open_process(int pid, std::uint64_t start_time);

// Waits up to `timeout` for the process of `pidfd` to end; true if it did.
bool wait_for_exit(int pidfd, std::chrono::milliseconds timeout);

// A new container's ID: 32 bytes from the kernel's random source, as 64 lowercase hex digits (docker's
// form; the first 12 are the short ID).
std::string new_container_id();

}  // namespace imgtool::sys
