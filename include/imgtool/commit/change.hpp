// `commit`'s image config: the base image's config JSON with the new layer's diff_id appended, a history
// entry, `created` now, and docker's `--change` instructions applied. Pure: text in, JSON out, no disk.
//
// --change takes docker's commit subset of Dockerfile instructions: CMD, ENTRYPOINT (JSON array, else
// shell form run by the image's SHELL or /bin/sh -c), ENV (KEY=VALUE... or the legacy KEY VALUE),
// LABEL (KEY=VALUE...), EXPOSE (PORT[/PROTO], ranges), USER, WORKDIR (relative to the previous one),
// VOLUME. As in a Dockerfile, an ENTRYPOINT resets an inherited CMD unless a CMD came earlier. No
// variable substitution is done. Anything else is refused (Errc::InvalidArgument), naming it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgtool/digest/digest.hpp"

namespace imgtool::commit {

struct Change {
    std::string instruction;  // upper case: "CMD", "ENV", ...
    std::vector<std::string> args;  // CMD/ENTRYPOINT: the argv; ENV/LABEL: KEY=VALUE; EXPOSE: "80/tcp"; others one
};

// Parses one --change value; throws Errc::InvalidArgument with the reason.
Change parse_change(std::string_view text, const std::vector<std::string>& shell = {"/bin/sh", "-c"});

// Splits "K=V K2=\"v 2\"" as a Dockerfile does (quotes and backslashes; quotes removed).
std::vector<std::string> split_words(std::string_view text);

struct ConfigUpdate {
    std::vector<std::string> changes;  // --change values, in order
    digest::Digest diff_id;            // of the new layer
    std::string created;               // RFC 3339, UTC
    std::string created_by;            // history: the command that made the changes
    std::string comment;               // -m
    std::string author;                // --author
};

// The new image config: `base` (an image config document, already parsed strictly) updated. Throws
// Errc::InvalidArgument for a bad --change, Errc::Corrupt for a base without a JSON object shape.
nlohmann::json update_config(const nlohmann::json& base, const ConfigUpdate& update);

}  // namespace imgtool::commit
