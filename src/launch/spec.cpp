#include "imgtool/launch/spec.hpp"

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
    for (const auto& t : options.tmpfs) {
        if (t.empty() || t[0] != '/') throw Error(Errc::InvalidArgument, "--tmpfs needs an absolute path");
        spec.tmpfs.push_back(t);
    }
    return spec;
}

}  // namespace imgtool::launch
