// Where a reference is pulled from: containers-registries.conf(5)'s [[registry]] tables, the subset
// that matters for pulling: `prefix`/`location` rewriting, `insecure`, `blocked`, and
// [[registry.mirror]] entries (`location`, `insecure`, `pull-from-mirror`) tried before the registry.
// Parsing and matching are pure; only `pull_endpoints` reads files.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgtool/image/reference.hpp"

namespace imgtool::registry {

struct Endpoint {
    image::Reference reference;  // the reference rewritten for this endpoint
    bool insecure = false;       // the configuration allows plain HTTP and unverified TLS here
    bool mirror = false;
};

// The endpoints to try for `ref`, in order: the matching [[registry]]'s mirrors, then its location
// (or the reference's own registry when no entry matches). Throws Errc::Corrupt naming `shown` for a
// file that does not parse, Errc::InvalidArgument when the entry is `blocked`.
std::vector<Endpoint> pull_endpoints(const image::Reference& ref, std::string_view conf_text, const std::string& shown);

// The same from the configuration podman reads: $CONTAINERS_REGISTRIES_CONF, else
// ~/.config/containers/registries.conf if it exists, else /etc/containers/registries.conf; none is fine.
std::vector<Endpoint> pull_endpoints(const image::Reference& ref);

}  // namespace imgtool::registry
