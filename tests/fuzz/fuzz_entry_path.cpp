// libFuzzer target: the pure path rules that keep tar entries inside their layer directory.
//   clean_entry_path: a result never starts with '/', never has an empty, "." or ".." component, and
//                     cleaning is idempotent; only a ".." can make it refuse a name.
//   split_parent (core): parent + "/" + base rebuilds the path; base has no '/'.
//   classify_whiteout: the kind follows from the prefix alone; a Whiteout target is a plain name.
//   image::normalize_member_name (the outer-archive rule) agrees with clean_entry_path wherever it accepts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "imgtool/core/strings.hpp"
#include "imgtool/image/tar_index.hpp"
#include "imgtool/layer/entry_path.hpp"

namespace layer = imgtool::layer;

namespace {

void require(bool ok, const char* what, std::string_view name) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_entry_path: invariant violated: %s for %s\n", what, imgtool::printable(name).c_str());
    std::abort();
}

bool has_dotdot_component(std::string_view name) {
    for (const std::string& part : imgtool::split(name, '/')) {
        if (part == "..") return true;
    }
    return false;
}

void check_clean_path(std::string_view name, const std::string& path) {
    require(path.empty() || path.front() != '/', "cleaned path starts with '/'", name);
    require(path.empty() || path.back() != '/', "cleaned path ends with '/'", name);
    if (!path.empty()) {
        for (const std::string& part : imgtool::split(path, '/')) {
            require(!part.empty(), "cleaned path has an empty component", name);
            require(part != ".", "cleaned path has a \".\" component", name);
            require(part != "..", "cleaned path has a \"..\" component", name);
        }
    }
    auto again = layer::clean_entry_path(path);
    require(again.has_value() && *again == path, "clean_entry_path is not idempotent", name);

    auto [parent, base] = imgtool::split_parent(path);
    require(base.find('/') == std::string::npos, "split_parent base contains '/'", name);
    require(path.empty() == base.empty(), "split_parent base is empty for a non-root path", name);
    require(parent.empty() ? base == path : parent + "/" + base == path, "split_parent does not rebuild the path",
            name);
}

void check_whiteout(std::string_view base) {
    layer::Whiteout wh = layer::classify_whiteout(base);
    bool prefixed = base.substr(0, 4) == ".wh.";
    require(prefixed == (wh.kind != layer::WhiteoutKind::None), "whiteout kind disagrees with the .wh. prefix", base);
    require((wh.kind == layer::WhiteoutKind::Opaque) == (base == ".wh..wh..opq"), "opaque marker misclassified", base);
    if (wh.kind == layer::WhiteoutKind::Whiteout) {
        require(wh.target == base.substr(4), "whiteout target is not the name after .wh.", base);
        require(!wh.target.empty() && wh.target != "." && wh.target != "..", "whiteout target names a directory",
                base);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view name(reinterpret_cast<const char*>(data), size);

    auto path = layer::clean_entry_path(name);
    if (path) {
        check_clean_path(name, *path);
        if (!path->empty()) check_whiteout(imgtool::split_parent(*path).second);
    } else {
        require(has_dotdot_component(name), "a name without \"..\" was refused", name);
    }
    // The raw name too, as a base name: unpack classifies only cleaned components, but the rules are pure.
    if (name.find('/') == std::string_view::npos) check_whiteout(name);

    auto member = imgtool::image::normalize_member_name(name);
    if (member) {
        require(!member->empty() && member->front() != '/', "normalised member name is empty or absolute", name);
        require(path.has_value() && *path == *member, "normalize_member_name and clean_entry_path disagree", name);
    } else {
        require(name.empty() || name.front() == '/' || has_dotdot_component(name) || (path && path->empty()),
                "normalize_member_name refused a plain relative name", name);
    }
    return 0;
}
