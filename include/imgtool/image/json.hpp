// Strict JSON for untrusted image metadata: size-capped, depth-capped (no stack exhaustion on
// 1,000,000-deep nesting), duplicate keys rejected, trailing garbage rejected.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

namespace imgtool::image {

inline constexpr std::size_t kMaxJsonBytes = 20 << 20;  // containerd's cap after CVE-2023-25153
inline constexpr std::size_t kMaxJsonDepth = 64;

// Throws Errc::Corrupt with "<what>: invalid JSON: <reason>".
nlohmann::json parse_json_strict(std::string_view text, std::string_view what);

}  // namespace imgtool::image
