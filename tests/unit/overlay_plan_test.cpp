// overlay::plan_overlay and friends: the mount is built as data, so every rule is checked here
// without privileges.
#include <doctest/doctest.h>

#include "imgtool/core/error.hpp"
#include "imgtool/overlay/plan.hpp"
#include "imgtool/sys/mountinfo.hpp"

using namespace imgtool;
using overlay::LayerRef;

namespace {
std::vector<LayerRef> layers(int n) {
    std::vector<LayerRef> out;
    for (int i = 1; i <= n; ++i) out.push_back({"/s/l" + std::to_string(i), false});
    return out;
}
}  // namespace

TEST_CASE("plan_overlay lists lowers top first and is read-only without an upper") {
    auto spec = overlay::plan_overlay(layers(3), std::nullopt, "/s/empty");
    CHECK(spec.fstype == "overlay");
    CHECK(spec.source == "imgtool");
    CHECK(spec.lowers == std::vector<std::string>{"/s/l3", "/s/l2", "/s/l1"});
    CHECK(spec.read_only);
    CHECK_FALSE(spec.upper.has_value());
}

TEST_CASE("a single visible layer without an upper gets the empty directory as second lower") {
    auto spec = overlay::plan_overlay(layers(1), std::nullopt, "/s/empty");
    CHECK(spec.lowers == std::vector<std::string>{"/s/l1", "/s/empty"});
    auto writable = overlay::plan_overlay(layers(1), overlay::UpperDirs{"/u", "/w"}, "/s/empty");
    CHECK(writable.lowers == std::vector<std::string>{"/s/l1"});
    CHECK_FALSE(writable.read_only);
}

TEST_CASE("a root-opaque layer hides every layer below it") {
    auto l = layers(4);
    l[2].root_opaque = true;  // the third layer from the bottom
    CHECK(overlay::visible_lowers(l) == std::vector<std::string>{"/s/l4", "/s/l3"});
    l[3].root_opaque = true;  // the top layer itself: only it remains, plus the empty bottom
    CHECK(overlay::plan_overlay(l, std::nullopt, "/e").lowers == std::vector<std::string>{"/s/l4", "/e"});
}

TEST_CASE("no layers and too many layers are clear errors") {
    CHECK_THROWS_AS(overlay::plan_overlay({}, std::nullopt, "/e"), Error);
    CHECK_NOTHROW(overlay::plan_overlay(layers(500), std::nullopt, "/e"));
    try {
        overlay::plan_overlay(layers(501), std::nullopt, "/e");
        FAIL("501 layers accepted");
    } catch (const Error& e) {
        CHECK((e.code() == make_error_code(Errc::Unsupported)));
    }
}

TEST_CASE("fsconfig parameters: source, one lowerdir+ per layer, then upper and work") {
    auto spec = overlay::plan_overlay(layers(2), overlay::UpperDirs{"/u", "/w"}, "/e");
    auto params = overlay::fsconfig_parameters(spec);
    REQUIRE(params.size() == 5);
    CHECK(params[0] == std::pair<std::string, std::string>{"source", "imgtool"});
    CHECK(params[1] == std::pair<std::string, std::string>{"lowerdir+", "/s/l2"});
    CHECK(params[2] == std::pair<std::string, std::string>{"lowerdir+", "/s/l1"});
    CHECK(params[3] == std::pair<std::string, std::string>{"upperdir", "/u"});
    CHECK(params[4] == std::pair<std::string, std::string>{"workdir", "/w"});
}

TEST_CASE("rootless views ask for userxattr, in both mount APIs") {
    auto spec = overlay::plan_overlay(layers(2), std::nullopt, "/e");
    CHECK(overlay::fsconfig_parameters(spec).back().first == "lowerdir+");
    spec.user_xattr = true;
    CHECK(overlay::fsconfig_parameters(spec).back() == std::pair<std::string, std::string>{"userxattr", ""});
    CHECK(overlay::legacy_mount_data(spec) == std::optional<std::string>("lowerdir=/s/l2:/s/l1,userxattr"));
}

TEST_CASE("legacy mount data escapes separators and refuses more than a page") {
    overlay::MountSpec spec;
    spec.lowers = {"/a:b", "/c,d", "/e\\f"};
    spec.upper = overlay::UpperDirs{"/u", "/w"};
    CHECK(overlay::legacy_mount_data(spec) == std::optional<std::string>("lowerdir=/a\\:b:/c\\,d:/e\\\\f,upperdir=/u,workdir=/w"));
    // 64-hex store paths: about 45 fit in a page, 200 do not.
    std::vector<LayerRef> many;
    for (int i = 0; i < 200; ++i) many.push_back({"/var/lib/imgtool/layers/" + std::string(64, 'a') + "/diff", false});
    CHECK_FALSE(overlay::legacy_mount_data(overlay::plan_overlay(many, std::nullopt, "/e")).has_value());
    many.resize(40);
    CHECK(overlay::legacy_mount_data(overlay::plan_overlay(many, std::nullopt, "/e")).has_value());
}

TEST_CASE("parse_mountinfo reads fields after the optional-fields separator and unescapes paths") {
    std::string text =
        "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n"
        "101 22 0:50 / /mnt/with\\040space rw,relatime - overlay imgtool ro,lowerdir=/a:/b\n"
        "garbage line\n"
        "102 22 0:51 / /x rw master:1 shared:2 - tmpfs tmpfs rw\n";
    auto m = sys::parse_mountinfo(text);
    REQUIRE(m.size() == 3);
    CHECK(m[0].mount_point == "/proc");
    CHECK(m[0].fstype == "proc");
    CHECK(m[1].id == 101);
    CHECK(m[1].parent == 22);
    CHECK(m[1].mount_point == "/mnt/with space");
    CHECK(m[1].fstype == "overlay");
    CHECK(m[1].source == "imgtool");
    CHECK(m[1].super_options == "ro,lowerdir=/a:/b");
    CHECK(m[2].fstype == "tmpfs");
}

TEST_CASE("a layer's skeleton is stacked right under it, and the copy driver never sees it") {
    std::vector<LayerRef> l = {{"/s/l1", false, ""}, {"/s/l2", false, "/s/k2"}, {"/s/l3", true, "/s/k3"},
                               {"/s/l4", false, "/s/k4"}};
    // Top first: each layer, then its skeleton; nothing under the opaque-rooted layer but its skeleton.
    CHECK(overlay::visible_lowers(l) == std::vector<std::string>{"/s/l4", "/s/k4", "/s/l3", "/s/k3"});
    CHECK(overlay::visible_layer_dirs(l) == std::vector<std::string>{"/s/l3", "/s/l4"});
    overlay::MountSpec spec = overlay::plan_overlay({{"/s/l1", false, "/s/k1"}}, std::nullopt, "/s/empty");
    CHECK(spec.lowers == std::vector<std::string>{"/s/l1", "/s/k1"});  // two lowers already: no empty/
}

#include "imgtool/overlay/driver.hpp"

TEST_CASE("one storage-driver rule for mount and run") {
    using overlay::Driver;
    auto plan = overlay::plan_driver("", false);
    CHECK((plan.first == Driver::Overlay && plan.fall_back_to_copy));
    plan = overlay::plan_driver("", true);  // --upper: only overlayfs has a separate upper
    CHECK((plan.first == Driver::Overlay && !plan.fall_back_to_copy));
    plan = overlay::plan_driver("overlay", false);  // asked for: its failure is the answer
    CHECK((plan.first == Driver::Overlay && !plan.fall_back_to_copy));
    plan = overlay::plan_driver("copy", false);
    CHECK((plan.first == Driver::Copy && !plan.fall_back_to_copy));
    CHECK_THROWS_AS(overlay::plan_driver("copy", true), Error);  // a copy has no separate upper
    CHECK_THROWS_AS(overlay::plan_driver("btrfs", false), Error);
}

TEST_CASE("a view's source names its store, for umount's message about another --root") {
    CHECK(overlay::view_source("/var/lib/imgtool") == "imgtool:/var/lib/imgtool");
    CHECK(overlay::view_source("") == "imgtool");
    CHECK(overlay::view_source("relative") == "imgtool");
    CHECK(overlay::view_source("/a\nb") == "imgtool");
    CHECK(overlay::view_source("/" + std::string(250, 'x')) == "imgtool");  // fsconfig's 256-byte strings
    CHECK(overlay::is_view_source("imgtool"));
    CHECK(overlay::is_view_source("imgtool:/s"));
    CHECK_FALSE(overlay::is_view_source("imgtoolx"));
    CHECK_FALSE(overlay::is_view_source("imgtool:"));
    CHECK_FALSE(overlay::is_view_source("overlay"));
    CHECK(overlay::store_of_view_source("imgtool:/var/tmp/a b") == std::optional<std::string>("/var/tmp/a b"));
    CHECK_FALSE(overlay::store_of_view_source("imgtool").has_value());
    CHECK_FALSE(overlay::store_of_view_source("tmpfs").has_value());
    CHECK(overlay::store_of_copy_tree("/var/tmp/s/mounts/m-1/tree") == std::optional<std::string>("/var/tmp/s"));
    CHECK(overlay::store_of_copy_tree("/mounts/m-1/tree") == std::optional<std::string>("/"));
    CHECK_FALSE(overlay::store_of_copy_tree("/var/tmp/s/m-1/tree").has_value());
    CHECK_FALSE(overlay::store_of_copy_tree("/var/tmp/s/mounts//tree").has_value());
    CHECK_FALSE(overlay::store_of_copy_tree("/srv/data").has_value());
}

TEST_CASE("a missing mount target or --upper: what to create") {
    CHECK(overlay::missing_directory_message("target", "/w/cp1", "/w/cp1") ==
          "target /w/cp1 does not exist; create it first (mkdir /w/cp1)");
    CHECK(overlay::missing_directory_message("upper directory", "/w/a/b", "/w/a") ==
          "upper directory /w/a/b does not exist (/w/a is missing); create it first (mkdir -p /w/a/b)");
    CHECK(overlay::missing_directory_message("upper directory", "/w/link", "/far") ==
          "upper directory /w/link does not exist (/far is missing); create it first");
    CHECK(overlay::missing_directory_message("target", "/w/ab", "/w/a") ==
          "target /w/ab does not exist (/w/a is missing); create it first");
}
