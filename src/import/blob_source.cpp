#include "imgtool/import/blob_source.hpp"

namespace imgtool::import {
namespace {

class ImageSource final : public BlobSource {
public:
    explicit ImageSource(std::unique_ptr<image::Source> source) : source_(std::move(source)) {}
    std::string name() const override { return source_->shown(); }
    std::vector<image::ImagePlan> plan(const image::PlanOptions& options) override {
        return image::plan_images(*source_, options);
    }
    std::unique_ptr<sys::Reader> open_layer(const image::LayerPlan& layer, Spool*) const override {
        return source_->open_member(layer.member);
    }

private:
    std::unique_ptr<image::Source> source_;
};

}  // namespace

std::unique_ptr<BlobSource> from_source(std::unique_ptr<image::Source> source) {
    return std::make_unique<ImageSource>(std::move(source));
}

std::unique_ptr<BlobSource> open_local(const std::string& path) { return from_source(image::Source::open(path)); }

}  // namespace imgtool::import
