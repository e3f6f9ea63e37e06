// Small pure string helpers shared by modules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgtool {

std::vector<std::string> split(std::string_view text, char separator);
// Splits a relative path at its last '/': "a/b/c" -> {"a/b", "c"}, "c" -> {"", "c"}.
std::pair<std::string, std::string> split_parent(std::string_view path);
bool is_lower_hex(std::string_view text) noexcept;
// "12.3 MB" style, decimal units as docker prints sizes.
std::string human_size(std::uint64_t bytes);
// Quotes a name for an error message, escaping control bytes so one error stays one line.
std::string printable(std::string_view name);
// Escapes control bytes (newlines included), C1 controls and bytes that are not well-formed UTF-8 as
// \xNN, without shortening: one error stays one line, and names from hostile images cannot forge
// extra lines, terminal escapes or invalid text on the user's terminal.
std::string escape_control(std::string_view text);

// A word for a command line shown in a message (a path the user may paste): as it is when it holds
// only characters no shell interprets, else single-quoted ('\'' for a quote).
std::string shell_word(std::string_view word);

// The candidate a mistyped word most likely meant, for "did you mean" hints; "" when none is close.
// Compared without case: the fewest single-character insertions, deletions, substitutions or swaps of
// neighbours (optimal string alignment), within max(1, (length of word + 2) / 3) edits; else, for a
// word of 3 or more characters, the shortest candidate that starts with it. Ties go to the earlier
// candidate. An exact match returns itself. max_edits lowers the edit limit: image names share long
// parts ("docker.io/library/", "localhost/") that a third of their length would let differ.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates,
                          std::size_t max_edits = SIZE_MAX);

// The current time, UTC, as "2006-01-02T15:04:05Z" (RFC 3339, whole seconds: image configs, records).
std::string utc_now_rfc3339();

}  // namespace imgtool
