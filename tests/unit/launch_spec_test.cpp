// spec_from_image: an image's container config and run's options to a LaunchSpec, docker's rules.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cstdint>
#include <optional>
#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/launch/config.hpp"
#include "imgtool/launch/spec.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
using imgtool::image::ContainerConfig;
using imgtool::launch::LaunchSpec;
using imgtool::launch::RunOptions;
using imgtool::launch::spec_from_image;
using imgtool::launch::TmpfsSpec;
using imgtool::launch::parse_tmpfs;
using imgtool::launch::hosts_file;
using imgtool::launch::resolv_conf;
using Strings = std::vector<std::string>;
using test_support::thrown_code;

namespace {

const std::error_code kInvalid = make_error_code(Errc::InvalidArgument);
const std::string kPath(imgtool::launch::kDefaultPath);

ContainerConfig image_with(std::optional<Strings> entrypoint, std::optional<Strings> cmd) {
    ContainerConfig c;
    c.entrypoint = std::move(entrypoint);
    c.cmd = std::move(cmd);
    return c;
}

ContainerConfig sh_image() {
    return image_with(std::nullopt, Strings{"/bin/sh"});
}

RunOptions options() {
    RunOptions o;
    o.default_hostname = "0123456789ab";
    return o;
}

Strings argv_of(const ContainerConfig& c, std::optional<std::string> entrypoint, Strings command) {
    RunOptions o = options();
    o.entrypoint = std::move(entrypoint);
    o.command = std::move(command);
    return spec_from_image(c, o).argv;
}

std::error_code spec_code(const ContainerConfig& c, const RunOptions& o) {
    return thrown_code([&] { (void)spec_from_image(c, o); });
}

}  // namespace

TEST_CASE("spec_from_image: argv from Entrypoint, Cmd, --entrypoint and COMMAND as docker composes it") {
    const ContainerConfig both = image_with(Strings{"/entry", "-x"}, Strings{"default", "args"});
    CHECK(argv_of(both, std::nullopt, {}) == Strings{"/entry", "-x", "default", "args"});
    CHECK(argv_of(both, std::nullopt, {"mine"}) == Strings{"/entry", "-x", "mine"});  // COMMAND replaces Cmd
    // --entrypoint replaces Entrypoint and drops the image's Cmd.
    CHECK(argv_of(both, "/other", {}) == Strings{"/other"});
    CHECK(argv_of(both, "/other", {"a", "b"}) == Strings{"/other", "a", "b"});
    // --entrypoint "" clears it: COMMAND alone is run, and without one there is nothing to run.
    CHECK(argv_of(both, "", {"/bin/true"}) == Strings{"/bin/true"});
    CHECK(spec_code(both, [] {
              RunOptions o = options();
              o.entrypoint = "";
              return o;
          }()) == kInvalid);

    const ContainerConfig cmd_only = image_with(std::nullopt, Strings{"/bin/sh", "-c", "echo"});
    CHECK(argv_of(cmd_only, std::nullopt, {}) == Strings{"/bin/sh", "-c", "echo"});
    CHECK(argv_of(cmd_only, std::nullopt, {"ls", "-l"}) == Strings{"ls", "-l"});
    CHECK(argv_of(cmd_only, "/bin/echo", {}) == Strings{"/bin/echo"});

    const ContainerConfig entry_only = image_with(Strings{"/entry"}, std::nullopt);
    CHECK(argv_of(entry_only, std::nullopt, {}) == Strings{"/entry"});
    CHECK(argv_of(entry_only, std::nullopt, {"x"}) == Strings{"/entry", "x"});

    // An absent and an empty Entrypoint or Cmd mean the same.
    for (const auto& ep : {std::optional<Strings>{}, std::optional<Strings>{Strings{}}}) {
        for (const auto& cmd : {std::optional<Strings>{}, std::optional<Strings>{Strings{}}}) {
            ContainerConfig c = image_with(ep, cmd);
            CHECK(spec_code(c, options()) == kInvalid);  // nothing to run
            CHECK(argv_of(c, std::nullopt, {"/bin/true"}) == Strings{"/bin/true"});
            CHECK(argv_of(c, "/bin/echo", {"hi"}) == Strings{"/bin/echo", "hi"});
        }
    }
    CHECK(argv_of(image_with(Strings{}, Strings{"sh"}), std::nullopt, {}) == Strings{"sh"});
    CHECK(argv_of(image_with(Strings{"/e"}, Strings{}), std::nullopt, {}) == Strings{"/e"});
}

TEST_CASE("spec_from_image: environment, image < env files < -e, then PATH, HOSTNAME, TERM defaults") {
    ContainerConfig c = sh_image();
    c.env = Strings{"PATH=/img/bin", "IMAGE=1", "GREETING=image", "OVER=image"};
    RunOptions o = options();
    o.env_files = {"# comment\n\nGREETING=file1\nOVER=file1\n  INDENTED=yes\r\n", "OVER=file2\nFILE2=2\n"};
    o.env = {"OVER=cli", "FROM_HOST", "NOT_ON_HOST", "EMPTY="};
    o.host_env = {"FROM_HOST=host value", "LEAK=no"};
    LaunchSpec s = spec_from_image(c, o);
    CHECK(s.env == Strings{"PATH=/img/bin", "IMAGE=1", "GREETING=file1", "OVER=cli", "INDENTED=yes",
                           "FILE2=2", "FROM_HOST=host value", "EMPTY=", "HOSTNAME=0123456789ab"});

    // No Env at all: PATH gets docker's default; HOSTNAME follows --hostname; TERM only with -t.
    RunOptions bare = options();
    CHECK(spec_from_image(sh_image(), bare).env == Strings{kPath, "HOSTNAME=0123456789ab"});
    bare.hostname = "box";
    bare.tty = true;
    CHECK(spec_from_image(sh_image(), bare).env == Strings{kPath, "HOSTNAME=box", "TERM=xterm"});
    // What the image or the user set wins over every default.
    RunOptions set = options();
    set.tty = true;
    set.env = {"PATH=/mine", "HOSTNAME=named", "TERM=dumb"};
    LaunchSpec named = spec_from_image(sh_image(), set);
    CHECK(named.env == Strings{"PATH=/mine", "HOSTNAME=named", "TERM=dumb"});
    CHECK(named.hostname == "0123456789ab");  // the UTS name is not the variable
    ContainerConfig empty_env = sh_image();
    empty_env.env = Strings{};
    CHECK(spec_from_image(empty_env, options()).env == Strings{kPath, "HOSTNAME=0123456789ab"});

    // A variable without a name is refused, from -e or from a file.
    RunOptions bad = options();
    bad.env = {"=x"};
    CHECK(spec_code(sh_image(), bad) == kInvalid);
    bad = options();
    bad.env_files = {"A=1\n=x\n"};
    CHECK(spec_code(sh_image(), bad) == kInvalid);
}

TEST_CASE("spec_from_image: -w over WorkingDir over /, always absolute") {
    ContainerConfig c = sh_image();
    CHECK(spec_from_image(c, options()).workdir == "/");
    c.working_dir = "";
    CHECK(spec_from_image(c, options()).workdir == "/");
    c.working_dir = "/srv";
    CHECK(spec_from_image(c, options()).workdir == "/srv");
    RunOptions o = options();
    o.workdir = "/etc";
    CHECK(spec_from_image(c, o).workdir == "/etc");
    o.workdir = "relative";
    CHECK(spec_code(c, o) == kInvalid);
    c.working_dir = "srv";  // the image's own must be absolute too
    CHECK(spec_code(c, options()) == kInvalid);
    o.workdir = "/ok";  // unless -w replaces it
    CHECK(spec_from_image(c, o).workdir == "/ok");
}

TEST_CASE("spec_from_image: -u over the image's User; host name") {
    ContainerConfig c = sh_image();
    CHECK(spec_from_image(c, options()).user.empty());
    c.user = "app:staff";
    CHECK(spec_from_image(c, options()).user == "app:staff");
    RunOptions o = options();
    o.user = "1000";
    CHECK(spec_from_image(c, o).user == "1000");

    CHECK(spec_from_image(c, options()).hostname == "0123456789ab");
    o.hostname = "box-x";
    CHECK(spec_from_image(c, o).hostname == "box-x");
}

TEST_CASE("spec_from_image: capabilities, --privileged, --cap-add / --cap-drop") {
    using imgtool::launch::all_capabilities;
    using imgtool::launch::default_capabilities;
    const std::uint64_t sys_admin = 1ULL << 21, net_raw = 1ULL << 13;
    RunOptions o = options();
    LaunchSpec s = spec_from_image(sh_image(), o);
    CHECK(s.capabilities == default_capabilities());
    CHECK_FALSE(s.privileged);
    o.cap_add = {"SYS_ADMIN"};
    o.cap_drop = {"net_raw"};
    CHECK(spec_from_image(sh_image(), o).capabilities == ((default_capabilities() | sys_admin) & ~net_raw));
    o.cap_add = {"NOPE"};
    CHECK(spec_code(sh_image(), o) == kInvalid);
    // --privileged: everything; --cap-add/--cap-drop are not even looked at.
    o.privileged = true;
    o.cap_drop = {"ALL"};
    LaunchSpec p = spec_from_image(sh_image(), o);
    CHECK(p.capabilities == all_capabilities());
    CHECK(p.privileged);
}

TEST_CASE("spec_from_image: volumes, tmpfs, network and flags") {
    RunOptions o = options();
    o.volumes = {"/host:/data", "rel/host:/ro:ro", "/h:/rw:rw"};
    o.tmpfs = {"/scratch", "/run"};
    LaunchSpec s = spec_from_image(sh_image(), o);
    REQUIRE(s.volumes.size() == 3);
    CHECK((s.volumes[0].host == "/host" && s.volumes[0].container == "/data" && !s.volumes[0].read_only));
    CHECK((s.volumes[1].host == "rel/host" && s.volumes[1].container == "/ro" && s.volumes[1].read_only));
    CHECK((s.volumes[2].container == "/rw" && !s.volumes[2].read_only));
    REQUIRE(s.tmpfs.size() == 2);
    CHECK((s.tmpfs[0].path == "/scratch" && s.tmpfs[1].path == "/run"));

    for (const char* bad : {"/only", "", ":/data", "/host:", "/host:data", "/host:/data:rx",
                            "/host:/data:ro:x", "/host:/data:"}) {
        CAPTURE(bad);
        RunOptions v = options();
        v.volumes = {"/fine:/fine", bad};
        CHECK(spec_code(sh_image(), v) == kInvalid);
    }
    for (const char* bad : {"", "scratch", "./x"}) {
        CAPTURE(bad);
        RunOptions t = options();
        t.tmpfs = {bad};
        CHECK(spec_code(sh_image(), t) == kInvalid);
    }

    CHECK_FALSE(s.new_network);
    o.net = "none";
    CHECK(spec_from_image(sh_image(), o).new_network);
    o.net = "bridge";
    CHECK(spec_code(sh_image(), o) == kInvalid);

    CHECK_FALSE((s.read_only_root || s.tty || s.interactive || s.init));
    RunOptions f = options();
    f.read_only = f.tty = f.interactive = f.init = true;
    LaunchSpec flags = spec_from_image(sh_image(), f);
    CHECK((flags.read_only_root && flags.tty && flags.interactive && flags.init));
    // What only the caller can supply is left for it.
    CHECK(flags.root_dir.empty());
    CHECK_FALSE(flags.mount_root);
    CHECK_FALSE(flags.on_started);
}

TEST_CASE("parse_tmpfs: docker's PATH[:OPTIONS]") {
    using Options = std::vector<std::pair<std::string, std::string>>;
    TmpfsSpec plain = parse_tmpfs("/run");
    CHECK(plain.path == "/run");
    CHECK(plain.options == Options{{"mode", "1777"}});
    CHECK_FALSE((plain.exec || plain.suid || plain.read_only));  // docker: noexec, nosuid

    TmpfsSpec t = parse_tmpfs("/run:size=1m,mode=700,uid=1000,gid=1000,exec,ro,nr_inodes=10k,nosuid,nodev");
    CHECK(t.path == "/run");
    CHECK(t.options == Options{{"size", "1m"}, {"mode", "700"}, {"uid", "1000"}, {"gid", "1000"}, {"nr_inodes", "10k"}});
    CHECK((t.exec && t.read_only && !t.suid));
    CHECK(parse_tmpfs("/x:size=50%").options.front() == std::pair<std::string, std::string>{"size", "50%"});
    CHECK(parse_tmpfs("/x:suid,noexec,rw").suid);

    for (const char* bad : {"", "run", ":size=1m", "/run:size=", "/run:size=1x", "/run:size=-1", "/run:mode=8",
                            "/run:mode=17777", "/run:uid=root", "/run:dev", "/run:bogus", "/run:size=1m,",
                            "/run:nr_inodes=50%", "/run:mpol=bind"}) {
        CAPTURE(bad);
        CHECK(thrown_code([&] { parse_tmpfs(bad); }) == kInvalid);
    }
    for (const char* bad : {"/", "//"}) CHECK(thrown_code([&] { parse_tmpfs(bad); }) == kInvalid);
    // The message names the bad option.
    CHECK_THROWS_WITH_AS(parse_tmpfs("/run:size=lots"), doctest::Contains("bad option \"size=lots\""), imgtool::Error);
}

TEST_CASE("hosts_file: localhost, the host name, --add-host") {
    std::string text = hosts_file("c0ffee123456", {"db:10.0.0.2", "v6:::1", "br=[fe80::1]"});
    CHECK(text.rfind("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0) == 0);
    CHECK(text.find("127.0.1.1\tc0ffee123456\n") != std::string::npos);
    CHECK(text.find("10.0.0.2\tdb\n") != std::string::npos);
    CHECK(text.find("::1\tv6\n") != std::string::npos);
    CHECK(text.find("fe80::1\tbr\n") != std::string::npos);
    for (const char* bad : {"db", "db:", ":10.0.0.1", "db:10.0.0.256", "d b:10.0.0.1", "db:host-gateway", "a\nb:1.2.3.4"}) {
        CAPTURE(bad);
        CHECK(thrown_code([&] { hosts_file("h", {bad}); }) == kInvalid);
    }
}

TEST_CASE("resolv_conf: docker's rules for the host's file") {
    const std::string host = "# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 10.1.1.1\noptions edns0\n";
    // The host's network: its resolvers, loopback included, are reachable.
    CHECK(resolv_conf(host, false, {}, {}) == host);
    // A network of its own: loopback resolvers cannot answer there.
    CHECK(resolv_conf(host, true, {}, {}) == "# generated\nsearch corp.example\nnameserver 10.1.1.1\noptions edns0\n");
    CHECK(resolv_conf("nameserver 127.0.0.53\nnameserver ::1\n", true, {}, {}) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    CHECK(resolv_conf("", false, {}, {}).empty());
    // --dns and --dns-search replace.
    CHECK(resolv_conf(host, false, {"9.9.9.9", "2620:fe::fe"}, {"a.example", "b.example"}) ==
          "search a.example b.example\n# generated\noptions edns0\nnameserver 9.9.9.9\nnameserver 2620:fe::fe\n");
    for (auto [dns, search] : std::vector<std::pair<Strings, Strings>>{{{"dns.example"}, {}}, {{}, {"a b"}}, {{""}, {}}}) {
        CHECK(thrown_code([&] { resolv_conf(host, false, dns, search); }) == kInvalid);
    }
}

TEST_CASE("spec_from_image: --security-opt") {
    RunOptions o = options();
    LaunchSpec plain = spec_from_image(sh_image(), o);
    CHECK((plain.seccomp && !plain.no_new_privileges));
    o.security_opts = {"seccomp=unconfined", "no-new-privileges"};
    LaunchSpec s = spec_from_image(sh_image(), o);
    CHECK((!s.seccomp && s.no_new_privileges));
    o.security_opts = {"no-new-privileges:true", "no-new-privileges:false"};
    CHECK_FALSE(spec_from_image(sh_image(), o).no_new_privileges);
    for (const char* bad : {"apparmor=unconfined", "seccomp=", "label=disable", "", "no-new-privileges:maybe"}) {
        CAPTURE(bad);
        RunOptions v = options();
        v.security_opts = {bad};
        CHECK(spec_code(sh_image(), v) == kInvalid);
    }
}

TEST_CASE("spec_from_image: --hostname is one word for /etc/hosts") {
    for (const char* good : {"web", "a-b.example", "0abc"}) {
        RunOptions o = options();
        o.hostname = good;
        CHECK(spec_from_image(sh_image(), o).hostname == good);
    }
    for (const std::string& bad : {std::string("h\n6.6.6.6 google.com"), std::string("#c"), std::string("two words"),
                                   std::string("-x"), std::string(65, 'a'), std::string("tab\t")}) {
        CAPTURE(bad);
        RunOptions o = options();
        o.hostname = bad;
        CHECK(spec_code(sh_image(), o) == kInvalid);
    }
}
