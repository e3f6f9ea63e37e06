// run's resource limits: docker's option syntax (parse_resource_limits), the cgroup layout read off a
// directory tree standing in for cgroupfs, the plan for cgroup v1, v2 and hybrid hosts, rootful and
// rootless, and the container's /sys/fs/cgroup.
#include <doctest/doctest.h>

#include "fs_test_support.hpp"
#include "test_support.hpp"

#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/launch/cgroup_plan.hpp"
#include "imgtool/launch/spec.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
using imgtool::launch::CgroupLayout;
using imgtool::launch::CgroupPlan;
using imgtool::launch::CgroupRequest;
using imgtool::launch::CgroupWrite;
using imgtool::launch::parse_bytes;
using imgtool::launch::parse_cgroup_layout;
using imgtool::launch::parse_resource_limits;
using imgtool::launch::plan_cgroup_fs;
using imgtool::launch::plan_cgroups;
using imgtool::launch::PlannedCgroup;
using imgtool::launch::read_v2_parents;
using imgtool::launch::ResourceLimits;
using imgtool::launch::RunOptions;
using imgtool::sys::MountInfo;
using Strings = std::vector<std::string>;
using test_support::thrown_code;

namespace {

const std::error_code kInvalid = make_error_code(Errc::InvalidArgument);
const std::error_code kUnsupported = make_error_code(Errc::Unsupported);

RunOptions limits_options(std::string memory, std::string swap = "", std::string cpus = "", std::string pids = "") {
    RunOptions o;
    o.memory = std::move(memory);
    o.memory_swap = std::move(swap);
    o.cpus = std::move(cpus);
    o.pids_limit = std::move(pids);
    return o;
}

std::string error_of(const RunOptions& o) {
    try {
        parse_resource_limits(o);
    } catch (const imgtool::Error& e) {
        return e.what();
    }
    return {};
}

std::string plan_error(const CgroupRequest& request, const CgroupLayout& layout) {
    try {
        plan_cgroups(request, layout);
    } catch (const imgtool::Error& e) {
        CHECK(e.code() == kUnsupported);
        return e.what();
    }
    return {};
}

MountInfo cgroup_mount(const std::string& point, const std::string& fstype, const std::string& super_options) {
    MountInfo m;
    m.root = "/";
    m.mount_point = point;
    m.fstype = fstype;
    m.super_options = super_options;
    return m;
}

Strings files_of(const PlannedCgroup& cg) {
    Strings out;
    for (const CgroupWrite& w : cg.writes) out.push_back(w.file + "=" + w.value);
    return out;
}

// A directory tree standing in for cgroupfs, with the files the layout is read from.
struct FakeCgroupFs {
    fs_test::Scratch dir{fs_test::memory_parent()};
    std::string path(const std::string& relative) const { return dir.path() + "/" + relative; }
    void cgroup(const std::string& relative, const std::string& controllers, const std::string& subtree) {
        fs_test::make_dir(dir.fd(), relative);
        fs_test::write_file(dir.fd(), relative + "/cgroup.controllers", controllers + "\n");
        fs_test::write_file(dir.fd(), relative + "/cgroup.subtree_control", subtree + "\n");
        fs_test::write_file(dir.fd(), relative + "/cgroup.procs", "");
    }
    void v1(const std::string& relative) { fs_test::make_dir(dir.fd(), relative); }
};

const ResourceLimits kAllLimits = parse_resource_limits(limits_options("64m", "", "1.5", "50"));

}  // namespace

// ---- the options -----------------------------------------------------------------------------------

TEST_CASE("--memory and --memory-swap take docker's sizes") {
    CHECK(parse_bytes("--memory", "1024") == 1024);
    CHECK(parse_bytes("--memory", "1b") == 1);
    CHECK(parse_bytes("--memory", "7k") == 7 * 1024);
    CHECK(parse_bytes("--memory", "64m") == 64 << 20);
    CHECK(parse_bytes("--memory", "64M") == 64 << 20);
    CHECK(parse_bytes("--memory", "2g") == 2LL << 30);
    CHECK(parse_bytes("--memory", "2gb") == 2LL << 30);
    CHECK(parse_bytes("--memory", "2GiB") == 2LL << 30);
    CHECK(parse_bytes("--memory", "1.5g") == 3LL << 29);
    CHECK(parse_bytes("--memory", "1t") == 1LL << 40);
    for (const char* bad : {"", "12q", "m", "-5m", "1..5g", "1.5.2g", "0x10", "10 m", "1e9", "64mm", "1.2345g"}) {
        CAPTURE(bad);
        CHECK(thrown_code([&] { parse_bytes("--memory", bad); }) == kInvalid);
    }
    CHECK(thrown_code([] { parse_bytes("--memory", "9999999999999p"); }) == kInvalid);
}

TEST_CASE("--memory-swap is memory plus swap, twice --memory by default, as docker") {
    ResourceLimits only_memory = parse_resource_limits(limits_options("64m"));
    CHECK(only_memory.memory == 64 << 20);
    CHECK(only_memory.memory_swap == 128 << 20);
    CHECK_FALSE(only_memory.memory_swap_given);
    ResourceLimits no_swap = parse_resource_limits(limits_options("64m", "64m"));
    CHECK(no_swap.memory_swap == 64 << 20);
    CHECK(no_swap.memory_swap_given);
    CHECK(parse_resource_limits(limits_options("64m", "-1")).memory_swap == -1);
    // 0 means not given, also in docker.
    CHECK(parse_resource_limits(limits_options("64m", "0")).memory_swap == 128 << 20);
    // Unlimited swap without a memory limit is no limit at all.
    CHECK_FALSE(parse_resource_limits(limits_options("", "-1")).any());
    CHECK(error_of(limits_options("64m", "32m")) == "--memory-swap 32m: is memory plus swap: at least --memory");
    CHECK(error_of(limits_options("", "1g")) == "--memory-swap 1g: needs --memory (it is memory plus swap)");
    CHECK(error_of(limits_options("64m", "-2")).rfind("--memory-swap -2: not a size", 0) == 0);
    CHECK(error_of(limits_options("1m")) == "--memory 1m: the minimum is 6m");
    CHECK(error_of(limits_options("12q")) ==
          "--memory 12q: not a size (a number with an optional unit b, k, m, g, t, p)");
    CHECK_FALSE(parse_resource_limits(limits_options("0")).any());
}

TEST_CASE("--cpus is a CFS quota per 100 ms period, --pids-limit -1 or 0 is unlimited") {
    ResourceLimits l = parse_resource_limits(limits_options("", "", "1.5", "100"));
    CHECK(l.cpu_quota == 150000);
    CHECK(l.cpu_period == 100000);
    CHECK(l.pids == 100);
    CHECK(parse_resource_limits(limits_options("", "", "0.01")).cpu_quota == 1000);
    CHECK(parse_resource_limits(limits_options("", "", "2")).cpu_quota == 200000);
    CHECK_FALSE(parse_resource_limits(limits_options("", "", "0")).any());
    CHECK_FALSE(parse_resource_limits(limits_options("", "", "", "-1")).any());
    CHECK_FALSE(parse_resource_limits(limits_options("", "", "", "0")).any());
    CHECK(error_of(limits_options("", "", "0.001")) == "--cpus 0.001: the minimum is 0.01");
    RunOptions two_cpus = limits_options("", "", "2.5");
    CHECK(parse_resource_limits(two_cpus).cpu_quota == 250000);  // unchecked without the host's count
    two_cpus.host_cpus = 2;
    CHECK(error_of(two_cpus) == "--cpus 2.5: the range is 0.01 to 2.00, as this host has 2 CPUs");
    two_cpus.cpus = "2";
    CHECK(parse_resource_limits(two_cpus).cpu_quota == 200000);
    for (const char* bad : {"-1", "1,5", "one", "1.5.0", ".", "1e3"}) {
        CAPTURE(bad);
        CHECK(thrown_code([&] { parse_resource_limits(limits_options("", "", bad)); }) == kInvalid);
    }
    for (const char* bad : {"-2", "ten", "1.5", "99999999999999999999"}) {
        CAPTURE(bad);
        CHECK(error_of(limits_options("", "", "", bad)).rfind(std::string("--pids-limit ") + bad + ":", 0) == 0);
    }
}

TEST_CASE("spec_from_image carries the limits, and none by default") {
    imgtool::image::ContainerConfig config;
    config.cmd = Strings{"true"};
    RunOptions o;
    o.default_hostname = "abc";
    CHECK_FALSE(imgtool::launch::spec_from_image(config, o).limits.any());
    o.pids_limit = "7";
    CHECK(imgtool::launch::spec_from_image(config, o).limits.pids == 7);
    o.memory = "12q";
    CHECK(thrown_code([&] { imgtool::launch::spec_from_image(config, o); }) == kInvalid);
}

// ---- the layout --------------------------------------------------------------------------------------

TEST_CASE("the layout of a hybrid host: v1 controllers, v2 on /sys/fs/cgroup/unified") {
    const std::string proc = "9:name=systemd:/\n8:pids:/\n5:devices:/\n4:memory:/job/42\n2:cpu,cpuacct:/\n0::/\n";
    std::vector<MountInfo> mounts{cgroup_mount("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
                                  cgroup_mount("/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
                                  cgroup_mount("/sys/fs/cgroup/devices", "cgroup", "rw,devices"),
                                  cgroup_mount("/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
                                  cgroup_mount("/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"),
                                  cgroup_mount("/sys/fs/cgroup/unified", "cgroup2", "rw")};
    CgroupLayout layout = parse_cgroup_layout(proc, mounts, true);
    REQUIRE(layout.hierarchies.size() == 6);
    CHECK(layout.hierarchies[0].controllers == Strings{"name=systemd"});
    CHECK(layout.hierarchies[0].own == "/sys/fs/cgroup/systemd");
    CHECK(layout.hierarchies[3].own == "/sys/fs/cgroup/memory/job/42");
    CHECK_FALSE(layout.hierarchies[3].own_is_root);
    CHECK(layout.hierarchies[4].controllers == Strings{"cpu", "cpuacct"});
    CHECK(layout.hierarchies[5].v2);
    CHECK(layout.hierarchies[5].own == "/sys/fs/cgroup/unified");
    CHECK(layout.hierarchies[5].own_is_root);
}

TEST_CASE("hierarchies not mounted, or mounted out of imgtool's view, are left out") {
    MountInfo sub = cgroup_mount("/mnt/sub", "cgroup2", "rw");
    sub.root = "/other";
    CgroupLayout layout = parse_cgroup_layout("4:memory:/a\n0::/mine/x\n", {sub}, true);
    CHECK(layout.hierarchies.empty());
    sub.root = "/mine";
    layout = parse_cgroup_layout("0::/mine/x\n", {sub}, true);
    REQUIRE(layout.hierarchies.size() == 1);
    CHECK(layout.hierarchies[0].own == "/mnt/sub/x");
}

// ---- cgroup v2 ---------------------------------------------------------------------------------------

TEST_CASE("cgroup v2: limits go into a sibling of imgtool's cgroup, with what the parent has delegated") {
    FakeCgroupFs fs;
    fs.cgroup("v2", "cpuset cpu io memory hugetlb pids", "cpu memory pids");
    fs.cgroup("v2/user.slice", "cpu memory pids", "memory");
    fs.cgroup("v2/user.slice/session-1.scope", "memory", "");
    CgroupLayout layout = parse_cgroup_layout("0::/user.slice/session-1.scope\n",
                                              {cgroup_mount(fs.path("v2"), "cgroup2", "rw,nsdelegate")}, true);
    read_v2_parents(layout);
    REQUIRE(layout.hierarchies.size() == 1);
    REQUIRE(layout.hierarchies[0].parent);
    CHECK(layout.hierarchies[0].parent->path == fs.path("v2/user.slice"));
    CHECK(layout.hierarchies[0].parent->controllers == Strings{"cpu", "memory", "pids"});
    CHECK(layout.hierarchies[0].parent->subtree_control == Strings{"memory"});

    CgroupPlan plan = plan_cgroups({true, kAllLimits, "imgtool-1-a"}, layout);
    REQUIRE(plan.cgroups.size() == 1);
    const PlannedCgroup& cg = plan.cgroups[0];
    CHECK(cg.v2);
    CHECK(cg.devices);
    CHECK(cg.required);
    CHECK(cg.path() == fs.path("v2/user.slice/imgtool-1-a"));
    CHECK(cg.enable == Strings{"cpu", "pids"});  // memory is on already
    // memory.swap.max is swap alone: docker's default memory+swap is twice memory.
    CHECK(files_of(cg) == Strings{"memory.max=67108864", "memory.swap.max=67108864", "cpu.max=150000 100000", "pids.max=50"});
    CHECK(cg.writes[1].optional);
    CHECK(plan.no_devices.empty());
    CHECK(plan_cgroup_fs(plan.cgroups).mounts.at(1).dir == "unified");  // not mounted on /sys/fs/cgroup here

    ResourceLimits swap = parse_resource_limits(limits_options("64m", "96m"));
    CHECK(files_of(plan_cgroups({false, swap, "n"}, layout).cgroups.at(0)) ==
          Strings{"memory.max=67108864", "memory.swap.max=33554432"});
    swap = parse_resource_limits(limits_options("64m", "-1"));
    CgroupPlan unlimited = plan_cgroups({false, swap, "n"}, layout);
    CHECK(unlimited.cgroups.at(0).writes.at(1).value == "max");
    CHECK_FALSE(unlimited.cgroups.at(0).writes.at(1).optional);
}

TEST_CASE("cgroup v2: without limits the device cgroup stays a child of imgtool's, with no controller") {
    FakeCgroupFs fs;
    fs.cgroup("v2", "cpu memory pids", "");
    fs.cgroup("v2/a", "", "");
    CgroupLayout layout = parse_cgroup_layout("0::/a\n", {cgroup_mount(fs.path("v2"), "cgroup2", "rw")}, true);
    CgroupPlan plan = plan_cgroups({true, {}, "imgtool-1-a"}, layout);
    REQUIRE(plan.cgroups.size() == 1);
    CHECK(plan.cgroups[0].path() == fs.path("v2/a/imgtool-1-a"));
    CHECK_FALSE(plan.cgroups[0].required);
    CHECK(plan.cgroups[0].enable.empty());
    CHECK(plan.cgroups[0].writes.empty());
}

TEST_CASE("cgroup v2: imgtool in the root cgroup makes a child and enables what the root offers") {
    FakeCgroupFs fs;
    fs.cgroup("v2", "cpu memory pids", "");
    CgroupLayout layout = parse_cgroup_layout("0::/\n", {cgroup_mount("/sys/fs/cgroup", "cgroup2", "rw")}, true);
    layout.hierarchies.at(0).own = fs.path("v2");  // the tree stands in for /sys/fs/cgroup
    read_v2_parents(layout);
    CgroupPlan plan = plan_cgroups({true, parse_resource_limits(limits_options("", "", "", "9")), "x"}, layout);
    REQUIRE(plan.cgroups.size() == 1);
    CHECK(plan.cgroups[0].parent == fs.path("v2"));
    CHECK(plan.cgroups[0].enable == Strings{"pids"});
    // The host mounts v2 on /sys/fs/cgroup: so does the container, directly.
    auto mounts = plan_cgroup_fs(plan.cgroups).mounts;
    REQUIRE(mounts.size() == 1);
    CHECK(mounts[0].dir == "");
    CHECK(mounts[0].fstype == "cgroup2");
}

TEST_CASE("cgroup v2: a controller the parent does not offer is one clear error") {
    FakeCgroupFs fs;
    fs.cgroup("v2", "cpu memory pids", "memory");
    fs.cgroup("v2/user", "memory", "");
    fs.cgroup("v2/user/me", "", "");
    CgroupLayout layout = parse_cgroup_layout("0::/user/me\n", {cgroup_mount(fs.path("v2"), "cgroup2", "rw")}, true);
    read_v2_parents(layout);
    CHECK(plan_error({true, kAllLimits, "x"}, layout) ==
          "--cpus: no cgroup controller can enforce it here: cgroup v2 " + fs.path("v2/user") +
              " offers only memory; no cgroup v1 cpu hierarchy is mounted");
    // Asked for nothing it cannot do: fine.
    CHECK(plan_cgroups({true, parse_resource_limits(limits_options("64m")), "x"}, layout).cgroups.size() == 1);
}

TEST_CASE("cgroup v2 rootless: limits only where the parent is delegated, and no device rules") {
    FakeCgroupFs fs;
    fs.cgroup("v2", "cpu memory pids", "cpu memory pids");
    fs.cgroup("v2/user@1000.service", "cpu memory pids", "memory pids");
    fs.cgroup("v2/user@1000.service/app.scope", "memory pids", "");
    CgroupLayout layout = parse_cgroup_layout("0::/user@1000.service/app.scope\n",
                                              {cgroup_mount(fs.path("v2"), "cgroup2", "rw")}, false);
    read_v2_parents(layout);
    REQUIRE(layout.hierarchies.at(0).parent->writable);  // the test's own files
    ResourceLimits pids = parse_resource_limits(limits_options("", "", "", "20"));
    CgroupPlan plan = plan_cgroups({true, pids, "imgtool-5-b"}, layout);
    REQUIRE(plan.cgroups.size() == 1);
    CHECK_FALSE(plan.cgroups[0].devices);
    CHECK(plan.cgroups[0].parent == fs.path("v2/user@1000.service"));
    CHECK(plan.no_devices == "imgtool runs in a user namespace");

    layout.hierarchies.at(0).parent->writable = false;  // a login session's scope: not delegated
    CHECK(plan_error({true, pids, "x"}, layout) ==
          "--pids-limit: no cgroup controller can enforce it here: cgroup v2 " + fs.path("v2/user@1000.service") +
              " is not delegated to you (its directory, cgroup.subtree_control and cgroup.procs must be writable); "
              "no cgroup v1 pids hierarchy is mounted");
}

// ---- cgroup v1 and hybrid -----------------------------------------------------------------------------

TEST_CASE("cgroup v1: one child of imgtool's cgroup per hierarchy that enforces something") {
    FakeCgroupFs fs;
    for (const char* d : {"memory", "memory/job", "cpu,cpuacct", "pids", "devices", "freezer"}) fs.v1(d);
    const std::string proc = "6:freezer:/\n5:devices:/\n4:pids:/\n3:memory:/job\n2:cpu,cpuacct:/\n";
    std::vector<MountInfo> mounts{cgroup_mount(fs.path("memory"), "cgroup", "rw,memory"),
                                  cgroup_mount(fs.path("cpu,cpuacct"), "cgroup", "rw,cpu,cpuacct"),
                                  cgroup_mount(fs.path("pids"), "cgroup", "rw,pids"),
                                  cgroup_mount(fs.path("devices"), "cgroup", "rw,devices"),
                                  cgroup_mount(fs.path("freezer"), "cgroup", "rw,freezer")};
    CgroupLayout layout = parse_cgroup_layout(proc, mounts, true);
    read_v2_parents(layout);  // nothing to read: no v2
    CgroupPlan plan = plan_cgroups({true, kAllLimits, "imgtool-7-c"}, layout);
    REQUIRE(plan.cgroups.size() == 4);  // not freezer
    CHECK(plan.cgroups[0].path() == fs.path("devices/imgtool-7-c"));
    CHECK(plan.cgroups[0].devices);
    CHECK_FALSE(plan.cgroups[0].required);
    CHECK(plan.cgroups[1].path() == fs.path("pids/imgtool-7-c"));
    CHECK(files_of(plan.cgroups[1]) == Strings{"pids.max=50"});
    CHECK(plan.cgroups[2].path() == fs.path("memory/job/imgtool-7-c"));
    // The limit before memory+swap: the kernel wants memsw >= limit at every step.
    CHECK(files_of(plan.cgroups[2]) == Strings{"memory.limit_in_bytes=67108864", "memory.memsw.limit_in_bytes=134217728"});
    CHECK(plan.cgroups[2].writes[1].optional);
    CHECK(files_of(plan.cgroups[3]) == Strings{"cpu.cfs_period_us=100000", "cpu.cfs_quota_us=150000"});
    for (const auto& cg : plan.cgroups) CHECK(cg.enable.empty());

    // Explicit memory+swap is not optional; -1 is the v1 spelling of unlimited.
    CgroupPlan swap = plan_cgroups({false, parse_resource_limits(limits_options("64m", "-1")), "n"}, layout);
    REQUIRE(swap.cgroups.size() == 1);
    CHECK(files_of(swap.cgroups[0]) == Strings{"memory.limit_in_bytes=67108864", "memory.memsw.limit_in_bytes=-1"});
    CHECK_FALSE(swap.cgroups[0].writes[1].optional);

    // Nothing asked and --privileged: nothing planned.
    CHECK(plan_cgroups({false, {}, "n"}, layout).cgroups.empty());
}

TEST_CASE("hybrid: v2 offers only hugetlb, so v1 carries the limits and v2 the BPF device filter") {
    FakeCgroupFs fs;
    fs.v1("memory");
    fs.v1("devices");
    fs.cgroup("unified", "hugetlb", "");
    const std::string proc = "5:devices:/\n4:memory:/\n0::/\n";
    std::vector<MountInfo> mounts{cgroup_mount(fs.path("memory"), "cgroup", "rw,memory"),
                                  cgroup_mount(fs.path("devices"), "cgroup", "rw,devices"),
                                  cgroup_mount(fs.path("unified"), "cgroup2", "rw")};
    CgroupLayout layout = parse_cgroup_layout(proc, mounts, true);
    read_v2_parents(layout);
    ResourceLimits memory = parse_resource_limits(limits_options("64m"));
    CgroupPlan plan = plan_cgroups({true, memory, "imgtool-9-d"}, layout);
    REQUIRE(plan.cgroups.size() == 3);
    CHECK(plan.cgroups[0].controllers == Strings{"devices"});
    CHECK(plan.cgroups[1].controllers == Strings{"memory"});
    CHECK(plan.cgroups[1].required);
    CHECK(plan.cgroups[2].v2);
    CHECK(plan.cgroups[2].path() == fs.path("unified/imgtool-9-d"));  // a child: it enforces no limit
    CHECK_FALSE(plan.cgroups[2].required);

    // Rootless on this host: nothing can be delegated.
    layout.initial_user_namespace = false;
    CHECK(plan_error({false, memory, "x"}, layout) ==
          "--memory: no cgroup controller can enforce it here: cgroup v2 " + fs.path("unified") +
              " offers only hugetlb; cgroup v1 memory is never delegated to rootless imgtool");
    // And without limits rootless needs no cgroup at all.
    CHECK(plan_cgroups({false, {}, "x"}, layout).cgroups.empty());
}

TEST_CASE("no hierarchy at all: limits are an error, device rules a note") {
    CgroupLayout none;
    CHECK(plan_error({true, kAllLimits, "x"}, none) ==
          "--memory: no cgroup controller can enforce it here: no cgroup v2 hierarchy is mounted; "
          "no cgroup v1 memory hierarchy is mounted");
    CgroupPlan plan = plan_cgroups({true, {}, "x"}, none);
    CHECK(plan.cgroups.empty());
    CHECK(plan.no_devices == "no cgroup v1 devices or cgroup v2 hierarchy is mounted");
}

// ---- /sys/fs/cgroup in the container -------------------------------------------------------------------

TEST_CASE("the container's /sys/fs/cgroup: runc's v1 layout for the hierarchies it has a cgroup in") {
    std::vector<MountInfo> mounts{cgroup_mount("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
                                  cgroup_mount("/sys/fs/cgroup/devices", "cgroup", "rw,devices"),
                                  cgroup_mount("/sys/fs/cgroup/unified", "cgroup2", "rw")};
    CgroupLayout layout = parse_cgroup_layout("5:devices:/\n2:cpu,cpuacct:/\n0::/\n", mounts, true);
    CgroupPlan plan = plan_cgroups({true, parse_resource_limits(limits_options("", "", "1")), "n"}, layout);
    auto fs_plan = plan_cgroup_fs(plan.cgroups);
    REQUIRE(fs_plan.tmpfs());
    REQUIRE(fs_plan.mounts.size() == 4);
    CHECK(fs_plan.mounts[1].dir == "devices");
    CHECK(fs_plan.mounts[1].fstype == "cgroup");
    CHECK(fs_plan.mounts[1].parameters == std::vector<imgtool::sys::FsParameter>{{"source", "cgroup"}, {"devices", ""}});
    CHECK(fs_plan.mounts[2].dir == "cpu,cpuacct");
    CHECK(fs_plan.mounts[2].parameters ==
          std::vector<imgtool::sys::FsParameter>{{"source", "cgroup"}, {"cpu", ""}, {"cpuacct", ""}});
    CHECK(fs_plan.mounts[3].dir == "unified");
    CHECK(fs_plan.mounts[3].fstype == "cgroup2");
    CHECK(fs_plan.links == std::vector<std::pair<std::string, std::string>>{{"cpu", "cpu,cpuacct"}, {"cpuacct", "cpu,cpuacct"}});
    // No cgroup of its own: nothing mounted.
    CHECK(plan_cgroup_fs({}).mounts.empty());
}
