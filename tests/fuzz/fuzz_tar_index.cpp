// libFuzzer target: TarIndex::build over an outer image archive held in memory. Every hostile header
// must end in imgtool::Error or a valid index; the index must only hold normalised names, each of which
// find() resolves to the same member.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "imgtool/core/error.hpp"
#include "imgtool/image/tar_index.hpp"

namespace image = imgtool::image;

namespace {

void require(bool ok, const char* what, const std::string& name = {}) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_tar_index: invariant violated: %s (%s)\n", what, name.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The archive as a file would present it: short reads only at end of file.
    auto read_at = [data, size](std::uint64_t offset, std::uint64_t length) -> std::string {
        if (offset >= size) return {};
        std::uint64_t n = std::min<std::uint64_t>(length, size - offset);
        return std::string(reinterpret_cast<const char*>(data) + offset, n);
    };
    image::TarIndex index;
    try {
        index = image::TarIndex::build(read_at, "fuzz.tar");
    } catch (const imgtool::Error&) {
        return 0;
    }
    for (const auto& [name, member] : index.members()) {
        auto normal = image::normalize_member_name(name);
        require(normal.has_value() && *normal == name, "indexed name is not normalised", name);
        auto found = index.find(name);
        require(found.has_value() && found->offset == member.offset && found->size == member.size,
                "find() disagrees with members()", name);
        require(index.find("./" + name).has_value(), "\"./name\" is not the same member as \"name\"", name);
        require(member.regular || member.size == 0, "a non-regular member has a size", name);
        require(member.offset % 512 == 0, "member data is not block-aligned", name);
    }
    return 0;
}
