// store::Store on a scratch directory: what it refuses to write, where it writes, how it resolves.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <map>

#include "fs_test_support.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/store/store.hpp"
#include "imgtool/sys/files.hpp"
#include "test_support.hpp"

using namespace imgtool;
using namespace fs_test;

TEST_CASE("the store refuses tags it could not read back") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    digest::Digest id = digest::Sha256::of("an image");
    std::map<std::string, digest::Digest> tags;
    for (int i = 0; i < 1000; ++i) tags.emplace("name-" + std::to_string(i) + ":latest", id);
    store.check_tags_fit(tags);
    store.save_tags(tags);
    CHECK(store.tags().size() == 1000);
    // 250-byte names: 250,000 of them would be ~83 MB of tags.json.
    for (int i = 0; i < 250000; ++i) tags.emplace(std::string(240, 'a') + std::to_string(i) + ":t", id);
    CHECK(test_support::thrown_code([&] { store.save_tags(tags); }) == make_error_code(Errc::Unsupported));
    CHECK(store.tags().size() == 1000);  // unchanged
}

TEST_CASE("a full ID resolves to its image, whatever the tags say") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    digest::Digest a = digest::Sha256::of("a"), b = digest::Sha256::of("b");
    store.save_image({.id = a, .manifest_digest = std::nullopt, .layers = {}, .created = "", .architecture = "",
                      .os = "", .size = 0, .repo_digests = {}});
    store.save_image({.id = b, .manifest_digest = std::nullopt, .layers = {}, .created = "", .architecture = "",
                      .os = "", .size = 0, .repo_digests = {}});
    store.save_tags({{b.hex() + ":latest", a}, {"short:latest", a}});
    CHECK(store.resolve(b.hex()).id == b);
    CHECK(store.resolve(b.str()).id == b);
    CHECK(store.resolve("short").id == a);
    CHECK(store.resolve(b.hex().substr(0, 12)).id == b);
}

TEST_CASE("resolve: IDs, then the normalised name, then localhost/, then the name as stored") {
    Scratch scratch(memory_parent());
    store::Store store(scratch.path() + "/store");
    digest::Digest a = digest::Sha256::of("a"), b = digest::Sha256::of("b"), c = digest::Sha256::of("c");
    for (const auto& id : {a, b, c}) {
        store.save_image({.id = id, .manifest_digest = std::nullopt, .layers = {}, .created = "", .architecture = "",
                          .os = "", .size = 0, .repo_digests = {}});
    }
    // "old" as an older imgtool stored it (no tag); "bb-features:latest" as docker.io/library/bb-features.
    store.save_tags({{"bb-features:latest", a}, {"localhost/v2:latest", b}, {"old", c}, {"user/app:1", c}});
    for (const char* name : {"bb-features", "bb-features:latest", "library/bb-features", "docker.io/bb-features",
                             "docker.io/library/bb-features:latest", "index.docker.io/library/bb-features"}) {
        CAPTURE(name);
        CHECK(store.resolve(name).id == a);
    }
    CHECK(store.resolve("v2").id == b);
    CHECK(store.resolve("localhost/v2").id == b);
    CHECK(store.resolve("old").id == c);
    CHECK(store.resolve("docker.io/user/app:1").id == c);
    CHECK_THROWS_WITH(store.resolve("docker.io/v2"), "no such image: docker.io/v2");
    CHECK_THROWS_WITH(store.resolve("bb-featurs"), "no such image: bb-featurs (did you mean bb-features:latest?)");
    CHECK_THROWS_WITH(store.resolve("postgres"), "no such image: postgres");
    CHECK_THROWS_WITH(store.resolve(a.hex().substr(0, 2)),
                      ("no such image: " + a.hex().substr(0, 2) + " (an ID prefix needs at least 4 hex characters)").c_str());
    CHECK(store.resolve(a.hex().substr(0, 4)).id == a);
}

TEST_CASE("the store location must be the caller's own, and never a symlink") {
    Scratch scratch(memory_parent());
    std::string real = scratch.path() + "/real";
    make_dir(AT_FDCWD, real);
    check_sys(::symlink(real.c_str(), (scratch.path() + "/link").c_str()) == 0, "symlink");
    CHECK(test_support::thrown_code([&] { store::Store::check_location(scratch.path() + "/link"); }) ==
          make_error_code(Errc::UnsafePath));
    store::Store::check_location(real);
    ::chmod(scratch.path().c_str(), 0777);  // a parent anyone may write
    CHECK(test_support::thrown_code([&] { store::Store::check_location(real); }) == make_error_code(Errc::UnsafePath));
    ::chmod(scratch.path().c_str(), 01777);  // sticky: fine
    store::Store::check_location(real);
    ::chmod(scratch.path().c_str(), 0700);
}

namespace {

std::string own_starttime() {
    std::string stat = imgtool::sys::read_file_at(AT_FDCWD, "/proc/self/stat", 4096);
    auto fields = imgtool::split(stat.substr(stat.rfind(')') + 2), ' ');
    return fields.at(19);
}

}  // namespace

TEST_CASE("cleaning tmp/ never removes a live container's writable layer") {
    Scratch scratch(memory_parent());
    std::string root = scratch.path() + "/store";
    { store::Store first(root); }
    auto plant = [&](const std::string& name, const std::string& pid_line) {
        make_dir(AT_FDCWD, root + "/tmp/" + name);
        write_file(AT_FDCWD, root + "/tmp/" + name + "/container.pid", pid_line);
        write_file(AT_FDCWD, root + "/tmp/" + name + "/data", "the container's files");
    };
    plant("live", std::to_string(::getpid()) + " " + own_starttime() + "\n");
    plant("reused-pid", std::to_string(::getpid()) + " 1\n");  // same pid, another start: not ours
    plant("dead", "999999999 5\n");
    make_dir(AT_FDCWD, root + "/tmp/plain");
    { store::Store again(root, store::Access::Exclusive); }  // exclusive: it cleans tmp/
    CHECK(exists(AT_FDCWD, root + "/tmp/live/data"));
    CHECK_FALSE(exists(AT_FDCWD, root + "/tmp/reused-pid"));
    CHECK_FALSE(exists(AT_FDCWD, root + "/tmp/dead"));
    CHECK_FALSE(exists(AT_FDCWD, root + "/tmp/plain"));
}
