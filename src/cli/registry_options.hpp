// The registry options pull, login and logout share (podman's spellings).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "imgtool/registry/client.hpp"

namespace imgtool::cli {

struct RegistryArgs {
    bool tls_verify = true;
    std::string cert_dir;
    std::string creds;
    std::string authfile;
    unsigned retries = 4;
    std::string retry_delay;  // "250ms", "2s"
    unsigned stall_seconds = 30;
};

void add_registry_options(CLI::App& cmd, RegistryArgs& args, bool with_creds, bool with_retries);
registry::ClientOptions client_options(const RegistryArgs& args);

}  // namespace imgtool::cli
