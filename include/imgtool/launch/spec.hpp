// From an image's container config and run's options to a LaunchSpec: docker's rules for argv,
// environment, working directory, user, host name, capabilities, volumes and tmpfs, as one pure
// function (no syscalls, no disk: what run reads from files or the process is passed in as values).
// The counterpart of umoci's oci/config/convert (image config -> runtime spec). The runner itself
// (container.hpp) still knows nothing about images; only this translation reads their config.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/image/types.hpp"
#include "imgtool/launch/container.hpp"
#include "imgtool/launch/seccomp_filter.hpp"
#include "imgtool/launch/seccomp_profile.hpp"

namespace imgtool::launch {

// What run's flags say, as plain values. Everything that would need a syscall to know is read by the
// caller: the env files' contents, the caller's own environment.
struct RunOptions {
    std::vector<std::string> command;       // COMMAND [ARG...] after IMAGE; empty: the image's Cmd
    std::optional<std::string> entrypoint;  // --entrypoint (set, even to "", replaces the image's)
    std::vector<std::string> env_files;     // the text of each --env-file, in order
    std::vector<std::string> env;           // -e KEY=VALUE or -e KEY, in order
    std::vector<std::string> host_env;      // the caller's environment, for "-e KEY"
    std::string workdir;                    // -w; empty: the image's WorkingDir, else /
    std::string user;                       // -u; empty: the image's User
    std::string hostname;                   // --hostname; empty: default_hostname
    std::string default_hostname;           // run passes the image ID's short form
    std::string net = "host";               // --net: host or none
    bool interactive = false;
    bool tty = false;
    bool read_only = false;
    bool init = false;
    bool privileged = false;
    std::vector<std::string> cap_add;
    std::vector<std::string> cap_drop;
    std::vector<std::string> volumes;  // -v HOST:CONTAINER[:ro|rw]
    std::vector<std::string> tmpfs;    // --tmpfs PATH[:OPTIONS]
    std::vector<std::string> security_opts;  // --security-opt: seccomp=unconfined|PROFILE.json, no-new-privileges[:true|false]
    // Reads --security-opt seccomp=PROFILE.json (a path on the host) into a profile: the host file by
    // default (read_seccomp_profile); tests give text instead.
    std::function<SeccompProfile(const std::string& path)> read_seccomp_profile = launch::read_seccomp_profile;
    SeccompPlatform seccomp_platform = host_platform();  // what a profile is resolved for
    std::vector<std::string> add_hosts;   // --add-host NAME:ADDRESS
    std::vector<std::string> dns;         // --dns ADDRESS
    std::vector<std::string> dns_search;  // --dns-search DOMAIN
    // Resource limits as typed; empty: not given (parse_resource_limits).
    std::string memory;       // --memory BYTES[b|k|m|g|t|p]
    std::string memory_swap;  // --memory-swap BYTES[...] or -1
    std::string cpus;         // --cpus N.N
    unsigned host_cpus = 0;   // the host's online CPUs, --cpus' upper bound as docker's (0: unchecked)
    std::string pids_limit;   // --pids-limit N
};

inline constexpr std::string_view kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// docker's -v HOST:CONTAINER[:ro|rw], CONTAINER absolute. Throws Errc::InvalidArgument.
VolumeSpec parse_volume(const std::string& text);

// docker's --tmpfs PATH[:OPTIONS]: OPTIONS a comma-separated list of size=N[k|m|g|%], mode=OCTAL,
// uid=N, gid=N, nr_inodes=N[k|m|g], nr_blocks=N[k|m|g], exec/noexec, suid/nosuid, ro/rw; noexec,nosuid
// by default as in docker; always nodev (`dev` is refused: a node made there would open a host
// device). Throws Errc::InvalidArgument naming the option.
TmpfsSpec parse_tmpfs(const std::string& text);

// docker's size syntax (go-units RAMInBytes): a decimal number with an optional unit b, k, m, g, t or p
// (powers of 1024, either case, "kb"/"kib" spellings too). Throws Errc::InvalidArgument naming `flag`.
std::int64_t parse_bytes(std::string_view flag, const std::string& text);

// --memory, --memory-swap, --cpus and --pids-limit with docker's rules, one clear error for each bad
// value (Errc::InvalidArgument):
// - --memory at least 6 MiB (docker's minimum), 0 or absent: none;
// - --memory-swap is memory plus swap: -1 unlimited swap; at least --memory; needs --memory; 0 or
//   absent with --memory: twice --memory (docker's default, memory_swap_given false);
// - --cpus N.N: quota N * 100000 us per 100000 us period, at least 0.01 (the kernel's 1 ms floor);
// - --pids-limit N: -1 or 0 unlimited, as docker.
ResourceLimits parse_resource_limits(const RunOptions& options);

// The container's /etc/hosts: docker's localhost entries, the container's host name on 127.0.1.1 (as
// Debian does, so that programs resolving their own name work without a network), then each
// --add-host NAME:ADDRESS (docker's form; host-gateway is not supported). Throws on a bad entry.
std::string hosts_file(const std::string& hostname, const std::vector<std::string>& add_hosts);

// The container's /etc/resolv.conf from the host's text, docker's rules: --dns replaces the
// nameservers and --dns-search the search domains; in a network namespace of its own (--net none) a
// loopback nameserver (systemd-resolved's 127.0.0.53, dnsmasq's 127.0.0.1) cannot answer, so those
// are dropped and, if none remain, docker's defaults (8.8.8.8, 8.8.4.4) take their place. With the
// host's network the host's resolvers are reachable and kept.
std::string resolv_conf(const std::string& host_text, bool own_network, const std::vector<std::string>& dns,
                        const std::vector<std::string>& dns_search);

// The LaunchSpec for a container of `config` run with `options`, all but what only the caller can
// supply (root_dir, mount_root, on_started), in docker's terms:
// - argv: compose_argv (an absent and an empty Entrypoint or Cmd mean the same, as in docker);
// - env: the image's Env, then each env file's lines, then -e, later keys replacing earlier ones
//   (merge_env); then PATH (kDefaultPath), HOSTNAME and, with -t, TERM=xterm where not already set;
// - working directory: -w, else the image's WorkingDir, else /; it must be absolute;
// - user: -u, else the image's User (resolved later, in the image's own /etc/passwd);
// - hostname: --hostname, else default_hostname;
// - capabilities: --privileged all (--cap-add/--cap-drop ignored), else docker's defaults adjusted;
// - volumes parsed (parse_volume), --tmpfs paths absolute; network none or host;
// - limits: parse_resource_limits.
// - --security-opt: seccomp=unconfined (no filter), seccomp=PROFILE.json (docker's format, read with
//   options.read_seccomp_profile and resolved for the container's capabilities on this machine),
//   no-new-privileges[:true|false]; anything else is refused.
// Throws imgtool::Error (Errc::InvalidArgument for bad options) with nothing half-built.
LaunchSpec spec_from_image(const image::ContainerConfig& config, const RunOptions& options);

}  // namespace imgtool::launch
