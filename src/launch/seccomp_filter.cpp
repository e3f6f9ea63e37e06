#include "imgtool/launch/seccomp_filter.hpp"

#include <seccomp.h>

#include <vector>

#include "imgtool/core/error.hpp"

namespace imgtool::launch {
namespace {

std::uint32_t libseccomp_action(const SyscallAction& action) {
    return action.allow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(static_cast<std::uint32_t>(action.error));
}

// libseccomp returns -errno.
void check(int rc, const std::string& what) {
    if (rc < 0) throw_errno(-rc, "seccomp: " + what, "");
}

// The architectures a process on this machine can make system calls with (docker's archMap): a
// 64-bit x86 kernel also runs i386 and x32 programs, a 64-bit arm kernel 32-bit arm ones. A call from
// an architecture the filter does not list kills the process (libseccomp's default "bad arch"
// action), so none slips past the table.
std::vector<std::uint32_t> companion_architectures(std::uint32_t native) {
    switch (native) {
    case SCMP_ARCH_X86_64:
        return {SCMP_ARCH_X86, SCMP_ARCH_X32};
    case SCMP_ARCH_AARCH64:
        return {SCMP_ARCH_ARM};
    default:
        return {};
    }
}

}  // namespace

long syscall_number(const std::string& name) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    return nr < 0 ? -1 : nr;  // __NR_SCMP_ERROR, or a pseudo number: none on this architecture
}

SeccompFilter SeccompFilter::compile(const SyscallPolicy& policy) {
    SeccompFilter filter;
    filter.ctx_ = seccomp_init(libseccomp_action(policy.default_action));
    if (filter.ctx_ == nullptr) throw Error(Errc::InvalidArgument, "seccomp: cannot create a filter");
    auto* ctx = static_cast<scmp_filter_ctx>(filter.ctx_);
    // libseccomp sets no_new_privs by default; docker's containers run setuid binaries, so does ours.
    // Loading then needs CAP_SYS_ADMIN, which the container's process still has (see the header).
    check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "clear no_new_privs");
    // The kernel's own errno when loading fails (EACCES without CAP_SYS_ADMIN...), not ECANCELED.
    check(seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1), "ask for raw errors");
    for (std::uint32_t arch : companion_architectures(seccomp_arch_native())) {
        int rc = seccomp_arch_add(ctx, arch);
        if (rc != -EEXIST) check(rc, "add architecture");
    }
    for (const SyscallRule& rule : policy.rules) {
        // Resolved by name for each architecture of the filter; a name unknown to libseccomp is our
        // mistake, a name absent from one architecture (umount on x86_64) is skipped there.
        int nr = seccomp_syscall_resolve_name(rule.name.c_str());
        if (nr == __NR_SCMP_ERROR) {
            throw Error(Errc::InvalidArgument, "seccomp: libseccomp does not know the system call " + rule.name);
        }
        std::vector<scmp_arg_cmp> args;
        for (const auto& c : rule.when) args.push_back(SCMP_CMP(c.index, SCMP_CMP_MASKED_EQ, c.mask, c.value));
        check(seccomp_rule_add_array(ctx, libseccomp_action(rule.action), nr, static_cast<unsigned>(args.size()),
                                     args.empty() ? nullptr : args.data()),
              "rule for " + rule.name);
    }
    return filter;
}

SeccompFilter::~SeccompFilter() {
    if (ctx_ != nullptr) seccomp_release(static_cast<scmp_filter_ctx>(ctx_));
}

void SeccompFilter::load() const {
    if (ctx_ == nullptr) return;
    check(seccomp_load(static_cast<scmp_filter_ctx>(ctx_)), "load the filter");
}

}  // namespace imgtool::launch
