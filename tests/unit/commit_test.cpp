// commit's pure parts: --change parsing, the config update, whiteout names, overlay xattr meanings, and
// the tar headers (read back by libarchive, as the import reads them). The upper walk on a real
// temporary directory, with what an unprivileged test can make.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "imgtool/commit/change.hpp"
#include "imgtool/commit/upper_tar.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/sys/files.hpp"

using namespace imgtool::commit;
using imgtool::Errc;
using imgtool::make_error_code;
using nlohmann::json;
using test_support::thrown_code;

namespace {

struct ReadEntry {
    std::string path, link;
    unsigned type = 0;  // AE_IFREG...
    unsigned mode = 0;
    std::int64_t uid = 0, mtime = 0, size = 0;
    std::string data;
    std::vector<std::pair<std::string, std::string>> xattrs;
    bool hardlink = false;
};

std::vector<ReadEntry> read_tar(const std::string& bytes) {
    struct archive* a = archive_read_new();
    archive_read_support_format_tar(a);
    REQUIRE(archive_read_open_memory(a, bytes.data(), bytes.size()) == ARCHIVE_OK);
    std::vector<ReadEntry> out;
    struct archive_entry* e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        ReadEntry x;
        x.path = archive_entry_pathname(e);
        if (archive_entry_hardlink(e)) {
            x.link = archive_entry_hardlink(e);
            x.hardlink = true;
        } else if (archive_entry_symlink(e)) {
            x.link = archive_entry_symlink(e);
        }
        x.type = archive_entry_filetype(e);
        x.mode = archive_entry_perm(e) | (archive_entry_mode(e) & 07000);
        x.uid = archive_entry_uid(e);
        x.mtime = archive_entry_mtime(e);
        x.size = archive_entry_size(e);
        archive_entry_xattr_reset(e);
        const char* name;
        const void* value;
        size_t size;
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
            x.xattrs.emplace_back(name, std::string(static_cast<const char*>(value), size));
        }
        char buf[4096];
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) x.data.append(buf, static_cast<std::size_t>(n));
        out.push_back(std::move(x));
    }
    CHECK(r == ARCHIVE_EOF);
    archive_read_free(a);
    return out;
}

std::string tar_of(const std::vector<std::pair<TarEntry, std::string>>& entries) {
    std::string out;
    for (const auto& [e, data] : entries) {
        out += tar_header(e) + data + tar_padding(data.size());
    }
    return out + tar_trailer();
}

json base_config() {
    return json::parse(R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=1"],
        "Cmd":["sh"],"WorkingDir":"/srv"},"rootfs":{"type":"layers","diff_ids":["sha256:)" +
                       std::string(64, 'a') + R"("]},"history":[{"created_by":"base"}],"unknown":{"kept":true}})");
}

}  // namespace

TEST_CASE("--change: CMD and ENTRYPOINT take docker's JSON or shell form") {
    CHECK(parse_change(R"(CMD ["echo", "a b"])").args == std::vector<std::string>{"echo", "a b"});
    CHECK(parse_change("cmd echo hi").args == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
    // Not a JSON array of strings: the shell form, verbatim.
    CHECK(parse_change("CMD [1, 2]").args == std::vector<std::string>{"/bin/sh", "-c", "[1, 2]"});
    CHECK(parse_change("ENTRYPOINT top -b", {"/bin/bash", "-lc"}).args ==
          std::vector<std::string>{"/bin/bash", "-lc", "top -b"});
    CHECK(thrown_code([] { parse_change("CMD"); }) == make_error_code(Errc::InvalidArgument));
}

TEST_CASE("--change: ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME; others refused") {
    CHECK(parse_change(R"(ENV A=1 B="two words" C=x\ y)").args == std::vector<std::string>{"A=1", "B=two words", "C=x y"});
    CHECK(parse_change("ENV LEGACY value with spaces").args == std::vector<std::string>{"LEGACY=value with spaces"});
    CHECK(parse_change("LABEL 'k 1'=v").args == std::vector<std::string>{"k 1=v"});
    CHECK(parse_change("EXPOSE 80 53/UDP 8000-8002").args ==
          std::vector<std::string>{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"});
    CHECK(parse_change("USER 1000:1000").args == std::vector<std::string>{"1000:1000"});
    CHECK(parse_change(R"(VOLUME ["/a", "/b"])").args == std::vector<std::string>{"/a", "/b"});
    for (const char* bad : {"RUN rm -rf /", "FROM x", "", "ENV =x", "ENV A", "EXPOSE 0", "EXPOSE 70000",
                            "EXPOSE 80/icmp", "EXPOSE 9-1", "LABEL a=\"unterminated"}) {
        CAPTURE(bad);
        CHECK(thrown_code([bad] { parse_change(bad); }) == make_error_code(Errc::InvalidArgument));
    }
}

TEST_CASE("the config update appends the layer and history, applies changes, keeps unknown fields") {
    auto diff_id = imgtool::digest::Sha256::of("layer");
    ConfigUpdate u{.changes = {"ENV A=2 B=3", "WORKDIR sub/../x", "ENTRYPOINT [\"/e\"]", "LABEL l=v", "EXPOSE 80"},
                   .diff_id = diff_id, .created = "2026-01-01T00:00:00Z", .created_by = "sh -c x",
                   .comment = "msg", .author = "me"};
    json out = update_config(base_config(), u);
    CHECK(out["config"]["Env"] == json({"PATH=/bin", "A=2", "B=3"}));
    CHECK(out["config"]["WorkingDir"] == "/srv/x");
    CHECK(out["config"]["Entrypoint"] == json({"/e"}));
    CHECK(out["config"]["Cmd"].is_null());  // ENTRYPOINT resets the inherited CMD...
    CHECK(out["config"]["Labels"] == json({{"l", "v"}}));
    CHECK(out["config"]["ExposedPorts"] == json({{"80/tcp", json::object()}}));
    CHECK(out["rootfs"]["diff_ids"].size() == 2);
    CHECK(out["rootfs"]["diff_ids"][1] == diff_id.str());
    CHECK(out["history"].size() == 2);
    CHECK(out["history"][1] == json({{"created", "2026-01-01T00:00:00Z"}, {"created_by", "sh -c x"},
                                     {"comment", "msg"}, {"author", "me"}}));
    CHECK(out["created"] == "2026-01-01T00:00:00Z");
    CHECK(out["author"] == "me");
    CHECK(out["unknown"]["kept"] == true);
    // ...unless a CMD came first.
    u.changes = {"CMD [\"c\"]", "ENTRYPOINT [\"/e\"]"};
    CHECK(update_config(base_config(), u)["config"]["Cmd"] == json({"c"}));
    u.changes = {"RUN x"};
    CHECK(thrown_code([&] { update_config(base_config(), u); }) == make_error_code(Errc::InvalidArgument));
}

TEST_CASE("whiteout and opaque names; runtime paths; overlay xattrs") {
    CHECK(whiteout_name("a") == ".wh.a");
    CHECK(whiteout_name("etc/group") == "etc/.wh.group");
    CHECK(opaque_marker_name("srv") == "srv/.wh..wh..opq");
    CHECK(is_runtime_file("etc/hosts"));
    CHECK(is_runtime_file("dev/console"));
    CHECK_FALSE(is_runtime_file("etc/hosts.allow"));
    CHECK(is_runtime_mount_dir("proc"));
    CHECK_FALSE(is_runtime_mount_dir("usr/proc"));
    CHECK(classify_overlay_xattr("trusted.overlay.opaque", "y", false) == OverlayXattr::Opaque);
    CHECK(classify_overlay_xattr("trusted.overlay.opaque", "x", false) == OverlayXattr::Refused);
    CHECK(classify_overlay_xattr("trusted.overlay.redirect", "/a", false) == OverlayXattr::Refused);
    CHECK(classify_overlay_xattr("trusted.overlay.metacopy", "", false) == OverlayXattr::Refused);
    CHECK(classify_overlay_xattr("trusted.overlay.origin", "..", false) == OverlayXattr::Ignored);
    CHECK(classify_overlay_xattr("user.overlay.opaque", "y", false) == OverlayXattr::Ignored);
    CHECK(classify_overlay_xattr("user.overlay.opaque", "y", true) == OverlayXattr::Opaque);
    CHECK(classify_overlay_xattr("user.overlay.redirect", "/a", true) == OverlayXattr::Refused);
    CHECK(classify_overlay_xattr("trusted.overlay.redirect", "/a", true) == OverlayXattr::Ignored);
    CHECK(classify_overlay_xattr("security.capability", "", false) == OverlayXattr::None);
}

TEST_CASE("tar headers read back by libarchive: long names, links, xattrs, big ids, negative times") {
    std::string long_name = std::string(150, 'd') + "/" + std::string(99, 'f');  // ustar prefix + name
    std::string longer = std::string(300, 'x');                                   // PAX path
    TarEntry dir{.path = "dir", .type = '5', .mode = 01777, .uid = 0, .gid = 0, .size = 0, .mtime = 5, .link = {}, .xattrs = {}};
    TarEntry file{.path = long_name, .type = '0', .mode = 04755, .uid = 3000000, .gid = 7, .size = 5, .mtime = -1,
                  .link = {}, .xattrs = {{"security.capability", std::string("\x01\0\0\x02", 4)}, {"user.a", "b"}}};
    TarEntry link{.path = longer, .type = '1', .mode = 0, .uid = 0, .gid = 0, .size = 0, .mtime = 0, .link = long_name, .xattrs = {}};
    TarEntry sym{.path = "new\nline", .type = '2', .mode = 0777, .uid = 0, .gid = 0, .size = 0, .mtime = 0,
                 .link = std::string(200, 't'), .xattrs = {}};
    auto entries = read_tar(tar_of({{dir, ""}, {file, "hello"}, {link, ""}, {sym, ""}}));
    REQUIRE(entries.size() == 4);
    CHECK(entries[0].path == "dir/");
    CHECK(entries[0].type == AE_IFDIR);
    CHECK(entries[0].mode == 01777);
    CHECK(entries[1].path == long_name);
    CHECK(entries[1].mode == 04755);
    CHECK(entries[1].uid == 3000000);
    CHECK(entries[1].mtime == -1);
    CHECK(entries[1].data == "hello");
    std::sort(entries[1].xattrs.begin(), entries[1].xattrs.end());  // libarchive lists them in its own order
    CHECK(entries[1].xattrs == std::vector<std::pair<std::string, std::string>>{
                                   {"security.capability", std::string("\x01\0\0\x02", 4)}, {"user.a", "b"}});
    CHECK(entries[2].path == longer);
    CHECK(entries[2].hardlink);
    CHECK(entries[2].link == long_name);
    CHECK(entries[3].path == "new\nline");
    CHECK(entries[3].link == std::string(200, 't'));
}

TEST_CASE("the upper walk: sorted, hardlinks once, sockets left out, .wh. names refused, deterministic") {
    char tmpl[] = "/tmp/commit-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string top = tmpl;
    auto sh = [](const std::string& cmd) { REQUIRE(std::system(cmd.c_str()) == 0); };
    sh("cd " + top + " && mkdir -p b/c etc && echo one > b/x && ln b/x a && ln -s /etc/shadow b/s && "
       "echo h > etc/hosts && mkdir proc && mkfifo b/fifo && touch -d @100 b/x");
    int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::string sock_path = top + "/b/sock";
    std::strncpy(addr.sun_path, sock_path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(sock, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0);
    auto walk = [&top] {
        std::string out;
        imgtool::sys::UniqueFd fd = imgtool::sys::open_at(AT_FDCWD, top, O_RDONLY | O_DIRECTORY);
        UpperStats stats = write_upper_tar(fd.get(), [&out](const void* d, std::size_t n) {
            out.append(static_cast<const char*>(d), n);
        }, UpperOptions{});
        return std::make_pair(out, stats);
    };
    auto [tar, stats] = walk();
    auto entries = read_tar(tar);
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.path);
    CHECK(names == std::vector<std::string>{"a", "b/", "b/c/", "b/fifo", "b/s", "b/x", "etc/"});
    CHECK(entries[0].data == "one\n");
    CHECK(entries[5].hardlink);
    CHECK(entries[5].link == "a");
    CHECK(entries[4].link == "/etc/shadow");
    CHECK(entries[3].type == AE_IFIFO);
    CHECK(stats.skipped_sockets == 1);
    CHECK(stats.left_out == 2);  // etc/hosts, the empty proc/
    CHECK(walk().first == tar);  // byte for byte
    sh("touch " + top + "/b/.wh.sneaky");
    CHECK(thrown_code([&] { walk(); }) == make_error_code(Errc::UnsafePath));
    ::close(sock);
    sh("rm -rf " + top);
}

TEST_CASE("the upper walk never reads through a symlink swapped in during the walk") {
    // A thread keeps exchanging directory d (holding "x") with a symlink to a directory outside the
    // upper (holding "secret"), atomically (RENAME_EXCHANGE). Whatever the walk sees, it is either the
    // directory, the symlink (stored as a link) or a refusal: never the outside directory's contents.
    char tmpl[] = "/tmp/commit-race-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string base = tmpl;
    auto sh = [](const std::string& cmd) { REQUIRE(std::system(cmd.c_str()) == 0); };
    // 64 pairs: 64 windows per walk between an entry's lstat and its open.
    constexpr int kPairs = 64;
    sh("cd " + base + " && mkdir -p outside && echo secret > outside/secret && mkdir upper && cd upper && "
       "for i in $(seq 0 " + std::to_string(kPairs - 1) + "); do mkdir d$i && echo x > d$i/x && "
       "ln -s " + base + "/outside s$i; done");
    std::atomic<bool> stop{false};
    std::thread racer([&] {
        while (!stop) {
            for (int i = 0; i < kPairs; ++i) {
                std::string d = base + "/upper/d" + std::to_string(i), swap = base + "/upper/s" + std::to_string(i);
                ::syscall(SYS_renameat2, AT_FDCWD, d.c_str(), AT_FDCWD, swap.c_str(), RENAME_EXCHANGE);
            }
        }
    });
    imgtool::sys::UniqueFd fd = imgtool::sys::open_at(AT_FDCWD, base + "/upper", O_RDONLY | O_DIRECTORY);
    int refused = 0, written = 0;
    for (int i = 0; i < 100; ++i) {
        std::string out;
        try {
            write_upper_tar(fd.get(), [&out](const void* d, std::size_t n) { out.append(static_cast<const char*>(d), n); },
                            UpperOptions{});
            ++written;
        } catch (const imgtool::Error&) {
            ++refused;
            continue;
        }
        for (const auto& e : read_tar(out)) {
            CHECK(e.path.find("secret") == std::string::npos);
            CHECK(e.data.find("secret") == std::string::npos);
        }
    }
    stop = true;
    racer.join();
    MESSAGE("walks written: " << written << ", refused (replaced while being committed): " << refused);
    sh("rm -rf " + base);
}
