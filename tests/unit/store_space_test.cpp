// The store's space: df accounting and prune planning (pure), the driver imgtool info reports, the
// cgroup summary, and the tree measurer on a scratch directory.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>

#include "fs_test_support.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/launch/features.hpp"
#include "imgtool/overlay/driver.hpp"
#include "imgtool/store/space.hpp"
#include "imgtool/sys/tree_size.hpp"

using namespace imgtool;
using digest::Digest;

namespace {

Digest d(const std::string& s) { return digest::Sha256::of(s); }

store::ImageRecord image(const std::string& name, std::vector<Digest> layers) {
    return {.id = d(name), .manifest_digest = d(name + "-manifest"), .layers = std::move(layers), .created = "",
            .architecture = "", .os = "", .size = 0, .repo_digests = {}};
}

bool has(const std::vector<Digest>& v, const Digest& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::vector<Digest> ids(const std::vector<store::ImageRecord>& images) {
    std::vector<Digest> out;
    for (const auto& i : images) out.push_back(i.id);
    return out;
}

// base <- app (tagged), base <- old (dangling), lone (dangling, mounted), orphan layer, stale init.
store::PruneInput sample() {
    store::PruneInput in;
    in.images = {image("app", {d("base"), d("app")}), image("old", {d("base"), d("old")}),
                 image("lone", {d("lone")})};
    in.tags = {{"app:latest", d("app")}};
    in.in_use = {d("lone")};
    in.layers = {d("base"), d("app"), d("old"), d("lone"), d("orphan")};
    in.inits = {d("app"), d("old"), d("gone")};
    in.blobs = {d("app"), d("app-manifest"), d("old"), d("old-manifest"), d("lone"), d("stray")};
    return in;
}

}  // namespace

TEST_CASE("prune: dangling images go, tagged and used ones stay, and what only they needed") {
    store::PrunePlan plan = store::plan_prune(sample());
    CHECK(ids(plan.images) == std::vector<Digest>{d("old")});
    CHECK(plan.untagged.empty());
    // base stays (app lists it), old's own layer and the orphan go.
    CHECK(plan.layers.size() == 2);
    CHECK(has(plan.layers, d("old")));
    CHECK(has(plan.layers, d("orphan")));
    CHECK(plan.inits == std::vector<Digest>{d("old"), d("gone")});
    CHECK(plan.blobs.size() == 3);
    CHECK(has(plan.blobs, d("old")));
    CHECK(has(plan.blobs, d("old-manifest")));
    CHECK(has(plan.blobs, d("stray")));
}

TEST_CASE("prune -a: every image no mount or container uses") {
    store::PruneInput in = sample();
    in.all = true;
    store::PrunePlan plan = store::plan_prune(in);
    CHECK(ids(plan.images) == std::vector<Digest>{d("app"), d("old")});
    CHECK(plan.untagged[d("app")] == std::vector<std::string>{"app:latest"});
    CHECK(plan.layers.size() == 4);  // base, app, old, orphan: only lone's layer is still listed
    CHECK(!has(plan.layers, d("lone")));
    CHECK(!has(plan.blobs, d("lone")));

    in.in_use.insert(d("app"));  // a container of app: app and its layers stay
    plan = store::plan_prune(in);
    CHECK(ids(plan.images) == std::vector<Digest>{d("old")});
    CHECK(!has(plan.layers, d("base")));
    CHECK(!has(plan.inits, d("app")));
}

TEST_CASE("prune: an image in use whose record is gone keeps its init layer") {
    store::PruneInput in;
    in.in_use = {d("vanished")};
    in.inits = {d("vanished")};
    CHECK(store::plan_prune(in).inits.empty());
}

TEST_CASE("df: a layer two images share counts once in the total, as shared in each image") {
    store::UsageInput in;
    in.images = {image("app", {d("base"), d("app")}), image("old", {d("base"), d("old")})};
    in.tags = {{"app:latest", d("app")}, {"app:1", d("app")}};
    in.layer_sizes = {{d("base"), 1000}, {d("app"), 10}, {d("old"), 100}, {d("orphan"), 7}};
    in.in_use = {d("app")};
    in.containers = {{d("app"), 2}};
    store::Usage u = store::account_usage(in);
    REQUIRE(u.images.size() == 2);
    CHECK(u.images[0].size == 1010);
    CHECK(u.images[0].shared == 1000);
    CHECK(u.images[0].unique == 10);
    CHECK(u.images[0].containers == 2);
    CHECK(u.images[0].active);
    CHECK(u.images[0].tags == std::vector<std::string>{"app:1", "app:latest"});
    CHECK(u.images[1].size == 1100);
    CHECK(u.images[1].unique == 100);
    CHECK(!u.images[1].active);
    CHECK(u.images_size == 1110);  // base once
    CHECK(u.reclaimable == 100);   // only old's own layer: base is app's too
    CHECK(u.active_images == 1);
    CHECK(u.layers == 4);
    CHECK(u.shared_layers == 1);
    CHECK(u.shared_bytes == 1000);
    CHECK(u.unique_layers == 2);
    CHECK(u.unique_bytes == 110);
    CHECK(u.unreferenced_layers == 1);
    CHECK(u.unreferenced_bytes == 7);
    CHECK(u.active_layers == 2);
}

TEST_CASE("df: an image listing a layer twice counts it once") {
    store::UsageInput in;
    in.images = {image("twice", {d("x"), d("x")})};
    in.layer_sizes = {{d("x"), 5}};
    store::Usage u = store::account_usage(in);
    CHECK(u.images[0].size == 5);
    CHECK(u.images[0].shared == 0);
    CHECK(u.unique_layers == 1);
}

TEST_CASE("info: the driver a default mount would use, and why") {
    overlay::DriverFacts f;
    f.overlay_filesystem = true;
    f.lowerdir_plus = 0;
    auto c = overlay::explain_default_driver(f);
    CHECK(c.driver == overlay::Driver::Overlay);
    CHECK(c.lowers == "lowerdir+");
    CHECK(!c.user_xattr);
    f.lowerdir_plus = EINVAL;  // before 6.8
    CHECK(overlay::explain_default_driver(f).lowers == "mount-data");
    f.lowerdir_plus = EPERM;  // not allowed to probe: the release decides
    f.kernel_6_8 = true;
    CHECK(overlay::explain_default_driver(f).lowers == "lowerdir+");
    f.rootless = true;
    CHECK(overlay::explain_default_driver(f).user_xattr);
    f.fresh_user_namespace = true;
    CHECK(overlay::explain_default_driver(f).driver == overlay::Driver::Copy);
    f.fresh_user_namespace = false;
    f.overlay_filesystem = false;
    CHECK(overlay::explain_default_driver(f).driver == overlay::Driver::Copy);
}

TEST_CASE("info: cgroup version and controllers from the layout") {
    launch::CgroupLayout hybrid;
    launch::CgroupHierarchy cpu, mem, systemd, unified;
    cpu.controllers = {"cpu", "cpuacct"};
    mem.controllers = {"memory"};
    systemd.controllers = {"name=systemd"};
    unified.v2 = true;
    unified.mount_point = "/sys/fs/cgroup/unified";
    hybrid.hierarchies = {cpu, mem, systemd, unified};
    auto s = launch::summarize_cgroups(hybrid, "\n");
    CHECK(s.version == "hybrid");
    CHECK(s.v1_controllers == std::vector<std::string>{"cpu", "cpuacct", "memory"});
    CHECK(s.v2_mount == "/sys/fs/cgroup/unified");
    CHECK(s.v2_controllers.empty());
    launch::CgroupLayout v2;
    unified.mount_point = "/sys/fs/cgroup";
    v2.hierarchies = {unified};
    s = launch::summarize_cgroups(v2, "pids memory cpu\n");
    CHECK(s.version == "v2");
    CHECK(s.v2_controllers == std::vector<std::string>{"cpu", "memory", "pids"});
    CHECK(launch::summarize_cgroups({}, "").version == "none");
}

TEST_CASE("tree size: symlinks are not followed, hard links count once") {
    fs_test::Scratch scratch(fs_test::memory_parent());
    const std::string top = scratch.path() + "/tree";
    REQUIRE(::mkdir(top.c_str(), 0755) == 0);
    REQUIRE(::mkdir((top + "/sub").c_str(), 0755) == 0);
    { std::ofstream(top + "/sub/file") << std::string(1000, 'x'); }
    REQUIRE(::link((top + "/sub/file").c_str(), (top + "/again").c_str()) == 0);
    // A big tree outside, reached only through a symlink: never counted.
    REQUIRE(::mkdir((scratch.path() + "/outside").c_str(), 0755) == 0);
    { std::ofstream(scratch.path() + "/outside/big") << std::string(100000, 'y'); }
    const std::string target = scratch.path() + "/outside";
    REQUIRE(::symlink(target.c_str(), (top + "/link").c_str()) == 0);
    sys::TreeSize size = sys::tree_size_at(AT_FDCWD, top);
    CHECK(size.bytes == 1000 + target.size());
    CHECK(size.complete);
    CHECK(sys::tree_size_at(AT_FDCWD, top + "/link").bytes == target.size());  // the top itself a link
    CHECK(sys::tree_size_at(AT_FDCWD, top + "/missing").bytes == 0);
}
