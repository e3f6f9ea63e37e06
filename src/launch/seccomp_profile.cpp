#include "imgtool/launch/seccomp_profile.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/json.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::launch {
namespace {

using json = nlohmann::json;

// The architecture names docker's format uses (specs-go's Arch values).
const std::vector<std::string_view> kArches = {
    "SCMP_ARCH_X86",    "SCMP_ARCH_X86_64",    "SCMP_ARCH_X32",       "SCMP_ARCH_ARM",      "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",   "SCMP_ARCH_MIPS64",    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",   "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",  "SCMP_ARCH_PPC64",     "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",  "SCMP_ARCH_PARISC",    "SCMP_ARCH_PARISC64",  "SCMP_ARCH_RISCV64",  "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",   "SCMP_ARCH_SH",        "SCMP_ARCH_SHEB"};

// The kernel returns at most MAX_ERRNO (4095) as an error; seccomp's data field would hold more.
constexpr std::uint64_t kMaxErrno = 4095;
constexpr unsigned kArgCount = 6;  // a system call has six arguments

// Reads one profile, naming the field of each complaint.
class Parser {
public:
    explicit Parser(std::string source) : source_(std::move(source)) {}

    [[noreturn]] void fail(const std::string& field, const std::string& reason) const {
        throw Error(Errc::InvalidArgument, "seccomp profile " + printable(source_) + ": " + field + ": " + reason);
    }

    SeccompProfile profile(const json& root) {
        if (!root.is_object()) fail("(top level)", "expected an object");
        SeccompProfile p;
        const json* default_action = member(root, "defaultAction");
        if (!default_action) fail("defaultAction", "missing (write SCMP_ACT_ALLOW for a filter that allows by default)");
        p.default_action = action(root, "defaultAction", "defaultErrnoRet", "");
        if (const json* v = member(root, "flags"); v && !(v->is_array() && v->empty())) {
            fail("flags", "not supported");
        }
        if (const json* v = member(root, "listenerPath"); v && !(v->is_string() && v->get_ref<const std::string&>().empty())) {
            fail("listenerPath", "not supported (no seccomp agent)");
        }
        const json* archs = member(root, "architectures");
        const json* arch_map = member(root, "archMap");
        if (archs && arch_map && !archs->empty() && !arch_map->empty()) {
            fail("architectures", "both architectures and archMap are given: use one");
        }
        if (archs) p.architectures = arches(*archs, "architectures");
        if (arch_map) {
            if (!arch_map->is_array()) fail("archMap", "expected an array");
            for (std::size_t i = 0; i < arch_map->size(); ++i) {
                const json& entry = (*arch_map)[i];
                std::string field = "archMap[" + std::to_string(i) + "]";
                if (!entry.is_object()) fail(field, "expected an object");
                const json* native = member(entry, "architecture");
                if (!native) fail(field + ".architecture", "missing");
                std::vector<std::string> one = arches(json::array({*native}), field + ".architecture");
                std::vector<std::string> subs;
                if (const json* s = member(entry, "subArchitectures")) subs = arches(*s, field + ".subArchitectures");
                p.arch_map.emplace_back(one[0], std::move(subs));
            }
        }
        if (const json* calls = member(root, "syscalls")) {
            if (!calls->is_array()) fail("syscalls", "expected an array");
            for (std::size_t i = 0; i < calls->size(); ++i) p.rules.push_back(rule((*calls)[i], "syscalls[" + std::to_string(i) + "]"));
        }
        return p;
    }

private:
    // A key's value; absent and null are the same, as in Go.
    static const json* member(const json& object, const char* key) {
        auto it = object.find(key);
        return it == object.end() || it->is_null() ? nullptr : &*it;
    }

    std::string string(const json& value, const std::string& field) const {
        if (!value.is_string()) fail(field, "expected a string");
        return value.get<std::string>();
    }

    std::vector<std::string> strings(const json& value, const std::string& field) const {
        if (!value.is_array()) fail(field, "expected an array of strings");
        std::vector<std::string> out;
        for (std::size_t i = 0; i < value.size(); ++i) out.push_back(string(value[i], field + "[" + std::to_string(i) + "]"));
        return out;
    }

    std::uint64_t number(const json& value, const std::string& field) const {
        if (!value.is_number_unsigned()) fail(field, "expected a whole number from 0 to 2^64-1");
        return value.get<std::uint64_t>();
    }

    std::vector<std::string> arches(const json& value, const std::string& field) const {
        std::vector<std::string> out = strings(value, field);
        for (const std::string& arch : out) {
            if (std::find(kArches.begin(), kArches.end(), arch) == kArches.end()) {
                fail(field, "unknown architecture \"" + printable(arch) + "\"");
            }
        }
        return out;
    }

    // `key` of `object` as an action, with its errno from `errno_key` (EPERM if absent, as docker).
    SyscallAction action(const json& object, const std::string& key, const char* errno_key, const std::string& prefix) const {
        const std::string field = prefix + key;
        const json* value = member(object, key.c_str());
        if (!value) fail(field, "missing");
        const std::string name = string(*value, field);
        const json* errno_value = member(object, errno_key);
        using Kind = SyscallAction::Kind;
        SyscallAction result;
        if (name == "SCMP_ACT_ERRNO") {
            std::uint64_t error = errno_value ? number(*errno_value, prefix + errno_key) : EPERM;
            if (error > kMaxErrno) fail(prefix + errno_key, "past the largest errno, 4095");
            return SyscallAction::fail(static_cast<int>(error));
        }
        if (name == "SCMP_ACT_ALLOW") result = SyscallAction::allowed();
        else if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") result = SyscallAction::of(Kind::kill_thread);
        else if (name == "SCMP_ACT_KILL_PROCESS") result = SyscallAction::of(Kind::kill_process);
        else if (name == "SCMP_ACT_TRAP") result = SyscallAction::of(Kind::trap);
        else if (name == "SCMP_ACT_LOG") result = SyscallAction::of(Kind::log);
        else if (name == "SCMP_ACT_TRACE" || name == "SCMP_ACT_NOTIFY") {
            fail(field, printable(name) + " is not supported (it needs a tracer or a seccomp agent)");
        } else {
            fail(field, "unknown action \"" + printable(name) + "\"");
        }
        if (errno_value) fail(prefix + errno_key, "only SCMP_ACT_ERRNO takes an errno");
        return result;
    }

    SyscallArg arg(const json& value, const std::string& field) const {
        if (!value.is_object()) fail(field, "expected an object");
        SyscallArg a;
        const json* index = member(value, "index");
        std::uint64_t i = index ? number(*index, field + ".index") : 0;
        if (i >= kArgCount) fail(field + ".index", "past the last argument (0 to 5)");
        a.index = static_cast<unsigned>(i);
        if (const json* v = member(value, "value")) a.value = number(*v, field + ".value");
        if (const json* v = member(value, "valueTwo")) a.value_two = number(*v, field + ".valueTwo");
        const json* op = member(value, "op");
        if (!op) fail(field + ".op", "missing");
        const std::string name = string(*op, field + ".op");
        using Op = SyscallArg::Op;
        static const std::vector<std::pair<std::string_view, Op>> kOps = {
            {"SCMP_CMP_EQ", Op::eq}, {"SCMP_CMP_NE", Op::ne}, {"SCMP_CMP_LT", Op::lt}, {"SCMP_CMP_LE", Op::le},
            {"SCMP_CMP_GE", Op::ge}, {"SCMP_CMP_GT", Op::gt}, {"SCMP_CMP_MASKED_EQ", Op::masked_eq}};
        auto it = std::find_if(kOps.begin(), kOps.end(), [&](const auto& entry) { return entry.first == name; });
        if (it == kOps.end()) fail(field + ".op", "unknown comparison \"" + printable(name) + "\"");
        a.op = it->second;
        return a;
    }

    // docker's "<kernel>.<major>": two numbers below 256, not 0.0.
    std::pair<unsigned, unsigned> kernel_version(const json& value, const std::string& field) const {
        const std::string text = string(value, field);
        auto dot = text.find('.');
        unsigned kernel = 0, major = 0;
        auto parse = [](std::string_view part, unsigned& out) {
            auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), out);
            return ec == std::errc() && end == part.data() + part.size() && !part.empty() && out < 256;
        };
        if (dot == std::string::npos || !parse(std::string_view(text).substr(0, dot), kernel) ||
            !parse(std::string_view(text).substr(dot + 1), major) || (kernel == 0 && major == 0)) {
            fail(field, "expected \"<kernel>.<major>\" such as \"4.8\"");
        }
        return {kernel, major};
    }

    ProfileCondition condition(const json& value, const std::string& field) const {
        if (!value.is_object()) fail(field, "expected an object");
        ProfileCondition c;
        if (const json* v = member(value, "caps")) c.caps = strings(*v, field + ".caps");
        // Go's names ("amd64"), not libseccomp's: any string, matched against this machine's.
        if (const json* v = member(value, "arches")) c.arches = strings(*v, field + ".arches");
        if (const json* v = member(value, "minKernel")) c.min_kernel = kernel_version(*v, field + ".minKernel");
        return c;
    }

    ProfileRule rule(const json& value, const std::string& field) const {
        if (!value.is_object()) fail(field, "expected an object");
        ProfileRule r;
        const json* name = member(value, "name");
        const json* names = member(value, "names");
        if (name && names && !names->empty()) fail(field, "both name and names are given: use one");
        if (name) r.names = {string(*name, field + ".name")};
        else if (names) r.names = strings(*names, field + ".names");
        if (r.names.empty()) fail(field, "names no system call");
        for (std::size_t i = 0; i < r.names.size(); ++i) {
            if (r.names[i].empty()) fail(field + ".names[" + std::to_string(i) + "]", "empty");
        }
        r.action = action(value, "action", "errnoRet", field + ".");
        if (const json* args = member(value, "args")) {
            if (!args->is_array()) fail(field + ".args", "expected an array");
            for (std::size_t i = 0; i < args->size(); ++i) r.args.push_back(arg((*args)[i], field + ".args[" + std::to_string(i) + "]"));
        }
        if (const json* v = member(value, "includes")) r.includes = condition(*v, field + ".includes");
        if (const json* v = member(value, "excludes")) r.excludes = condition(*v, field + ".excludes");
        return r;
    }

    std::string source_;
};

}  // namespace

SeccompProfile parse_seccomp_profile(std::string_view text, const std::string& source) {
    Parser parser(source);
    if (text.size() > kMaxSeccompProfileBytes) {
        parser.fail("(file)", "larger than " + std::to_string(kMaxSeccompProfileBytes) + " bytes");
    }
    const std::string what = "seccomp profile " + printable(source);
    json root;
    try {
        root = image::parse_json_strict(text, what);
    } catch (const Error& e) {
        throw Error(Errc::InvalidArgument, e.what());  // "<what>: invalid JSON: <reason>"
    }
    return parser.profile(root);
}

SeccompProfile read_seccomp_profile(const std::string& path) {
    std::optional<std::string> text;
    try {
        // O_NONBLOCK: a FIFO in its place fails as "not a regular file" instead of hanging run.
        text = sys::read_config_file(path, kMaxSeccompProfileBytes);
    } catch (Error& e) {
        e.add_context("seccomp profile");
        throw;
    }
    if (!text) throw Error(Errc::NotFound, "seccomp profile " + printable(path) + ": no such file", path);
    return parse_seccomp_profile(*text, path);
}

}  // namespace imgtool::launch
