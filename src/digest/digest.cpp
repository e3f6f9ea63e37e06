#include "imgtool/digest/digest.hpp"

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::digest {

Digest Digest::sha256_hex(std::string_view hex) {
    if (hex.size() != 64 || !is_lower_hex(hex)) {
        throw Error(Errc::InvalidArgument, "invalid sha256 digest \"" + printable(hex) + "\"");
    }
    return Digest(std::string(hex));
}

Digest Digest::parse(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        throw Error(Errc::InvalidArgument, "invalid digest \"" + printable(text) + "\": no algorithm");
    }
    std::string_view algorithm = text.substr(0, colon);
    if (algorithm != "sha256") {
        throw Error(Errc::Unsupported, "unsupported digest algorithm \"" + printable(algorithm) + "\"");
    }
    std::string_view hex = text.substr(colon + 1);
    if (hex.size() != 64 || !is_lower_hex(hex)) {
        throw Error(Errc::InvalidArgument, "invalid digest \"" + printable(text) + "\"");
    }
    return Digest(std::string(hex));
}

}  // namespace imgtool::digest
