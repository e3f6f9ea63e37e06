// output/template: the --format subset of Go's templates, checked fields, tables, hostile templates.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/output/template.hpp"

using namespace imgtool;
using namespace imgtool::output;
using nlohmann::json;

namespace {

const std::vector<Field>& image_fields() {
    static const std::vector<Field> fields = {
        {"Repository", "", {}, false},
        {"Tag", "", {}, false},
        {"ID", "IMAGE ID", {}, false},
        {"CreatedSince", "CREATED", {}, false},
        {"Size", "", {}, false},
        {"Config", "", {{"Cmd", "", {}, false}, {"Env", "", {}, false}, {"Labels", "", {}, true}}, false},
    };
    return fields;
}

const json image = {{"Repository", "docker.io/library/busybox"},
                    {"Tag", "latest"},
                    {"ID", "80ea121732e2"},
                    {"CreatedSince", "2 years ago"},
                    {"Size", "1.78kB"},
                    {"Config", {{"Cmd", {"sh", "-c", "echo hi"}}, {"Labels", {{"version", "1.0"}, {"a", "b"}}}}}};

std::string render(const std::string& text, const json& item = image) {
    return Template::parse(text, image_fields()).render(item);
}

// The message of the error parsing `text` throws (empty if it parses).
std::string error_of(const std::string& text) {
    try {
        Template::parse(text, image_fields());
    } catch (const Error& e) {
        CHECK(e.code() == make_error_code(Errc::InvalidArgument));
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("fields, literal text and escapes") {
    CHECK(render("{{.Repository}}:{{.Tag}} {{.ID}}") == "docker.io/library/busybox:latest 80ea121732e2");
    CHECK(render("{{ .Tag }}") == "latest");
    CHECK(render("id=\\t{{.ID}}\\n") == "id=\t80ea121732e2\n");
    CHECK(render("a\\b \\x }} {") == "a\\b \\x }} {");  // other backslashes and lone braces stay
    CHECK(render("no actions") == "no actions");
    CHECK(render("") == "");
    CHECK(render("{{/* a comment */}}x") == "x");
    CHECK(render("a  {{- .Tag -}}  b") == "alatestb");
    CHECK(render("{{.Config.Cmd}}") == "[sh -c echo hi]");
    CHECK(render("{{.Config.Labels}}") == "map[a:b version:1.0]");
    CHECK(render("{{.Config.Labels.version}}") == "1.0");
    CHECK(render("<{{.Config.Labels.nosuch}}>") == "<>");  // a map's missing key
    CHECK(render("<{{.Config.Env}}>") == "<>");            // a known field the item lacks
}

TEST_CASE("json of a value and of the whole item") {
    CHECK(render("{{json .Config.Cmd}}") == R"(["sh","-c","echo hi"])");
    CHECK(render("{{json .Tag}}") == R"("latest")");
    CHECK(render("{{json .Config.Env}}") == "null");
    CHECK(json::parse(render("{{json .}}")) == image);
    // ASCII only, control bytes escaped
    CHECK(render("{{json .Tag}}", {{"Tag", "a\x1b[2J\xc3\xa9"}}) == R"("a\u001b[2J\u00e9")");
}

TEST_CASE("values cannot forge lines or terminal escapes") {
    json hostile = {{"Repository", "evil\nFAKE ROW\t\x1b[31m"}, {"Tag", "t"}};
    CHECK(render("{{.Repository}}", hostile) == "evil\\x0aFAKE ROW\\x09\\x1b[31m");
    CHECK(render("{{.Config}}", {{"Config", {{"Labels", {{"k\nx", "v\x9b"}}}}}}) == "map[Labels:map[k\\x0ax:v\\x9b]]");
}

TEST_CASE("go_string prints as Go's templates do") {
    CHECK(go_string(json(42)) == "42");
    CHECK(go_string(json(true)) == "true");
    CHECK(go_string(json(nullptr)) == "");
    CHECK(go_string(json::array()) == "[]");
    CHECK(go_string(json::object()) == "map[]");
    CHECK(go_string(json({1, "a", json::array({2})})) == "[1 a [2]]");
}

TEST_CASE("unknown fields name the template's fields") {
    CHECK(error_of("{{.Foo}}") ==
          "unknown field \"Foo\" in --format; fields: Repository, Tag, ID, CreatedSince, Size, Config");
    CHECK(error_of("{{.repository}}").find("unknown field \"repository\"") == 0);  // names are case-sensitive, as Go
    CHECK(error_of("{{json .Foo}}").find("unknown field \"Foo\"") == 0);
    CHECK(error_of("{{.Config.Foo}}") == "unknown field \"Config.Foo\" in --format; Config's fields: Cmd, Env, Labels");
    CHECK(error_of("{{.Size.Bytes}}") == "unknown field \"Size.Bytes\" in --format; Size has no fields");
    CHECK(error_of("{{.Config.Labels.a.b.c}}") == "");  // a map's keys are the data's
}

TEST_CASE("what the subset refuses, naming the template") {
    CHECK(error_of("{{.ID") == "invalid --format \"{{.ID\": \"{{\" at column 1 is never closed by \"}}\"");
    CHECK(error_of("x {{.ID}} {{") == "invalid --format \"x {{.ID}} {{\": \"{{\" at column 11 is never closed by \"}}\"");
    CHECK(error_of("{{{{.ID}}}}").find("\"{{\" inside the action at column 1") != std::string::npos);
    CHECK(error_of("{{}}").find("empty action at column 1") != std::string::npos);
    CHECK(error_of("{{ }}").find("empty action") != std::string::npos);
    CHECK(error_of("{{range .Config.Cmd}}{{.}}{{end}}").find("\"range\" is not supported") != std::string::npos);
    CHECK(error_of("{{if .Tag}}x{{end}}").find("\"if\" is not supported") != std::string::npos);
    CHECK(error_of("{{end}}").find("\"end\" is not supported") != std::string::npos);
    CHECK(error_of("{{upper .Tag}}").find("function \"upper\" is not supported (only json)") != std::string::npos);
    CHECK(error_of("{{.Tag | printf \"%s\"}}").find("pipeline") != std::string::npos);
    CHECK(error_of("{{$x := .Tag}}").find("variables are not supported") != std::string::npos);
    CHECK(error_of("{{(json .Tag)}}").find("parentheses are not supported") != std::string::npos);
    CHECK(error_of("{{\"text\"}}").find("constants are not supported") != std::string::npos);
    CHECK(error_of("{{.ID .Tag}}").find("one value per action") != std::string::npos);
    CHECK(error_of("{{json}}").find("json takes one value") != std::string::npos);
    CHECK(error_of("{{json .ID .Tag}}").find("json takes one value") != std::string::npos);
    CHECK(error_of("{{..ID}}").find("is not a field") != std::string::npos);
    CHECK(error_of("{{.ID.}}").find("is not a field") != std::string::npos);
    CHECK(error_of("{{.I-D}}").find("is not a field") != std::string::npos);
    for (const char* text : {"{{range .Config.Cmd}}", "{{upper .Tag}}", "{{.ID"}) {
        CHECK(error_of(text).find(std::string("invalid --format \"") + text) == 0);
    }
}

TEST_CASE("hostile templates: huge, deep, unterminated, control bytes") {
    std::string big(kMaxTemplateBytes + 1, 'x');
    CHECK(error_of(big) == "--format template is 65537 bytes; at most 65536");
    // At the limit it parses, and its error would quote only the start.
    std::string many;
    while (many.size() + 7 <= kMaxTemplateBytes) many += "{{.ID}}";
    CHECK(render(many).size() == many.size() / 7 * 12);
    std::string unterminated = std::string(1000, 'a') + "{{.ID";
    std::string message = error_of(unterminated);
    CHECK(message.find("is never closed") != std::string::npos);
    CHECK(message.size() < 200);
    // Deep paths: refused past the bound, whatever they name.
    std::string deep = "{{.Config.Labels";
    for (std::size_t i = 0; i < kMaxFieldDepth; ++i) deep += ".x";
    CHECK(error_of(deep + "}}").find("names deep") != std::string::npos);
    std::string nested;
    for (int i = 0; i < 10000; ++i) nested += "{{";
    CHECK(error_of(nested).find("never closed") != std::string::npos);
    std::string parens = "{{" + std::string(10000, '(') + ".ID" + std::string(10000, ')') + "}}";
    CHECK(error_of(parens).find("parentheses are not supported") != std::string::npos);
    // Control bytes in the template are escaped in the message: one line.
    message = error_of("\x1b[2J{{.Nope\n}}");
    CHECK(message.find('\x1b') == std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(error_of("{{\x1b[2J}}").find("\\x1b") != std::string::npos);
}

TEST_CASE("deep data is printed with a bound") {
    json deep = "leaf";
    for (int i = 0; i < 200; ++i) deep = json::array({deep});
    std::string text = go_string(deep);
    CHECK(text.size() < 200);
    CHECK(text.find("...") != std::string::npos);
}

TEST_CASE("table templates: header from the fields, aligned columns") {
    Template t = Template::parse("table {{.Repository}}\\t{{.ID}}\\t{{.CreatedSince}}", image_fields());
    CHECK(t.table());
    CHECK(t.header() == "REPOSITORY\tIMAGE ID\tCREATED");
    std::vector<json> items = {image, {{"Repository", "a"}, {"ID", "0123456789ab"}, {"CreatedSince", "Less than a second ago"}}};
    CHECK(render_all(t, items) ==
          "REPOSITORY                  IMAGE ID       CREATED\n"
          "docker.io/library/busybox   80ea121732e2   2 years ago\n"
          "a                           0123456789ab   Less than a second ago\n");
    CHECK(render_all(t, {}) == "REPOSITORY   IMAGE ID   CREATED\n");
    // Headers for fields without one: capitals, words apart; a map key's in capitals.
    CHECK(Template::parse("table {{.Config.Cmd}} {{.Config.Labels.version}} {{json .}}", image_fields()).header() ==
          "CMD VERSION ");
    std::vector<Field> fields = {{"CreatedAt", "", {}, false}, {"ImageID", "", {}, false}};
    CHECK(Template::parse("table {{.CreatedAt}}\\t{{.ImageID}}", fields).header() == "CREATED AT\tIMAGE ID");
}

TEST_CASE("render_all: one line per item") {
    Template t = Template::parse("{{.Tag}}", image_fields());
    CHECK(!t.table());
    CHECK(render_all(t, {image, image}) == "latest\nlatest\n");
    CHECK(render_all(Template::parse("{{.Tag}}\\n", image_fields()), {image}) == "latest\n");  // as podman
    CHECK(render_all(t, {}) == "");
}

TEST_CASE("parse_format: table, json, templates") {
    CHECK(parse_format("", image_fields()).style == Format::Style::Table);
    CHECK(parse_format("table", image_fields()).style == Format::Style::Table);
    CHECK(parse_format("json", image_fields()).style == Format::Style::Json);
    Format f = parse_format("{{json .}}", image_fields());
    CHECK(f.style == Format::Style::Template);
    CHECK(!f.tmpl.table());
    CHECK(parse_format("table {{.ID}}", image_fields()).tmpl.table());
    CHECK_THROWS_AS(parse_format("yaml {{.Nope}}", image_fields()), Error);
    CHECK(parse_format("yaml", image_fields()).tmpl.render(image) == "yaml");  // literal text, as docker
}

TEST_CASE("align_columns: widths by display columns, the last cell unpadded") {
    CHECK(align_columns({"a\tbb\tc", "aaa\tb\tlong last cell"}) == "a     bb   c\naaa   b    long last cell\n");
    CHECK(align_columns({"\xe2\x80\xa6\tx", "ab\ty"}, 1) == "\xe2\x80\xa6  x\nab y\n");  // "…" is one column
    CHECK(align_columns({"no tabs", "x\ty"}) == "no tabs\nx   y\n");
    CHECK(display_width("caf\xc3\xa9") == 4);
}

TEST_CASE("human_duration: docker's and podman's words") {
    CHECK(human_duration(-5) == "Less than a second");
    CHECK(human_duration(0) == "Less than a second");
    CHECK(human_duration(1) == "1 second");
    CHECK(human_duration(59) == "59 seconds");
    CHECK(human_duration(60) == "About a minute");
    CHECK(human_duration(119) == "About a minute");
    CHECK(human_duration(120) == "2 minutes");
    CHECK(human_duration(3599) == "59 minutes");
    CHECK(human_duration(3600) == "About an hour");
    CHECK(human_duration(5399) == "About an hour");
    CHECK(human_duration(5400) == "2 hours");  // rounded to the nearest hour
    CHECK(human_duration(47 * 3600) == "47 hours");
    CHECK(human_duration(48 * 3600) == "2 days");
    CHECK(human_duration(13 * 86400) == "13 days");
    CHECK(human_duration(14 * 86400) == "2 weeks");
    CHECK(human_duration(59 * 86400) == "8 weeks");
    CHECK(human_duration(60 * 86400) == "2 months");
    CHECK(human_duration(729 * 86400) == "24 months");
    CHECK(human_duration(730 * 86400) == "2 years");
    CHECK(human_duration(1064LL * 86400) == "2 years");  // podman 4.3: an image from 2024-01-02 on 2026-12-01
}
