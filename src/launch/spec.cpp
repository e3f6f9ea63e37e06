#include "imgtool/launch/spec.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/launch/config.hpp"

namespace imgtool::launch {

VolumeSpec parse_volume(const std::string& text) {
    auto parts = split(text, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty() || parts[1][0] != '/') {
        throw Error(Errc::InvalidArgument, "invalid volume \"" + text + "\": expected HOST:CONTAINER[:ro]");
    }
    if (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw") {
        throw Error(Errc::InvalidArgument, "invalid volume mode \"" + parts[2] + "\"");
    }
    return {parts[0], parts[1], parts.size() == 3 && parts[2] == "ro"};
}

namespace {

bool all_digits(std::string_view text) {
    return !text.empty() && text.size() <= 18 && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// N with an optional k, m or g suffix (and % where `percent`), as tmpfs takes it.
bool is_size(std::string_view text, bool percent) {
    if (!text.empty() && (text.back() == 'k' || text.back() == 'm' || text.back() == 'g' || text.back() == 'K' ||
                          text.back() == 'M' || text.back() == 'G' || (percent && text.back() == '%'))) {
        text.remove_suffix(1);
    }
    return all_digits(text);
}

bool is_ip_address(const std::string& text) {
    unsigned char buffer[sizeof(struct in6_addr)];
    return ::inet_pton(AF_INET, text.c_str(), buffer) == 1 || ::inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

bool is_loopback_address(const std::string& text) {
    unsigned char v4[4];
    struct in6_addr v6 {};
    if (::inet_pton(AF_INET, text.c_str(), v4) == 1) return v4[0] == 127;
    return ::inet_pton(AF_INET6, text.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// A name for /etc/hosts or resolv.conf: one word of printable characters.
bool is_plain_word(const std::string& text) {
    return !text.empty() && text.size() <= 253 &&
           std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f && c != '#'; });
}

std::vector<std::string> split_words(const std::string& line) {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) words.push_back(line.substr(start, i - start));
    }
    return words;
}

}  // namespace

namespace {

[[noreturn]] void bad_limit(std::string_view flag, const std::string& text, std::string_view why) {
    throw Error(Errc::InvalidArgument, std::string(flag) + " " + printable(text) + ": " + std::string(why));
}

// "N" or "N.F" with at most `max_fraction` digits after the point, as an integer scaled by
// 10^max_fraction; false when it is anything else or too large.
bool parse_decimal(std::string_view text, int max_fraction, std::int64_t& scaled) {
    auto point = text.find('.');
    std::string_view whole = text.substr(0, point);
    std::string_view fraction = point == std::string_view::npos ? std::string_view{} : text.substr(point + 1);
    if (!all_digits(whole) || whole.size() > static_cast<std::size_t>(18 - max_fraction) || (point != std::string_view::npos && !all_digits(fraction))) return false;
    if (static_cast<int>(fraction.size()) > max_fraction) return false;
    std::int64_t value = 0;
    for (char c : whole) value = value * 10 + (c - '0');
    for (int i = 0; i < max_fraction; ++i) {
        value = value * 10 + (i < static_cast<int>(fraction.size()) ? fraction[i] - '0' : 0);
    }
    scaled = value;
    return true;
}

}  // namespace

std::int64_t parse_bytes(std::string_view flag, const std::string& text) {
    std::string_view rest = text;
    auto unit_at = rest.find_first_not_of("0123456789.");
    std::string_view number = rest.substr(0, unit_at);
    std::string unit = unit_at == std::string_view::npos ? "" : std::string(rest.substr(unit_at));
    for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // go-units: one of b k m g t p, then an optional "i", then an optional "b" ("1g", "1gb", "1GiB").
    int shift = -1;
    if (unit.empty() || unit == "b") {
        shift = 0;
    } else if (std::string_view("kmgtp").find(unit[0]) != std::string_view::npos &&
               (unit.size() == 1 || unit.substr(1) == "b" || unit.substr(1) == "ib" || unit.substr(1) == "i")) {
        shift = 10 * (1 + static_cast<int>(std::string_view("kmgtp").find(unit[0])));
    }
    // Up to 3 decimals ("1.5g"), as fractions of the unit; what is below one byte is dropped.
    std::int64_t milli = 0;
    if (shift < 0 || !parse_decimal(number, 3, milli)) {
        bad_limit(flag, text, "not a size (a number with an optional unit b, k, m, g, t, p)");
    }
    // milli * 2^shift / 1000 without overflowing: at most 2^62 bytes.
    long double bytes = static_cast<long double>(milli) / 1000.0L * static_cast<long double>(1ULL << shift);
    if (bytes >= static_cast<long double>(1LL << 62)) bad_limit(flag, text, "too large");
    return static_cast<std::int64_t>(bytes);
}

ResourceLimits parse_resource_limits(const RunOptions& options) {
    ResourceLimits limits;
    if (!options.memory.empty()) {
        limits.memory = parse_bytes("--memory", options.memory);
        // docker's minimum: below it the container cannot even start its runtime's processes.
        constexpr std::int64_t kMinimum = 6 << 20;
        if (limits.memory != 0 && limits.memory < kMinimum) bad_limit("--memory", options.memory, "the minimum is 6m");
    }
    if (!options.memory_swap.empty()) {
        std::int64_t swap = options.memory_swap == "-1" ? -1 : parse_bytes("--memory-swap", options.memory_swap);
        if (swap > 0 && limits.memory == 0) {
            bad_limit("--memory-swap", options.memory_swap, "needs --memory (it is memory plus swap)");
        }
        if (swap > 0 && swap < limits.memory) {
            bad_limit("--memory-swap", options.memory_swap, "is memory plus swap: at least --memory");
        }
        // Unlimited swap without a memory limit limits nothing.
        if (swap != 0 && limits.memory != 0) {
            limits.memory_swap = swap;
            limits.memory_swap_given = true;
        }
    }
    // docker: with --memory alone the container may swap as much again.
    if (limits.memory != 0 && !limits.memory_swap_given) limits.memory_swap = 2 * limits.memory;
    if (!options.cpus.empty()) {
        std::int64_t nano = 0;  // docker's NanoCPUs
        if (!parse_decimal(options.cpus, 9, nano)) bad_limit("--cpus", options.cpus, "not a number of CPUs (such as 1.5)");
        limits.cpu_quota = nano / (1000000000 / limits.cpu_period);
        // The kernel refuses a CFS quota below 1 ms.
        if (nano != 0 && limits.cpu_quota < 1000) bad_limit("--cpus", options.cpus, "the minimum is 0.01");
        if (options.host_cpus != 0 && nano > static_cast<std::int64_t>(options.host_cpus) * 1000000000) {
            bad_limit("--cpus", options.cpus, "the range is 0.01 to " + std::to_string(options.host_cpus) +
                                                  ".00, as this host has " + std::to_string(options.host_cpus) + " CPUs");
        }
    }
    if (!options.pids_limit.empty()) {
        const std::string& text = options.pids_limit;
        if (text != "-1" && !all_digits(text)) bad_limit("--pids-limit", text, "not a number of processes (-1: unlimited)");
        limits.pids = text == "-1" ? 0 : std::stoll(text);
    }
    return limits;
}

TmpfsSpec parse_tmpfs(const std::string& text) {
    auto colon = text.find(':');
    TmpfsSpec spec;
    spec.path = text.substr(0, colon);
    if (spec.path.empty() || spec.path[0] != '/') {
        throw Error(Errc::InvalidArgument, "--tmpfs " + printable(text) + ": needs an absolute path");
    }
    if (spec.path.find_first_not_of('/') == std::string::npos) {
        throw Error(Errc::InvalidArgument, "--tmpfs " + printable(text) + ": not over the root itself");  // as docker
    }
    bool mode_given = false;
    if (colon != std::string::npos) {
        for (const std::string& option : split(std::string_view(text).substr(colon + 1), ',')) {
            auto eq = option.find('=');
            std::string key = option.substr(0, eq);
            std::string value = eq == std::string::npos ? "" : option.substr(eq + 1);
            bool valid = true;
            if (eq == std::string::npos) {
                if (key == "exec" || key == "noexec") spec.exec = key == "exec";
                else if (key == "suid" || key == "nosuid") spec.suid = key == "suid";
                else if (key == "ro" || key == "rw") spec.read_only = key == "ro";
                else if (key == "nodev") {
                } else if (key == "dev") {
                    throw Error(Errc::InvalidArgument, "--tmpfs " + printable(text) +
                                ": dev is refused (a device node made there would open the host's device)");
                } else valid = false;
            } else if (key == "size") {
                valid = is_size(value, true);
            } else if (key == "nr_inodes" || key == "nr_blocks") {
                valid = is_size(value, false);
            } else if (key == "mode") {
                valid = !value.empty() && value.size() <= 4 && value.find_first_not_of("01234567") == std::string::npos;
                mode_given = true;
            } else if (key == "uid" || key == "gid") {
                valid = all_digits(value);
            } else {
                valid = false;
            }
            if (!valid) throw Error(Errc::InvalidArgument, "--tmpfs " + printable(text) + ": bad option \"" + printable(option) + "\"");
            if (eq != std::string::npos) spec.options.emplace_back(key, value);
        }
    }
    if (!mode_given) spec.options.emplace_back("mode", "1777");
    return spec;
}

std::string hosts_file(const std::string& hostname, const std::vector<std::string>& add_hosts) {
    std::string text =
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n";
    if (!hostname.empty()) text += "127.0.1.1\t" + hostname + "\n";
    for (const std::string& entry : add_hosts) {
        // NAME:ADDRESS (docker's older form, an IPv6 address keeps its colons) or NAME=ADDRESS.
        auto at = entry.find_first_of(":=");
        std::string name = at == std::string::npos ? entry : entry.substr(0, at);
        std::string address = at == std::string::npos ? "" : entry.substr(at + 1);
        if (address.size() > 2 && address.front() == '[' && address.back() == ']') address = address.substr(1, address.size() - 2);
        if (!is_plain_word(name) || !is_ip_address(address)) {
            throw Error(Errc::InvalidArgument, "--add-host " + printable(entry) + ": expected NAME:ADDRESS (an IPv4 or IPv6 address)");
        }
        text += address + "\t" + name + "\n";
    }
    return text;
}

std::string resolv_conf(const std::string& host_text, bool own_network, const std::vector<std::string>& dns,
                        const std::vector<std::string>& dns_search) {
    for (const std::string& server : dns) {
        if (!is_ip_address(server)) throw Error(Errc::InvalidArgument, "--dns " + printable(server) + ": not an IP address");
    }
    for (const std::string& domain : dns_search) {
        if (!is_plain_word(domain)) throw Error(Errc::InvalidArgument, "--dns-search " + printable(domain) + ": not a domain name");
    }
    // Lines stay in the host's order; only what docker's rules change is dropped or added.
    std::string text;
    if (!dns_search.empty()) {
        text += "search";
        for (const std::string& domain : dns_search) text += " " + domain;
        text += "\n";
    }
    bool kept_server = false;
    for (const std::string& raw : split(host_text, '\n')) {
        std::string line = raw;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto words = split_words(line);
        if (!words.empty() && words[0] == "nameserver") {
            if (!dns.empty() || words.size() < 2 || (own_network && is_loopback_address(words[1]))) continue;
            kept_server = true;
        }
        if (!words.empty() && (words[0] == "search" || words[0] == "domain") && !dns_search.empty()) continue;
        if (line.empty()) continue;
        text += line + "\n";
    }
    std::vector<std::string> added = dns;
    if (added.empty() && !kept_server && own_network) added = {"8.8.8.8", "8.8.4.4"};
    for (const std::string& server : added) text += "nameserver " + server + "\n";
    return text;
}

LaunchSpec spec_from_image(const image::ContainerConfig& config, const RunOptions& options) {
    static const std::vector<std::string> kNone;
    LaunchSpec spec;
    spec.argv = compose_argv(config.entrypoint.value_or(kNone), config.cmd.value_or(kNone),
                             options.entrypoint, options.command);

    std::vector<std::string> overrides;
    for (const auto& text : options.env_files) {
        for (auto& kv : parse_env_file(text)) overrides.push_back(std::move(kv));
    }
    overrides.insert(overrides.end(), options.env.begin(), options.env.end());
    spec.env = merge_env(config.env.value_or(kNone), overrides, options.host_env);
    if (!env_value(spec.env, "PATH")) spec.env.emplace_back(kDefaultPath);
    spec.hostname = options.hostname.empty() ? options.default_hostname : options.hostname;
    // It goes into /etc/hosts and /etc/hostname as one word: letters, digits, '-' and '.' (RFC 1123),
    // at most the kernel's 64 bytes. A newline there would add lines to /etc/hosts.
    bool valid_hostname = !spec.hostname.empty() && spec.hostname.size() <= 64 && std::isalnum(static_cast<unsigned char>(spec.hostname[0])) &&
                          std::all_of(spec.hostname.begin(), spec.hostname.end(), [](char c) {
                              return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
                          });
    if (!valid_hostname) {
        throw Error(Errc::InvalidArgument, "--hostname " + printable(spec.hostname) + ": letters, digits, - and . only, at most 64");
    }
    if (!env_value(spec.env, "HOSTNAME")) spec.env.push_back("HOSTNAME=" + spec.hostname);
    if (options.tty && !env_value(spec.env, "TERM")) spec.env.push_back("TERM=xterm");

    spec.workdir = !options.workdir.empty() ? options.workdir : config.working_dir.value_or("");
    if (spec.workdir.empty()) spec.workdir = "/";
    if (spec.workdir[0] != '/') {
        throw Error(Errc::InvalidArgument,
                    "working directory \"" + spec.workdir + "\" is not an absolute path");
    }
    spec.user = !options.user.empty() ? options.user : config.user.value_or("");

    if (options.net != "host" && options.net != "none") {
        throw Error(Errc::InvalidArgument,
                    "unsupported network \"" + printable(options.net) + "\": host or none");
    }
    spec.new_network = options.net == "none";
    spec.read_only_root = options.read_only;
    spec.tty = options.tty;
    spec.interactive = options.interactive;
    spec.init = options.init;
    spec.privileged = options.privileged;
    spec.capabilities = options.privileged
                            ? all_capabilities()
                            : adjust_capabilities(default_capabilities(), options.cap_add, options.cap_drop);
    for (const auto& v : options.volumes) spec.volumes.push_back(parse_volume(v));
    for (const auto& t : options.tmpfs) spec.tmpfs.push_back(parse_tmpfs(t));
    spec.limits = parse_resource_limits(options);
    // docker's --security-opt, the parts imgtool implements; anything else is refused, never ignored.
    for (const std::string& opt : options.security_opts) {
        if (opt == "seccomp=unconfined" || opt == "seccomp:unconfined") {
            spec.seccomp = false;
        } else if (opt == "no-new-privileges" || opt == "no-new-privileges:true" || opt == "no-new-privileges=true") {
            spec.no_new_privileges = true;
        } else if (opt == "no-new-privileges:false" || opt == "no-new-privileges=false") {
            spec.no_new_privileges = false;
        } else if (opt.rfind("seccomp=", 0) == 0 || opt.rfind("seccomp:", 0) == 0) {
            const std::string path = opt.substr(8);
            if (path.empty()) throw Error(Errc::InvalidArgument, "--security-opt " + printable(opt) + ": names no profile");
            // Resolved now, for the capabilities settled above: the launcher only compiles it.
            spec.seccomp = true;
            spec.seccomp_policy = resolve_profile(options.read_seccomp_profile(path), spec.capabilities, options.seccomp_platform);
        } else {
            throw Error(Errc::InvalidArgument, "--security-opt " + printable(opt) +
                                                   ": not supported (seccomp=unconfined or seccomp=PROFILE.json, no-new-privileges)");
        }
    }
    return spec;
}

}  // namespace imgtool::launch
