#include "imgtool/image/types.hpp"

#include <sys/utsname.h>

#include <cctype>
#include <cstdint>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/image/json.hpp"

namespace imgtool::image {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(std::string_view what, const std::string& reason) {
    throw Error(Errc::Corrupt, std::string(what) + ": " + reason);
}

const json& require(const json& obj, const char* key, json::value_t type, std::string_view what) {
    auto it = obj.find(key);
    if (it == obj.end()) bad(what, std::string("missing \"") + key + "\"");
    if (it->type() != type && !(type == json::value_t::number_unsigned && it->is_number_unsigned())) {
        bad(what, std::string("\"") + key + "\" has the wrong type (" + it->type_name() + ")");
    }
    return *it;
}

std::string optional_string(const json& obj, const char* key, std::string_view what) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return {};
    if (!it->is_string()) bad(what, std::string("\"") + key + "\" is not a string");
    return it->get<std::string>();
}

json require_object_doc(std::string_view bytes, std::string_view what) {
    json doc = parse_json_strict(bytes, what);
    if (!doc.is_object()) bad(what, "not a JSON object");
    return doc;
}

void check_schema_version(const json& doc, std::string_view what) {
    auto it = doc.find("schemaVersion");
    if (it == doc.end()) return;  // docker's manifest.json-derived documents omit it
    if (!it->is_number_integer()) bad(what, "\"schemaVersion\" is not a number");
    if (it->get<long long>() == 1) {
        throw Error(Errc::Unsupported, std::string(what) + ": schema1 manifests are not supported");
    }
    if (it->get<long long>() != 2) bad(what, "unsupported schemaVersion " + it->dump());
}

// The document's own mediaType, if present, must agree with the descriptor that pointed at it
// (CVE-2021-41190: an ambiguous document can be read as an index by one tool and a manifest by another).
void check_media_type(const json& doc, std::string_view expected, std::string_view what) {
    std::string own = optional_string(doc, "mediaType", what);
    if (!own.empty() && !expected.empty() && own != expected) {
        bad(what, "mediaType \"" + printable(own) + "\" disagrees with its descriptor (\"" + printable(expected) +
                      "\")");
    }
}

Platform parse_platform(const json& obj, std::string_view what) {
    if (!obj.is_object()) bad(what, "\"platform\" is not an object");
    Platform p;
    p.os = optional_string(obj, "os", what);
    p.architecture = optional_string(obj, "architecture", what);
    p.variant = optional_string(obj, "variant", what);
    return p;
}

Descriptor parse_descriptor(const json& obj, std::string_view what) {
    if (!obj.is_object()) bad(what, "descriptor is not an object");
    Descriptor d;
    d.media_type = require(obj, "mediaType", json::value_t::string, what).get<std::string>();
    const json& dig = require(obj, "digest", json::value_t::string, what);
    try {
        d.digest = digest::Digest::parse(dig.get<std::string>());
    } catch (Error& e) {
        e.add_context(what);
        throw;
    }
    const json& size = obj.contains("size") ? obj.at("size") : json();
    if (!size.is_number_unsigned() && !(size.is_number_integer() && size.get<long long>() >= 0)) {
        bad(what, "descriptor " + d.digest.str() + ": \"size\" missing or not a non-negative integer");
    }
    d.size = size.get<std::uint64_t>();
    if (auto it = obj.find("platform"); it != obj.end() && !it->is_null()) d.platform = parse_platform(*it, what);
    if (auto it = obj.find("annotations"); it != obj.end() && !it->is_null()) {
        if (!it->is_object()) bad(what, "\"annotations\" is not an object");
        for (auto& [k, v] : it->items()) {
            if (!v.is_string()) bad(what, "annotation \"" + printable(k) + "\" is not a string");
            d.annotations[k] = v.get<std::string>();
        }
    }
    if (auto it = obj.find("urls"); it != obj.end() && !it->is_null()) {
        if (!it->is_array()) bad(what, "\"urls\" is not an array");
        for (auto& u : *it) {
            if (!u.is_string()) bad(what, "\"urls\" entry is not a string");
            d.urls.push_back(u.get<std::string>());
        }
    }
    return d;
}

// ---- the container config: each field's type checked once, the error naming it ("config.Env") ----

// The field's value, or nullptr when it is absent or null (Go's decoder leaves both at the zero value).
const json* field(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong_type(std::string_view what, const std::string& name, const json& value,
                             const char* expected) {
    bad(what, "\"" + name + "\" has the wrong type (" + value.type_name() + "), expected " + expected);
}

std::optional<std::string> string_field(const json& obj, const char* key, const std::string& prefix,
                                        std::string_view what) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) wrong_type(what, prefix + key, *v, "a string");
    return v->get<std::string>();
}

std::optional<std::vector<std::string>> strings_field(const json& obj, const char* key,
                                                      const std::string& prefix, std::string_view what) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_array()) wrong_type(what, prefix + key, *v, "an array of strings");
    std::vector<std::string> out;
    out.reserve(v->size());
    for (std::size_t i = 0; i < v->size(); ++i) {
        const json& item = (*v)[i];
        if (!item.is_string()) {
            wrong_type(what, prefix + key + "[" + std::to_string(i) + "]", item, "a string");
        }
        out.push_back(item.get<std::string>());
    }
    return out;
}

// Docker's set of names: an object whose values are empty objects ({"80/tcp": {}}). Go decodes each
// value into struct{}, which takes any object or null and nothing else; only the keys are kept.
std::optional<std::vector<std::string>> set_field(const json& obj, const char* key, const std::string& prefix,
                                                  std::string_view what) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_object()) wrong_type(what, prefix + key, *v, "an object");
    std::vector<std::string> out;
    out.reserve(v->size());
    for (const auto& [name, value] : v->items()) {
        if (!value.is_object() && !value.is_null()) {
            wrong_type(what, prefix + key + "[\"" + printable(name) + "\"]", value, "an object");
        }
        out.push_back(name);
    }
    return out;
}

std::optional<std::map<std::string, std::string>> map_field(const json& obj, const char* key,
                                                            const std::string& prefix,
                                                            std::string_view what) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_object()) wrong_type(what, prefix + key, *v, "an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : v->items()) {
        if (!value.is_string()) {
            wrong_type(what, prefix + key + "[\"" + printable(name) + "\"]", value, "a string");
        }
        out.emplace(name, value.get<std::string>());
    }
    return out;
}

std::optional<bool> bool_field(const json& obj, const char* key, const std::string& prefix,
                               std::string_view what) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) wrong_type(what, prefix + key, *v, "true or false");
    return v->get<bool>();
}

// An integer that fits Go's int64 (1.0 and 1e9 are floats, which Go refuses for an integer field too).
std::optional<std::int64_t> int_field(const json& obj, const char* key, const std::string& prefix,
                                      std::string_view what) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
        wrong_type(what, prefix + key, *v, "a 64-bit integer");
    }
    return v->get<std::int64_t>();
}

Healthcheck parse_healthcheck(const json& obj, std::string_view what) {
    const std::string prefix = "config.Healthcheck.";
    Healthcheck h;
    h.test = strings_field(obj, "Test", prefix, what);
    h.interval = int_field(obj, "Interval", prefix, what);
    h.timeout = int_field(obj, "Timeout", prefix, what);
    h.start_period = int_field(obj, "StartPeriod", prefix, what);
    h.start_interval = int_field(obj, "StartInterval", prefix, what);
    h.retries = int_field(obj, "Retries", prefix, what);
    return h;
}

ContainerConfig parse_container_config(const json& obj, std::string_view what) {
    const std::string prefix = "config.";
    ContainerConfig c;
    c.user = string_field(obj, "User", prefix, what);
    c.exposed_ports = set_field(obj, "ExposedPorts", prefix, what);
    c.env = strings_field(obj, "Env", prefix, what);
    c.entrypoint = strings_field(obj, "Entrypoint", prefix, what);
    c.cmd = strings_field(obj, "Cmd", prefix, what);
    c.volumes = set_field(obj, "Volumes", prefix, what);
    c.working_dir = string_field(obj, "WorkingDir", prefix, what);
    c.labels = map_field(obj, "Labels", prefix, what);
    c.stop_signal = string_field(obj, "StopSignal", prefix, what);
    c.args_escaped = bool_field(obj, "ArgsEscaped", prefix, what);
    if (const json* h = field(obj, "Healthcheck")) {
        if (!h->is_object()) wrong_type(what, prefix + "Healthcheck", *h, "an object");
        c.healthcheck = parse_healthcheck(*h, what);
    }
    c.on_build = strings_field(obj, "OnBuild", prefix, what);
    c.shell = strings_field(obj, "Shell", prefix, what);
    return c;
}

template <typename T>
void put(json& j, const char* key, const std::optional<T>& value) {
    if (value) j[key] = *value;
}

void put_set(json& j, const char* key, const std::optional<std::vector<std::string>>& names) {
    if (!names) return;
    json& set = j[key] = json::object();
    for (const auto& name : *names) set[name] = json::object();
}

}  // namespace

void to_json(json& j, const Healthcheck& h) {
    j = json::object();
    put(j, "Test", h.test);
    put(j, "Interval", h.interval);
    put(j, "Timeout", h.timeout);
    put(j, "StartPeriod", h.start_period);
    put(j, "StartInterval", h.start_interval);
    put(j, "Retries", h.retries);
}

void to_json(json& j, const ContainerConfig& c) {
    j = json::object();
    put(j, "User", c.user);
    put_set(j, "ExposedPorts", c.exposed_ports);
    put(j, "Env", c.env);
    put(j, "Entrypoint", c.entrypoint);
    put(j, "Cmd", c.cmd);
    put_set(j, "Volumes", c.volumes);
    put(j, "WorkingDir", c.working_dir);
    put(j, "Labels", c.labels);
    put(j, "StopSignal", c.stop_signal);
    put(j, "ArgsEscaped", c.args_escaped);
    put(j, "Healthcheck", c.healthcheck);
    put(j, "OnBuild", c.on_build);
    put(j, "Shell", c.shell);
}

Descriptor::Descriptor() : digest(digest::Digest::sha256_hex(std::string(64, '0'))) {}

std::string Platform::str() const {
    std::string s = os + "/" + architecture;
    if (!variant.empty()) s += "/" + variant;
    return s;
}

Platform Platform::parse(std::string_view text) {
    auto parts = split(text, '/');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
        throw Error(Errc::InvalidArgument, "invalid platform \"" + printable(text) + "\": expected os/arch[/variant]");
    }
    Platform p{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
    return p;
}

Platform Platform::host() {
    struct utsname u {};
    ::uname(&u);
    std::string machine = u.machine;
    Platform p{"linux", machine, ""};
    if (machine == "x86_64") {
        p.architecture = "amd64";
    } else if (machine == "aarch64" || machine == "arm64") {
        p.architecture = "arm64";
    } else if (machine == "armv7l") {
        p.architecture = "arm";
        p.variant = "v7";
    } else if (machine == "i686" || machine == "i386") {
        p.architecture = "386";
    } else if (machine == "ppc64le") {
        p.architecture = "ppc64le";
    } else if (machine == "s390x") {
        p.architecture = "s390x";
    } else if (machine == "riscv64") {
        p.architecture = "riscv64";
    }
    return p;
}

bool Platform::accepts(const Platform& candidate) const {
    if (candidate.os != os || candidate.architecture != architecture) return false;
    if (variant.empty() || variant == candidate.variant) return true;
    // arm64 images usually omit "v8".
    return architecture == "arm64" && variant == "v8" && candidate.variant.empty();
}

bool is_index_media_type(std::string_view media_type) {
    return media_type == media::kOciIndex || media_type == media::kDockerList;
}

bool is_manifest_media_type(std::string_view media_type) {
    return media_type == media::kOciManifest || media_type == media::kDockerManifest;
}

Index parse_index(std::string_view bytes, std::string_view what, std::string_view expected_media_type) {
    json doc = require_object_doc(bytes, what);
    check_schema_version(doc, what);
    check_media_type(doc, expected_media_type, what);
    if (doc.contains("layers") || doc.contains("config")) {
        bad(what, doc.contains("manifests")
                      ? "document has both \"manifests\" and \"layers\"/\"config\": ambiguous index/manifest"
                      : "is a manifest (\"layers\"/\"config\"), not an index");
    }
    const json& list = require(doc, "manifests", json::value_t::array, what);
    Index index;
    for (const json& entry : list) index.manifests.push_back(parse_descriptor(entry, what));
    return index;
}

Manifest parse_manifest(std::string_view bytes, std::string_view what, std::string_view expected_media_type) {
    json doc = require_object_doc(bytes, what);
    check_schema_version(doc, what);
    if (!doc.contains("schemaVersion")) bad(what, "missing \"schemaVersion\"");
    check_media_type(doc, expected_media_type, what);
    if (doc.contains("manifests")) {
        bad(what, doc.contains("layers") || doc.contains("config")
                      ? "document has both \"manifests\" and \"layers\"/\"config\": ambiguous index/manifest"
                      : "is an image index (\"manifests\"), not a manifest");
    }
    Manifest m;
    m.config = parse_descriptor(require(doc, "config", json::value_t::object, what), what);
    for (const json& entry : require(doc, "layers", json::value_t::array, what)) {
        m.layers.push_back(parse_descriptor(entry, what));
    }
    return m;
}

bool is_rfc3339(std::string_view t) {
    auto digits = [&](std::size_t pos, std::size_t n) {
        if (pos + n > t.size()) return false;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (t[i] < '0' || t[i] > '9') return false;
        }
        return true;
    };
    // YYYY-MM-DDTHH:MM:SS
    if (!digits(0, 4) || t.size() < 20 || t[4] != '-' || !digits(5, 2) || t[7] != '-' || !digits(8, 2) ||
        (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !digits(11, 2) || t[13] != ':' || !digits(14, 2) ||
        t[16] != ':' || !digits(17, 2)) {
        return false;
    }
    std::size_t pos = 19;
    if (t[pos] == '.') {
        std::size_t start = ++pos;
        while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') ++pos;
        if (pos == start || pos - start > 9) return false;
    }
    if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) return pos + 1 == t.size();
    return pos + 6 == t.size() && (t[pos] == '+' || t[pos] == '-') && digits(pos + 1, 2) && t[pos + 3] == ':' &&
           digits(pos + 4, 2);
}

ImageConfig parse_config(std::string_view bytes, std::string_view what) {
    json doc = require_object_doc(bytes, what);
    ImageConfig c;
    c.platform.os = optional_string(doc, "os", what);
    c.platform.architecture = optional_string(doc, "architecture", what);
    c.platform.variant = optional_string(doc, "variant", what);
    for (const std::string* field : {&c.platform.os, &c.platform.architecture, &c.platform.variant}) {
        if (field->size() > kMaxPlatformField) bad(what, "platform field longer than " + std::to_string(kMaxPlatformField) + " bytes");
    }
    c.created = optional_string(doc, "created", what);
    if (!c.created.empty() && (c.created.size() > kMaxCreated || !is_rfc3339(c.created))) {
        bad(what, "\"created\" is not an RFC 3339 timestamp (" + printable(c.created.substr(0, 40)) +
                      (c.created.size() > 40 ? "..." : "") + ")");
    }
    if (auto it = doc.find("config"); it != doc.end() && !it->is_null()) {
        if (!it->is_object()) bad(what, "\"config\" is not an object");
        c.config = parse_container_config(*it, what);
    }
    const json& rootfs = require(doc, "rootfs", json::value_t::object, what);
    std::string type = optional_string(rootfs, "type", what);
    if (type != "layers") bad(what, "rootfs.type is \"" + printable(type) + "\", expected \"layers\"");
    const json& ids = rootfs.contains("diff_ids") ? rootfs.at("diff_ids") : json();
    if (!ids.is_array()) bad(what, "rootfs.diff_ids missing or not an array");
    if (ids.size() > kMaxLayersPerImage) {
        bad(what, std::to_string(ids.size()) + " layers (at most " + std::to_string(kMaxLayersPerImage) + ")");
    }
    for (const json& id : ids) {
        if (!id.is_string()) bad(what, "rootfs.diff_ids entry is not a string");
        try {
            c.diff_ids.push_back(digest::Digest::parse(id.get<std::string>()));
        } catch (Error& e) {
            e.add_context(std::string(what) + ": rootfs.diff_ids");
            throw;
        }
    }
    return c;
}

std::vector<DockerManifestEntry> parse_docker_manifest(std::string_view bytes, std::string_view what) {
    json doc = parse_json_strict(bytes, what);
    if (!doc.is_array()) bad(what, "not a JSON array");
    if (doc.empty()) bad(what, "lists no image");
    std::vector<DockerManifestEntry> entries;
    for (const json& item : doc) {
        if (!item.is_object()) bad(what, "entry is not an object");
        DockerManifestEntry e;
        e.config = require(item, "Config", json::value_t::string, what).get<std::string>();
        for (const json& layer : require(item, "Layers", json::value_t::array, what)) {
            if (!layer.is_string()) bad(what, "\"Layers\" entry is not a string");
            e.layers.push_back(layer.get<std::string>());
        }
        if (auto it = item.find("RepoTags"); it != item.end() && !it->is_null()) {
            if (!it->is_array()) bad(what, "\"RepoTags\" is not an array");
            for (const json& tag : *it) {
                if (!tag.is_string()) bad(what, "\"RepoTags\" entry is not a string");
                e.repo_tags.push_back(tag.get<std::string>());
            }
        }
        entries.push_back(std::move(e));
    }
    return entries;
}

std::string normalize_tag(std::string_view name) {
    auto invalid = [&](const std::string& why) {
        return Error(Errc::InvalidArgument, "invalid image name \"" + printable(name) + "\"" + (why.empty() ? "" : ": " + why));
    };
    if (name.empty() || name.size() > 255) throw invalid("");
    if (name.find('@') != std::string_view::npos) throw invalid("digests are not tags");
    // docker's grammar, simplified: [host[:port]/]component(/component)*[:tag], where components are
    // lower-case alphanumerics joined by '.', '_', '__' or '-' runs, and a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
    std::string_view repo = name;
    std::string_view tag;
    auto slash = name.rfind('/');
    auto colon = name.rfind(':');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
        repo = name.substr(0, colon);
        tag = name.substr(colon + 1);
        if (tag.empty() || tag.size() > 128) throw invalid("bad tag");
        for (std::size_t i = 0; i < tag.size(); ++i) {
            char c = tag[i];
            bool word = std::isalnum(static_cast<unsigned char>(c)) || c == '_';
            if (!(word || (i > 0 && (c == '.' || c == '-')))) throw invalid("bad tag");
        }
    }
    auto parts = split(repo, '/');
    // A name that spells an image ID could never be looked up by it (an ID wins, docs/store.md
    // "Names"): docker refuses 64-hex repositories, and `sha256:<64 hex>` reads as a full ID.
    if (!parts.empty() && parts.back().size() == 64 && is_lower_hex(parts.back())) {
        throw invalid("cannot specify 64-byte hexadecimal strings (they are image IDs)");
    }
    if (!parts.empty() && parts.back() == "sha256" && tag.size() == 64 && is_lower_hex(tag)) {
        throw invalid("sha256:<64 hex> is an image ID, not a name");
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        if (part.empty()) throw invalid("empty path component");
        bool is_host = i == 0 && parts.size() > 1 &&
                       (part.find('.') != std::string::npos || part.find(':') != std::string::npos || part == "localhost");
        for (std::size_t k = 0; k < part.size(); ++k) {
            char c = part[k];
            bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (is_host && c >= 'A' && c <= 'Z');
            bool sep = c == '.' || c == '_' || c == '-' || (is_host && c == ':');
            if (!alnum && !sep) throw invalid(c >= 'A' && c <= 'Z' ? "repository names must be lower-case" : "");
            if (sep && (k == 0 || k + 1 == part.size())) throw invalid("bad path component");
        }
    }
    std::string out = tag.empty() ? std::string(name) + ":latest" : std::string(name);
    // docker.io's images keep docker's familiar names ("docker.io/library/alpine:3" is "alpine:3"), so
    // that every spelling of one reference finds the same local name.
    bool docker_hub = !(parts.size() > 1 && (parts[0].find_first_of(".:") != std::string::npos || parts[0] == "localhost"));
    for (std::string_view hub : {"docker.io/", "index.docker.io/"}) {
        if (out.rfind(hub, 0) == 0) {
            out.erase(0, hub.size());
            docker_hub = true;
            break;
        }
    }
    std::string_view repo_part = std::string_view(out).substr(0, out.rfind(':'));
    if (docker_hub && repo_part.rfind("library/", 0) == 0 && repo_part.find('/', 8) == std::string_view::npos) {
        out.erase(0, 8);
    }
    return out;
}

}  // namespace imgtool::image
