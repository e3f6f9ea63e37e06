#include "imgtool/image/reference.hpp"

#include <algorithm>
#include <cctype>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/types.hpp"

namespace imgtool::image {
namespace {

bool is_registry_component(std::string_view part) {
    if (part == "localhost") return true;
    for (char c : part) {
        if (c == '.' || c == ':' || (c >= 'A' && c <= 'Z')) return true;
    }
    return false;
}

// host[:port], host being a DNS name or an IPv4 address (IPv6 literals are refused: no registry in use
// needs them, and their brackets would have to survive every URL and file name built from them).
bool valid_registry(std::string_view host) {
    auto colon = host.rfind(':');
    std::string_view name = host.substr(0, colon);
    if (colon != std::string_view::npos) {
        std::string_view port = host.substr(colon + 1);
        if (port.empty() || port.size() > 5) return false;
        for (char c : port) {
            if (c < '0' || c > '9') return false;
        }
        if (std::stoul(std::string(port)) > 65535 || std::stoul(std::string(port)) == 0) return false;
    }
    if (name.empty() || name.size() > 253) return false;
    for (const std::string& label : split(name, '.')) {
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (char c : label) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
        }
    }
    return true;
}

}  // namespace

Reference Reference::parse(std::string_view text) {
    auto invalid = [&](const std::string& why) {
        return Error(Errc::InvalidArgument, "invalid reference \"" + printable(text) + "\": " + why);
    };
    if (text.empty()) throw invalid("empty");
    if (text.size() > 512) throw invalid("longer than 512 characters");
    Reference ref;
    std::string_view rest = text;
    if (auto at = rest.find('@'); at != std::string_view::npos) {
        std::string_view d = rest.substr(at + 1);
        if (d.rfind("sha256:", 0) != 0) throw invalid("only sha256 digests are supported");
        try {
            ref.digest = digest::Digest::parse(d);
        } catch (const Error&) {
            throw invalid("bad digest");
        }
        rest = rest.substr(0, at);
    }
    auto first_slash = rest.find('/');
    if (first_slash != std::string_view::npos && is_registry_component(rest.substr(0, first_slash))) {
        ref.registry = std::string(rest.substr(0, first_slash));
        rest = rest.substr(first_slash + 1);
        if (!valid_registry(ref.registry)) throw invalid("bad registry host \"" + printable(ref.registry) + "\"");
        for (char& c : ref.registry) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") ref.registry = kDockerHub;
    } else {
        ref.registry = kDockerHub;
    }
    auto last_slash = rest.rfind('/');
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
        ref.tag = std::string(rest.substr(colon + 1));
        rest = rest.substr(0, colon);
    }
    ref.repository = std::string(rest);
    if (ref.registry == kDockerHub && ref.repository.find('/') == std::string::npos) {
        ref.repository = "library/" + ref.repository;
    }
    // The repository and tag grammar is the local name's (normalize_tag's): one set of rules, names that
    // spell image IDs included.
    try {
        normalize_tag("x/" + ref.repository + (ref.tag ? ":" + *ref.tag : ""));
    } catch (const Error& e) {
        std::string why = e.message();
        auto sep = why.find("\": ");
        throw invalid(sep == std::string::npos ? "bad repository or tag" : why.substr(sep + 3));
    }
    if (ref.registry.size() + 1 + ref.repository.size() > 255) throw invalid("name longer than 255 characters");
    return ref;
}

std::string Reference::familiar_name() const {
    if (registry != kDockerHub) return registry + "/" + repository;
    std::string_view repo = repository;
    if (repo.rfind("library/", 0) == 0 && repo.find('/', 8) == std::string_view::npos) repo.remove_prefix(8);
    return std::string(repo);
}

std::string Reference::local_tag() const {
    if (tag) return familiar_name() + ":" + *tag;
    if (digest) return {};
    return familiar_name() + ":latest";
}

std::string Reference::str() const {
    std::string s = registry + "/" + repository;
    if (tag) s += ":" + *tag;
    if (digest) s += "@" + digest->str();
    return s;
}

std::string Reference::api_host() const { return registry == kDockerHub ? "registry-1.docker.io" : registry; }

std::string Reference::manifest_reference() const {
    if (digest) return digest->str();
    return tag.value_or("latest");
}

LocalLookup local_lookup(std::string_view text) {
    LocalLookup out;
    auto add = [&out](std::string name) {
        if (!name.empty() && std::find(out.names.begin(), out.names.end(), name) == out.names.end()) {
            out.names.push_back(std::move(name));
        }
    };
    try {
        Reference ref = Reference::parse(text);
        if (ref.digest) {
            out.repo_digest = ref.familiar_name() + "@" + ref.digest->str();
            return out;
        }
        add(ref.local_tag());
        // No registry typed: podman's short-name rule looks in localhost/ too.
        auto slash = text.find('/');
        bool typed_registry = slash != std::string_view::npos && is_registry_component(text.substr(0, slash));
        if (!typed_registry) {
            try {
                add(normalize_tag("localhost/" + std::string(text)));
            } catch (const Error&) {
            }
        }
    } catch (const Error&) {
    }
    add(std::string(text));
    return out;
}

std::string name_from_ref_annotation(std::string_view ref_name) {
    try {
        if (ref_name.find('/') == std::string_view::npos && ref_name.find(':') == std::string_view::npos) {
            return normalize_tag("localhost/" + std::string(ref_name) + ":latest");
        }
        if (ref_name.find('@') != std::string_view::npos) throw Error(Errc::InvalidArgument, "a digest is not a name");
        return Reference::parse(ref_name).local_tag();
    } catch (const Error& e) {
        std::string why = e.message();
        auto sep = why.find("\": ");
        throw Error(Errc::InvalidArgument, "ref name \"" + printable(ref_name.substr(0, 300)) +
                                               (ref_name.size() > 300 ? "..." : "") + "\" is not a valid image name" +
                                               (sep == std::string::npos ? "" : ": " + why.substr(sep + 3)));
    }
}

}  // namespace imgtool::image
