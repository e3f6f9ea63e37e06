// Reference parsing: the facts are docker's (distribution/reference's normalize tests).
#include <doctest/doctest.h>
#include <algorithm>

#include "imgtool/core/error.hpp"
#include "imgtool/image/reference.hpp"

using imgtool::Error;
using imgtool::image::Reference;

TEST_CASE("Reference: docker.io's short names") {
    Reference r = Reference::parse("alpine");
    CHECK(r.registry == "docker.io");
    CHECK(r.repository == "library/alpine");
    CHECK(!r.tag);
    CHECK(!r.digest);
    CHECK(r.local_tag() == "alpine:latest");
    CHECK(r.manifest_reference() == "latest");
    CHECK(r.api_host() == "registry-1.docker.io");
    CHECK(r.str() == "docker.io/library/alpine");

    Reference u = Reference::parse("user/app:1.2");
    CHECK(u.registry == "docker.io");
    CHECK(u.repository == "user/app");
    CHECK(u.local_tag() == "user/app:1.2");

    CHECK(Reference::parse("docker.io/library/alpine:3").local_tag() == "alpine:3");
    CHECK(Reference::parse("index.docker.io/library/alpine").registry == "docker.io");
    CHECK(Reference::parse("docker.io/alpine").repository == "library/alpine");
}

TEST_CASE("Reference: the first component is a registry only with '.', ':', localhost or upper case") {
    Reference h = Reference::parse("127.0.0.1:5000/team/app:v1");
    CHECK(h.registry == "127.0.0.1:5000");
    CHECK(h.repository == "team/app");
    CHECK(h.local_tag() == "127.0.0.1:5000/team/app:v1");
    CHECK(h.api_host() == "127.0.0.1:5000");
    CHECK(Reference::parse("localhost/x").registry == "localhost");
    CHECK(Reference::parse("quay.io/a/b/c").repository == "a/b/c");
    CHECK(Reference::parse("team/app").registry == "docker.io");
    Reference upper = Reference::parse("Example.COM/a");
    CHECK(upper.registry == "example.com");
}

TEST_CASE("Reference: digests pin the manifest; no tag is recorded for a digest alone") {
    std::string hex(64, 'a');
    Reference d = Reference::parse("quay.io/a/b@sha256:" + hex);
    CHECK(d.digest->hex() == hex);
    CHECK(!d.tag);
    CHECK(d.local_tag().empty());
    CHECK(d.manifest_reference() == "sha256:" + hex);
    Reference both = Reference::parse("a:1@sha256:" + hex);
    CHECK(*both.tag == "1");
    CHECK(both.manifest_reference() == "sha256:" + hex);
    CHECK(both.local_tag() == "a:1");
    CHECK(both.str() == "docker.io/library/a:1@sha256:" + hex);
}

TEST_CASE("Reference: what docker refuses") {
    std::string hex(64, 'a');
    for (const char* bad : {"", "UPPER", "a:", "a:-x", "a//b", "/a", "a/", "a@sha256:abc", "a@md5:" , "a@sha512:00",
                            "host:99999/a", "host:0/a", "-bad.com/a", "a b", "a:b:c"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(Reference::parse(bad), Error);
    }
    CHECK_THROWS_AS(Reference::parse(hex), Error);  // an image ID, never a repository
    CHECK_THROWS_AS(Reference::parse(std::string(300, 'a')), Error);
    try {
        Reference::parse("Team/App");
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("Team/App") != std::string::npos);
    }
}

#include "imgtool/registry/auth.hpp"

TEST_CASE("auth files: a broken one is named, never quoted (the parser's excerpt may be a password)") {
    using imgtool::registry::find_credentials;
    // base64 of alice:S3cretPW_zq9, cut before its closing quote; then a raw line break in a password.
    for (const char* text : {R"({"auths":{"r.example":{"auth":"YWxpY2U6UzNjcmV0UFdfenE5)",
                             "{\"auths\":{\"r.example\":{\"username\":\"alice\",\"password\":\"S3cretPW_zq9\n\"}}}"}) {
        try {
            find_credentials(text, "r.example", "x", "/tmp/auth.json");
            FAIL("accepted");
        } catch (const Error& e) {
            std::string what = e.what();
            CHECK(what.find("/tmp/auth.json") != std::string::npos);
            CHECK(what.find("YWxpY2U6UzNjcmV0UFdfenE5") == std::string::npos);
            CHECK(what.find("S3cretPW") == std::string::npos);
        }
    }
}

TEST_CASE("auth files: the most specific key wins; docker's URL key counts for docker.io") {
    using imgtool::registry::find_credentials;
    // alice:one, bob:two, carol:three
    std::string text = R"({"auths":{"reg.io":{"auth":"YWxpY2U6b25l"},"reg.io/team":{"auth":"Ym9iOnR3bw=="},
                          "https://index.docker.io/v1/":{"auth":"Y2Fyb2w6dGhyZWU="}}})";
    CHECK(find_credentials(text, "reg.io", "team/app", "f")->username == "bob");
    CHECK(find_credentials(text, "reg.io", "other/app", "f")->username == "alice");
    auto hub = find_credentials(text, "docker.io", "library/alpine", "f");
    CHECK(hub->username == "carol");
    CHECK(hub->password == "three");
    CHECK(!find_credentials(text, "elsewhere.io", "x", "f"));
}

TEST_CASE("WWW-Authenticate: several challenges, quoted values with escapes and commas") {
    auto cs = imgtool::registry::parse_challenges(
        R"(Bearer realm="https://auth.example/token",service="reg, \"x\"",scope="repository:a/b:pull", Basic realm="r")");
    REQUIRE(cs.size() == 2);
    CHECK(cs[0].scheme == "bearer");
    CHECK(cs[0].params.at("realm") == "https://auth.example/token");
    CHECK(cs[0].params.at("service") == "reg, \"x\"");
    CHECK(cs[0].params.at("scope") == "repository:a/b:pull");
    CHECK(cs[1].scheme == "basic");
    CHECK(cs[1].params.at("realm") == "r");
}

#include "imgtool/registry/config.hpp"

TEST_CASE("registries.conf: mirrors first, then the location; longest prefix; policies; blocked") {
    using imgtool::registry::pull_endpoints;
    const char* conf = R"(
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000/hub"
insecure = true
[[registry.mirror]]
location = "pinned.local"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "docker.io/team"
location = "team.example/x"

[[registry]]
location = "blocked.example"
blocked = true
)";
    auto eps = pull_endpoints(Reference::parse("alpine:3"), conf, "r.conf");
    REQUIRE(eps.size() == 2);
    CHECK(eps[0].reference.registry == "mirror.local:5000");
    CHECK(eps[0].reference.repository == "hub/library/alpine");
    CHECK(*eps[0].reference.tag == "3");
    CHECK(eps[0].insecure);
    CHECK(eps[0].mirror);
    CHECK(eps[1].reference.registry == "docker.io");
    CHECK(eps[1].reference.repository == "library/alpine");
    CHECK(!eps[1].insecure);
    CHECK(!eps[1].mirror);

    auto pinned = pull_endpoints(Reference::parse("alpine@sha256:" + std::string(64, 'a')), conf, "r.conf");
    REQUIRE(pinned.size() == 3);
    CHECK(pinned[1].reference.registry == "pinned.local");

    auto team = pull_endpoints(Reference::parse("team/app"), conf, "r.conf");
    REQUIRE(team.size() == 1);
    CHECK(team[0].reference.registry == "team.example");
    CHECK(team[0].reference.repository == "x/app");

    auto other = pull_endpoints(Reference::parse("quay.io/a/b"), conf, "r.conf");
    REQUIRE(other.size() == 1);
    CHECK(other[0].reference.str() == "quay.io/a/b");

    CHECK_THROWS_AS(pull_endpoints(Reference::parse("blocked.example/a"), conf, "r.conf"), Error);
    CHECK_THROWS_AS(pull_endpoints(Reference::parse("a"), "[[registry]\nlocation=", "r.conf"), Error);
    // "docker.iox" is not under "docker.io".
    CHECK(pull_endpoints(Reference::parse("docker.iox/a"), conf, "r.conf").size() == 1);

    // Nesting the TOML parser would recurse into without end: refused before it parses.
    for (const std::string& deep : {"a = " + std::string(20000, '['), "a = " + std::string(20000, '{'),
                                    "a = " + std::string(33, '[') + std::string(33, ']')}) {
        CHECK_THROWS_WITH_AS(pull_endpoints(Reference::parse("a"), deep, "r.conf"), doctest::Contains("nested more than"), Error);
    }
    // Brackets in strings and comments are not nesting.
    std::string quoted = "# " + std::string(100, '[') + "\nx = \"" + std::string(100, '{') + "\"\ny = '''" +
                         std::string(100, '[') + "'''\n" + std::string(conf);
    CHECK(pull_endpoints(Reference::parse("alpine:3"), quoted, "r.conf").size() == 2);
}

// ---- names in the store (docs/store.md, "Names") ----

TEST_CASE("local_lookup: docker's normalised name, podman's localhost/ name, then the text as typed") {
    using imgtool::image::local_lookup;
    using V = std::vector<std::string>;
    CHECK(local_lookup("bb").names == V{"bb:latest", "localhost/bb:latest", "bb"});
    CHECK(local_lookup("library/bb").names == V{"bb:latest", "localhost/library/bb:latest", "library/bb"});
    CHECK(local_lookup("docker.io/library/bb:latest").names == V{"bb:latest", "docker.io/library/bb:latest"});
    CHECK(local_lookup("index.docker.io/library/bb:1").names == V{"bb:1", "index.docker.io/library/bb:1"});
    CHECK(local_lookup("user/app:2").names == V{"user/app:2", "localhost/user/app:2"});
    CHECK(local_lookup("localhost/v2").names == V{"localhost/v2:latest", "localhost/v2"});
    CHECK(local_lookup("quay.io/team/app:1").names == V{"quay.io/team/app:1"});
    // Not a valid reference: only the text as typed (an old store may hold anything).
    CHECK(local_lookup("Bad Name").names == V{"Bad Name"});
    auto digest = std::string("sha256:") + std::string(64, 'a');
    auto pinned = local_lookup("docker.io/library/alpine@" + digest);
    CHECK(pinned.repo_digest == "alpine@" + digest);
    CHECK(pinned.names.empty());
}

TEST_CASE("name_from_ref_annotation: bare refs go under localhost/ as podman load names them") {
    using imgtool::image::name_from_ref_annotation;
    CHECK(name_from_ref_annotation("v2") == "localhost/v2:latest");
    CHECK(name_from_ref_annotation("latest") == "localhost/latest:latest");
    CHECK(name_from_ref_annotation("example.com/app:v2") == "example.com/app:v2");
    CHECK(name_from_ref_annotation("docker.io/library/app:1") == "app:1");
    CHECK(name_from_ref_annotation("user/app") == "user/app:latest");
    // The author's text: anything that is not a name is refused, escaped, shortened.
    for (const std::string& bad : std::vector<std::string>{"V2", "a/../b", "../x", "x\ny", "x\x1b[31m", "a@sha256:" + std::string(64, 'a'), std::string(),
                            "x:" + std::string(200, 't'), std::string(300, 'a')}) {
        CAPTURE(bad);
        try {
            name_from_ref_annotation(bad);
            FAIL("accepted");
        } catch (const Error& e) {
            std::string what = e.what();
            CHECK(what.find("ref name") != std::string::npos);
            CHECK(what.find('\n') == std::string::npos);
            CHECK(what.find('\x1b') == std::string::npos);
            CHECK(what.size() < 500);
        }
    }
}


#include "imgtool/image/types.hpp"
#include "imgtool/import/blob_source.hpp"

TEST_CASE("names that spell an image ID are refused wherever a name is checked") {
    std::string hex(64, 'a');
    for (const std::string& bad : {hex, "localhost/" + hex, "team/" + hex + ":v1", "quay.io/x/" + hex,
                                   "sha256:" + hex, "docker.io/library/sha256:" + hex, "localhost/sha256:" + hex}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(imgtool::image::normalize_tag(bad), Error);
        CHECK_THROWS_AS(Reference::parse(bad), Error);
    }
    // Ref annotations: a bare 64-hex ref would be localhost/<hex>.
    CHECK_THROWS_AS(imgtool::image::name_from_ref_annotation(hex), Error);
    CHECK_THROWS_AS(imgtool::image::name_from_ref_annotation("sha256:" + hex), Error);
    // Not IDs: hex elsewhere, a shorter hex, the word sha256 with another tag.
    CHECK(imgtool::image::normalize_tag(hex.substr(0, 63)) == hex.substr(0, 63) + ":latest");
    CHECK(imgtool::image::normalize_tag("app:" + hex) == "app:" + hex);
    CHECK(imgtool::image::normalize_tag("sha256:latest") == "sha256:latest");
    CHECK(imgtool::image::normalize_tag("sha256/" + hex.substr(0, 12)) == "sha256/" + hex.substr(0, 12) + ":latest");
    CHECK(Reference::parse("sha256:v1").local_tag() == "sha256:v1");
}

TEST_CASE("split_local_spec: PATH:REF, a path with ':', and both existing is ambiguous") {
    using imgtool::import::split_local_spec;
    auto in = [](std::initializer_list<std::string> files) {
        return [set = std::vector<std::string>(files)](const std::string& p) {
            return std::find(set.begin(), set.end(), p) != set.end();
        };
    };
    auto s = split_local_spec("/t/img.tar:app:v2", in({"/t/img.tar"}));
    CHECK(s.path == "/t/img.tar");
    CHECK(s.ref == "app:v2");
    s = split_local_spec("/t/img.tar:base", in({"/t/img.tar:base"}));
    CHECK(s.path == "/t/img.tar:base");
    CHECK(!s.ref);
    s = split_local_spec("/t/none:x", in({}));
    CHECK(s.path == "/t/none:x");
    // Another user's /t/img.tar:base next to root's /t/img.tar (a sticky /tmp) must not be chosen.
    try {
        split_local_spec("/t/img.tar:base", in({"/t/img.tar", "/t/img.tar:base"}));
        FAIL("accepted");
    } catch (const Error& e) {
        std::string m = e.what();
        CHECK(m.find("ambiguous") != std::string::npos);
        CHECK(m.find("\"/t/img.tar:base\"") != std::string::npos);
        CHECK(m.find("\"/t/img.tar\"") != std::string::npos);
    }
    CHECK_THROWS_AS(split_local_spec("/t/a:b:c", in({"/t/a:b", "/t/a:b:c"})), Error);
}
