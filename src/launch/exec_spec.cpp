#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/exec.hpp"

namespace imgtool::launch {

ProcessRecord process_record_of(const LaunchSpec& spec) {
    return {.env = spec.env,
            .user = spec.user,
            .workdir = spec.workdir,
            .capabilities = spec.capabilities,
            .privileged = spec.privileged,
            .seccomp = spec.seccomp,
            .seccomp_profile = spec.seccomp_policy.has_value(),
            .no_new_privileges = spec.no_new_privileges,
            .init = spec.init};
}

std::string process_record_json(const ProcessRecord& r) {
    nlohmann::json doc = {{"Env", r.env},
                          {"User", r.user},
                          {"WorkingDir", r.workdir},
                          {"Capabilities", r.capabilities},
                          {"Privileged", r.privileged},
                          {"Seccomp", r.seccomp},
                          {"SeccompProfile", r.seccomp_profile},
                          {"NoNewPrivileges", r.no_new_privileges},
                          {"Init", r.init}};
    return doc.dump();
}

ProcessRecord parse_process_record(std::string_view text) {
    try {
        nlohmann::json doc = nlohmann::json::parse(text);
        ProcessRecord r;
        r.env = doc.at("Env").get<std::vector<std::string>>();
        r.user = doc.at("User").get<std::string>();
        r.workdir = doc.at("WorkingDir").get<std::string>();
        r.capabilities = doc.at("Capabilities").get<std::uint64_t>();
        r.privileged = doc.at("Privileged").get<bool>();
        r.seccomp = doc.at("Seccomp").get<bool>();
        r.seccomp_profile = doc.value("SeccompProfile", false);
        r.no_new_privileges = doc.at("NoNewPrivileges").get<bool>();
        r.init = doc.at("Init").get<bool>();
        return r;
    } catch (const nlohmann::json::exception& e) {
        throw Error(Errc::InvalidArgument, std::string("the container's process record: ") + e.what());
    }
}

ExecSpec exec_spec(const ProcessRecord& container, const ExecOptions& options) {
    if (options.command.empty()) throw Error(Errc::InvalidArgument, "exec needs a COMMAND");
    // Failing closed: the container's filter came from a file run read then; exec cannot know it is
    // the same now, and a process without that filter would have more than the container's.
    if (container.seccomp_profile && container.seccomp && !container.privileged) {
        throw Error(Errc::Unsupported, "the container runs with a seccomp profile from a file: exec into it is not supported yet");
    }
    ExecSpec spec;
    spec.argv = options.command;
    spec.env = merge_env(container.env, options.env, options.host_env);
    if (options.tty && !env_value(spec.env, "TERM")) spec.env.push_back("TERM=xterm");
    spec.user = options.user.empty() ? container.user : options.user;
    spec.workdir = options.workdir.empty() ? container.workdir : options.workdir;
    if (spec.workdir.empty() || spec.workdir[0] != '/') {
        throw Error(Errc::InvalidArgument, "working directory \"" + printable(spec.workdir) + "\" is not an absolute path");
    }
    spec.capabilities = container.capabilities;
    spec.tty = options.tty;
    spec.interactive = options.interactive;
    spec.privileged = container.privileged;
    spec.seccomp = container.seccomp;
    spec.no_new_privileges = container.no_new_privileges;
    return spec;
}

}  // namespace imgtool::launch
