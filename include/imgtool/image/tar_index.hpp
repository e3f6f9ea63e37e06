// Index of the members of an outer image archive (docker save / OCI archive tar).
//
// Only regular-file members are addressable, by their normalised name; names that are absolute or
// contain ".." are never indexed, so a manifest can only reach the archive's own members and never an
// outer-tar symlink or a host path. Parsing is pure (the caller supplies header blocks), bounded
// (PAX/GNU long-name records are capped) and never reads member data.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace imgtool::image {

struct TarMember {
    std::uint64_t offset = 0;  // of the data, from the start of the archive
    std::uint64_t size = 0;
    bool regular = true;
};

class TarIndex {
public:
    // `read_at(offset, length)` returns exactly `length` bytes or fewer at end of file.
    using ReadAt = std::function<std::string(std::uint64_t offset, std::uint64_t length)>;
    static TarIndex build(const ReadAt& read_at, std::string_view shown);

    // The member called `name` ("./x" and "x" are the same); nullopt if absent.
    std::optional<TarMember> find(std::string_view name) const;
    const std::map<std::string, TarMember>& members() const { return members_; }

private:
    std::map<std::string, TarMember> members_;
};

// "./a//b/" -> "a/b"; nullopt for absolute names, ".." components or empty names.
std::optional<std::string> normalize_member_name(std::string_view name);

}  // namespace imgtool::image
