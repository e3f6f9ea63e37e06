#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "registry_options.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/reference.hpp"
#include "imgtool/registry/auth.hpp"
#include "imgtool/registry/client.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::cli {
namespace {

// "registry.example.com[:port]" (a trailing path or scheme, as users paste them, is dropped).
std::string registry_host(std::string text) {
    for (std::string_view scheme : {"https://", "http://"}) {
        if (text.rfind(scheme, 0) == 0) text.erase(0, scheme.size());
    }
    text = text.substr(0, text.find('/'));
    if (text == "index.docker.io" || text == "registry-1.docker.io") text = "docker.io";
    // Validated as the registry part of a reference.
    image::Reference ref = image::Reference::parse(text + "/x");
    if (ref.registry != text && !(text == "docker.io" && ref.registry == "docker.io")) {
        throw Error(Errc::InvalidArgument, "invalid registry \"" + printable(text) + "\"");
    }
    return ref.registry;
}

std::string read_existing(const std::string& path) { return sys::read_config_file(path, 1 << 20).value_or(""); }

}  // namespace

void add_login(CLI::App& app, Globals&, Action& action) {
    auto reg = std::make_shared<RegistryArgs>();
    auto host = std::make_shared<std::string>();
    auto user = std::make_shared<std::string>();
    auto password = std::make_shared<std::string>();
    auto password_stdin = std::make_shared<bool>(false);
    CLI::App* cmd = app.add_subcommand("login", "check credentials with a registry and save them in the auth file");
    examples(*cmd, {"imgtool login -u alice --password-stdin registry.example.com < token.txt"});
    cmd->add_option("REGISTRY", *host, "host[:port]")->required();
    cmd->add_option("--username,-u", *user, "user name");
    cmd->add_option("--password,-p", *password, "password (visible to other users in ps: prefer --password-stdin)");
    cmd->add_flag("--password-stdin", *password_stdin, "read the password from standard input");
    add_registry_options(*cmd, *reg, false, false);
    cmd->callback([&action, reg, host, user, password, password_stdin] {
        action = [reg, host, user, password, password_stdin] {
            std::string registry = registry_host(*host);
            if (user->empty()) throw Error(Errc::InvalidArgument, "--username is required");
            if (*password_stdin) {
                if (!password->empty()) throw Error(Errc::InvalidArgument, "--password and --password-stdin exclude each other");
                // One line, at most 4 KiB: `< /dev/zero` must not fill memory.
                char line[4098];
                std::string text = std::fgets(line, sizeof line, stdin) ? line : "";
                if (!text.empty() && text.back() == '\n') text.pop_back();
                if (text.size() > 4096) throw Error(Errc::InvalidArgument, "--password-stdin: longer than 4096 bytes");
                if (!text.empty() && text.back() == '\r') text.pop_back();
                *password = text;
            }
            if (password->empty()) throw Error(Errc::InvalidArgument, "no password (--password-stdin or --password)");
            registry::ClientOptions options = client_options(*reg);
            options.credentials = registry::Credentials{*user, *password};
            registry::Client client(image::Reference::parse(registry + "/x"), options);
            client.check();  // refuses wrong credentials before anything is written
            std::string file = registry::auth_file_candidates(options.authfile).front();
            registry::write_auth_file(file, registry::with_entry(read_existing(file), registry, options.credentials, file));
            std::printf("Login Succeeded!\n");
            return 0;
        };
    });
}

void add_logout(CLI::App& app, Globals&, Action& action) {
    auto host = std::make_shared<std::string>();
    auto authfile = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("logout", "remove a registry's credentials from the auth file");
    examples(*cmd, {"imgtool logout registry.example.com"});
    cmd->add_option("REGISTRY", *host, "host[:port]")->required();
    cmd->add_option("--authfile", *authfile, "credentials file (default: as login)");
    cmd->callback([&action, host, authfile] {
        action = [host, authfile] {
            std::string registry = registry_host(*host);
            std::optional<std::string> chosen;
            if (!authfile->empty()) chosen = *authfile;
            std::string file = registry::auth_file_candidates(chosen).front();
            std::string text = read_existing(file);
            std::string without = registry::with_entry(text, registry, std::nullopt, file);
            if (text.empty() || without == registry::with_entry(text, registry + ".unused.invalid", std::nullopt, file)) {
                throw Error(Errc::NotFound, "not logged in to " + registry + " (in " + file + ")");
            }
            registry::write_auth_file(file, without);
            std::printf("Removed login credentials for %s\n", registry.c_str());
            return 0;
        };
    });
}

}  // namespace imgtool::cli
