// The import pipeline, end to end but in memory: an OCI layout held in a map (an image::Source of the
// test's own) imported into a scratch store. What a registry source will plug into, checked without a
// disk image, a network or privileges.
#include <doctest/doctest.h>

#include <map>

#include "fs_test_support.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/import/pull.hpp"
#include "imgtool/store/store.hpp"
#include "tar_build.hpp"
#include "test_support.hpp"

using namespace imgtool;
using namespace fs_test;

namespace {

// An OCI layout as member name -> bytes.
class MemorySource final : public image::Source {
public:
    explicit MemorySource(std::map<std::string, std::string> members)
        : Source("memory.oci"), members_(std::move(members)) {}
    image::SourceFormat format() const override { return image::SourceFormat::OciLayout; }
    std::optional<std::uint64_t> member_size(const std::string& name) const override {
        auto it = members_.find(name);
        if (it == members_.end()) return std::nullopt;
        return it->second.size();
    }
    std::unique_ptr<sys::Reader> open_member(const std::string& name) const override {
        return std::make_unique<test_support::MemoryReader>(members_.at(name), 4096);
    }

private:
    std::map<std::string, std::string> members_;
};

std::string blob_name(const digest::Digest& d) { return "blobs/sha256/" + d.hex(); }

struct Layout {
    std::map<std::string, std::string> members;
    digest::Digest config{digest::Sha256::of("")};
};

// One image of uncompressed layers; `diff_id_override` lets a test lie in the config.
Layout layout(const std::vector<std::string>& layer_tars, const std::string& tag,
              std::optional<std::string> diff_id_override = std::nullopt) {
    Layout out;
    std::string diff_ids, layers;
    for (const auto& tar : layer_tars) {
        digest::Digest d = digest::Sha256::of(tar);
        out.members[blob_name(d)] = tar;
        diff_ids += std::string(diff_ids.empty() ? "" : ",") + "\"" + diff_id_override.value_or(d.str()) + "\"";
        layers += std::string(layers.empty() ? "" : ",") +
                  R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + d.str() +
                  R"(","size":)" + std::to_string(tar.size()) + "}";
    }
    std::string config = R"({"architecture":")" + image::Platform::host().architecture +
                         R"(","os":"linux","created":"2024-01-02T03:04:05Z",)"
                         R"("config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
    out.config = digest::Sha256::of(config);
    out.members[blob_name(out.config)] = config;
    std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                           R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                           out.config.str() + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" +
                           layers + "]}";
    digest::Digest m = digest::Sha256::of(manifest);
    out.members[blob_name(m)] = manifest;
    out.members["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
    out.members["index.json"] =
        R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
        m.str() + R"(","size":)" + std::to_string(manifest.size()) +
        R"(,"annotations":{"io.containerd.image.name":")" + tag + R"("}}]})";
    return out;
}

import::PullOptions options() {
    import::PullOptions o;
    o.platform = image::Platform{"linux", image::Platform::host().architecture, ""};
    o.min_free = sys::MinFreeSetting{0, -1};  // the scratch filesystem's free space is not the test's subject
    return o;
}

}  // namespace

TEST_CASE("import from an in-memory source: layers, record and name in the store") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    std::string base = tar_build::file("etc/hostname", "base\n") + tar_build::eof();
    std::string top = tar_build::file("etc/motd", "hello\n") + tar_build::eof();
    Layout l = layout({base, top}, "example.com/app:1");
    auto source = import::from_source(std::make_unique<MemorySource>(l.members));
    auto results = import::pull(store, *source, options());
    REQUIRE(results.size() == 1);
    CHECK(results[0].id == l.config);
    CHECK(results[0].layers_unpacked == 2);
    auto record = store.resolve("example.com/app:1");
    CHECK(record.layers.size() == 2);
    CHECK(record.created == "2024-01-02T03:04:05Z");
    CHECK(exists(AT_FDCWD, store.layer_dir(record.layers[1]) + "/etc/motd"));
    // Again: everything is there, nothing is read but metadata.
    auto again = import::pull(store, *source, options());
    CHECK(again[0].layers_reused == 2);
}

TEST_CASE("a layer that does not match its diff_id leaves the store as it was") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    std::string layer = tar_build::file("x", "x") + tar_build::eof();
    Layout l = layout({layer}, "example.com/bad:1", digest::Sha256::of("something else").str());
    auto source = import::from_source(std::make_unique<MemorySource>(l.members));
    CHECK(test_support::thrown_code([&] { import::pull(store, *source, options()); }) ==
          make_error_code(Errc::DigestMismatch));
    CHECK(store.images().empty());
    CHECK(store.tags().empty());
    CHECK(store.mounts().empty());
}

// umoci 0.4.7's insert ends a layer right after the last file's data: no block padding, no
// end-of-archive blocks. Go's reader (podman, umoci) takes it; so must we, and a stream that stops
// inside a header or a file's data is still truncated even when the config's diff_id matches it.
TEST_CASE("a layer without its end blocks imports; one cut inside an entry does not") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    std::string whole = tar_build::file("etc/a", "alpha\n") + tar_build::file("etc/b", "bravo\n");
    const std::size_t second_data = 3 * tar_build::kBlock;  // header a, data a, header b
    SUBCASE("no padding, no end blocks") {
        std::string layer = whole.substr(0, second_data + 6);
        Layout l = layout({layer}, "example.com/short:1");
        auto source = import::from_source(std::make_unique<MemorySource>(l.members));
        import::pull(store, *source, options());
        auto record = store.resolve("example.com/short:1");
        CHECK(read_file(AT_FDCWD, store.layer_dir(record.layers[0]) + "/etc/b") == "bravo\n");
    }
    SUBCASE("padding but no end blocks") {
        Layout l = layout({whole}, "example.com/short:1");
        auto source = import::from_source(std::make_unique<MemorySource>(l.members));
        import::pull(store, *source, options());
        CHECK(store.images().size() == 1);
    }
    SUBCASE("an empty stream is an empty layer") {
        Layout l = layout({std::string()}, "example.com/empty:1");
        auto source = import::from_source(std::make_unique<MemorySource>(l.members));
        import::pull(store, *source, options());
        CHECK(store.images().size() == 1);
    }
    SUBCASE("cut inside a file's data or a header") {
        for (std::size_t cut : {second_data + 3, second_data - 100, tar_build::kBlock + 3}) {
            CAPTURE(cut);
            Layout l = layout({whole.substr(0, cut)}, "example.com/cut:1");
            auto source = import::from_source(std::make_unique<MemorySource>(l.members));
            CHECK(test_support::thrown_code([&] { import::pull(store, *source, options()); }) ==
                  make_error_code(Errc::Corrupt));
            CHECK(store.images().empty());
            CHECK(store.tags().empty());
        }
    }
}
