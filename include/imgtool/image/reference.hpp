// Image references as docker and podman read them: [registry/]repository[:tag][@digest].
// `alpine` is docker.io/library/alpine:latest; the first component is a registry only if it holds a '.'
// or a ':', is "localhost", or has upper-case letters (docker's rule). Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

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

}  // namespace imgtool::image
