// OCI / Docker metadata parsing from untrusted JSON, Platform matching and tag normalisation.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <sys/utsname.h>

#include <map>
#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>
#include <utility>

#include "imgtool/core/error.hpp"
#include "imgtool/image/types.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
namespace image = imgtool::image;
namespace media = imgtool::image::media;
using image::Platform;

using test_support::thrown_code;

namespace {


const std::error_code kCorrupt = make_error_code(Errc::Corrupt);
const std::string kHexA(64, 'a');
const std::string kHexB(64, 'b');
const std::string kHexC(64, 'c');
const std::string kDigestA = "sha256:" + kHexA;
const std::string kDigestB = "sha256:" + kHexB;
const std::string kDigestC = "sha256:" + kHexC;

// A descriptor object; `size` is spliced in raw so tests can pass bad JSON types.
std::string descriptor(std::string_view media_type, const std::string& digest, std::string_view size = "1234",
                       std::string_view extra = "") {
    std::string d = "{\"mediaType\":\"";
    d += media_type;
    d += "\",\"digest\":\"" + digest + "\",\"size\":";
    d += size;
    if (!extra.empty()) (d += ",") += extra;
    return d + "}";
}

// Documents are assembled with += where a literal would lead: GCC 12 warns (-Wrestrict, a false
// positive, GCC bug 105329) on "literal" + std::string&&.

// "[item]"
std::string array_of(const std::string& item) {
    std::string out = "[";
    out += item;
    out += "]";
    return out;
}

std::string index_doc(const std::string& manifests, std::string_view extra = "") {
    std::string d = "{\"schemaVersion\":2,\"mediaType\":\"";
    d += media::kOciIndex;
    d += "\",\"manifests\":" + manifests;
    if (!extra.empty()) (d += ",") += extra;
    return d + "}";
}

std::string manifest_doc(std::string_view extra = "", std::string_view media_type = media::kOciManifest) {
    std::string d = "{\"schemaVersion\":2,\"mediaType\":\"";
    d += media_type;
    d += "\",\"config\":" + descriptor(media::kOciConfig, kDigestA, "7023") + ",\"layers\":[" +
         descriptor("application/vnd.oci.image.layer.v1.tar+gzip", kDigestB, "32654") + "," +
         descriptor("application/vnd.oci.image.layer.v1.tar+zstd", kDigestC, "16724") + "]";
    if (!extra.empty()) (d += ",") += extra;
    return d + "}";
}

std::error_code index_code(const std::string& doc, std::string_view expected = {}) {
    return thrown_code([&] { image::parse_index(doc, "index.json", expected); });
}
std::error_code manifest_code(const std::string& doc, std::string_view expected = {}) {
    return thrown_code([&] { image::parse_manifest(doc, "manifest", expected); });
}
std::error_code config_code(const std::string& doc) {
    return thrown_code([&] { image::parse_config(doc, "config"); });
}
std::error_code docker_code(const std::string& doc) {
    return thrown_code([&] { image::parse_docker_manifest(doc, "manifest.json"); });
}

}  // namespace

// ---- parse_index ----

TEST_CASE("parse_index reads manifests with platform, annotations and urls") {
    const std::string first_desc =
        descriptor(media::kOciManifest, kDigestA, "7143",
                   R"("platform":{"architecture":"arm64","os":"linux","variant":"v8"},)"
                   R"("annotations":{"org.opencontainers.image.ref.name":"1.0"})");
    const std::string second_desc =
        descriptor(media::kDockerManifest, kDigestB, "18446744073709551615", R"("urls":["https://x/y"])");
    std::string doc = index_doc(array_of(first_desc + "," + second_desc));
    image::Index index = image::parse_index(doc, "index.json", media::kOciIndex);
    REQUIRE(index.manifests.size() == 2);
    const image::Descriptor& first = index.manifests[0];
    CHECK(first.media_type == media::kOciManifest);
    CHECK(first.digest.str() == kDigestA);
    CHECK(first.size == 7143);
    REQUIRE(first.platform.has_value());
    CHECK(first.platform->os == "linux");
    CHECK(first.platform->architecture == "arm64");
    CHECK(first.platform->variant == "v8");
    CHECK(first.annotations.at("org.opencontainers.image.ref.name") == "1.0");
    CHECK(first.urls.empty());
    const image::Descriptor& second = index.manifests[1];
    CHECK(second.digest.str() == kDigestB);
    CHECK(second.size == 18446744073709551615ull);
    CHECK_FALSE(second.platform.has_value());
    REQUIRE(second.urls.size() == 1);
    CHECK(second.urls[0] == "https://x/y");
}

TEST_CASE("parse_index accepts an empty list, no schemaVersion, no mediaType and null optionals") {
    CHECK(image::parse_index(R"({"schemaVersion":2,"manifests":[]})", "i").manifests.empty());
    CHECK(image::parse_index(R"({"manifests":[]})", "i", media::kOciIndex).manifests.empty());
    auto index = image::parse_index(index_doc(array_of(descriptor(media::kOciManifest, kDigestA, "1",
                                                                  R"("platform":null,"annotations":null)"))),
                                    "i");
    REQUIRE(index.manifests.size() == 1);
    CHECK_FALSE(index.manifests[0].platform.has_value());
    CHECK(index.manifests[0].annotations.empty());
}

TEST_CASE("parse_index rejects wrong types and missing fields") {
    const std::string ok = descriptor(media::kOciManifest, kDigestA);
    const std::string cases[] = {
        "[]",
        "\"index\"",
        R"({"schemaVersion":2})",                 // no manifests
        R"({"schemaVersion":2,"manifests":{}})",  // manifests not an array
        R"({"schemaVersion":2,"manifests":null})",
        R"({"schemaVersion":2,"manifests":[1]})",   // entry not an object
        R"({"schemaVersion":"2","manifests":[]})",  // schemaVersion not a number
        R"({"schemaVersion":2.0,"manifests":[]})",
        R"({"schemaVersion":3,"manifests":[]})",
        R"({"schemaVersion":2,"mediaType":7,"manifests":[]})",               // mediaType not a string
        index_doc(R"([{"digest":")" + kDigestA + R"(","size":1}])"),         // descriptor without mediaType
        index_doc(R"([{"mediaType":"x","size":1}])"),                        // descriptor without digest
        index_doc(R"([{"mediaType":"x","digest":5,"size":1}])"),             // digest not a string
        index_doc(array_of(descriptor("x", kDigestA, "null"))),              // size null
        index_doc(R"([{"mediaType":"x","digest":")" + kDigestA + R"("}])"),  // size missing
        index_doc(array_of(descriptor("x", kDigestA, "\"12\""))),            // size a string
        index_doc(array_of(descriptor("x", kDigestA, "1.5"))),               // size fractional
        index_doc(array_of(descriptor("x", kDigestA, "-1"))),                // negative size
        index_doc(array_of(descriptor("x", kDigestA, "-9223372036854775808"))),
        index_doc(array_of(descriptor("x", kDigestA, "1", R"("platform":"linux/amd64")"))),
        index_doc(array_of(descriptor("x", kDigestA, "1", R"("platform":{"os":1})"))),
        index_doc(array_of(descriptor("x", kDigestA, "1", R"("annotations":[])"))),
        index_doc(array_of(descriptor("x", kDigestA, "1", R"("annotations":{"a":1})"))),
        index_doc(array_of(descriptor("x", kDigestA, "1", R"("urls":"https://x")"))),
        index_doc(array_of(descriptor("x", kDigestA, "1", R"("urls":[1])"))),
        index_doc("[" + ok + "," + ok + "]", R"("manifests":[])"),  // duplicate key
    };
    for (const std::string& doc : cases) {
        CAPTURE(doc);
        CHECK(index_code(doc) == kCorrupt);
    }
}

TEST_CASE("parse_index refuses a document that is also a manifest") {
    const std::string list = array_of(descriptor(media::kOciManifest, kDigestA));
    CHECK(index_code(index_doc(list, R"("layers":[])")) == kCorrupt);
    CHECK(index_code(index_doc(list, "\"config\":" + descriptor(media::kOciConfig, kDigestB))) == kCorrupt);
    // The full manifest fields plus "manifests": neither parser may accept it.
    std::string both = manifest_doc("\"manifests\":" + list);
    CHECK(index_code(both) == kCorrupt);
    CHECK(manifest_code(both) == kCorrupt);
}

TEST_CASE("parse_index checks the document's mediaType against its descriptor") {
    const std::string list = array_of(descriptor(media::kOciManifest, kDigestA));
    CHECK(index_code(index_doc(list), media::kOciIndex) == std::error_code());
    CHECK(index_code(index_doc(list), media::kDockerList) == kCorrupt);
    CHECK(index_code(index_doc(list), media::kOciManifest) == kCorrupt);
    std::string docker_list = "{\"schemaVersion\":2,\"mediaType\":\"" + std::string(media::kDockerList) +
                              "\",\"manifests\":" + list + "}";
    CHECK(index_code(docker_list, media::kDockerList) == std::error_code());
    CHECK(index_code(docker_list, media::kOciIndex) == kCorrupt);
}

TEST_CASE("parse_index: schemaVersion 1 is Unsupported") {
    CHECK(index_code(R"({"schemaVersion":1,"manifests":[]})") == make_error_code(Errc::Unsupported));
}

TEST_CASE("parse_index: invalid digests inside descriptors are refused") {
    for (const std::string& digest :
         {std::string("sha256:../../../etc/passwd"), std::string("sha256:") + kHexA.substr(1),
          "sha256:" + std::string(64, 'A'), std::string(""), kHexA}) {
        CAPTURE(digest);
        CHECK(index_code(index_doc(array_of(descriptor(media::kOciManifest, digest)))) ==
              make_error_code(Errc::InvalidArgument));
    }
    CHECK(index_code(index_doc(array_of(descriptor(media::kOciManifest, "sha512:" + kHexA + kHexA)))) ==
          make_error_code(Errc::Unsupported));
}

TEST_CASE("parse_index errors name the document") {
    try {
        image::parse_index(index_doc(array_of(descriptor("x", "sha256:zz"))), "blobs/sha256/ab");
        FAIL("no exception");
    } catch (const imgtool::Error& e) {
        CHECK(std::string(e.what()).find("blobs/sha256/ab") != std::string::npos);
    }
}

// ---- parse_manifest ----

TEST_CASE("parse_manifest reads config and layers in order") {
    image::Manifest m = image::parse_manifest(manifest_doc(), "manifest", media::kOciManifest);
    CHECK(m.config.media_type == media::kOciConfig);
    CHECK(m.config.digest.str() == kDigestA);
    CHECK(m.config.size == 7023);
    REQUIRE(m.layers.size() == 2);
    CHECK(m.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar+gzip");
    CHECK(m.layers[0].digest.str() == kDigestB);
    CHECK(m.layers[0].size == 32654);
    CHECK(m.layers[1].digest.str() == kDigestC);
    CHECK(m.layers[1].size == 16724);
}

TEST_CASE("parse_manifest accepts Docker v2 manifests and zero layers") {
    std::string docker = "{\"schemaVersion\":2,\"mediaType\":\"" + std::string(media::kDockerManifest) +
                         "\",\"config\":" + descriptor(media::kDockerConfig, kDigestA) + ",\"layers\":[]}";
    image::Manifest m = image::parse_manifest(docker, "manifest", media::kDockerManifest);
    CHECK(m.config.media_type == media::kDockerConfig);
    CHECK(m.layers.empty());
}

TEST_CASE("parse_manifest rejects wrong types and missing fields") {
    const std::string config = descriptor(media::kOciConfig, kDigestA);
    const std::string layer = descriptor("application/vnd.oci.image.layer.v1.tar", kDigestB);
    const std::string cases[] = {
        "[]",
        "{\"config\":" + config + ",\"layers\":[]}",                        // no schemaVersion
        "{\"schemaVersion\":2,\"layers\":[" + layer + "]}",                 // no config
        "{\"schemaVersion\":2,\"config\":" + config + "}",                  // no layers
        "{\"schemaVersion\":2,\"config\":[" + config + "],\"layers\":[]}",  // config not an object
        "{\"schemaVersion\":2,\"config\":null,\"layers\":[]}",
        "{\"schemaVersion\":2,\"config\":" + config + ",\"layers\":" + layer + "}",  // layers not an array
        "{\"schemaVersion\":2,\"config\":" + config + ",\"layers\":[\"" + kDigestB + "\"]}",
        "{\"schemaVersion\":2,\"config\":" + descriptor("x", kDigestA, "-5") + ",\"layers\":[]}",
        "{\"schemaVersion\":2,\"config\":" + config + ",\"layers\":[" + descriptor("x", kDigestB, "-1") +
            "]}",
        "{\"schemaVersion\":2,\"config\":" + config + ",\"layers\":[" + descriptor("x", kDigestB, "1e3") +
            "]}",
        "{\"schemaVersion\":2,\"config\":" + config + ",\"layers\":[" + layer + "," + layer +
            "]",  // truncated
    };
    for (const std::string& doc : cases) {
        CAPTURE(doc);
        CHECK(manifest_code(doc) == kCorrupt);
    }
}

TEST_CASE("parse_manifest refuses a document that also lists manifests") {
    CHECK(manifest_code(manifest_doc(R"("manifests":[])")) == kCorrupt);
}

TEST_CASE("parse_manifest checks the document's mediaType against its descriptor") {
    CHECK(manifest_code(manifest_doc(), media::kOciManifest) == std::error_code());
    CHECK(manifest_code(manifest_doc(), media::kDockerManifest) == kCorrupt);
    CHECK(manifest_code(manifest_doc(), media::kOciIndex) == kCorrupt);
    CHECK(manifest_code(manifest_doc("", media::kOciIndex), media::kOciManifest) == kCorrupt);
    CHECK(manifest_code(manifest_doc("", media::kDockerManifest), media::kDockerManifest) ==
          std::error_code());
}

TEST_CASE("parse_manifest: schemaVersion 1 is Unsupported, other versions Corrupt") {
    std::string v1 = R"({"schemaVersion":1,"name":"library/busybox","tag":"latest","fsLayers":[]})";
    CHECK(manifest_code(v1) == make_error_code(Errc::Unsupported));
    std::string v3 = manifest_doc();
    v3.replace(v3.find("\"schemaVersion\":2"), 17, "\"schemaVersion\":3");
    CHECK(manifest_code(v3) == kCorrupt);
}

TEST_CASE("parse_manifest: invalid digests inside descriptors are refused") {
    std::string bad_config =
        "{\"schemaVersion\":2,\"config\":" + descriptor(media::kOciConfig, "sha256:..") + ",\"layers\":[]}";
    CHECK(manifest_code(bad_config) == make_error_code(Errc::InvalidArgument));
    std::string bad_layer = "{\"schemaVersion\":2,\"config\":" + descriptor(media::kOciConfig, kDigestA) +
                            ",\"layers\":[" + descriptor("x", "sha256:" + kHexB.substr(0, 40)) + "]}";
    CHECK(manifest_code(bad_layer) == make_error_code(Errc::InvalidArgument));
}

// ---- parse_config ----

TEST_CASE("parse_config reads platform, created, config and diff_ids") {
    std::string doc = R"({"architecture":"arm","os":"linux","variant":"v7","created":"2024-01-02T03:04:05Z",
        "config":{"Env":["PATH=/usr/bin"],"Cmd":["sh"]},
        "rootfs":{"type":"layers","diff_ids":[")" +
                      kDigestA + R"(",")" + kDigestB + R"("]},"history":[{"created_by":"x"}]})";
    image::ImageConfig c = image::parse_config(doc, "config");
    CHECK(c.platform.str() == "linux/arm/v7");
    CHECK(c.created == "2024-01-02T03:04:05Z");
    CHECK(c.config.cmd == std::vector<std::string>{"sh"});
    CHECK(c.config.env == std::vector<std::string>{"PATH=/usr/bin"});
    REQUIRE(c.diff_ids.size() == 2);
    CHECK(c.diff_ids[0].str() == kDigestA);
    CHECK(c.diff_ids[1].str() == kDigestB);
}

TEST_CASE("parse_config: a missing or null config has no fields; no layers is fine") {
    auto c = image::parse_config(R"({"rootfs":{"type":"layers","diff_ids":[]}})", "config");
    CHECK(c.config == image::ContainerConfig{});
    CHECK(c.diff_ids.empty());
    CHECK(c.platform.os.empty());
    auto n = image::parse_config(R"({"config":null,"rootfs":{"type":"layers","diff_ids":[]}})", "config");
    CHECK(n.config == image::ContainerConfig{});
}

TEST_CASE("parse_config rejects bad shapes") {
    const std::string cases[] = {
        "[]",
        R"({})",  // no rootfs
        R"({"rootfs":[]})",
        R"({"rootfs":{"diff_ids":[]}})",                 // no type
        R"({"rootfs":{"type":"layer","diff_ids":[]}})",  // wrong type
        R"({"rootfs":{"type":"Layers","diff_ids":[]}})",
        R"({"rootfs":{"type":1,"diff_ids":[]}})",
        R"({"rootfs":{"type":"layers"}})",  // no diff_ids
        R"({"rootfs":{"type":"layers","diff_ids":null}})",
        R"({"rootfs":{"type":"layers","diff_ids":"sha256:aa"}})",
        R"({"rootfs":{"type":"layers","diff_ids":[1]}})",
        R"({"os":7,"rootfs":{"type":"layers","diff_ids":[]}})",  // os not a string
        R"({"architecture":["amd64"],"rootfs":{"type":"layers","diff_ids":[]}})",
        R"({"created":0,"rootfs":{"type":"layers","diff_ids":[]}})",
        R"({"config":[],"rootfs":{"type":"layers","diff_ids":[]}})",  // config not an object
        R"({"config":"sh","rootfs":{"type":"layers","diff_ids":[]}})",
    };
    for (const std::string& doc : cases) {
        CAPTURE(doc);
        CHECK(config_code(doc) == kCorrupt);
    }
}

TEST_CASE("parse_config: invalid diff_ids are refused") {
    CHECK(config_code(R"({"rootfs":{"type":"layers","diff_ids":["sha256:../../x"]}})") ==
          make_error_code(Errc::InvalidArgument));
    CHECK(config_code(R"({"rootfs":{"type":"layers","diff_ids":[")" + kHexA + R"("]}})") ==
          make_error_code(Errc::InvalidArgument));
    CHECK(config_code(R"({"rootfs":{"type":"layers","diff_ids":["sha384:)" + kHexA + R"("]}})") ==
          make_error_code(Errc::Unsupported));
}

// ---- parse_docker_manifest ----

TEST_CASE("parse_docker_manifest reads docker save's manifest.json") {
    auto entries = image::parse_docker_manifest(R"([{"Config":")" + kHexA +
                                                    R"(.json","RepoTags":["busybox:latest","busybox:1"],)"
                                                    R"("Layers":[")" +
                                                    kHexB + R"(/layer.tar","blobs/sha256/)" + kHexC +
                                                    R"("]},)"
                                                    R"({"Config":"c2.json","RepoTags":null,"Layers":[]}])",
                                                "manifest.json");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].config == kHexA + ".json");
    REQUIRE(entries[0].repo_tags.size() == 2);
    CHECK(entries[0].repo_tags[1] == "busybox:1");
    REQUIRE(entries[0].layers.size() == 2);
    CHECK(entries[0].layers[0] == kHexB + "/layer.tar");
    CHECK(entries[0].layers[1] == "blobs/sha256/" + kHexC);
    CHECK(entries[1].config == "c2.json");
    CHECK(entries[1].repo_tags.empty());
    CHECK(entries[1].layers.empty());
}

TEST_CASE("parse_docker_manifest rejects bad shapes") {
    const std::string cases[] = {
        "{}",
        "[]",  // lists no image
        "[1]",
        R"([{"Layers":[]}])",  // no Config
        R"([{"Config":1,"Layers":[]}])",
        R"([{"Config":"c.json"}])",  // no Layers
        R"([{"Config":"c.json","Layers":"l.tar"}])",
        R"([{"Config":"c.json","Layers":[1]}])",
        R"([{"Config":"c.json","Layers":[],"RepoTags":"a:b"}])",
        R"([{"Config":"c.json","Layers":[],"RepoTags":[null]}])",
        R"([{"Config":"c.json","Config":"d.json","Layers":[]}])",  // duplicate key
    };
    for (const std::string& doc : cases) {
        CAPTURE(doc);
        CHECK(docker_code(doc) == kCorrupt);
    }
}

// ---- media types ----

TEST_CASE("is_index_media_type / is_manifest_media_type") {
    CHECK(image::is_index_media_type(media::kOciIndex));
    CHECK(image::is_index_media_type(media::kDockerList));
    CHECK_FALSE(image::is_index_media_type(media::kOciManifest));
    CHECK_FALSE(image::is_index_media_type(""));
    CHECK(image::is_manifest_media_type(media::kOciManifest));
    CHECK(image::is_manifest_media_type(media::kDockerManifest));
    CHECK_FALSE(image::is_manifest_media_type(media::kDockerList));
    CHECK_FALSE(image::is_manifest_media_type(media::kOciConfig));
}

// ---- Platform ----

TEST_CASE("Platform::parse splits os/arch[/variant]") {
    Platform p = Platform::parse("linux/amd64");
    CHECK(p.os == "linux");
    CHECK(p.architecture == "amd64");
    CHECK(p.variant.empty());
    CHECK(p.str() == "linux/amd64");
    Platform arm = Platform::parse("linux/arm/v7");
    CHECK(arm.os == "linux");
    CHECK(arm.architecture == "arm");
    CHECK(arm.variant == "v7");
    CHECK(arm.str() == "linux/arm/v7");
}

TEST_CASE("Platform::parse rejects malformed platforms") {
    for (const std::string text :
         {"", "linux", "/", "linux/", "/amd64", "//v7", "linux/arm/v7/x", "linux//v7"}) {
        CAPTURE(text);
        CHECK(thrown_code([&] { Platform::parse(text); }) == make_error_code(Errc::InvalidArgument));
    }
}

TEST_CASE("Platform::accepts matches os, architecture and variant") {
    const Platform amd64{"linux", "amd64", ""};
    CHECK(amd64.accepts({"linux", "amd64", ""}));
    CHECK_FALSE(amd64.accepts({"linux", "arm64", ""}));
    CHECK_FALSE(amd64.accepts({"windows", "amd64", ""}));
    CHECK(amd64.accepts({"linux", "amd64", "v3"}));  // no wanted variant: any variant

    const Platform armv7{"linux", "arm", "v7"};
    CHECK(armv7.accepts({"linux", "arm", "v7"}));
    CHECK_FALSE(armv7.accepts({"linux", "arm", "v6"}));
    CHECK_FALSE(armv7.accepts({"linux", "arm", ""}));  // only arm64 may omit its variant
    CHECK_FALSE(armv7.accepts({"linux", "arm64", "v7"}));

    const Platform arm64v8{"linux", "arm64", "v8"};
    CHECK(arm64v8.accepts({"linux", "arm64", "v8"}));
    CHECK(arm64v8.accepts({"linux", "arm64", ""}));  // arm64 images usually omit "v8"
    CHECK_FALSE(arm64v8.accepts({"linux", "arm64", "v9"}));
    CHECK_FALSE(arm64v8.accepts({"linux", "arm", ""}));

    const Platform arm64{"linux", "arm64", ""};
    CHECK(arm64.accepts({"linux", "arm64", "v8"}));
}

TEST_CASE("Platform::host names a linux platform in Go's terms") {
    // The kernel's name for this machine, translated here independently of Platform::host into
    // the GOARCH (and GOARM variant) that images use.
    struct utsname u {};
    REQUIRE(::uname(&u) == 0);
    const std::string machine = u.machine;
    const std::map<std::string, std::pair<std::string, std::string>> go_names = {
        {"x86_64", {"amd64", ""}},     {"aarch64", {"arm64", ""}}, {"arm64", {"arm64", ""}},
        {"armv7l", {"arm", "v7"}},     {"i686", {"386", ""}},      {"i386", {"386", ""}},
        {"ppc64le", {"ppc64le", ""}},  {"s390x", {"s390x", ""}},   {"riscv64", {"riscv64", ""}},
    };
    auto want = go_names.find(machine);
    INFO("uname -m: " << machine);
    REQUIRE_MESSAGE(want != go_names.end(), "this test does not know the Go name of the machine");

    Platform host = Platform::host();
    CHECK(host.os == "linux");
    CHECK(host.architecture == want->second.first);
    CHECK(host.variant == want->second.second);
    // It selects an image of its own platform and no other.
    CHECK(host.accepts(Platform{"linux", want->second.first, want->second.second}));
    CHECK_FALSE(host.accepts(Platform{"windows", want->second.first, want->second.second}));
    CHECK_FALSE(host.accepts(Platform{"linux", machine == "s390x" ? "amd64" : "s390x", ""}));
}

// ---- normalize_tag ----

TEST_CASE("normalize_tag adds :latest where no tag is given") {
    CHECK(image::normalize_tag("busybox") == "busybox:latest");
    CHECK(image::normalize_tag("library/busybox") == "busybox:latest");
    CHECK(image::normalize_tag("localhost:5000/a") == "localhost:5000/a:latest");
    CHECK(image::normalize_tag("localhost:5000/a/b") == "localhost:5000/a/b:latest");
}

TEST_CASE("normalize_tag: docker.io names in docker's familiar form, other registries as given") {
    CHECK(image::normalize_tag("docker.io/library/alpine") == "alpine:latest");
    CHECK(image::normalize_tag("index.docker.io/library/alpine:3.19") == "alpine:3.19");
    CHECK(image::normalize_tag("docker.io/user/app:1") == "user/app:1");
    CHECK(image::normalize_tag("docker.io/library/a/b:1") == "library/a/b:1");
    CHECK(image::normalize_tag("quay.io/library/alpine:1") == "quay.io/library/alpine:1");
    CHECK(image::normalize_tag("localhost/library/x") == "localhost/library/x:latest");
}

TEST_CASE("normalize_tag keeps an explicit tag") {
    CHECK(image::normalize_tag("a:1") == "a:1");
    CHECK(image::normalize_tag("busybox:1.36.1-musl") == "busybox:1.36.1-musl");
    CHECK(image::normalize_tag("localhost:5000/a:v2") == "localhost:5000/a:v2");
    CHECK(image::normalize_tag("registry.example.com/team/app_x:latest") ==
          "registry.example.com/team/app_x:latest");
}

TEST_CASE("normalize_tag rejects empty names, digests, empty tags and bad characters") {
    const std::string cases[] = {
        "",
        "a@sha256:" + kHexA,
        "a:1@sha256:" + kHexA,
        "a@",
        "a:",
        "localhost:5000/a:",
        "a b",
        " a",
        "a\tb",
        "a\nb",
        std::string("a\0b", 3),
        "a\x7f",
        "a\xc3\xa9",  // non-ASCII
        "a;rm",
        "a$b",
        std::string(256, 'a'),
    };
    for (const std::string& name : cases) {
        CAPTURE(name);
        CHECK(thrown_code([&] { image::normalize_tag(name); }) == make_error_code(Errc::InvalidArgument));
    }
    CHECK(image::normalize_tag(std::string(255, 'a')) == std::string(255, 'a') + ":latest");
}

// Regression (fixed): normalize_tag checks characters but not structure, so references docker refuses ("invalid
// reference format") become tags: ":x" -> ":x" (empty repository), "a/" -> "a/:latest", "/a" ->
// "/a:latest", "a//b" -> "a//b:latest", "a:b:c" -> "a:b:c" (tag "c" on repository "a:b"). Expected:
// Errc::InvalidArgument for each.
TEST_CASE("normalize_tag rejects malformed repository names") {
    for (const std::string name : {":x", "a/", "/a", "a//b", "a:b:c", "/", ":"}) {
        CAPTURE(name);
        CHECK(thrown_code([&] { image::normalize_tag(name); }) == make_error_code(Errc::InvalidArgument));
    }
}

// ---- what an image may bring into the store (issue 12) ----

TEST_CASE("normalize_tag refuses a repository name that reads as an image ID") {
    const std::string id(64, 'a');
    CHECK(test_support::thrown_code([&] { image::normalize_tag(id); }) == make_error_code(Errc::InvalidArgument));
    CHECK(test_support::thrown_code([&] { image::normalize_tag(id + ":latest"); }) ==
          make_error_code(Errc::InvalidArgument));
    // Only exactly 64 hex digits: one more or one less is an ordinary name, as docker has it.
    CHECK(image::normalize_tag(std::string(63, 'a')) == std::string(63, 'a') + ":latest");
    // Stricter than docker (which refuses only a bare 64-hex name): any last component, so that
    // localhost/<hex> (a bare ref's name) and Reference::parse agree (reference_test.cpp).
    CHECK(test_support::thrown_code([&] { image::normalize_tag("team/" + id); }) ==
          make_error_code(Errc::InvalidArgument));
}

TEST_CASE("is_rfc3339 accepts Go's time.Time forms and nothing else") {
    for (const char* ok : {"2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05+02:00",
                           "0001-01-01T00:00:00Z", "2024-01-02t03:04:05z"}) {
        CAPTURE(ok);
        CHECK(image::is_rfc3339(ok));
    }
    for (const char* bad : {"", "last tuesday", "2024-01-02", "2024-01-02T03:04:05", "2024-01-02T03:04:05ZZ",
                            "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05.1234567890Z", "2024-01-02T03:04:05+0200",
                            "24-01-02T03:04:05Z", "2024-01-02T03:04:05Z\n"}) {
        CAPTURE(bad);
        CHECK_FALSE(image::is_rfc3339(bad));
    }
}

TEST_CASE("parse_config refuses a created that is not a timestamp, and huge platform fields") {
    auto config = [](const std::string& extra) {
        return R"({"architecture":"amd64","os":"linux",)" + extra +
               R"("rootfs":{"type":"layers","diff_ids":[]}})";
    };
    CHECK(image::parse_config(config(R"("created":"2024-01-02T03:04:05Z",)"), "c").created == "2024-01-02T03:04:05Z");
    CHECK(image::parse_config(config(""), "c").created.empty());
    CHECK(test_support::thrown_code([&] { image::parse_config(config(R"("created":"soon",)"), "c"); }) ==
          make_error_code(Errc::Corrupt));
    std::string long_variant = R"("variant":")" + std::string(129, 'v') + R"(",)";
    CHECK(test_support::thrown_code([&] { image::parse_config(config(long_variant), "c"); }) ==
          make_error_code(Errc::Corrupt));
}
