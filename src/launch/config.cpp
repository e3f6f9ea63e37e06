#include "imgtool/launch/config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::launch {
namespace {

const char* const kCapNames[] = {
    "CHOWN",          "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER",      "FSETID",       "KILL",
    "SETGID",         "SETUID",       "SETPCAP",         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN",      "NET_RAW",      "IPC_LOCK",        "IPC_OWNER",   "SYS_MODULE",   "SYS_RAWIO",
    "SYS_CHROOT",     "SYS_PTRACE",   "SYS_PACCT",       "SYS_ADMIN",   "SYS_BOOT",     "SYS_NICE",
    "SYS_RESOURCE",   "SYS_TIME",     "SYS_TTY_CONFIG",  "MKNOD",       "LEASE",        "AUDIT_WRITE",
    "AUDIT_CONTROL",  "SETFCAP",      "MAC_OVERRIDE",    "MAC_ADMIN",   "SYSLOG",       "WAKE_ALARM",
    "BLOCK_SUSPEND",  "AUDIT_READ",   "PERFMON",         "BPF",         "CHECKPOINT_RESTORE",
};
static_assert(sizeof kCapNames / sizeof kCapNames[0] == kLastKnownCap + 1);

std::optional<unsigned long> parse_id(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    unsigned long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned long>(c - '0');
    }
    if (v > 0xfffffffeUL) return std::nullopt;
    return v;
}

std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    for (auto& line : split(text, '\n')) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(line);
    }
    return out;
}

}  // namespace

std::optional<int> capability_number(std::string_view name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper.rfind("CAP_", 0) == 0) upper = upper.substr(4);
    for (int i = 0; i <= kLastKnownCap; ++i) {
        if (upper == kCapNames[i]) return i;
    }
    return std::nullopt;
}

std::string capability_name(int number) {
    if (number < 0 || number > kLastKnownCap) return "CAP_" + std::to_string(number);
    return std::string("CAP_") + kCapNames[number];
}

std::uint64_t default_capabilities() {
    std::uint64_t set = 0;
    for (const char* name : {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                             "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}) {
        set |= 1ULL << *capability_number(name);
    }
    return set;
}

std::uint64_t all_capabilities(int last_cap) {
    return last_cap >= 63 ? ~0ULL : (1ULL << (last_cap + 1)) - 1;
}

std::uint64_t adjust_capabilities(std::uint64_t base, const std::vector<std::string>& add,
                                  const std::vector<std::string>& drop, int last_cap) {
    auto bits = [&](const std::string& name) -> std::uint64_t {
        std::string upper;
        for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (upper == "ALL") return all_capabilities(last_cap);
        auto n = capability_number(name);
        if (!n) throw Error(Errc::InvalidArgument, "unknown capability \"" + printable(name) + "\"");
        return 1ULL << *n;
    };
    for (const auto& d : drop) base &= ~bits(d);
    for (const auto& a : add) base |= bits(a);
    return base & all_capabilities(last_cap);
}

std::vector<PasswdEntry> parse_passwd(std::string_view text) {
    std::vector<PasswdEntry> out;
    for (const auto& line : lines_of(text)) {
        if (line.empty() || line[0] == '#') continue;
        auto f = split(line, ':');
        if (f.size() < 7) continue;
        auto uid = parse_id(f[2]);
        auto gid = parse_id(f[3]);
        if (!uid || !gid || f[0].empty()) continue;
        out.push_back({f[0], static_cast<uid_t>(*uid), static_cast<gid_t>(*gid), f[5]});
    }
    return out;
}

std::vector<GroupEntry> parse_group(std::string_view text) {
    std::vector<GroupEntry> out;
    for (const auto& line : lines_of(text)) {
        if (line.empty() || line[0] == '#') continue;
        auto f = split(line, ':');
        if (f.size() < 4) continue;
        auto gid = parse_id(f[2]);
        if (!gid || f[0].empty()) continue;
        GroupEntry g{f[0], static_cast<gid_t>(*gid), {}};
        if (!f[3].empty()) g.members = split(f[3], ',');
        out.push_back(std::move(g));
    }
    return out;
}

User resolve_user(std::string_view spec, const std::vector<PasswdEntry>& passwd,
                  const std::vector<GroupEntry>& groups) {
    std::string_view user_part = spec.substr(0, spec.find(':'));
    std::optional<std::string_view> group_part;
    if (spec.find(':') != std::string_view::npos) group_part = spec.substr(spec.find(':') + 1);
    if (user_part.empty()) user_part = "0";

    User user;
    const PasswdEntry* entry = nullptr;
    if (auto id = parse_id(user_part)) {
        user.uid = static_cast<uid_t>(*id);
        for (const auto& p : passwd) {
            if (p.uid == user.uid) {
                entry = &p;
                break;
            }
        }
    } else {
        for (const auto& p : passwd) {
            if (p.name == user_part) {
                entry = &p;
                break;
            }
        }
        if (!entry) throw Error(Errc::NotFound, "unable to find user " + printable(user_part) + ": no matching entries in passwd file");
        user.uid = entry->uid;
    }
    if (entry) {
        user.gid = entry->gid;
        if (!entry->home.empty()) user.home = entry->home;
        for (const auto& g : groups) {
            if (g.gid != user.gid && std::find(g.members.begin(), g.members.end(), entry->name) != g.members.end()) {
                user.groups.push_back(g.gid);
            }
        }
    }
    if (group_part) {
        if (group_part->empty()) throw Error(Errc::InvalidArgument, "invalid user spec \"" + printable(spec) + "\"");
        if (auto id = parse_id(*group_part)) {
            user.gid = static_cast<gid_t>(*id);
        } else {
            auto it = std::find_if(groups.begin(), groups.end(), [&](const GroupEntry& g) { return g.name == *group_part; });
            if (it == groups.end()) {
                throw Error(Errc::NotFound, "unable to find group " + printable(*group_part) + ": no matching entries in group file");
            }
            user.gid = it->gid;
        }
        user.groups.clear();  // as docker: an explicit group replaces the supplementary ones
    }
    // The primary group is a supplementary one too, first (docker >= 24, CVE-2023-25173): without it a
    // process could drop its primary group with setgroups and slip past a "deny this group" ACL.
    user.groups.insert(user.groups.begin(), user.gid);
    return user;
}

std::vector<std::string> merge_env(const std::vector<std::string>& base, const std::vector<std::string>& overrides,
                                   const std::vector<std::string>& host_env) {
    std::vector<std::string> env = base;
    auto key_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
    for (std::string kv : overrides) {
        if (kv.find('=') == std::string::npos) {
            auto host = env_value(host_env, kv);
            if (!host) continue;
            kv += "=" + *host;
        }
        std::string key = key_of(kv);
        if (key.empty()) throw Error(Errc::InvalidArgument, "invalid environment variable \"" + printable(kv) + "\"");
        auto it = std::find_if(env.begin(), env.end(), [&](const std::string& e) { return key_of(e) == key; });
        if (it != env.end()) {
            *it = kv;
        } else {
            env.push_back(kv);
        }
    }
    return env;
}

std::vector<std::string> parse_env_file(std::string_view text) {
    std::vector<std::string> out;
    for (auto line : lines_of(text)) {
        auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        line = line.substr(first);
        out.push_back(line);
    }
    return out;
}

std::optional<std::string> env_value(const std::vector<std::string>& env, std::string_view key) {
    for (const auto& kv : env) {
        if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') {
            return kv.substr(key.size() + 1);
        }
    }
    return std::nullopt;
}

std::vector<std::string> compose_argv(const std::vector<std::string>& image_entrypoint,
                                      const std::vector<std::string>& image_cmd,
                                      const std::optional<std::string>& entrypoint_override,
                                      const std::vector<std::string>& command) {
    std::vector<std::string> argv;
    if (entrypoint_override) {
        if (!entrypoint_override->empty()) argv.push_back(*entrypoint_override);
    } else {
        argv = image_entrypoint;
    }
    const std::vector<std::string>& cmd = !command.empty() ? command : (entrypoint_override ? command : image_cmd);
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    if (argv.empty()) throw Error(Errc::InvalidArgument, "no command specified (the image has no Entrypoint or Cmd)");
    return argv;
}

std::vector<std::string> exec_candidates(const std::string& program, std::string_view path) {
    if (program.find('/') != std::string::npos) return {program};
    std::vector<std::string> out;
    for (const auto& dir : split(path, ':')) {
        out.push_back((dir.empty() ? std::string(".") : dir) + "/" + program);  // empty entry: cwd
    }
    return out;
}

ExecFailure exec_failure(const std::string& program, int errno_seen) {
    if (errno_seen != 0 && errno_seen != ENOENT && errno_seen != ENOTDIR) return {126, std::strerror(errno_seen)};
    if (program.find('/') == std::string::npos) return {127, "executable file not found in $PATH"};
    // docker: `stat /nonexistent/path: no such file or directory`; no $PATH was searched.
    return {127, errno_seen == ENOTDIR ? "not a directory (a component of the path is a file)"
                                       : "no such file or directory in the container"};
}

namespace {

// The value of "Key:\t..." in /proc/PID/status text.
std::optional<std::string_view> status_field(std::string_view text, std::string_view key) {
    std::size_t at = 0;
    while (at < text.size()) {
        std::size_t end = text.find('\n', at);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(at, end - at);
        if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
            std::string_view value = line.substr(key.size() + 1);
            while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
            return value;
        }
        at = end + 1;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> hex_mask(std::optional<std::string_view> text) {
    if (!text || text->empty() || text->size() > 16) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : *text) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return std::nullopt;
        v = v << 4 | static_cast<std::uint64_t>(d);
    }
    return v;
}

}  // namespace

std::optional<SignalDisposition> signal_disposition(std::string_view status_text, int sig) {
    auto ignored = hex_mask(status_field(status_text, "SigIgn"));
    auto caught = hex_mask(status_field(status_text, "SigCgt"));
    if (!ignored || !caught || sig < 1 || sig > 64) return std::nullopt;
    std::uint64_t bit = std::uint64_t{1} << (sig - 1);
    if (*caught & bit) return SignalDisposition::Caught;
    if (*ignored & bit) return SignalDisposition::Ignored;
    return SignalDisposition::Default;
}

std::string process_name(std::string_view status_text) {
    return std::string(status_field(status_text, "Name").value_or(""));
}

InterruptAction interrupt_action(int presses, SignalDisposition pid1) {
    if (pid1 != SignalDisposition::Default || presses < 1) return InterruptAction::None;  // its own choice
    if (presses >= kInterruptsToKill) return InterruptAction::Kill;
    return presses == 1 ? InterruptAction::Hint : InterruptAction::None;
}

}  // namespace imgtool::launch

namespace imgtool::launch {

std::optional<int> signal_number(std::string_view text) {
    if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        auto n = parse_id(text);
        if (n && *n >= 1 && *n <= 64) return static_cast<int>(*n);
        return std::nullopt;
    }
    std::string name(text);
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name.rfind("SIG", 0) == 0) name = name.substr(3);
    // glibc's sigabbrev_np knows the names; the real-time ones are RTMIN+N / RTMAX-N (docker's form).
    for (int sig = 1; sig < SIGRTMIN; ++sig) {
        const char* abbrev = ::sigabbrev_np(sig);
        if (abbrev != nullptr && name == abbrev) return sig;
    }
    auto offset = [&](std::string_view prefix) -> std::optional<int> {
        if (name.rfind(prefix, 0) != 0) return std::nullopt;
        if (name.size() == prefix.size()) return 0;
        auto n = parse_id(std::string_view(name).substr(prefix.size() + 1));
        if (!n || *n > 32) return std::nullopt;
        return static_cast<int>(*n);
    };
    if (auto n = offset("RTMIN"); n && (name.size() == 5 || name[5] == '+') && SIGRTMIN + *n <= SIGRTMAX) return SIGRTMIN + *n;
    if (auto n = offset("RTMAX"); n && (name.size() == 5 || name[5] == '-') && SIGRTMAX - *n >= SIGRTMIN) return SIGRTMAX - *n;
    return std::nullopt;
}

}  // namespace imgtool::launch

namespace imgtool::launch {

bool user_spec_is_numeric(std::string_view spec) {
    auto colon = spec.find(':');
    std::string_view user = spec.substr(0, colon);
    auto digits = [](std::string_view text) { return text.empty() || parse_id(text).has_value(); };
    return digits(user) && (colon == std::string_view::npos || (colon + 1 < spec.size() && digits(spec.substr(colon + 1))));
}

}  // namespace imgtool::launch
