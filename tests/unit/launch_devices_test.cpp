// The device allow list as data: docker's default list, its cgroup v1 lines, and the cgroup v2 BPF
// program, checked instruction by instruction and by running it on a small interpreter.
#include <doctest/doctest.h>

#include <cstring>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/devices.hpp"

using namespace imgtool;
using namespace imgtool::launch;

namespace {

// The instructions device_filter_program may emit, executed as the kernel would: returns r0, or -1
// for anything outside that subset (an unknown opcode, a jump out of the program, a missing exit).
long long run_filter(const std::vector<struct bpf_insn>& prog, unsigned type, unsigned access, unsigned major,
                     unsigned minor) {
    struct bpf_cgroup_dev_ctx ctx {};
    ctx.access_type = (access << 16) | type;
    ctx.major = major;
    ctx.minor = minor;
    unsigned long long reg[11] = {};
    const auto* ctx_bytes = reinterpret_cast<const unsigned char*>(&ctx);
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const struct bpf_insn& i = prog[pc];
        const auto imm = static_cast<unsigned long long>(static_cast<long long>(i.imm));  // sign-extended
        switch (i.code) {
        case BPF_LDX | BPF_MEM | BPF_W: {
            if (i.src_reg != BPF_REG_1 || i.off < 0 || i.off + 4 > static_cast<int>(sizeof ctx)) return -1;
            std::uint32_t v;
            std::memcpy(&v, ctx_bytes + i.off, 4);
            reg[i.dst_reg] = v;
            break;
        }
        case BPF_ALU64 | BPF_MOV | BPF_X: reg[i.dst_reg] = reg[i.src_reg]; break;
        case BPF_ALU64 | BPF_MOV | BPF_K: reg[i.dst_reg] = imm; break;
        case BPF_ALU64 | BPF_AND | BPF_K: reg[i.dst_reg] &= imm; break;
        case BPF_ALU64 | BPF_RSH | BPF_K: reg[i.dst_reg] >>= i.imm; break;
        case BPF_JMP | BPF_JNE | BPF_K:
            if (reg[i.dst_reg] != imm) {
                pc += static_cast<std::size_t>(i.off);
                if (i.off < 0 || pc + 1 > prog.size()) return -1;
            }
            break;
        case BPF_JMP | BPF_EXIT: return static_cast<long long>(reg[BPF_REG_0]);
        default: return -1;
        }
    }
    return -1;  // fell off the end: the verifier would refuse it
}

// The reference meaning of an allow list.
bool allowed(const std::vector<DeviceRule>& rules, char type, unsigned access, unsigned major, unsigned minor) {
    for (const auto& r : rules) {
        if (r.type == type && (r.major == kAnyDevice || r.major == major) && (r.minor == kAnyDevice || r.minor == minor) &&
            (access & ~r.access) == 0) {
            return true;
        }
    }
    return false;
}

unsigned bpf_type(char type) { return type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK; }

struct Insn {
    int code, dst, src, off, imm;
};
// One line per instruction ("code dst src off imm"), so a failed comparison shows where they differ.
std::string listing(const std::vector<Insn>& prog) {
    std::ostringstream out;
    for (const auto& i : prog) out << "0x" << std::hex << i.code << std::dec << " " << i.dst << " " << i.src << " " << i.off << " " << i.imm << "\n";
    return out.str();
}
std::string listing(const std::vector<struct bpf_insn>& prog) {
    std::vector<Insn> plain;
    for (const auto& i : prog) plain.push_back({i.code, i.dst_reg, i.src_reg, i.off, i.imm});
    return listing(plain);
}

}  // namespace

TEST_CASE("docker's default device allow list, as cgroup v1 lines") {
    std::set<std::string> lines;
    for (const auto& r : default_device_rules()) lines.insert(device_rule_line(r));
    // moby's default spec (deny all, then 1:3 1:5 1:8 1:9 5:0 5:1 rwm) plus what runc appends to every
    // container (mknod of anything, 1:7, ptmx 5:2, pty slaves 136:*, tun 10:200).
    CHECK(lines == std::set<std::string>{"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                         "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                                         "c 10:200 rwm"});
    CHECK(device_rule_line({'b', 8, kAnyDevice, kDeviceRead}) == "b 8:* r");
    CHECK(device_rule_line({'c', 1, 11, kDeviceWrite | kDeviceMknod}) == "c 1:11 wm");
    CHECK_THROWS_AS(device_rule_line({'a', 1, 3, kDeviceAll}), Error);
    CHECK_THROWS_AS(device_rule_line({'c', 1, 3, 0}), Error);
    CHECK_THROWS_AS(device_rule_line({'c', 1, 3, 8}), Error);
    CHECK_THROWS_AS(device_rule_line({'c', -2, 3, kDeviceRead}), Error);
    CHECK_THROWS_AS(device_filter_program({{'c', 1, 1LL << 32, kDeviceRead}}), Error);
}

TEST_CASE("BPF device filter: the encoding of one rule") {
    // c 1:* rw: type, access, major tested; no minor test (wildcard); allow; then the final deny.
    auto prog = device_filter_program({{'c', 1, kAnyDevice, kDeviceRead | kDeviceWrite}});
    const int ldxw = BPF_LDX | BPF_MEM | BPF_W, mov_x = BPF_ALU64 | BPF_MOV | BPF_X, mov_k = BPF_ALU64 | BPF_MOV | BPF_K;
    const int and_k = BPF_ALU64 | BPF_AND | BPF_K, rsh_k = BPF_ALU64 | BPF_RSH | BPF_K, jne = BPF_JMP | BPF_JNE | BPF_K;
    const int exit = BPF_JMP | BPF_EXIT;
    CHECK(listing(prog) == listing(std::vector<Insn>{
                             {ldxw, 2, 1, 0, 0},        // r2 = ctx->access_type
                             {mov_x, 3, 2, 0, 0},       // r3 = r2
                             {and_k, 3, 0, 0, 0xffff},  // r3 &= 0xffff: the device type
                             {rsh_k, 2, 0, 0, 16},      // r2 >>= 16: the access asked for
                             {ldxw, 4, 1, 4, 0},        // r4 = ctx->major
                             {ldxw, 5, 1, 8, 0},        // r5 = ctx->minor
                             {jne, 3, 0, 6, BPF_DEVCG_DEV_CHAR},  // not a character device: next rule (13)
                             {mov_x, 0, 2, 0, 0},                 // r0 = access & ~(read|write)
                             {and_k, 0, 0, 0, kDeviceMknod},
                             {jne, 0, 0, 3, 0},   // something else asked for: next rule
                             {jne, 4, 0, 2, 1},   // major != 1: next rule
                             {mov_k, 0, 0, 0, 1},  // allow
                             {exit, 0, 0, 0, 0},
                             {mov_k, 0, 0, 0, 0},  // no rule matched: deny
                             {exit, 0, 0, 0, 0},
                         }));
    // rwm skips the access test, wildcards skip theirs: the block is type test, allow, exit.
    auto all = device_filter_program({{'b', kAnyDevice, kAnyDevice, kDeviceAll}});
    REQUIRE(all.size() == 6 + 3 + 2);
    CHECK(listing({all[6]}) == listing(std::vector<Insn>{{jne, 3, 0, 2, BPF_DEVCG_DEV_BLOCK}}));
    // No rules: deny everything.
    auto none = device_filter_program({});
    REQUIRE(none.size() == 8);
    CHECK(listing({none[6], none[7]}) == listing(std::vector<Insn>{{mov_k, 0, 0, 0, 0}, {exit, 0, 0, 0, 0}}));
}

TEST_CASE("BPF device filter: allows exactly what the rules allow") {
    auto check_list = [](const std::vector<DeviceRule>& rules) {
        auto prog = device_filter_program(rules);
        for (char type : {'c', 'b'}) {
            for (unsigned access = 1; access <= kDeviceAll; ++access) {
                for (unsigned major : {0u, 1u, 5u, 8u, 10u, 136u, 4095u}) {
                    for (unsigned minor : {0u, 1u, 2u, 3u, 7u, 11u, 200u, 229u, 1048575u}) {
                        CAPTURE(type);
                        CAPTURE(access);
                        CAPTURE(major);
                        CAPTURE(minor);
                        long long got = run_filter(prog, bpf_type(type), access, major, minor);
                        REQUIRE(got != -1);
                        CHECK((got == 1) == allowed(rules, type, access, major, minor));
                    }
                }
            }
        }
    };
    check_list(default_device_rules());
    check_list({});
    check_list({{'b', 8, kAnyDevice, kDeviceRead}, {'c', kAnyDevice, 3, kDeviceWrite | kDeviceMknod}});

    auto prog = device_filter_program(default_device_rules());
    const unsigned rw = kDeviceRead | kDeviceWrite;
    CHECK(run_filter(prog, BPF_DEVCG_DEV_CHAR, rw, 1, 3) == 1);            // /dev/null
    CHECK(run_filter(prog, BPF_DEVCG_DEV_CHAR, rw, 136, 5) == 1);          // /dev/pts/5
    CHECK(run_filter(prog, BPF_DEVCG_DEV_CHAR, kDeviceMknod, 1, 11) == 1);  // mknod is allowed...
    CHECK(run_filter(prog, BPF_DEVCG_DEV_CHAR, kDeviceWrite, 1, 11) == 0);  // ...opening /dev/kmsg is not
    CHECK(run_filter(prog, BPF_DEVCG_DEV_BLOCK, kDeviceRead, 8, 0) == 0);   // nor the disk
    CHECK(run_filter(prog, BPF_DEVCG_DEV_CHAR, rw, 10, 232) == 0);          // nor /dev/kvm
}
