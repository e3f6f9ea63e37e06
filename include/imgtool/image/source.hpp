// Image sources: a docker-save tar (classic or Docker >= 25 hybrid), an OCI archive tar, or an OCI layout
// directory, detected by content. A source is a bag of named regular files ("members"); `plan_images`
// reads its metadata and returns what to import, with every blob's expected size and digest, without
// reading any layer. Member names are resolved only among the source's own members (never through a
// symlink, never outside), and digests are validated before they become member names.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/digest/digest.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/sys/reader.hpp"

namespace imgtool::image {

enum class SourceFormat { DockerArchive, OciArchive, OciLayout };

class Source {
public:
    virtual ~Source() = default;
    // Opens `path` and detects its format; throws with a clear reason for anything else, naming the
    // absolute path and the three forms accepted. shown() is the absolute path.
    static std::unique_ptr<Source> open(const std::string& path);

    virtual SourceFormat format() const = 0;
    const std::string& shown() const { return shown_; }
    // Size of a regular member, or nullopt if there is none by that name.
    virtual std::optional<std::uint64_t> member_size(const std::string& name) const = 0;
    // A bounded reader of exactly the member's bytes; safe to use from several threads at once.
    virtual std::unique_ptr<sys::Reader> open_member(const std::string& name) const = 0;
    // Reads a small member whole (JSON documents), refusing anything above the JSON cap.
    std::string read_small(const std::string& name) const;

protected:
    explicit Source(std::string shown) : shown_(std::move(shown)) {}

private:
    std::string shown_;
};

struct LayerPlan {
    std::string member;                    // where the blob is in the source
    std::optional<digest::Digest> digest;  // blob digest, when the format states one
    std::uint64_t size = 0;                // blob size (from the descriptor, else the member)
    digest::Digest diff_id;
};

struct ImagePlan {
    digest::Digest id;  // config digest
    std::string config_bytes;
    ImageConfig config;
    std::optional<digest::Digest> manifest_digest;
    std::string manifest_bytes;
    std::vector<LayerPlan> layers;
    std::vector<std::string> tags;  // normalised
    std::vector<std::string> repo_digests;  // "name@sha256:<manifest>", registry pulls only
};

struct PlanOptions {
    std::optional<Platform> platform;  // default: the host's
    // A blob the store already holds, or nullopt: a source that fetches over the network need not
    // fetch it again (a re-pull then costs the manifest request only). Checked against its digest.
    std::function<std::optional<std::string>(const digest::Digest&)> stored_blob;
    // skopeo's DIR:REF / ARCHIVE:REF: only the OCI index entries whose org.opencontainers.image.ref.name
    // is this, or the docker archive's images tagged this (RepoTags, normalised). None: NotFound listing
    // what there is.
    std::optional<std::string> ref_name;
};

std::vector<ImagePlan> plan_images(const Source& source, const PlanOptions& options);

// The layer media types a manifest may name (OCI, its nondistributable variants, Docker's): the one list.
// What a type says about compression is not used: the puller detects compression from the blob's first
// bytes, because docker archives mislabel it (layer/compression.hpp).
bool is_layer_media_type(std::string_view media_type);

// "blobs/sha256/<hex>" for a validated digest.
std::string blob_member(const digest::Digest& d);

}  // namespace imgtool::image
