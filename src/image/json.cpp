#include "imgtool/image/json.hpp"

#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"

namespace imgtool::image {
namespace {

using json = nlohmann::json;

// A SAX consumer that builds the DOM like nlohmann's own, but refuses duplicate keys and deep nesting.
class StrictBuilder {
public:
    explicit StrictBuilder(json& root) : root_(root) {}

    bool null() { return put(json(nullptr)); }
    bool boolean(bool v) { return put(json(v)); }
    bool number_integer(json::number_integer_t v) { return put(json(v)); }
    bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
    bool number_float(json::number_float_t v, const json::string_t&) { return put(json(v)); }
    bool string(json::string_t& v) { return put(json(std::move(v))); }
    bool binary(json::binary_t&) { return fail("binary values are not JSON"); }
    bool start_object(std::size_t) { return open(json::object()); }
    bool start_array(std::size_t) { return open(json::array()); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }
    bool key(json::string_t& k) {
        if (stack_.back()->contains(k)) return fail("duplicate key \"" + printable(k) + "\"");
        pending_key_ = std::move(k);
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        // nlohmann's message starts with "[json.exception.parse_error.101] parse error at line..".
        std::string what = e.what();
        auto pos = what.find("] ");
        return fail(pos == std::string::npos ? what : what.substr(pos + 2));
    }

    const std::string& error() const { return error_; }

private:
    bool fail(std::string reason) {
        if (error_.empty()) error_ = std::move(reason);
        return false;
    }
    json* place(json&& value) {
        if (stack_.empty()) {
            root_ = std::move(value);
            return &root_;
        }
        json* top = stack_.back();
        if (top->is_array()) {
            top->push_back(std::move(value));
            return &top->back();
        }
        json& slot = (*top)[pending_key_];
        slot = std::move(value);
        return &slot;
    }
    bool put(json&& value) {
        place(std::move(value));
        return true;
    }
    bool open(json&& container) {
        if (stack_.size() >= kMaxJsonDepth) return fail("nesting deeper than " + std::to_string(kMaxJsonDepth));
        stack_.push_back(place(std::move(container)));
        return true;
    }
    bool close() {
        stack_.pop_back();
        return true;
    }

    json& root_;
    std::vector<json*> stack_;
    std::string pending_key_;
    std::string error_;
};

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, std::string_view what) {
    if (text.size() > kMaxJsonBytes) {
        throw Error(Errc::Corrupt, std::string(what) + ": JSON document too large (" + std::to_string(text.size()) +
                                       " bytes, limit " + std::to_string(kMaxJsonBytes) + ")");
    }
    // nlohmann stops at a NUL byte; JSON text never contains one, and bytes a parser skips are bytes
    // another tool may read differently.
    if (text.find('\0') != std::string_view::npos) {
        throw Error(Errc::Corrupt, std::string(what) + ": invalid JSON: NUL byte in document");
    }
    json root;
    StrictBuilder builder(root);
    bool ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, true);
    if (!ok) {
        std::string reason = builder.error().empty() ? "malformed" : builder.error();
        throw Error(Errc::Corrupt, std::string(what) + ": invalid JSON: " + reason);
    }
    return root;
}

}  // namespace imgtool::image
