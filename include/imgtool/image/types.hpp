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

struct ImageConfig {
    Platform platform;
    std::string created;
    nlohmann::json config;  // the container config object (Env, Cmd, ...), {} when absent
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
ImageConfig parse_config(std::string_view bytes, std::string_view what);
std::vector<DockerManifestEntry> parse_docker_manifest(std::string_view bytes, std::string_view what);

// Normalises a tag as docker does: "busybox" -> "busybox:latest"; validates the characters. A
// repository name of 64 hex digits is refused as docker does ("cannot specify 64-byte hexadecimal
// strings"): it would read as an image ID.
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
