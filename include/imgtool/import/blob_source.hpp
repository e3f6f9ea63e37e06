// Where an import reads images from. The pipeline (import/pull.hpp) asks a source for the plan (every
// image with its blobs' expected digests and sizes, metadata already verified) and then for each layer
// blob it must unpack, as a stream of exactly the planned bytes; verifying them is the pipeline's job.
// A local archive and an OCI layout directory are one implementation (image::Source); a registry is the
// next one.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imgtool/image/source.hpp"
#include "imgtool/sys/reader.hpp"
#include "imgtool/sys/space.hpp"

namespace imgtool::import {

// Where a source that downloads keeps what it fetched of a blob, so that the next run resumes an
// interrupted import instead of starting over (registry pulls). The pipeline hands one to open_layer
// and removes a blob's partial file once its layer is committed; local sources ignore it.
class Spool {
public:
    virtual ~Spool() = default;
    // The blob's partial file as fetched from `origin` (registry/repository: another registry's bytes
    // for the same digest never mix in), read-write and locked for this process; nullopt if it cannot
    // be kept.
    virtual std::optional<sys::UniqueFd> open(const digest::Digest& blob, const std::string& origin) = 0;
    // The free-space reserve that kept bytes count against: keeping stops (and what was kept goes)
    // before the store's filesystem falls below it.
    virtual sys::SpaceReserve* reserve() { return nullptr; }
};

class BlobSource {
public:
    virtual ~BlobSource() = default;
    // Names the source in every error ("image.tar: layer sha256:..: ...").
    virtual std::string name() const = 0;
    virtual std::vector<image::ImagePlan> plan(const image::PlanOptions& options) = 0;
    // A stream of the layer blob's bytes; may be called from several threads at once.
    virtual std::unique_ptr<sys::Reader> open_layer(const image::LayerPlan& layer, Spool* spool) const = 0;
};

// skopeo's PATH:REF form: the first ':' whose left part exists splits the spec into the path and REF
// (REF may hold ':': "a.tar:app:1"); a spec that exists as a whole while no such left part does is a
// path (a file name may hold ':'); both existing is refused as ambiguous (Errc::InvalidArgument).
// Nothing existing: the spec is the path (for open's error). Pure but for `exists`.
struct LocalSpec {
    std::string path;
    std::optional<std::string> ref;
};
LocalSpec split_local_spec(const std::string& spec, const std::function<bool(const std::string&)>& exists);

// A docker-save tar, an OCI archive or an OCI layout directory, detected by content; PATH:REF (above)
// imports only the OCI index entries whose ref.name is REF, or the docker archive's images tagged REF.
std::unique_ptr<BlobSource> open_local(const std::string& spec);
// Any image::Source (an in-memory one in tests).
std::unique_ptr<BlobSource> from_source(std::unique_ptr<image::Source> source);

}  // namespace imgtool::import
