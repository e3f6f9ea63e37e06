#include "imgtool/registry/source.hpp"

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/registry/config.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/image/source.hpp"
#include "imgtool/image/types.hpp"

namespace imgtool::registry {
namespace {

// An index inside an index (a multi-platform image that is itself listed) is followed this deep.
constexpr int kMaxIndexDepth = 4;

class RegistrySource final : public import::BlobSource {
public:
    RegistrySource(const image::Reference& reference, const ClientOptions& options, std::vector<Endpoint> endpoints)
        : reference_(reference), options_(options), endpoints_(std::move(endpoints)) {}

    std::string name() const override { return reference_.str(); }

    // Mirrors first, then the registry: the first endpoint that yields a verified plan is the one the
    // layers come from. A mirror's failure is only logged (--debug); the registry's is the error.
    std::vector<image::ImagePlan> plan(const image::PlanOptions& options) override {
        for (std::size_t i = 0; i < endpoints_.size(); ++i) {
            const Endpoint& endpoint = endpoints_[i];
            ClientOptions client_options = options_;
            if (endpoint.insecure) client_options.tls_verify = false;
            auto client = std::make_unique<Client>(endpoint.reference, client_options);
            try {
                auto plans = plan_with(*client, options);
                client_ = std::move(client);
                return plans;
            } catch (const Error& e) {
                if (i + 1 == endpoints_.size()) throw;
                log::debug("mirror " + endpoint.reference.registry + ": " + e.what() + "; trying the next source");
            }
        }
        throw Error(Errc::NotFound, "no registry to pull from");
    }

    std::unique_ptr<sys::Reader> open_layer(const image::LayerPlan& layer, import::Spool* spool) const override {
        std::optional<sys::UniqueFd> partial;
        if (spool) partial = spool->open(*layer.digest, client_->origin());
        return client_->open_blob(*layer.digest, layer.size, std::move(partial), spool ? spool->reserve() : nullptr);
    }

private:
    std::vector<image::ImagePlan> plan_with(Client& client, const image::PlanOptions& options) {
        const image::Reference& ref = reference_;
        image::Platform wanted = options.platform.value_or(image::Platform::host());
        FetchedManifest fetched = client.manifest(ref.manifest_reference());
        bool chosen_by_platform = false;
        for (int depth = 0; image::is_index_media_type(fetched.media_type); ++depth) {
            if (depth >= kMaxIndexDepth) {
                throw Error(Errc::Corrupt, "image indexes nested more than " + std::to_string(kMaxIndexDepth) + " deep");
            }
            std::string what = "index " + fetched.digest.str();
            image::Index index = image::parse_index(fetched.bytes, what, fetched.media_type);
            const image::Descriptor* chosen = nullptr;
            std::string available;
            for (const image::Descriptor& d : index.manifests) {
                if (d.platform) {
                    if (available.size() < 1000) available += (available.empty() ? "" : ", ") + d.platform->str();
                    if (wanted.accepts(*d.platform) && !chosen) chosen = &d;
                } else if (image::is_index_media_type(d.media_type) && !chosen) {
                    chosen = &d;  // a nested multi-platform image: look inside
                }
            }
            if (!chosen) {
                throw Error(Errc::NotFound, "no image for platform " + wanted.str() +
                                                (available.empty() ? "" : " (available: " + available + ")"));
            }
            image::Descriptor next = *chosen;
            chosen_by_platform = true;
            fetched = client.manifest(next.digest.str());
            if (fetched.bytes.size() != next.size) {
                throw Error(Errc::SizeMismatch, "manifest " + next.digest.str() + ": size mismatch: descriptor says " +
                                                    std::to_string(next.size) + " bytes, got " + std::to_string(fetched.bytes.size()));
            }
            if (!image::is_manifest_media_type(fetched.media_type) && !image::is_index_media_type(fetched.media_type)) {
                throw Error(Errc::UnsupportedMediaType, "manifest " + next.digest.str() + ": unsupported media type \"" +
                                                            printable(fetched.media_type) + "\"");
            }
        }
        if (!image::is_manifest_media_type(fetched.media_type)) {
            throw Error(Errc::UnsupportedMediaType, "manifest: unsupported media type \"" + printable(fetched.media_type) + "\"");
        }
        std::string what = "manifest " + fetched.digest.str();
        image::Manifest manifest = image::parse_manifest(fetched.bytes, what, fetched.media_type);
        image::ImagePlan plan{.id = manifest.config.digest, .config_bytes = {}, .config = {}, .manifest_digest = std::nullopt,
                              .manifest_bytes = {}, .layers = {}, .tags = {}, .repo_digests = {}};
        std::optional<std::string> stored;
        if (options.stored_blob) stored = options.stored_blob(manifest.config.digest);
        if (stored && stored->size() == manifest.config.size && digest::Sha256::of(*stored) == manifest.config.digest) {
            plan.config_bytes = std::move(*stored);
        } else {
            plan.config_bytes = client.small_blob(manifest.config.digest, manifest.config.size,
                                                   "config " + manifest.config.digest.str());
        }
        plan.config = image::parse_config(plan.config_bytes, "config " + manifest.config.digest.str());
        plan.manifest_digest = fetched.digest;
        plan.manifest_bytes = fetched.bytes;
        if (plan.config.diff_ids.size() != manifest.layers.size()) {
            throw Error(Errc::Corrupt, what + ": config lists " + std::to_string(plan.config.diff_ids.size()) +
                                           " diff_ids but the manifest has " + std::to_string(manifest.layers.size()) + " layers");
        }
        // An image for another platform than asked (a single-platform tag) is refused as pull-local does;
        // so is one an index listed under the wanted platform but whose config says another (the index
        // lied, or was wrong).
        if ((options.platform || chosen_by_platform) && !wanted.accepts(plan.config.platform)) {
            throw Error(Errc::NotFound, "image " + plan.id.str() + " is for " + plan.config.platform.str() + ", not " +
                                            wanted.str() + (chosen_by_platform ? " as the index says" : ""));
        }
        for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
            const image::Descriptor& d = manifest.layers[i];
            if (!image::is_layer_media_type(d.media_type)) {
                throw Error(Errc::UnsupportedMediaType, "layer " + d.digest.str() + ": unsupported media type \"" +
                                                            printable(d.media_type) + "\"");
            }
            plan.layers.push_back(image::LayerPlan{d.digest.str(), d.digest, d.size, plan.config.diff_ids[i]});
        }
        if (std::string tag = ref.local_tag(); !tag.empty()) plan.tags.push_back(image::normalize_tag(tag));
        plan.repo_digests.push_back(ref.familiar_name() + "@" + fetched.digest.str());
        return {plan};
    }

    image::Reference reference_;
    ClientOptions options_;
    std::vector<Endpoint> endpoints_;
    std::unique_ptr<Client> client_;
};

}  // namespace

std::unique_ptr<import::BlobSource> open_source(const image::Reference& reference, const ClientOptions& options) {
    return std::make_unique<RegistrySource>(reference, options, pull_endpoints(reference));
}

}  // namespace imgtool::registry
