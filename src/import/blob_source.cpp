#include "imgtool/import/blob_source.hpp"

#include <sys/stat.h>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::import {
namespace {

class ImageSource final : public BlobSource {
public:
    explicit ImageSource(std::unique_ptr<image::Source> source, std::optional<std::string> ref = std::nullopt)
        : source_(std::move(source)), ref_(std::move(ref)) {}
    std::string name() const override { return source_->shown(); }
    std::vector<image::ImagePlan> plan(const image::PlanOptions& options) override {
        image::PlanOptions with_ref = options;
        if (ref_) with_ref.ref_name = ref_;
        return image::plan_images(*source_, with_ref);
    }
    std::unique_ptr<sys::Reader> open_layer(const image::LayerPlan& layer, Spool*) const override {
        return source_->open_member(layer.member);
    }

private:
    std::unique_ptr<image::Source> source_;
    std::optional<std::string> ref_;
};

}  // namespace

std::unique_ptr<BlobSource> from_source(std::unique_ptr<image::Source> source) {
    return std::make_unique<ImageSource>(std::move(source));
}

LocalSpec split_local_spec(const std::string& spec, const std::function<bool(const std::string&)>& exists) {
    bool whole = exists(spec);
    for (auto colon = spec.find(':'); colon != std::string::npos; colon = spec.find(':', colon + 1)) {
        std::string path = spec.substr(0, colon);
        if (!path.empty() && exists(path)) {
            std::string ref = spec.substr(colon + 1);
            // Both exist: whoever can create PATH:REF next to PATH (a shared sticky /tmp) would
            // otherwise choose which archive is imported.
            if (whole) {
                throw Error(Errc::InvalidArgument,
                            "\"" + printable(spec) + "\" is ambiguous: it exists, and so does \"" + printable(path) +
                                "\" (REF \"" + printable(ref) + "\"); link the one you mean to a path without ':' "
                                "and give that (LINK, or LINK:REF)");
            }
            if (ref.empty()) throw Error(Errc::InvalidArgument, printable(spec) + ": empty REF after ':'");
            return {path, ref};
        }
    }
    return {spec, std::nullopt};
}

std::unique_ptr<BlobSource> open_local(const std::string& spec) {
    LocalSpec local = split_local_spec(spec, [](const std::string& path) {
        struct stat st;
        return ::stat(path.c_str(), &st) == 0;
    });
    return std::make_unique<ImageSource>(image::Source::open(local.path), local.ref);
}

}  // namespace imgtool::import
