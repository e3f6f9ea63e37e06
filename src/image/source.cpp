#include "imgtool/image/source.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <sys/stat.h>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/image/json.hpp"
#include "imgtool/image/reference.hpp"
#include "imgtool/image/tar_index.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::image {
namespace {

// What pull-local takes, for messages about anything else.
constexpr std::string_view kAcceptedForms =
    "pull-local takes a docker-save tar, an OCI archive tar, or an OCI layout directory (with oci-layout and "
    "index.json)";

// The path as the user gave it, made absolute (not resolved: symlinks stay as named).
std::string absolute_path(const std::string& path) {
    if (!path.empty() && path.front() == '/') return path;
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return path;
    std::string out = cwd;
    std::string_view rest = path;
    while (rest.rfind("./", 0) == 0) rest.remove_prefix(2);
    if (rest == ".") rest = {};
    if (!rest.empty()) out += (out == "/" ? "" : "/") + std::string(rest);
    return out;
}

class TarSource final : public Source {
public:
    TarSource(std::string shown, sys::UniqueFd fd, std::uint64_t file_size)
        : Source(std::move(shown)), fd_(std::make_shared<sys::UniqueFd>(std::move(fd))) {
        int raw = fd_->get();
        index_ = TarIndex::build(
            [raw, file_size](std::uint64_t offset, std::uint64_t length) {
                if (offset >= file_size) return std::string();
                length = std::min(length, file_size - offset);
                return sys::pread_exact(raw, offset, length, "archive");
            },
            this->shown());
        for (const auto& [name, member] : index_.members()) {
            if (member.regular && member.offset + member.size > file_size) {
                throw Error(Errc::Corrupt, this->shown() + ": truncated tar archive (member " + name + ")");
            }
        }
        format_ = index_.find("index.json") && index_.find("oci-layout") && !index_.find("manifest.json")
                      ? SourceFormat::OciArchive
                      : SourceFormat::DockerArchive;
        if (!index_.find("manifest.json") && !index_.find("index.json")) {
            throw Error(Errc::Corrupt, printable(this->shown()) + ": neither a docker archive (no manifest.json) nor an OCI "
                                                       "archive (no index.json); " + std::string(kAcceptedForms));
        }
    }

    SourceFormat format() const override { return format_; }

    std::optional<std::uint64_t> member_size(const std::string& name) const override {
        auto m = index_.find(name);
        if (!m || !m->regular) return std::nullopt;
        return m->size;
    }

    std::unique_ptr<sys::Reader> open_member(const std::string& name) const override {
        auto m = index_.find(name);
        if (!m || !m->regular) throw Error(Errc::NotFound, name + ": no such file in the archive");
        return std::make_unique<sys::FileRangeReader>(fd_, m->offset, m->size, printable(name));
    }

private:
    std::shared_ptr<sys::UniqueFd> fd_;
    TarIndex index_;
    SourceFormat format_;
};

class LayoutSource final : public Source {
public:
    LayoutSource(std::string shown, sys::UniqueFd dir) : Source(std::move(shown)), dir_(std::move(dir)) {
        if (!member_size("oci-layout")) {
            throw Error(Errc::Corrupt, printable(this->shown()) + ": a directory but not an OCI image layout (no oci-layout file); " +
                                           std::string(kAcceptedForms));
        }
        if (!member_size("index.json")) {
            throw Error(Errc::Corrupt, printable(this->shown()) + ": no index.json (not an OCI image layout); " +
                                           std::string(kAcceptedForms));
        }
    }

    SourceFormat format() const override { return SourceFormat::OciLayout; }

    std::optional<std::uint64_t> member_size(const std::string& name) const override {
        auto norm = normalize_member_name(name);
        if (!norm) return std::nullopt;
        // Symlinks inside a layout are refused outright: they could point at any host file.
        auto [fd, err] = sys::try_open_beneath(dir_.get(), *norm, O_PATH);
        if (err == ENOENT) return std::nullopt;
        if (err) throw_errno(err, "open", *norm);  // the pull names the source once, as context
        struct stat st = sys::fstat_fd(fd.get(), *norm);
        if (!S_ISREG(st.st_mode)) return std::nullopt;
        return static_cast<std::uint64_t>(st.st_size);
    }

    std::unique_ptr<sys::Reader> open_member(const std::string& name) const override {
        auto norm = normalize_member_name(name);
        if (!norm) throw Error(Errc::UnsafePath, "unsafe member name " + printable(name));
        auto fd = std::make_shared<sys::UniqueFd>(sys::open_beneath(dir_.get(), *norm, O_RDONLY | O_NONBLOCK));
        struct stat st = sys::fstat_fd(fd->get(), *norm);
        if (!S_ISREG(st.st_mode)) throw Error(Errc::Corrupt, printable(*norm) + " is not a regular file");
        return std::make_unique<sys::FileRangeReader>(fd, 0, static_cast<std::uint64_t>(st.st_size), printable(*norm));
    }

private:
    sys::UniqueFd dir_;
};

// ---- planning -------------------------------------------------------------------------------------

std::string read_blob(const Source& source, const Descriptor& d, std::string_view what) {
    std::string member = blob_member(d.digest);
    auto size = source.member_size(member);
    if (!size) throw Error(Errc::NotFound, std::string(what) + " " + d.digest.str() + ": blob missing from the image");
    if (*size != d.size) {
        throw Error(Errc::SizeMismatch, std::string(what) + " " + d.digest.str() + ": size mismatch: descriptor says " +
                                            std::to_string(d.size) + " bytes, blob has " + std::to_string(*size));
    }
    std::string bytes = source.read_small(member);
    digest::Digest got = digest::Sha256::of(bytes);
    if (got != d.digest) {
        throw Error(Errc::DigestMismatch, std::string(what) + " " + d.digest.str() + ": digest mismatch: got " + got.str());
    }
    return bytes;
}

void check_diff_id_count(const ImagePlan& plan, std::size_t layer_count, std::string_view what) {
    if (plan.config.diff_ids.size() != layer_count) {
        throw Error(Errc::Corrupt, std::string(what) + ": config lists " + std::to_string(plan.config.diff_ids.size()) +
                                       " diff_ids but the manifest has " + std::to_string(layer_count) + " layers");
    }
}

void add_tag(ImagePlan& plan, const std::string& name) {
    std::string tag = normalize_tag(name);
    for (const auto& t : plan.tags) {
        if (t == tag) return;
    }
    if (plan.tags.size() >= kMaxTagsPerImage) {
        throw Error(Errc::Corrupt, "image " + plan.id.str() + ": more than " + std::to_string(kMaxTagsPerImage) + " tags");
    }
    plan.tags.push_back(tag);
}

constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

// containerd's io.containerd.image.name is a full reference; an org.opencontainers.image.ref.name is
// either a full reference ("example.com/a:1") or only a tag ("v2", as umoci and skopeo write them),
// which podman names localhost/v2:latest (image::name_from_ref_annotation). Both are the image
// author's: an invalid one refuses the import (as podman load does), escaped in the message.
std::optional<std::string> tag_from_annotations(const std::map<std::string, std::string>& annotations) {
    if (auto it = annotations.find("io.containerd.image.name"); it != annotations.end()) return it->second;
    if (auto it = annotations.find(std::string(kRefNameAnnotation)); it != annotations.end()) {
        return name_from_ref_annotation(it->second);
    }
    return std::nullopt;
}

ImagePlan plan_from_manifest(const Source& source, const Descriptor& manifest_desc) {
    std::string what = "manifest " + manifest_desc.digest.str();
    ImagePlan plan{.id = manifest_desc.digest, .config_bytes = {}, .config = {}, .manifest_digest = manifest_desc.digest,
                   .manifest_bytes = read_blob(source, manifest_desc, "manifest"), .layers = {}, .tags = {},
                   .repo_digests = {}};
    Manifest m = parse_manifest(plan.manifest_bytes, what, manifest_desc.media_type);
    plan.config_bytes = read_blob(source, m.config, "config");
    plan.id = m.config.digest;
    plan.config = parse_config(plan.config_bytes, "config " + m.config.digest.str());
    check_diff_id_count(plan, m.layers.size(), what);
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const Descriptor& d = m.layers[i];
        std::string layer_what = "layer " + d.digest.str();
        if (!is_layer_media_type(d.media_type)) {
            throw Error(Errc::UnsupportedMediaType, layer_what + ": unsupported media type \"" + d.media_type + "\"");
        }
        std::string member = blob_member(d.digest);
        auto size = source.member_size(member);
        if (!size) {
            throw Error(Errc::NotFound, layer_what + (d.urls.empty() ? ": blob missing from the image"
                                                                      : ": foreign layer not in the image (its URLs "
                                                                        "are never fetched)"));
        }
        if (*size != d.size) {
            throw Error(Errc::SizeMismatch, layer_what + ": size mismatch: descriptor says " + std::to_string(d.size) +
                                                " bytes, blob has " + std::to_string(*size));
        }
        plan.layers.push_back(LayerPlan{member, d.digest, d.size, plan.config.diff_ids[i]});
    }
    return plan;
}

// Nested indexes are followed at most this deep, each index is read once however often it is named,
// and at most this many descriptors are looked at in all: a small hostile layout cannot make the
// walk exponential (fan-out K at depth 4 would otherwise be K^4 reads).
constexpr int kMaxIndexDepth = 4;
constexpr std::size_t kMaxImagesPerSource = 1000;
constexpr std::size_t kMaxIndexDescriptors = 10000;

struct Selected {
    Descriptor desc;
    std::optional<std::string> tag;       // the name it is given, if any
    std::optional<std::string> ref_name;  // the ref.name that applies to it (its own or its index's)
};

struct Selection {
    std::vector<Selected> manifests;
    std::vector<std::string> seen_platforms;
    std::set<digest::Digest> visited_indexes;
    std::size_t descriptors = 0;
};

void select_from_index(const Source& source, const Index& index, std::string_view what, const Platform& wanted,
                       const std::optional<std::string>& inherited_tag, const std::optional<std::string>& inherited_ref,
                       int depth, bool top_level, Selection& out) {
    if (depth > kMaxIndexDepth) {
        throw Error(Errc::Corrupt, std::string(what) + ": image indexes nested more than " +
                                       std::to_string(kMaxIndexDepth) + " deep");
    }
    for (const Descriptor& d : index.manifests) {
        if (++out.descriptors > kMaxIndexDescriptors) {
            throw Error(Errc::Corrupt, std::string(what) + ": more than " + std::to_string(kMaxIndexDescriptors) +
                                           " descriptors in the image's indexes");
        }
        std::optional<std::string> tag =
            with_context(std::string(what) + ": entry " + d.digest.str(), [&] { return tag_from_annotations(d.annotations); });
        if (!tag) tag = inherited_tag;
        std::optional<std::string> ref = inherited_ref;
        if (auto it = d.annotations.find(std::string(kRefNameAnnotation)); it != d.annotations.end()) ref = it->second;
        if (is_index_media_type(d.media_type)) {
            if (!out.visited_indexes.insert(d.digest).second) continue;  // already walked
            std::string bytes = read_blob(source, d, "index");
            std::string nested_what = "index " + d.digest.str();
            Index nested = parse_index(bytes, nested_what, d.media_type);
            Selection inner;
            inner.visited_indexes = std::move(out.visited_indexes);
            inner.descriptors = out.descriptors;
            select_from_index(source, nested, nested_what, wanted, tag, ref, depth + 1, false, inner);
            out.visited_indexes = std::move(inner.visited_indexes);
            out.descriptors = inner.descriptors;
            out.seen_platforms.insert(out.seen_platforms.end(), inner.seen_platforms.begin(),
                                      inner.seen_platforms.end());
            // A nested index is one multi-platform image: keep only its first match.
            if (!inner.manifests.empty()) out.manifests.push_back(inner.manifests.front());
        } else if (is_manifest_media_type(d.media_type)) {
            if (d.platform) {
                if (out.seen_platforms.size() < 64) out.seen_platforms.push_back(d.platform->str());
                if (!wanted.accepts(*d.platform)) continue;
            }
            out.manifests.push_back(Selected{d, tag, ref});
            if (!top_level && d.platform) return;  // first platform match wins inside an index
        } else {
            throw Error(Errc::UnsupportedMediaType, "index entry " + d.digest.str() + ": unsupported media type \"" +
                                                        printable(d.media_type) + "\"");
        }
    }
}

// "a, b, c, and 7 more": names from the image, each escaped and shortened, at most 10 of them.
std::string name_list(const std::vector<std::string>& names) {
    std::string list;
    std::size_t shown = 0;
    for (const auto& n : names) {
        if (shown == 10) break;
        list += (list.empty() ? "" : ", ") + printable(n.substr(0, 64)) + (n.size() > 64 ? "..." : "");
        ++shown;
    }
    if (names.size() > shown) list += ", and " + std::to_string(names.size() - shown) + " more";
    return list;
}

// Keeps only the images whose ref.name is `ref` (skopeo's oci:DIR:REF): the ref.name that applies to
// each image the full import would take (its own entry's, in a nested index too, else its index's);
// none is an error listing the refs there are.
void select_ref(Selection& selection, const std::string& ref) {
    std::vector<Selected> kept;
    std::vector<std::string> available;
    for (Selected& s : selection.manifests) {
        if (!s.ref_name) continue;
        if (*s.ref_name == ref) {
            kept.push_back(std::move(s));
        } else if (std::find(available.begin(), available.end(), *s.ref_name) == available.end()) {
            available.push_back(*s.ref_name);
        }
    }
    if (kept.empty()) {
        throw Error(Errc::NotFound, "no image with ref name " + printable(ref.substr(0, 128)) + " in index.json (" +
                                        (available.empty() ? "it names none" : "it names " + name_list(available)) +
                                        ")");
    }
    selection.manifests = std::move(kept);
}

std::vector<ImagePlan> plan_oci(const Source& source, const PlanOptions& options) {
    Platform wanted = options.platform.value_or(Platform::host());
    Index index = parse_index(source.read_small("index.json"), "index.json");
    Selection selection;
    select_from_index(source, index, "index.json", wanted, std::nullopt, std::nullopt, 0, true, selection);
    if (options.ref_name && !selection.manifests.empty()) select_ref(selection, *options.ref_name);
    if (selection.manifests.empty()) {
        std::string list;
        for (const auto& p : selection.seen_platforms) list += (list.empty() ? "" : ", ") + p;
        throw Error(Errc::NotFound, "no image for platform " + wanted.str() +
                                        (list.empty() ? "" : " (available: " + list + ")"));
    }
    std::vector<ImagePlan> plans;
    // Each manifest is read once, however many index entries name it.
    std::map<digest::Digest, std::size_t> planned;
    std::map<std::string, digest::Digest> named;  // name -> the image it was given to
    for (const auto& [desc, tag, ref_name] : selection.manifests) {
        auto [it, fresh] = planned.emplace(desc.digest, plans.size());
        if (fresh) {
            if (plans.size() >= kMaxImagesPerSource) {
                throw Error(Errc::Corrupt, "index.json: more than " + std::to_string(kMaxImagesPerSource) + " images");
            }
            plans.push_back(plan_from_manifest(source, desc));
        }
        if (!tag) continue;
        ImagePlan& plan = plans[it->second];
        add_tag(plan, *tag);
        // Two images given one name (the same ref.name twice, or two spellings of one name): which one
        // it should name is anyone's guess, so neither is imported.
        auto [owner, first] = named.emplace(normalize_tag(*tag), plan.id);
        if (!first && owner->second != plan.id) {
            throw Error(Errc::Corrupt, "index.json: the name " + printable(owner->first) + " is given to two images (" +
                                           owner->second.str() + " and " + plan.id.str() + ")");
        }
    }
    // An entry without a platform is checked against its config: an explicit --platform must match
    // (never import another platform silently).
    if (options.platform) {
        for (const auto& plan : plans) {
            const Platform& p = plan.config.platform;
            if (!p.os.empty() && !p.architecture.empty() && !options.platform->accepts(p)) {
                std::set<std::string> available;
                for (const auto& other : plans) available.insert(other.config.platform.str());
                for (const auto& seen : selection.seen_platforms) available.insert(seen);
                std::string list;
                for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
                throw Error(Errc::NotFound, "no image for platform " + options.platform->str() + " (available: " + list + ")");
            }
        }
    }
    return plans;
}

// skopeo's docker-archive:PATH:REF: only the entries whose RepoTags hold REF (normalised).
void select_repo_tag(std::vector<DockerManifestEntry>& entries, const std::string& ref) {
    std::string wanted = with_context("ARCHIVE:REF", [&] { return normalize_tag(ref); });
    std::vector<DockerManifestEntry> kept;
    std::vector<std::string> available;
    for (auto& entry : entries) {
        bool match = false;
        for (const auto& tag : entry.repo_tags) {
            std::string name;
            try {
                name = normalize_tag(tag);
            } catch (const Error&) {
                name = tag;
            }
            if (name == wanted) match = true;
            if (std::find(available.begin(), available.end(), tag) == available.end()) available.push_back(tag);
        }
        // Selecting one tag applies only that tag (as an OCI layout's REF does), not the image's others.
        if (match) {
            entry.repo_tags = {wanted};
            kept.push_back(std::move(entry));
        }
    }
    if (kept.empty()) {
        throw Error(Errc::NotFound, "no image tagged " + printable(wanted) + " in manifest.json (" +
                                        (available.empty() ? "it has no RepoTags" : "it has " + name_list(available)) + ")");
    }
    entries = std::move(kept);
}

std::vector<ImagePlan> plan_docker(const Source& source, const PlanOptions& options) {
    auto entries = parse_docker_manifest(source.read_small("manifest.json"), "manifest.json");
    if (options.ref_name) select_repo_tag(entries, *options.ref_name);
    if (entries.size() > kMaxImagesPerSource) {
        throw Error(Errc::Corrupt, "manifest.json: " + std::to_string(entries.size()) + " images (at most " +
                                       std::to_string(kMaxImagesPerSource) + ")");
    }
    std::vector<ImagePlan> plans;
    for (const DockerManifestEntry& entry : entries) {
        if (!normalize_member_name(entry.config)) {
            throw Error(Errc::UnsafePath, "manifest.json: unsafe Config path \"" + entry.config + "\"");
        }
        if (!source.member_size(entry.config)) {
            throw Error(Errc::NotFound, "manifest.json: config " + entry.config + " missing from the archive");
        }
        ImagePlan plan{.id = digest::Digest::sha256_hex(std::string(64, '0')), .config_bytes = {}, .config = {},
                       .manifest_digest = std::nullopt, .manifest_bytes = {}, .layers = {}, .tags = {}, .repo_digests = {}};
        plan.config_bytes = source.read_small(entry.config);
        plan.id = digest::Sha256::of(plan.config_bytes);
        // Docker >= 25 names blobs by digest: then the name is a claim we can check.
        if (auto norm = normalize_member_name(entry.config); norm && norm->rfind("blobs/sha256/", 0) == 0) {
            if (norm->substr(13) != plan.id.hex()) {
                throw Error(Errc::DigestMismatch, "config " + entry.config + ": digest mismatch: got " + plan.id.str());
            }
        }
        plan.config = parse_config(plan.config_bytes, "config " + plan.id.str());
        check_diff_id_count(plan, entry.layers.size(), "manifest.json");
        for (std::size_t i = 0; i < entry.layers.size(); ++i) {
            const std::string& name = entry.layers[i];
            auto norm = normalize_member_name(name);
            if (!norm) throw Error(Errc::UnsafePath, "manifest.json: unsafe layer path \"" + name + "\"");
            auto size = source.member_size(*norm);
            if (!size) throw Error(Errc::NotFound, "layer " + name + ": missing from the archive");
            std::optional<digest::Digest> blob_digest;
            if (norm->rfind("blobs/sha256/", 0) == 0) blob_digest = digest::Digest::sha256_hex(norm->substr(13));
            plan.layers.push_back(LayerPlan{*norm, blob_digest, *size, plan.config.diff_ids[i]});
        }
        for (const auto& tag : entry.repo_tags) add_tag(plan, tag);
        plans.push_back(std::move(plan));
    }
    return plans;
}

}  // namespace

bool is_layer_media_type(std::string_view media_type) {
    static const std::string_view known[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
    };
    for (auto k : known) {
        if (media_type == k) return true;
    }
    return false;
}

std::string blob_member(const digest::Digest& d) { return "blobs/" + d.algorithm() + "/" + d.hex(); }

std::string Source::read_small(const std::string& name) const {
    auto size = member_size(name);
    if (!size) throw Error(Errc::NotFound, name + ": missing from the image");
    if (*size > kMaxJsonBytes) {
        throw Error(Errc::Corrupt, name + ": too large for a metadata document (" + std::to_string(*size) + " bytes)");
    }
    auto reader = open_member(name);
    std::string data(*size, '\0');
    std::size_t done = 0;
    while (done < data.size()) {
        std::size_t n = reader->read(data.data() + done, data.size() - done);
        if (n == 0) throw Error(Errc::Corrupt, name + ": unexpected end of file");
        done += n;
    }
    return data;
}

std::unique_ptr<Source> Source::open(const std::string& path) {
    std::string shown = absolute_path(path);
    // O_NONBLOCK: opening a FIFO must not block; regular files and directories ignore it.
    int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int err = raw < 0 ? errno : 0;
    sys::UniqueFd fd(raw);
    if (err == ENOENT || err == ENOTDIR) {
        throw Error(Errc::NotFound, printable(shown) + ": No such file or directory; " + std::string(kAcceptedForms));
    }
    if (err) throw_errno(err, "open", shown);
    struct stat st = sys::fstat_fd(fd.get(), shown);
    if (S_ISDIR(st.st_mode)) return std::make_unique<LayoutSource>(shown, std::move(fd));
    if (!S_ISREG(st.st_mode)) {
        throw Error(Errc::Corrupt, printable(shown) + ": not a regular file or directory; " + std::string(kAcceptedForms));
    }
    if (st.st_size == 0) throw Error(Errc::Corrupt, printable(shown) + ": empty file; " + std::string(kAcceptedForms));
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::make_unique<TarSource>(shown, std::move(fd), static_cast<std::uint64_t>(st.st_size));
}

std::vector<ImagePlan> plan_images(const Source& source, const PlanOptions& options) {
    if (source.format() == SourceFormat::DockerArchive) {
        // A Docker >= 25 archive is also an OCI layout; manifest.json is what docker itself reads.
        // A docker archive names no platform but in its configs: an explicit --platform must match
        // them (silently importing another platform would be a surprise).
        auto plans = plan_docker(source, options);
        if (options.platform) {
            for (const auto& plan : plans) {
                if (!options.platform->accepts(plan.config.platform)) {
                    throw Error(Errc::NotFound, "manifest.json: image " + plan.id.str() + " is for " +
                                                    plan.config.platform.str() + ", not " + options.platform->str());
                }
            }
        }
        return plans;
    }
    return plan_oci(source, options);
}

}  // namespace imgtool::image
