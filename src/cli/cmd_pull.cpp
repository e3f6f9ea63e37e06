#include <cstdio>

#include "commands.hpp"
#include "registry_options.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/image/reference.hpp"
#include "imgtool/registry/source.hpp"

namespace imgtool::cli {

void add_registry_options(CLI::App& cmd, RegistryArgs& args, bool with_creds, bool with_retries) {
    cmd.add_flag("--tls-verify", args.tls_verify,
                 "verify TLS certificates (default true); =false also allows plain HTTP");
    cmd.add_option("--cert-dir", args.cert_dir, "CAs (*.crt) and a client pair (*.cert, *.key) for the registry");
    cmd.add_option("--authfile", args.authfile,
                   "credentials file (default: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, "
                   "~/.docker/config.json)");
    if (with_creds) cmd.add_option("--creds", args.creds, "USER[:PASSWORD] for the registry");
    if (with_retries) {
        cmd.add_option("--retry", args.retries, "retries of a failed request or cut transfer (default 4)");
        cmd.add_option("--retry-delay", args.retry_delay, "first wait before a retry, doubled each time (default 250ms)");
        cmd.add_option("--stall-timeout", args.stall_seconds,
                       "seconds without a byte before a transfer counts as failed (default 30)");
    }
}

registry::ClientOptions client_options(const RegistryArgs& args) {
    registry::ClientOptions options;
    options.tls_verify = args.tls_verify;
    options.plain_http_credentials = !args.tls_verify;
    if (!args.cert_dir.empty()) options.cert_dir = args.cert_dir;
    if (!args.authfile.empty()) options.authfile = args.authfile;
    if (!args.creds.empty()) options.credentials = registry::parse_creds(args.creds);
    options.attempts = args.retries + 1;
    if (args.stall_seconds == 0) throw Error(Errc::InvalidArgument, "--stall-timeout must be at least 1 second");
    options.stall = std::chrono::seconds(args.stall_seconds);
    if (!args.retry_delay.empty()) {
        const std::string& d = args.retry_delay;
        std::size_t digits = d.find_first_not_of("0123456789");
        std::string unit = digits == std::string::npos ? "" : d.substr(digits);
        if (digits == 0 || digits > 6 || (unit != "ms" && unit != "s")) {
            throw Error(Errc::InvalidArgument, "--retry-delay \"" + d + "\": expected a duration such as 500ms or 2s");
        }
        long value = std::stol(d.substr(0, digits));
        options.backoff = unit == "ms" ? std::chrono::milliseconds(value) : std::chrono::milliseconds(value * 1000);
    }
    return options;
}

void add_pull(CLI::App& app, Globals& globals, Action& action) {
    auto args = std::make_shared<ImportArgs>();
    args->verb = "pull";
    auto reg = std::make_shared<RegistryArgs>();
    auto reference = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("pull", "pull an image from a registry (OCI distribution API)");
    examples(*cmd, {"imgtool pull alpine:3.19", "imgtool pull --tls-verify=false localhost:5000/team/app:v1"});
    cmd->add_option("REFERENCE", *reference, "[REGISTRY/]REPOSITORY[:TAG][@DIGEST]; docker.io when no registry")->required();
    add_import_options(*cmd, *args, "layers to download and unpack in parallel (default 6)");
    add_registry_options(*cmd, *reg, true, true);
    args->jobs = 6;
    cmd->callback([&globals, &action, args, reg, reference] {
        action = [&globals, args, reg, reference] {
            image::Reference ref = image::Reference::parse(*reference);
            auto source = registry::open_source(ref, client_options(*reg));
            return import_and_report(globals, *source, *args);
        };
    });
}

}  // namespace imgtool::cli
