// Image references as docker and podman read them: [registry/]repository[:tag][@digest].
// `alpine` is docker.io/library/alpine:latest; the first component is a registry only if it holds a '.'
// or a ':', is "localhost", or has upper-case letters (docker's rule). Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/digest/digest.hpp"

namespace imgtool::image {

inline constexpr std::string_view kDockerHub = "docker.io";

struct Reference {
    std::string registry;    // "docker.io", "quay.io", "127.0.0.1:5000"
    std::string repository;  // "library/alpine", "team/app"
    std::optional<std::string> tag;
    std::optional<digest::Digest> digest;

    // Throws Errc::InvalidArgument naming the text and the reason.
    static Reference parse(std::string_view text);

    // The name docker shows: "alpine", "user/app", "quay.io/team/app" (no tag, no digest).
    std::string familiar_name() const;
    // The local name a pull records: familiar_name():tag; "latest" when neither tag nor digest was given.
    // Empty for a reference by digest only (docker records no tag then).
    std::string local_tag() const;
    // "docker.io/library/alpine:3.19@sha256:..": what the user asked for, fully qualified.
    std::string str() const;
    // The host to talk to: docker.io's API lives at registry-1.docker.io.
    std::string api_host() const;
    // The manifest reference for the URL: the digest if pinned, else the tag.
    std::string manifest_reference() const;
};

// What a name typed by a user may mean in the store, in lookup order (docs/store.md, "Names"): the
// reference normalised as docker does (stored in docker's familiar form: "bb", "library/bb" and
// "docker.io/library/bb:latest" are all "bb:latest"), then podman's localhost/ name for a reference
// that names no registry ("v2" -> "localhost/v2:latest", as `podman load` names a bare OCI ref), then
// the text exactly as typed (names an older imgtool stored without normalising). For NAME@sha256:...,
// `repo_digest` is the RepoDigests entry to look for instead. Pure; never throws (an invalid
// reference leaves only the text as typed).
struct LocalLookup {
    std::vector<std::string> names;
    std::optional<std::string> repo_digest;
};
LocalLookup local_lookup(std::string_view text);

// The name an OCI index entry's org.opencontainers.image.ref.name gives its image: a full reference
// ("example.com/app:1", "user/app:1") as docker normalises it; a bare ref ("v2", "latest"), which names
// no repository, becomes localhost/REF:latest, as `podman load` names it (podman 4.3). The annotation
// is the image author's: anything that is not a valid name throws Errc::InvalidArgument, escaped.
std::string name_from_ref_annotation(std::string_view ref_name);


}  // namespace imgtool::image
