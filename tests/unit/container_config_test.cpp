// The image config's typed container config: parse_config checks each field once (absent, null, empty,
// wrong type), and to_json writes back exactly the fields the image had (what inspect prints).
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/image/types.hpp"

using imgtool::Errc;
using imgtool::make_error_code;
namespace image = imgtool::image;
using image::ContainerConfig;
using json = nlohmann::json;
using Strings = std::vector<std::string>;

namespace {

// An image config document whose "config" object has `fields` ("\"Env\":[...]", ...).
std::string doc_with(const std::string& fields) {
    std::string d = R"({"architecture":"amd64","os":"linux","config":{)";
    d += fields;
    d += R"(},"rootfs":{"type":"layers","diff_ids":[]}})";
    return d;
}

ContainerConfig parsed(const std::string& fields) {
    return image::parse_config(doc_with(fields), "config sha256:abc").config;
}

// The message of the Error that parsing throws ("" if none), checked to be Errc::Corrupt.
std::string error_of(const std::string& fields) {
    try {
        (void)image::parse_config(doc_with(fields), "config sha256:abc");
    } catch (const imgtool::Error& e) {
        CHECK(e.code() == make_error_code(Errc::Corrupt));
        return e.what();
    }
    return "";
}

// One field of the container config: how to write an empty and a non-empty value of it, values of
// the wrong type, and what parsing made of it (present? empty?).
struct FieldCase {
    const char* key;
    const char* empty;
    const char* value;
    std::vector<const char*> wrong;
    std::function<bool(const ContainerConfig&)> present;
    std::function<bool(const ContainerConfig&)> is_empty;
};

template <typename T>
FieldCase field_case(const char* key, const char* empty, const char* value, std::vector<const char*> wrong,
                     std::optional<T> ContainerConfig::*member) {
    return {key,
            empty,
            value,
            std::move(wrong),
            [member](const ContainerConfig& c) { return (c.*member).has_value(); },
            [member](const ContainerConfig& c) {
                if constexpr (std::is_same_v<T, bool>) {
                    return !*(c.*member);
                } else if constexpr (std::is_same_v<T, image::Healthcheck>) {
                    return *(c.*member) == image::Healthcheck{};
                } else {
                    return (c.*member)->empty();
                }
            }};
}

std::vector<FieldCase> field_cases() {
    return {
        field_case("User", R"("")", R"("1000:1000")", {"1000", "[]", "{}", "true"}, &ContainerConfig::user),
        field_case("ExposedPorts", "{}", R"({"80/tcp":{}})", {"[]", R"("80/tcp")", "80"},
                   &ContainerConfig::exposed_ports),
        field_case("Env", "[]", R"(["A=1"])", {R"("A=1")", "{}", "1", "false"}, &ContainerConfig::env),
        field_case("Entrypoint", "[]", R"(["/bin/sh","-c"])", {R"("/bin/sh")", "{}", "0"},
                   &ContainerConfig::entrypoint),
        field_case("Cmd", "[]", R"(["sh"])", {R"("sh")", R"({"0":"sh"})", "1.5"}, &ContainerConfig::cmd),
        field_case("Volumes", "{}", R"({"/data":{}})", {R"(["/data"])", R"("/data")"},
                   &ContainerConfig::volumes),
        field_case("WorkingDir", R"("")", R"("/srv")", {"[]", R"(["/srv"])", "7", "{}"},
                   &ContainerConfig::working_dir),
        field_case("Labels", "{}", R"({"a":"b"})", {R"(["a=b"])", R"("a=b")", "1"}, &ContainerConfig::labels),
        field_case("StopSignal", R"("")", R"("SIGTERM")", {"15", "[]"}, &ContainerConfig::stop_signal),
        field_case("ArgsEscaped", "false", "true", {R"("true")", "1", "[]"}, &ContainerConfig::args_escaped),
        field_case("Healthcheck", "{}", R"({"Test":["NONE"]})", {"[]", R"("NONE")", "true"},
                   &ContainerConfig::healthcheck),
        field_case("OnBuild", "[]", R"(["RUN x"])", {R"("RUN x")", "{}"}, &ContainerConfig::on_build),
        field_case("Shell", "[]", R"(["/bin/sh","-c"])", {R"("/bin/sh")", "{}"}, &ContainerConfig::shell),
    };
}

}  // namespace

TEST_CASE("parse_config reads every container config field") {
    ContainerConfig c = parsed(R"(
        "User":"app:staff",
        "ExposedPorts":{"80/tcp":{},"53/udp":{}},
        "Env":["PATH=/usr/bin","A=1=2",""],
        "Entrypoint":["/entry.sh"],
        "Cmd":["serve","--port","80"],
        "Volumes":{"/data":{},"/cache":{}},
        "WorkingDir":"/srv",
        "Labels":{"org.example":"x","empty":""},
        "StopSignal":"SIGQUIT",
        "ArgsEscaped":true,
        "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Timeout":5000000000,
                       "StartPeriod":0,"StartInterval":1000000000,"Retries":3},
        "OnBuild":["RUN echo"],
        "Shell":["/bin/bash","-c"])");
    CHECK(c.user == "app:staff");
    CHECK(c.exposed_ports == Strings{"53/udp", "80/tcp"});  // the object's keys, sorted
    CHECK(c.env == Strings{"PATH=/usr/bin", "A=1=2", ""});  // entries kept as written
    CHECK(c.entrypoint == Strings{"/entry.sh"});
    CHECK(c.cmd == Strings{"serve", "--port", "80"});
    CHECK(c.volumes == Strings{"/cache", "/data"});
    CHECK(c.working_dir == "/srv");
    CHECK(c.labels == std::map<std::string, std::string>{{"empty", ""}, {"org.example", "x"}});
    CHECK(c.stop_signal == "SIGQUIT");
    CHECK(c.args_escaped == true);
    REQUIRE(c.healthcheck.has_value());
    CHECK(c.healthcheck->test == Strings{"CMD-SHELL", "true"});
    CHECK(c.healthcheck->interval == 30000000000);
    CHECK(c.healthcheck->timeout == 5000000000);
    CHECK(c.healthcheck->start_period == 0);
    CHECK(c.healthcheck->start_interval == 1000000000);
    CHECK(c.healthcheck->retries == 3);
    CHECK(c.on_build == Strings{"RUN echo"});
    CHECK(c.shell == Strings{"/bin/bash", "-c"});
}

TEST_CASE("parse_config: each field absent, null, empty, set, or of the wrong type") {
    for (const FieldCase& f : field_cases()) {
        CAPTURE(f.key);
        const std::string key = std::string("\"") + f.key + "\":";
        ContainerConfig absent = parsed("");
        CHECK_FALSE(f.present(absent));
        ContainerConfig null = parsed(key + "null");
        CHECK_FALSE(f.present(null));  // as Go's decoder: null is the zero value, like absent
        ContainerConfig empty = parsed(key + f.empty);
        CHECK(f.present(empty));  // present: inspect shows it
        CHECK(f.is_empty(empty));
        ContainerConfig set = parsed(key + f.value);
        CHECK(f.present(set));
        CHECK_FALSE(f.is_empty(set));
        for (const char* wrong : f.wrong) {
            CAPTURE(wrong);
            std::string message = error_of(key + wrong);
            CHECK(message.find(std::string("config sha256:abc: \"config.") + f.key +
                               "\" has the wrong type") == 0);
        }
    }
}

TEST_CASE("parse_config: entries of the wrong type are named by position or key") {
    CHECK(error_of(R"("Env":["A=1",2])") ==
          R"(config sha256:abc: "config.Env[1]" has the wrong type (number), expected a string)");
    CHECK(error_of(R"("Entrypoint":[null])") ==
          R"(config sha256:abc: "config.Entrypoint[0]" has the wrong type (null), expected a string)");
    CHECK(error_of(R"("Cmd":["sh",["-c"]])") ==
          R"(config sha256:abc: "config.Cmd[1]" has the wrong type (array), expected a string)");
    CHECK(error_of(R"("Labels":{"a":"b","n":1})") ==
          R"(config sha256:abc: "config.Labels["n"]" has the wrong type (number), expected a string)");
    CHECK(error_of(R"("Labels":{"a":null})") ==
          R"(config sha256:abc: "config.Labels["a"]" has the wrong type (null), expected a string)");
    CHECK(
        error_of(R"("ExposedPorts":{"80/tcp":"tcp"})") ==
        R"(config sha256:abc: "config.ExposedPorts["80/tcp"]" has the wrong type (string), expected an object)");
    CHECK(error_of(R"("Volumes":{"/data":[]})") ==
          R"(config sha256:abc: "config.Volumes["/data"]" has the wrong type (array), expected an object)");
    CHECK(error_of(R"("OnBuild":[1])").find("\"config.OnBuild[0]\"") != std::string::npos);
    CHECK(error_of(R"("Shell":[true])").find("\"config.Shell[0]\"") != std::string::npos);
    // A control character in a key is shown escaped, never printed raw.
    CHECK(error_of("\"Labels\":{\"a\\u001bb\":1}").find("\\x1b") != std::string::npos);
    // Go's struct{} takes any object or null: only the keys matter.
    CHECK(parsed(R"("ExposedPorts":{"80/tcp":null,"81/tcp":{"x":1}})").exposed_ports ==
          Strings{"80/tcp", "81/tcp"});
}

TEST_CASE("parse_config: Healthcheck fields") {
    auto hc = [](const std::string& fields) {
        return *parsed(R"("Healthcheck":{)" + fields + "}").healthcheck;
    };
    CHECK(hc("") == image::Healthcheck{});
    CHECK(hc(R"("Test":null,"Interval":null,"Retries":null)") == image::Healthcheck{});
    CHECK(hc(R"("Test":[])").test == Strings{});
    CHECK(hc(R"("Interval":-1)").interval ==
          -1);  // kept as data; docker refuses it when creating a container
    CHECK(hc(R"("Timeout":9223372036854775807)").timeout == INT64_MAX);
    CHECK(hc(R"("Interval":1,"Unknown":"x")").interval == 1);  // unknown members ignored
    for (const char* key : {"Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"}) {
        for (const char* wrong : {"1.5", "1e9", "10.0", R"("10s")", "[]", "true", "9223372036854775808"}) {
            CAPTURE(key);
            CAPTURE(wrong);
            std::string message = error_of(std::string(R"("Healthcheck":{")") + key + "\":" + wrong + "}");
            CHECK(message.find(std::string("\"config.Healthcheck.") + key + "\" has the wrong type") !=
                  std::string::npos);
            CHECK(message.find("expected a 64-bit integer") != std::string::npos);
        }
    }
    CHECK(error_of(R"("Healthcheck":{"Test":"CMD true"})").find("\"config.Healthcheck.Test\"") !=
          std::string::npos);
    CHECK(error_of(R"("Healthcheck":{"Test":["CMD",1]})").find("\"config.Healthcheck.Test[1]\"") !=
          std::string::npos);
}

TEST_CASE("parse_config: fields docker's inspect does not show are neither checked nor kept") {
    ContainerConfig c = parsed(R"("Hostname":"","Domainname":7,"AttachStdin":"no","Image":[],"StopTimeout":{},
                                  "Cmd":["sh"])");
    ContainerConfig only_cmd;
    only_cmd.cmd = Strings{"sh"};
    CHECK(c == only_cmd);
    CHECK(json(c) == json{{"Cmd", {"sh"}}});
}

TEST_CASE("to_json writes back exactly the fields the image had") {
    // What gen_images.py writes (every image of the integration suites has this shape): inspect must
    // print it as it was, empty strings and objects included, Entrypoint absent.
    const json basic =
        json::parse(R"({"Env":["PATH=/usr/bin","FOO=bar"],"Cmd":["/bin/sh"],"WorkingDir":"/srv",
                                        "User":"","Labels":{}})");
    CHECK(json(parsed(basic.dump().substr(1, basic.dump().size() - 2))) == basic);

    const json full = json::parse(R"({
        "User":"u","ExposedPorts":{"80/tcp":{}},"Env":[],"Entrypoint":[""],"Cmd":[],"Volumes":{},
        "WorkingDir":"","Labels":{"k":"v"},"StopSignal":"9","ArgsEscaped":false,
        "Healthcheck":{"Test":["NONE"],"Interval":1,"Timeout":2,"StartPeriod":3,"StartInterval":4,"Retries":5},
        "OnBuild":[],"Shell":["sh"]})");
    ContainerConfig c = parsed(full.dump().substr(1, full.dump().size() - 2));
    CHECK(json(c) == full);
    CHECK(json(c).dump(4, ' ', true) == full.dump(4, ' ', true));  // byte for byte, as inspect prints it

    // Null is shown as absent (docker omits it too); an empty Healthcheck stays an empty object.
    CHECK(json(parsed(R"("Entrypoint":null,"Labels":null,"Volumes":null,"User":"x")")) ==
          json{{"User", "x"}});
    CHECK(json(parsed(R"("Healthcheck":{"Test":null})")) == json{{"Healthcheck", json::object()}});
    CHECK(json(ContainerConfig{}) == json::object());

    // Parsing what to_json wrote gives the same value back.
    std::string again = json(c).dump();
    CHECK(parsed(again.substr(1, again.size() - 2)) == c);
}
