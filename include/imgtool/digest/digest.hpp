// Digest: a validated "sha256:<64 lower-case hex>" value. Parsing is the only way to make one, so any
// Digest can safely become a path component (CVE-2024-3727: digests used as paths before validation).
#pragma once

#include <compare>
#include <string>
#include <string_view>

namespace imgtool::digest {

class Digest {
public:
    // Throws Errc::InvalidArgument / Errc::Unsupported naming the offending text.
    static Digest parse(std::string_view text);
    // From a raw 64-hex sha256 string (validated).
    static Digest sha256_hex(std::string_view hex);

    const std::string& hex() const noexcept { return hex_; }
    std::string algorithm() const { return "sha256"; }
    std::string str() const { return "sha256:" + hex_; }
    // Docker's 12-hex short image ID.
    std::string short_hex() const { return hex_.substr(0, 12); }

    auto operator<=>(const Digest&) const = default;

private:
    explicit Digest(std::string hex) : hex_(std::move(hex)) {}
    std::string hex_;
};

}  // namespace imgtool::digest
