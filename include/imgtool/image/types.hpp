// OCI and Docker image metadata as plain values, parsed from untrusted JSON with every field checked.
// Parsing never touches the disk; a failure throws imgtool::Error naming the document and the field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgtool/digest/digest.hpp"

namespace imgtool::image {

namespace media {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
}  // namespace media

struct Platform {
    std::string os;
    std::string architecture;
    std::string variant;

    std::string str() const;  // "linux/arm/v7"
    static Platform parse(std::string_view text);
    // The platform imgtool runs on, in Go's names (amd64, arm64, arm/v7...).
    static Platform host();
    // True when an image for `candidate` runs here if `*this` is wanted. An empty wanted variant accepts any.
    bool accepts(const Platform& candidate) const;
};

struct Descriptor {
    Descriptor();  // digest starts as all zeroes; parsing always sets it
    std::string media_type;
    digest::Digest digest;
    std::uint64_t size = 0;
    std::optional<Platform> platform;
    std::map<std::string, std::string> annotations;
    std::vector<std::string> urls;
};

struct Index {
    std::vector<Descriptor> manifests;
};

struct Manifest {
    Descriptor config;
    std::vector<Descriptor> layers;
};

// docker's HEALTHCHECK, kept as data (imgtool runs no health checks). Durations are nanoseconds, as
// in the JSON; 0 means "inherit the default" to docker.
struct Healthcheck {
    std::optional<std::vector<std::string>> test;  // {} inherit, {"NONE"}, {"CMD", ...}, {"CMD-SHELL", cmd}
    std::optional<std::int64_t> interval;
    std::optional<std::int64_t> timeout;
    std::optional<std::int64_t> start_period;
    std::optional<std::int64_t> start_interval;
    std::optional<std::int64_t> retries;

    bool operator==(const Healthcheck&) const = default;
};

// The image config's "config" object: what a container of the image starts with. The fields are
// those docker's image inspect shows (moby's DockerOCIImageConfig: the OCI ImageConfig plus
// Healthcheck, OnBuild, Shell); others (docker's container-only Hostname, AttachStdin...) are dropped.
// Every field is optional so that absent (or null) stays distinguishable from empty: to_json writes
// back exactly the fields the image had. For launching, absent and empty mean the same (docker's).
struct ContainerConfig {
    std::optional<std::string> user;
    std::optional<std::vector<std::string>> exposed_ports;  // "80/tcp", ...; sorted, the JSON's object keys
    std::optional<std::vector<std::string>> env;            // "KEY=VALUE", in order
    std::optional<std::vector<std::string>> entrypoint;
    std::optional<std::vector<std::string>> cmd;
    std::optional<std::vector<std::string>> volumes;  // container paths; sorted, the JSON's object keys
    std::optional<std::string> working_dir;
    std::optional<std::map<std::string, std::string>> labels;
    std::optional<std::string> stop_signal;
    std::optional<bool> args_escaped;  // Windows only; kept for inspect
    std::optional<Healthcheck> healthcheck;
    std::optional<std::vector<std::string>> on_build;
    std::optional<std::vector<std::string>> shell;

    bool operator==(const ContainerConfig&) const = default;
};

// The "Config" object of docker's inspect, with docker's names: exactly the fields present in `c`
// ("ExposedPorts" and "Volumes" map each key to {}). nlohmann's hook: nlohmann::json j = config.
void to_json(nlohmann::json& j, const ContainerConfig& c);
void to_json(nlohmann::json& j, const Healthcheck& h);

struct ImageConfig {
    Platform platform;
    std::string created;
    ContainerConfig config;  // all fields absent when the image has no (or a null) "config"
    std::vector<digest::Digest> diff_ids;
};

struct DockerManifestEntry {
    std::string config;
    std::vector<std::string> repo_tags;
    std::vector<std::string> layers;
};

enum class ManifestKind { Index, Manifest };

bool is_index_media_type(std::string_view media_type);
bool is_manifest_media_type(std::string_view media_type);

// `what` names the document in error messages ("index.json", "manifest sha256:..").
Index parse_index(std::string_view bytes, std::string_view what, std::string_view expected_media_type = {});
Manifest parse_manifest(std::string_view bytes, std::string_view what, std::string_view expected_media_type = {});
// Checks the type of every ContainerConfig field once, here (a wrong one is Errc::Corrupt naming the
// field: "config.Entrypoint", "config.Env[2]", "config.Healthcheck.Interval"); members it does not know
// are neither checked nor kept. The document's 20 MiB cap (json.hpp) is the only bound on their sizes.
ImageConfig parse_config(std::string_view bytes, std::string_view what);
std::vector<DockerManifestEntry> parse_docker_manifest(std::string_view bytes, std::string_view what);

// Normalises a tag as docker does: "busybox" -> "busybox:latest"; validates the characters. A name
// that spells an image ID is refused (a repository whose last component is 64 hex digits, as docker
// refuses it, or `sha256` with a 64-hex tag): lookup would read it as the ID. Every name check
// (Reference::parse, tag, commit, --tag, archive names) goes through here.
std::string normalize_tag(std::string_view name);

// Bounds on what one image may bring into the store, so that every record the store writes can be
// read back by every later command (the store's record caps are above what these allow).
inline constexpr std::size_t kMaxTagsPerImage = 1024;
inline constexpr std::size_t kMaxLayersPerImage = 4096;
inline constexpr std::size_t kMaxPlatformField = 128;   // os, architecture, variant
inline constexpr std::size_t kMaxCreated = 64;          // an RFC 3339 timestamp

// True for an RFC 3339 date-time ("2024-01-02T03:04:05Z", fractional seconds and offsets allowed), as
// Go's time.Time accepts in image configs.
bool is_rfc3339(std::string_view text);

}  // namespace imgtool::image
