// A registry as an import source: the plan is the reference's manifest (an index resolved to the
// wanted platform), its config and layer descriptors, all fetched and verified; layers stream from
// the registry into the import pipeline, which verifies and unpacks them as they arrive.
#pragma once

#include <memory>

#include "imgtool/image/reference.hpp"
#include "imgtool/import/blob_source.hpp"
#include "imgtool/registry/client.hpp"

namespace imgtool::registry {

std::unique_ptr<import::BlobSource> open_source(const image::Reference& reference, const ClientOptions& options);

}  // namespace imgtool::registry
