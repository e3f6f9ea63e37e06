// imgtool::Error: the one exception type of the project.
// It carries a std::error_code (an errno or a named imgtool::Errc), the path involved, and a context
// chain that callers prepend at module boundaries, so the final message reads like
// "pull-local img.tar: layer sha256:ab..: unpack usr/bin/x: Permission denied".
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace imgtool {

// Logical failures that are not an errno.
enum class Errc {
    DigestMismatch = 1,
    SizeMismatch,
    UnsafePath,
    UnsupportedMediaType,
    NotFound,
    Corrupt,
    InvalidArgument,
    Ambiguous,
    Busy,
    Unsupported,
    Unavailable,     // a server or the network failed, after every retry
    Unauthorized,    // credentials missing or refused
};

const std::error_category& imgtool_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), imgtool_category()}; }

class Error : public std::exception {
public:
    Error(std::error_code code, std::string message, std::string path = {})
        : code_(code), message_(std::move(message)), path_(std::move(path)) {
        rebuild();
    }
    Error(Errc code, std::string message, std::string path = {})
        : Error(make_error_code(code), std::move(message), std::move(path)) {}

    const char* what() const noexcept override { return full_.c_str(); }
    const std::error_code& code() const noexcept { return code_; }
    const std::string& path() const noexcept { return path_; }
    const std::string& message() const noexcept { return message_; }

    // Prepends one level of context ("layer sha256:..") to the message.
    Error& add_context(std::string_view context) {
        context_.insert(0, std::string(context) + ": ");
        rebuild();
        return *this;
    }

private:
    void rebuild() { full_ = context_ + message_; }

    std::error_code code_;
    std::string message_;
    std::string path_;
    std::string context_;
    std::string full_;
};

// Throws an Error for the current errno, formatted as crun does: "open `path`: No such file or directory".
[[noreturn]] void throw_errno(std::string_view operation, std::string_view path);
[[noreturn]] void throw_errno(int err, std::string_view operation, std::string_view path);

// Runs fn; if it throws an Error, prepends `context` and rethrows.
template <typename Fn>
decltype(auto) with_context(std::string_view context, Fn&& fn) {
    try {
        return std::forward<Fn>(fn)();
    } catch (Error& e) {
        e.add_context(context);
        throw;
    }
}

}  // namespace imgtool

template <>
struct std::is_error_code_enum<imgtool::Errc> : std::true_type {};
