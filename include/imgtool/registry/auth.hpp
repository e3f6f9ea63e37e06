// Registry credentials and challenges: parsing WWW-Authenticate (RFC 7235, as registries send it), and
// the containers-auth.json(5) files podman, skopeo and docker share. Parsing is pure; the file
// functions only read or atomically replace one file.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgtool::registry {

struct Challenge {
    std::string scheme;                         // lower case: "basic", "bearer"
    std::map<std::string, std::string> params;  // lower-case names: realm, service, scope
};

// All challenges of one header value ("Bearer realm=\"..\",service=\"..\", Basic realm=\"..\"").
std::vector<Challenge> parse_challenges(std::string_view header);

struct Credentials {
    std::string username;
    std::string password;  // never printed, logged or stored outside an auth file
};

// "Basic <base64 of user:password>", the Authorization header's value.
std::string basic_authorization(const Credentials& creds);

// "user:pass" (--creds); "user" alone leaves the password empty.
Credentials parse_creds(std::string_view text);

// The auth files podman reads, in order: --authfile, else $REGISTRY_AUTH_FILE, else
// $XDG_RUNTIME_DIR/containers/auth.json, else ~/.docker/config.json. login writes the first.
std::vector<std::string> auth_file_candidates(const std::optional<std::string>& authfile);

// The entry for `registry` ("host[:port]") and `repository` from an auth file's text: the most specific
// key wins ("host/ns/repo", then "host/ns", then "host"); docker.io also answers to docker's
// "https://index.docker.io/v1/". Throws Errc::Corrupt naming `shown` for a malformed file.
std::optional<Credentials> find_credentials(std::string_view json_text, std::string_view registry,
                                            std::string_view repository, const std::string& shown);

// Looks through the candidates in order (missing files skipped).
std::optional<Credentials> lookup_credentials(const std::vector<std::string>& files, std::string_view registry,
                                              std::string_view repository);

// The file's text with `registry`'s entry set (credentials) or removed (nullopt); other content kept.
std::string with_entry(std::string_view json_text, std::string_view registry, const std::optional<Credentials>& creds,
                       const std::string& shown);

// Replaces `path` atomically with `text`, mode 0600, making its directory (0700) if missing.
void write_auth_file(const std::string& path, const std::string& text);

}  // namespace imgtool::registry
