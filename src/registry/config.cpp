#include "imgtool/registry/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <algorithm>
#include <sstream>

#include <toml.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::registry {
namespace {

constexpr std::size_t kMaxConfFile = 1 << 20;

// True if `prefix` names `name` or a path above it ("docker.io" matches "docker.io/library/x", not
// "docker.iox/...").
bool prefix_matches(std::string_view prefix, std::string_view name) {
    if (name.rfind(prefix, 0) != 0) return false;
    return name.size() == prefix.size() || name[prefix.size()] == '/' || prefix.back() == '/';
}

// `location` + what follows the matched prefix in `name`, as a reference with ref's tag and digest.
image::Reference rewrite(const image::Reference& ref, std::string_view name, std::string_view prefix,
                         const std::string& location, const std::string& shown) {
    std::string rewritten = location + std::string(name.substr(prefix.size()));
    std::size_t slash = rewritten.find('/');
    if (slash == std::string::npos) {
        throw Error(Errc::Corrupt, shown + ": location \"" + printable(location) + "\" leaves no repository for " + ref.str());
    }
    image::Reference out = ref;
    out.registry = rewritten.substr(0, slash);
    out.repository = rewritten.substr(slash + 1);
    // Validated as a reference would be (the configuration is the user's, but a typo must not
    // become a URL).
    image::Reference::parse(out.registry + "/" + out.repository);
    return out;
}

std::string string_or(const toml::value& table, const char* key, const std::string& fallback) {
    if (!table.contains(key)) return fallback;
    return toml::get<std::string>(table.at(key));
}

bool bool_or(const toml::value& table, const char* key, bool fallback) {
    if (!table.contains(key)) return fallback;
    return toml::get<bool>(table.at(key));
}

// How deep arrays and inline tables nest, outside strings and comments. toml11 parses them by
// recursion without a limit: a few kilobytes of "[[[[" overflow the stack.
std::size_t nesting_depth(std::string_view text) {
    std::size_t depth = 0, deepest = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '#') {
            while (i < text.size() && text[i] != '\n') ++i;
        } else if (c == '"' || c == '\'') {
            bool triple = text.substr(i, 3) == std::string(3, c);
            std::size_t j = i + (triple ? 3 : 1);
            while (j < text.size()) {
                if (c == '"' && text[j] == '\\') {
                    j += 2;
                    continue;
                }
                if (triple ? text.substr(j, 3) == std::string(3, c) : text[j] == c) break;
                if (!triple && text[j] == '\n') break;
                ++j;
            }
            i = j + (triple ? 2 : 0);
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

constexpr std::size_t kMaxNesting = 32;

}  // namespace

std::vector<Endpoint> pull_endpoints(const image::Reference& ref, std::string_view conf_text, const std::string& shown) {
    const std::string name = ref.registry + "/" + ref.repository;
    std::vector<Endpoint> out;
    if (nesting_depth(conf_text) > kMaxNesting) {
        throw Error(Errc::Corrupt, shown + ": arrays or tables nested more than " + std::to_string(kMaxNesting) + " deep");
    }
    try {
        std::istringstream in{std::string(conf_text)};
        toml::value conf = toml::parse(in, shown);
        const toml::value* best = nullptr;
        std::string best_prefix;
        if (conf.contains("registry")) {
            for (const toml::value& entry : toml::get<std::vector<toml::value>>(conf.at("registry"))) {
                std::string location = string_or(entry, "location", "");
                std::string prefix = string_or(entry, "prefix", location);
                if (prefix.empty() || prefix.rfind("*.", 0) == 0) continue;  // wildcard prefixes: not supported
                if (prefix_matches(prefix, name) && prefix.size() > best_prefix.size()) {
                    best = &entry;
                    best_prefix = prefix;
                }
            }
        }
        if (best) {
            if (bool_or(*best, "blocked", false)) {
                throw Error(Errc::InvalidArgument, ref.str() + ": registry blocked by " + shown);
            }
            std::string location = string_or(*best, "location", best_prefix);
            bool insecure = bool_or(*best, "insecure", false);
            if (best->contains("mirror")) {
                for (const toml::value& m : toml::get<std::vector<toml::value>>(best->at("mirror"))) {
                    std::string policy = string_or(m, "pull-from-mirror", "all");
                    if (policy != "all" && policy != "digest-only" && policy != "tag-only") {
                        throw Error(Errc::Corrupt, shown + ": pull-from-mirror \"" + printable(policy) + "\" is not all, digest-only or tag-only");
                    }
                    if (policy == "digest-only" && !ref.digest) continue;
                    if (policy == "tag-only" && ref.digest) continue;
                    out.push_back({rewrite(ref, name, best_prefix, string_or(m, "location", ""), shown),
                                   bool_or(m, "insecure", false), true});
                }
            }
            out.push_back({rewrite(ref, name, best_prefix, location, shown), insecure, false});
            return out;
        }
    } catch (const toml::exception& e) {
        std::string what = e.what();
        throw Error(Errc::Corrupt, shown + ": " + printable(what.substr(0, what.find('\n'))));
    } catch (const std::out_of_range& e) {
        throw Error(Errc::Corrupt, shown + ": " + printable(e.what()));
    }
    out.push_back({ref, false, false});
    return out;
}

std::vector<Endpoint> pull_endpoints(const image::Reference& ref) {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("CONTAINERS_REGISTRIES_CONF"); env && *env) {
        candidates = {env};
    } else {
        if (const char* home = std::getenv("HOME"); home && *home) {
            candidates.push_back(std::string(home) + "/.config/containers/registries.conf");
        }
        candidates.push_back("/etc/containers/registries.conf");
    }
    for (const std::string& file : candidates) {
        if (auto text = sys::read_config_file(file, kMaxConfFile)) return pull_endpoints(ref, *text, file);
    }
    return {{ref, false, false}};
}

}  // namespace imgtool::registry
