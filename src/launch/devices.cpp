#include "imgtool/launch/devices.hpp"

#include <climits>
#include <cstddef>

#include "imgtool/core/error.hpp"

namespace imgtool::launch {
namespace {

void check_rule(const DeviceRule& r) {
    auto number_ok = [](std::int64_t n) { return n == kAnyDevice || (n >= 0 && n <= INT32_MAX); };
    if ((r.type != 'c' && r.type != 'b') || r.access == 0 || (r.access & ~kDeviceAll) != 0 || !number_ok(r.major) ||
        !number_ok(r.minor)) {
        throw Error(Errc::InvalidArgument, "invalid device rule (type " + std::string(1, r.type) + ", access " +
                                               std::to_string(r.access) + ")");
    }
}

struct bpf_insn instruction(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off, std::int32_t imm) {
    struct bpf_insn i {};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}

// The registers the program keeps the request in (r1 is the context, r0 the result).
constexpr std::uint8_t kCtx = BPF_REG_1, kAccess = BPF_REG_2, kType = BPF_REG_3, kMajor = BPF_REG_4,
                       kMinor = BPF_REG_5, kResult = BPF_REG_0;

struct bpf_insn load_u32(std::uint8_t dst, std::int16_t offset) {
    return instruction(BPF_LDX | BPF_MEM | BPF_W, dst, kCtx, offset, 0);
}
struct bpf_insn alu_imm(std::uint8_t op, std::uint8_t dst, std::int32_t imm) {
    return instruction(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}
struct bpf_insn move_reg(std::uint8_t dst, std::uint8_t src) { return instruction(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
// Placeholder offset: patched once the block's length is known.
struct bpf_insn jump_if_not_equal(std::uint8_t reg, std::int32_t imm) { return instruction(BPF_JMP | BPF_JNE | BPF_K, reg, 0, 0, imm); }
struct bpf_insn exit_insn() { return instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

}  // namespace

std::vector<DeviceRule> default_device_rules() {
    std::vector<DeviceRule> rules = {
        {'c', kAnyDevice, kAnyDevice, kDeviceMknod},
        {'b', kAnyDevice, kAnyDevice, kDeviceMknod},
    };
    struct Char {
        std::int64_t major, minor;
    };
    for (Char d : {Char{1, 3}, Char{1, 5}, Char{1, 7}, Char{1, 8}, Char{1, 9}, Char{5, 0}, Char{5, 1}, Char{5, 2},
                   Char{136, kAnyDevice}, Char{10, 200}}) {
        rules.push_back({'c', d.major, d.minor, kDeviceAll});
    }
    return rules;
}

std::string device_rule_line(const DeviceRule& r) {
    check_rule(r);
    auto number = [](std::int64_t n) { return n == kAnyDevice ? std::string("*") : std::to_string(n); };
    std::string access;
    if (r.access & kDeviceRead) access += 'r';
    if (r.access & kDeviceWrite) access += 'w';
    if (r.access & kDeviceMknod) access += 'm';
    return std::string(1, r.type) + " " + number(r.major) + ":" + number(r.minor) + " " + access;
}

std::vector<struct bpf_insn> device_filter_program(const std::vector<DeviceRule>& allow) {
    // struct bpf_cgroup_dev_ctx: access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*, major, minor.
    std::vector<struct bpf_insn> prog = {
        load_u32(kAccess, offsetof(struct bpf_cgroup_dev_ctx, access_type)),
        move_reg(kType, kAccess),
        alu_imm(BPF_AND, kType, 0xffff),
        alu_imm(BPF_RSH, kAccess, 16),
        load_u32(kMajor, offsetof(struct bpf_cgroup_dev_ctx, major)),
        load_u32(kMinor, offsetof(struct bpf_cgroup_dev_ctx, minor)),
    };
    for (const DeviceRule& r : allow) {
        check_rule(r);
        const std::size_t start = prog.size();
        prog.push_back(jump_if_not_equal(kType, r.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
        if (r.access != kDeviceAll) {
            // Every bit asked for must be allowed: (access & ~allowed) == 0.
            prog.push_back(move_reg(kResult, kAccess));
            prog.push_back(alu_imm(BPF_AND, kResult, static_cast<std::int32_t>(~r.access & kDeviceAll)));
            prog.push_back(jump_if_not_equal(kResult, 0));
        }
        if (r.major != kAnyDevice) prog.push_back(jump_if_not_equal(kMajor, static_cast<std::int32_t>(r.major)));
        if (r.minor != kAnyDevice) prog.push_back(jump_if_not_equal(kMinor, static_cast<std::int32_t>(r.minor)));
        prog.push_back(alu_imm(BPF_MOV, kResult, 1));
        prog.push_back(exit_insn());
        // A jump's offset counts from the instruction after it; every failed test goes to the next block.
        const std::size_t next = prog.size();
        for (std::size_t i = start; i < next; ++i) {
            if (prog[i].code == (BPF_JMP | BPF_JNE | BPF_K)) prog[i].off = static_cast<std::int16_t>(next - i - 1);
        }
    }
    prog.push_back(alu_imm(BPF_MOV, kResult, 0));
    prog.push_back(exit_insn());
    return prog;
}

}  // namespace imgtool::launch
