#include "imgtool/registry/auth.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/json.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::registry {
namespace {

constexpr std::size_t kMaxAuthFile = 1 << 20;

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string base64_encode(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4 != 0 || in.size() > kMaxAuthFile) return std::nullopt;
    std::string out(3 * in.size() / 4 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    if (n < 0) return std::nullopt;
    std::size_t size = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding's zero bytes as data.
    for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) --size;
    out.resize(size);
    return out;
}

// The keys an entry for registry/repository may be filed under, most specific first.
std::vector<std::string> keys_for(std::string_view registry, std::string_view repository) {
    std::vector<std::string> keys;
    std::string path = std::string(registry) + "/" + std::string(repository);
    while (true) {
        keys.push_back(path);
        auto slash = path.rfind('/');
        if (slash == std::string::npos || slash < registry.size()) break;
        path.resize(slash);
    }
    if (keys.back() != registry) keys.push_back(std::string(registry));
    if (registry == "docker.io") {
        keys.push_back("https://index.docker.io/v1/");
        keys.push_back("index.docker.io");
        keys.push_back("registry-1.docker.io");
    }
    return keys;
}

// docker writes some keys as URLs ("https://host/v1/"); they name the same host.
std::string normalize_key(std::string key) {
    for (std::string_view scheme : {"https://", "http://"}) {
        if (key.rfind(scheme, 0) == 0) {
            key.erase(0, scheme.size());
            if (key.rfind("index.docker.io/v1", 0) == 0) return "https://index.docker.io/v1/";
            while (!key.empty() && key.back() == '/') key.pop_back();
            break;
        }
    }
    return key;
}

}  // namespace

std::vector<Challenge> parse_challenges(std::string_view header) {
    std::vector<Challenge> out;
    std::size_t i = 0;
    auto skip_space = [&] {
        while (i < header.size() && (header[i] == ' ' || header[i] == '\t' || header[i] == ',')) ++i;
    };
    auto token = [&] {
        std::size_t start = i;
        while (i < header.size() && header[i] != ' ' && header[i] != '\t' && header[i] != '=' && header[i] != ',') ++i;
        return header.substr(start, i - start);
    };
    while (true) {
        skip_space();
        if (i >= header.size()) break;
        std::string_view scheme = token();
        if (scheme.empty()) break;
        out.push_back(Challenge{lower(scheme), {}});
        // Parameters: name=value or name="quoted \" value", separated by commas, until the next scheme.
        while (true) {
            skip_space();
            std::size_t mark = i;
            std::string_view name = token();
            if (name.empty() || i >= header.size() || header[i] != '=') {
                i = mark;  // the next challenge's scheme
                break;
            }
            ++i;
            std::string value;
            if (i < header.size() && header[i] == '"') {
                ++i;
                while (i < header.size() && header[i] != '"') {
                    if (header[i] == '\\' && i + 1 < header.size()) ++i;
                    value += header[i++];
                }
                ++i;
            } else {
                value = std::string(token());
            }
            out.back().params[lower(name)] = value;
        }
        if (out.size() > 16) break;
    }
    return out;
}

std::string basic_authorization(const Credentials& creds) {
    return "Basic " + base64_encode(creds.username + ":" + creds.password);
}

Credentials parse_creds(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) return {std::string(text), {}};
    return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

std::vector<std::string> auth_file_candidates(const std::optional<std::string>& authfile) {
    if (authfile) return {*authfile};
    std::vector<std::string> files;
    if (const char* env = std::getenv("REGISTRY_AUTH_FILE"); env && *env) return {env};
    if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run) {
        files.push_back(std::string(run) + "/containers/auth.json");
    }
    if (const char* home = std::getenv("HOME"); home && *home) files.push_back(std::string(home) + "/.docker/config.json");
    return files;
}

// An auth file's JSON. A parse error names the file only: the parser's excerpt of where it stopped
// may be a password.
nlohmann::json parse_auth_file(std::string_view json_text, const std::string& shown) {
    try {
        return image::parse_json_strict(json_text, shown);
    } catch (const Error&) {
        throw Error(Errc::Corrupt, shown + ": not valid JSON (the parser's excerpt is not shown: it may hold a password)");
    }
}

std::optional<Credentials> find_credentials(std::string_view json_text, std::string_view registry,
                                            std::string_view repository, const std::string& shown) {
    nlohmann::json doc = parse_auth_file(json_text, shown);
    if (!doc.is_object()) throw Error(Errc::Corrupt, shown + ": not a JSON object");
    auto auths = doc.find("auths");
    if (auths == doc.end()) return std::nullopt;
    if (!auths->is_object()) throw Error(Errc::Corrupt, shown + ": \"auths\" is not an object");
    std::map<std::string, const nlohmann::json*> entries;
    for (const auto& [key, value] : auths->items()) entries[normalize_key(key)] = &value;
    for (const std::string& key : keys_for(registry, repository)) {
        auto it = entries.find(key);
        if (it == entries.end()) continue;
        const nlohmann::json& entry = *it->second;
        auto auth = entry.is_object() ? entry.find("auth") : entry.end();
        if (auth == entry.end() || !auth->is_string()) continue;  // a credential helper's entry: not ours
        auto decoded = base64_decode(auth->get<std::string>());
        auto colon = decoded ? decoded->find(':') : std::string::npos;
        if (colon == std::string::npos) {
            throw Error(Errc::Corrupt, shown + ": the \"auth\" of " + printable(it->first) + " is not base64 of user:password");
        }
        return Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
    }
    return std::nullopt;
}

std::optional<Credentials> lookup_credentials(const std::vector<std::string>& files, std::string_view registry,
                                              std::string_view repository) {
    for (const std::string& file : files) {
        std::optional<std::string> text = sys::read_config_file(file, kMaxAuthFile);
        if (!text) continue;
        if (auto found = find_credentials(*text, registry, repository, file)) return found;
    }
    return std::nullopt;
}

std::string with_entry(std::string_view json_text, std::string_view registry, const std::optional<Credentials>& creds,
                       const std::string& shown) {
    nlohmann::json doc = json_text.empty() ? nlohmann::json::object() : parse_auth_file(json_text, shown);
    if (!doc.is_object()) throw Error(Errc::Corrupt, shown + ": not a JSON object");
    if (!doc.contains("auths")) doc["auths"] = nlohmann::json::object();
    nlohmann::json& auths = doc["auths"];
    if (!auths.is_object()) throw Error(Errc::Corrupt, shown + ": \"auths\" is not an object");
    // Every spelling of this registry goes, so that logout leaves no stale duplicate behind.
    for (auto it = auths.begin(); it != auths.end();) {
        if (normalize_key(it.key()) == registry) {
            it = auths.erase(it);
        } else {
            ++it;
        }
    }
    if (creds) auths[std::string(registry)] = {{"auth", base64_encode(creds->username + ":" + creds->password)}};
    return doc.dump(1, '\t') + "\n";
}

void write_auth_file(const std::string& path, const std::string& text) {
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir", dir);
    sys::UniqueFd dir_fd = sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
    sys::atomic_write_file(dir_fd.get(), name, text, 0600);
}

}  // namespace imgtool::registry
