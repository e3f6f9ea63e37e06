// What real tools write, imported as it is (testdata/README.md says how each input was made). These
// caught what generated images could not: umoci 0.4.7 ends its layer tars without end-of-archive blocks.
#include <doctest/doctest.h>

#include "fs_test_support.hpp"
#include "imgtool/import/blob_source.hpp"
#include "imgtool/import/pull.hpp"
#include "imgtool/store/store.hpp"

using namespace imgtool;
using namespace fs_test;

namespace {

std::string testdata(const std::string& name) { return std::string(IMGTOOL_TESTDATA_DIR) + "/" + name; }

import::PullOptions amd64() {
    import::PullOptions o;
    o.platform = image::Platform{"linux", "amd64", ""};  // what the inputs were made for, on any host
    o.min_free = sys::MinFreeSetting{0, -1};
    return o;
}

const char* const kV1 = "sha256:80ea121732e2772e6dbba1cd29e2751342207d167e41a4861fa037ad851fee11";
const char* const kBase = "sha256:8b177ee719551a92c7860fbfabaf64ee0a3b280e4b5e68a41f67e6c6d03989b9";
const char* const kLayer = "sha256:8f3699a6d53c45e92d0d9f68c1b6a4402b4402540f78886da4e978fafef96b50";

}  // namespace

TEST_CASE("umoci's OCI layout: both manifests, the layer umoci wrote without end blocks") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    auto source = import::open_local(testdata("umoci-layout"));
    auto results = import::pull(store, *source, amd64());
    REQUIRE(results.size() == 2);
    CHECK(results[0].id.str() == kBase);
    CHECK(results[1].id.str() == kV1);
    // "base" and "v1" are bare ref names: podman names them localhost/REF:latest (docs/store.md, Names).
    auto tags = store.tags();
    CHECK(tags.size() == 2);
    CHECK(tags.at("localhost/base:latest").str() == kBase);
    CHECK(tags.at("localhost/v1:latest").str() == kV1);
    CHECK(store.resolve("v1").id.str() == kV1);
    auto v1 = store.resolve(kV1);
    REQUIRE(v1.layers.size() == 1);
    CHECK(v1.layers[0].str() == kLayer);
    CHECK(v1.created == "2024-01-02T03:04:05Z");
    CHECK(read_file(AT_FDCWD, store.layer_dir(v1.layers[0]) + "/etc/hello") == "made by umoci\n");
}

TEST_CASE("skopeo's docker archive of the same image: same ID, same layer, its name") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    auto source = import::open_local(testdata("skopeo.docker.tar"));
    auto results = import::pull(store, *source, amd64());
    REQUIRE(results.size() == 1);
    CHECK(results[0].id.str() == kV1);
    auto record = store.resolve("example.com/testdata:v1");
    CHECK(record.id.str() == kV1);
    REQUIRE(record.layers.size() == 1);
    CHECK(record.layers[0].str() == kLayer);
    CHECK(read_file(AT_FDCWD, store.layer_dir(record.layers[0]) + "/etc/hello") == "made by umoci\n");
}
