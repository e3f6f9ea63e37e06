// output: what `--format` means for the listing verbs (images, ps, mounts, inspect). Pure: text in,
// text out, no I/O.
//
// A --format value is `table` (the verb's own table), `json` (the verb's JSON document), or a template
// in the subset of Go's text/template that docker and podman users type:
//   {{.Field}} {{.Field.Sub}} {{.}}      a value (strings escaped: one item stays one line of text)
//   {{json .Field}} {{json .}}           the value as compact JSON (ASCII only)
//   {{- ...}} {{... -}} {{/* note */}}   whitespace trimming and comments, as Go
//   \t \n                                a tab, a newline in the literal text
//   a leading "table "                   a header row, cells split at tabs and aligned
// Fields are checked against the verb's list when the template is parsed; everything else Go's
// templates can do (range, if, with, pipelines, variables, functions other than json) is refused
// with the reason. One item renders as one line (a newline is added unless the template ends with one).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace imgtool::output {

// A field a template may name, with what may follow it.
struct Field {
    std::string name;
    std::string header;         // table header; empty: the name in capitals, words apart ("CREATED AT")
    std::vector<Field> fields;  // a struct's fields: {{.Config.Cmd}}
    bool map = false;           // any key may follow: {{.Config.Labels.version}}
};
inline Field leaf(std::string name, std::string header = {}) { return Field{std::move(name), std::move(header), {}, false}; }

// Bounds on what a template may be: larger ones are refused, not rendered.
inline constexpr std::size_t kMaxTemplateBytes = 64 * 1024;
inline constexpr std::size_t kMaxFieldDepth = 16;

class Template {
public:
    // Throws Errc::InvalidArgument naming the template and what is wrong with it.
    static Template parse(std::string_view text, const std::vector<Field>& fields);

    bool table() const { return table_; }
    // The header row of a table template: each value's header in place of the value.
    std::string header() const;
    // One item, without the final newline.
    std::string render(const nlohmann::json& item) const;

    struct Piece {
        enum class Kind { Text, Value, Json } kind = Kind::Text;
        std::string text;               // Text: the literal; otherwise: the header
        std::vector<std::string> path;  // empty: "."
    };

private:
    std::vector<Piece> pieces_;
    bool table_ = false;
};

// A --format value: the verb's table (also for ""), its JSON, or a template.
struct Format {
    enum class Style { Table, Json, Template } style = Style::Table;
    Template tmpl;
};
Format parse_format(std::string_view text, const std::vector<Field>& fields);

// Every item through the template, one line each (header first for a table template, every cell
// as wide as its column's widest cell). Ends with a newline unless there is nothing to print.
std::string render_all(const Template& tmpl, const std::vector<nlohmann::json>& items);

// Lines of tab-separated cells as columns: each cell padded to its column's width plus `gap` spaces
// (the last cell of a line is not padded).
std::string align_columns(const std::vector<std::string>& lines, std::size_t gap = 3);
// The same for rows of cells; a column is at least min_width[i] wide (the tables' fixed widths).
std::string align_rows(const std::vector<std::vector<std::string>>& rows, std::size_t gap = 3,
                          const std::vector<std::size_t>& min_width = {});

// Terminal columns of UTF-8 text: continuation bytes take none.
std::size_t display_width(std::string_view text);

// docker's and podman's (go-units) approximation of a duration: "Less than a second", "1 second",
// "45 seconds", "About a minute", "3 minutes", "About an hour", "5 hours", "3 days", "2 weeks",
// "4 months", "3 years". Negative durations (a clock behind the record) count as none.
std::string human_duration(long long seconds);

// The names Go's text/template gives values: "[a b]" for arrays, "map[k:v]" for objects.
std::string go_string(const nlohmann::json& value);

}  // namespace imgtool::output
