#include "imgtool/launch/seccomp_filter.hpp"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <memory>

#include "imgtool/core/error.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::launch {
namespace {

std::uint32_t libseccomp_action(const SyscallAction& action) {
    switch (action.kind) {
    case SyscallAction::Kind::allow:
        return SCMP_ACT_ALLOW;
    case SyscallAction::Kind::error:
        return SCMP_ACT_ERRNO(static_cast<std::uint32_t>(action.error));
    case SyscallAction::Kind::kill_thread:
        return SCMP_ACT_KILL_THREAD;
    case SyscallAction::Kind::kill_process:
        return SCMP_ACT_KILL_PROCESS;
    case SyscallAction::Kind::trap:
        return SCMP_ACT_TRAP;
    case SyscallAction::Kind::log:
        return SCMP_ACT_LOG;
    }
    throw Error(Errc::InvalidArgument, "seccomp: unknown action");
}

scmp_compare libseccomp_op(SyscallArg::Op op) {
    switch (op) {
    case SyscallArg::Op::eq: return SCMP_CMP_EQ;
    case SyscallArg::Op::ne: return SCMP_CMP_NE;
    case SyscallArg::Op::lt: return SCMP_CMP_LT;
    case SyscallArg::Op::le: return SCMP_CMP_LE;
    case SyscallArg::Op::ge: return SCMP_CMP_GE;
    case SyscallArg::Op::gt: return SCMP_CMP_GT;
    case SyscallArg::Op::masked_eq: return SCMP_CMP_MASKED_EQ;
    }
    throw Error(Errc::InvalidArgument, "seccomp: unknown comparison");
}

// libseccomp returns -errno.
void check(int rc, const std::string& what) {
    if (rc < 0) throw_errno(-rc, "seccomp: " + what, "");
}

struct ContextDeleter {
    void operator()(void* ctx) const { seccomp_release(static_cast<scmp_filter_ctx>(ctx)); }
};

// "SCMP_ARCH_X86_64" -> libseccomp's token, 0 if it knows no such architecture.
std::uint32_t arch_token(const std::string& name) {
    const std::string prefix = "SCMP_ARCH_";
    if (name.rfind(prefix, 0) != 0) return 0;
    std::string lower;
    for (char c : name.substr(prefix.size())) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return seccomp_arch_resolve_name(lower.c_str());
}

// The program libseccomp generates, read back through a memfd (2.5 has no in-memory export).
std::vector<sock_filter> export_program(scmp_filter_ctx ctx) {
    sys::UniqueFd fd(::memfd_create("imgtool-seccomp", MFD_CLOEXEC));
    if (!fd) throw_errno("memfd_create", "");
    check(seccomp_export_bpf(ctx, fd.get()), "export the filter");
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    if (size < 0) throw_errno("lseek", "seccomp filter");
    if (size == 0 || size % sizeof(sock_filter) != 0 || size > BPF_MAXINSNS * static_cast<off_t>(sizeof(sock_filter))) {
        throw Error(Errc::InvalidArgument, "seccomp: the filter has " + std::to_string(size / sizeof(sock_filter)) +
                                               " instructions (the kernel takes 1 to " + std::to_string(BPF_MAXINSNS) + ")");
    }
    std::vector<sock_filter> program(static_cast<std::size_t>(size) / sizeof(sock_filter));
    if (::pread(fd.get(), program.data(), static_cast<std::size_t>(size), 0) != size) throw_errno("read", "seccomp filter");
    return program;
}

}  // namespace

bool libseccomp_knows(const std::string& name) { return seccomp_syscall_resolve_name(name.c_str()) != __NR_SCMP_ERROR; }

long syscall_number(const std::string& name) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    return nr < 0 ? -1 : nr;  // __NR_SCMP_ERROR, or a pseudo number: none on this architecture
}

SeccompPlatform host_platform() {
    SeccompPlatform platform;
#if defined(__x86_64__) && defined(__ILP32__)
    platform = {"x32", "SCMP_ARCH_X32", 0, 0};
#elif defined(__x86_64__)
    platform = {"amd64", "SCMP_ARCH_X86_64", 0, 0};
#elif defined(__i386__)
    platform = {"x86", "SCMP_ARCH_X86", 0, 0};
#elif defined(__aarch64__)
    platform = {"arm64", "SCMP_ARCH_AARCH64", 0, 0};
#elif defined(__arm__)
    platform = {"arm", "SCMP_ARCH_ARM", 0, 0};
#elif defined(__riscv) && __riscv_xlen == 64
    platform = {"riscv64", "SCMP_ARCH_RISCV64", 0, 0};
#elif defined(__s390x__)
    platform = {"s390x", "SCMP_ARCH_S390X", 0, 0};
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    platform = {"ppc64le", "SCMP_ARCH_PPC64LE", 0, 0};
#else
#error "imgtool: name this architecture for seccomp (docker's and libseccomp's names)"
#endif
    struct utsname uts {};
    if (::uname(&uts) == 0) std::sscanf(uts.release, "%u.%u", &platform.kernel, &platform.kernel_major);
    return platform;
}

SeccompFilter SeccompFilter::compile(const SyscallPolicy& policy) {
    std::unique_ptr<void, ContextDeleter> owner(seccomp_init(libseccomp_action(policy.default_action)));
    if (!owner) throw Error(Errc::InvalidArgument, "seccomp: cannot create a filter");
    auto* ctx = static_cast<scmp_filter_ctx>(owner.get());
    // libseccomp would set no_new_privs when loading; we load it ourselves and, as docker, never set it.
    check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "clear no_new_privs");
    // A binary tree over syscall numbers instead of a list: at load the kernel runs the program once per
    // syscall number and architecture (its cache of always-allowed calls), and a list makes that
    // numbers x length; at run time each call walks log(n) comparisons instead of up to n.
    check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "sort the filter as a binary tree");
    for (const std::string& name : policy.architectures) {
        std::uint32_t arch = arch_token(name);
        if (arch == 0) throw Error(Errc::InvalidArgument, "seccomp: libseccomp does not know the architecture " + name);
        int rc = seccomp_arch_add(ctx, arch);
        if (rc != -EEXIST) check(rc, "add architecture " + name);
    }
    const std::uint32_t default_action = libseccomp_action(policy.default_action);
    for (const SyscallRule& rule : policy.rules) {
        int nr = seccomp_syscall_resolve_name(rule.name.c_str());
        if (nr == __NR_SCMP_ERROR) continue;  // newer than this libseccomp: docker skips it too
        // libseccomp refuses a rule that says what the default says; it changes nothing.
        if (libseccomp_action(rule.action) == default_action) continue;
        std::vector<scmp_arg_cmp> args;
        for (const SyscallArg& a : rule.when) args.push_back(SCMP_CMP(a.index, libseccomp_op(a.op), a.value, a.value_two));
        check(seccomp_rule_add_array(ctx, libseccomp_action(rule.action), nr, static_cast<unsigned>(args.size()),
                                     args.empty() ? nullptr : args.data()),
              "rule for " + rule.name);
    }
    SeccompFilter filter;
    filter.program_ = export_program(ctx);
    return filter;
}

void SeccompFilter::load() const {
    if (program_.empty()) return;
    sock_fprog prog{static_cast<unsigned short>(program_.size()), const_cast<sock_filter*>(program_.data())};
    // seccomp(2) directly: the program is already generated, and libc has no wrapper.
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) throw_errno("seccomp: load the filter", "");
}

}  // namespace imgtool::launch
