// Minimal diagnostics to stderr. The CLI decides verbosity; modules only say what happened.
#pragma once

#include <string_view>

namespace imgtool::log {

enum class Level { Quiet = 0, Normal = 1, Debug = 2 };

void set_level(Level level) noexcept;
Level level() noexcept;

// One line to stderr, prefixed "imgtool: ".
void notice(std::string_view line);
void debug(std::string_view line);

}  // namespace imgtool::log
