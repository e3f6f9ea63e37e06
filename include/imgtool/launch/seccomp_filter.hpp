// A SyscallPolicy (seccomp.hpp) compiled by libseccomp into a filter for the running architecture and
// its companions (x86_64: also i386 and x32 programs; aarch64: also 32-bit arm), as docker's profile
// covers them: a filter that knew only the native table could be bypassed with `int $0x80`.
//
// Lifecycle: compile() in the launcher's parent, before clone (a policy naming a call libseccomp does
// not know fails there, as a clear error); load() in the container's process, last before exec (or
// before --init forks the command), while it still holds CAP_SYS_ADMIN: the filter does not set
// no_new_privs (setuid binaries keep working in the container, as in docker), and without it the
// kernel wants CAP_SYS_ADMIN to install a filter. Calls made between load() and exec must be ones the
// policy allows. A loaded filter is inherited by every descendant and can never be removed.
#pragma once

#include <string>

#include "imgtool/launch/seccomp.hpp"

namespace imgtool::launch {

class SeccompFilter {
public:
    // Throws Errc::InvalidArgument for a call libseccomp does not know, Error with the errno otherwise.
    static SeccompFilter compile(const SyscallPolicy& policy);

    SeccompFilter() = default;
    SeccompFilter(SeccompFilter&& o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }
    SeccompFilter& operator=(SeccompFilter&&) = delete;
    SeccompFilter(const SeccompFilter&) = delete;
    SeccompFilter& operator=(const SeccompFilter&) = delete;
    ~SeccompFilter();

    explicit operator bool() const { return ctx_ != nullptr; }
    // Installs the filter on the calling thread. Throws.
    void load() const;

private:
    void* ctx_ = nullptr;  // scmp_filter_ctx
};

// The native number of system call `name`, or -1 if this architecture has none (or libseccomp does
// not know the name).
long syscall_number(const std::string& name);

}  // namespace imgtool::launch
