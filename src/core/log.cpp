#include "imgtool/core/log.hpp"

#include <atomic>
#include <cstdio>
#include <string>

namespace imgtool::log {
namespace {
std::atomic<Level> g_level{Level::Normal};

void emit(std::string_view line) {
    std::string out = "imgtool: ";
    out += line;
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stderr);
}
}  // namespace

void set_level(Level level) noexcept { g_level = level; }
Level level() noexcept { return g_level; }

void notice(std::string_view line) {
    if (g_level >= Level::Normal) emit(line);
}
void debug(std::string_view line) {
    if (g_level >= Level::Debug) emit(line);
}

}  // namespace imgtool::log
