// Pure pieces of launching: capability sets, users from the image's own /etc/passwd and /etc/group
// (never the host's NSS: docker cp CVE-2019-14271), environment and argv composition. No syscalls.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgtool::launch {

// ---- capabilities (bit N = CAP_N) ----
inline constexpr int kLastKnownCap = 40;  // CAP_CHECKPOINT_RESTORE
std::optional<int> capability_number(std::string_view name);  // "NET_ADMIN", "cap_net_admin"
std::string capability_name(int number);
// "", "0", "1000", "1000:0": no name to look up in the image's files.
bool user_spec_is_numeric(std::string_view spec);
// A signal as docker's StopSignal and --stop-signal spell it: "SIGTERM", "TERM", "15", "SIGRTMIN+3".
std::optional<int> signal_number(std::string_view text);
// docker's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP
// NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE.
std::uint64_t default_capabilities();
std::uint64_t all_capabilities(int last_cap = kLastKnownCap);
// Applies --cap-add / --cap-drop (names or "ALL"); throws Errc::InvalidArgument for unknown names.
std::uint64_t adjust_capabilities(std::uint64_t base, const std::vector<std::string>& add,
                                  const std::vector<std::string>& drop, int last_cap = kLastKnownCap);

// ---- users ----
struct PasswdEntry {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
};
struct GroupEntry {
    std::string name;
    gid_t gid = 0;
    std::vector<std::string> members;
};
std::vector<PasswdEntry> parse_passwd(std::string_view text);
std::vector<GroupEntry> parse_group(std::string_view text);

struct User {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary
    std::string home = "/";
};
// `spec` is docker's --user: "", "name", "uid", "name:group", "uid:gid" (any mix). Names must exist in
// the image's files; numeric ids need not. Throws Errc::NotFound / InvalidArgument.
User resolve_user(std::string_view spec, const std::vector<PasswdEntry>& passwd, const std::vector<GroupEntry>& groups);

// ---- environment and command ----
// Later entries replace earlier ones with the same key; "KEY" alone takes the value from `host_env`
// (as docker's -e KEY), or is dropped if the host has none.
std::vector<std::string> merge_env(const std::vector<std::string>& base, const std::vector<std::string>& overrides,
                                   const std::vector<std::string>& host_env);
// docker's --env-file: KEY=VALUE lines, '#' comments and blank lines ignored.
std::vector<std::string> parse_env_file(std::string_view text);
std::optional<std::string> env_value(const std::vector<std::string>& env, std::string_view key);

// docker's rules: --entrypoint replaces Entrypoint and clears the image's Cmd; COMMAND replaces Cmd.
std::vector<std::string> compose_argv(const std::vector<std::string>& image_entrypoint,
                                      const std::vector<std::string>& image_cmd,
                                      const std::optional<std::string>& entrypoint_override,
                                      const std::vector<std::string>& command);

// Where execvp would look for `program` with this PATH (absolute or relative names: just itself).
std::vector<std::string> exec_candidates(const std::string& program, std::string_view path);

// Why `program` could not be started, as docker's statuses: 127 when nothing was there to run (no
// candidate existed: `errno_seen` 0, ENOENT or ENOTDIR), else 126 with the error of the candidate that
// existed. A name is looked up in $PATH; a path (it has a '/') is only itself, so its reason is the
// path's own ("no such file or directory"), not the search's.
struct ExecFailure {
    int status = 127;
    std::string reason;  // "executable file not found in $PATH", "no such file or directory", ...
};
ExecFailure exec_failure(const std::string& program, int errno_seen);

// ---- Ctrl-C and a container whose PID 1 is the command -------------------------------------------
// The kernel delivers to a PID namespace's init only the signals it has a handler for: a command run
// as PID 1 without --init that never set one ignores Ctrl-C (docker's behaviour too). imgtool keeps
// that, says so once, and lets a third Ctrl-C in a row kill the container.
enum class SignalDisposition { Default, Ignored, Caught };
// From /proc/PID/status text (SigIgn, SigCgt); nullopt if the lines are missing.
std::optional<SignalDisposition> signal_disposition(std::string_view status_text, int sig);
// The Name: line of /proc/PID/status ("" if missing).
std::string process_name(std::string_view status_text);
enum class InterruptAction { None, Hint, Kill };
// What the `presses`-th Ctrl-C (1, 2, ...) that reached the container calls for, once the container
// is seen still running after it. Only a PID 1 left with the default disposition is helped.
InterruptAction interrupt_action(int presses, SignalDisposition pid1);
inline constexpr int kInterruptsToKill = 3;

}  // namespace imgtool::launch
