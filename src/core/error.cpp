#include "imgtool/core/error.hpp"

#include <cerrno>
#include <cstring>

namespace imgtool {
namespace {

class ImgtoolCategory : public std::error_category {
public:
    const char* name() const noexcept override { return "imgtool"; }
    std::string message(int value) const override {
        switch (static_cast<Errc>(value)) {
            case Errc::DigestMismatch: return "digest mismatch";
            case Errc::SizeMismatch: return "size mismatch";
            case Errc::UnsafePath: return "unsafe path";
            case Errc::UnsupportedMediaType: return "unsupported media type";
            case Errc::NotFound: return "not found";
            case Errc::Corrupt: return "corrupt";
            case Errc::InvalidArgument: return "invalid argument";
            case Errc::Ambiguous: return "ambiguous";
            case Errc::Busy: return "busy";
            case Errc::Unsupported: return "unsupported";
            case Errc::Unavailable: return "unavailable";
            case Errc::Unauthorized: return "unauthorized";
        }
        return "unknown error";
    }
};

}  // namespace

const std::error_category& imgtool_category() noexcept {
    static const ImgtoolCategory category;
    return category;
}

void throw_errno(int err, std::string_view operation, std::string_view path) {
    std::string message(operation);
    if (!path.empty()) {
        message += " `";
        message += path;
        message += "`";
    }
    message += ": ";
    message += std::strerror(err);
    throw Error(std::error_code(err, std::generic_category()), std::move(message), std::string(path));
}

void throw_errno(std::string_view operation, std::string_view path) { throw_errno(errno, operation, path); }

}  // namespace imgtool
