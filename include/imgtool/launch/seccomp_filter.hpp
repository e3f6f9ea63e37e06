// A resolved SyscallPolicy (seccomp.hpp) compiled by libseccomp into a classic BPF program, held as
// plain data, and loaded with seccomp(2).
//
// Lifecycle: compile() in the launcher's parent, before clone (the child gets the program in its copy
// of memory); load() in the container's process, last before exec (or before --init forks the
// command), while it still holds CAP_SYS_ADMIN: the filter does not set no_new_privs (setuid binaries
// keep working in the container, as in docker), and without it the kernel wants CAP_SYS_ADMIN to
// install a filter. Calls made between load() and exec must be ones the policy allows. A loaded filter
// is inherited by every descendant and can never be removed.
//
// Names libseccomp does not know (a call newer than the library) are skipped, as docker skips them: the
// call then gets the default action. Names absent from one of the filter's architectures (umount on
// x86_64) are skipped there.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "imgtool/launch/seccomp.hpp"

namespace imgtool::launch {

class SeccompFilter {
public:
    // Throws Error with the errno libseccomp reports (a rule it refuses, an unknown architecture).
    static SeccompFilter compile(const SyscallPolicy& policy);
    // docker's default profile for `capabilities` on `platform`. libseccomp takes 10-40 ms of CPU to
    // compile it, so programs for docker's default capability set (and with SYS_ADMIN, with
    // SYS_PTRACE, with all) were generated when imgtool was built (seccomp_bake.cpp); one is used
    // whenever the profile's rule decisions here are the ones made for it there, which makes the
    // policy the same. Anything else is compiled now.
    static SeccompFilter docker_default(std::uint64_t capabilities, const SeccompPlatform& platform);

    SeccompFilter() = default;
    explicit SeccompFilter(std::vector<sock_filter> program) : program_(std::move(program)) {}

    explicit operator bool() const { return !program_.empty(); }
    const std::vector<sock_filter>& program() const { return program_; }
    // Installs the filter on the calling thread. Throws.
    void load() const;

private:
    std::vector<sock_filter> program_;
};

// This machine: the architecture imgtool was built for (the ABI of its own calls, as docker takes
// Go's) and the running kernel's version.
SeccompPlatform host_platform();

// Whether libseccomp knows system call `name` on any architecture (a call newer than the library: no).
bool libseccomp_knows(const std::string& name);

// The native number of system call `name`, or -1 if this architecture has none (or libseccomp does
// not know the name).
long syscall_number(const std::string& name);

}  // namespace imgtool::launch
