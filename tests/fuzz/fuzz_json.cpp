// libFuzzer target: the strict JSON parser and every typed document parser fed from it (index, manifest,
// config, docker manifest.json), on the same untrusted bytes. An imgtool::Error is the expected outcome of
// hostile input; any other exception, a crash or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "imgtool/core/error.hpp"
#include "imgtool/digest/digest.hpp"
#include "imgtool/image/json.hpp"
#include "imgtool/image/types.hpp"

namespace image = imgtool::image;

namespace {

void require(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_json: invariant violated: %s\n", what);
    std::abort();
}

// Runs fn; imgtool::Error is an accepted answer to hostile input, so it is swallowed here. Anything
// else escapes to libFuzzer, which reports it as an uncaught exception.
template <typename Fn>
void attempt(Fn&& fn) {
    try {
        fn();
    } catch (const imgtool::Error&) {
    }
}

// Parsing is the only way to make a Digest, so every parsed one must print back to itself.
void check_digest(const imgtool::digest::Digest& d) {
    require(imgtool::digest::Digest::parse(d.str()) == d, "a parsed digest does not round-trip");
}

void check_descriptor(const image::Descriptor& d) {
    check_digest(d.digest);
    if (d.platform) (void)d.platform->str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    attempt([&] { (void)image::parse_json_strict(text, "fuzz.json"); });
    for (std::string_view expected : {std::string_view{}, image::media::kOciIndex, image::media::kDockerList}) {
        attempt([&] {
            image::Index index = image::parse_index(text, "fuzz index", expected);
            for (const image::Descriptor& d : index.manifests) check_descriptor(d);
        });
    }
    for (std::string_view expected : {std::string_view{}, image::media::kOciManifest, image::media::kDockerManifest}) {
        attempt([&] {
            image::Manifest manifest = image::parse_manifest(text, "fuzz manifest", expected);
            check_descriptor(manifest.config);
            for (const image::Descriptor& d : manifest.layers) check_descriptor(d);
        });
    }
    attempt([&] {
        image::ImageConfig config = image::parse_config(text, "fuzz config");
        for (const auto& d : config.diff_ids) check_digest(d);
        (void)config.platform.str();
    });
    attempt([&] {
        // As plan_images does: every RepoTags entry goes through normalize_tag.
        for (const image::DockerManifestEntry& entry : image::parse_docker_manifest(text, "manifest.json")) {
            for (const std::string& tag : entry.repo_tags) {
                attempt([&] {
                    std::string normal = image::normalize_tag(tag);
                    require(image::normalize_tag(normal) == normal, "normalize_tag is not idempotent");
                });
            }
        }
    });
    attempt([&] { (void)image::Platform::parse(text).str(); });
    return 0;
}
