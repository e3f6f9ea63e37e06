#include "imgtool/save/save.hpp"

#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/layer/tar_record.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::save {
namespace {

using digest::Digest;
using json = nlohmann::json;
using Producer = std::function<void(const layer::TarSink&)>;

constexpr std::size_t kBlock = 512;
constexpr std::size_t kOutBuffer = 1 << 20;
const char kZeros[2 * kBlock] = {};

// An fd written through one buffer: regenerated layers come in many small pieces (a header, a small
// file), which would otherwise cost a write each.
class FdOut {
public:
    FdOut(int fd, std::string shown) : fd_(fd), shown_(std::move(shown)) { buffer_.reserve(kOutBuffer); }
    void write(const char* data, std::size_t size) {
        bytes_ += size;
        if (buffer_.size() + size > kOutBuffer) flush();
        if (size >= kOutBuffer) {
            sys::write_all(fd_, data, size, shown_);
            return;
        }
        buffer_.insert(buffer_.end(), data, data + size);
    }
    void flush() {
        if (!buffer_.empty()) sys::write_all(fd_, buffer_.data(), buffer_.size(), shown_);
        buffer_.clear();
    }
    std::uint64_t bytes() const { return bytes_; }

private:
    int fd_;
    std::string shown_;
    std::vector<char> buffer_;
    std::uint64_t bytes_ = 0;
};

// Where the archive's members go: a tar stream or a directory.
class Container {
public:
    virtual ~Container() = default;
    // A member of `size` bytes that `produce` writes (exactly that many, or it throws).
    virtual void put(const std::string& name, std::uint64_t size, const Producer& produce) = 0;
    void put(const std::string& name, std::string_view bytes) {
        put(name, bytes.size(), [&](const layer::TarSink& out) { out(bytes.data(), bytes.size()); });
    }
    virtual void finish() = 0;
};

void octal(char* field, std::size_t width, std::uint64_t value) {
    // width - 1 digits and a NUL.
    std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
}

class TarContainer final : public Container {
public:
    explicit TarContainer(FdOut& out) : out_(out) {}

    void put(const std::string& name, std::uint64_t size, const Producer& produce) override {
        if (name.size() >= 100) throw Error(Errc::InvalidArgument, "member name too long: " + name);
        char h[kBlock] = {};
        std::memcpy(h, name.data(), name.size());
        octal(h + 100, 8, 0644);
        octal(h + 108, 8, 0);
        octal(h + 116, 8, 0);
        if (size < (std::uint64_t{1} << 33)) {
            octal(h + 124, 12, size);
        } else {  // base-256, as GNU tar and Go write sizes of 8 GiB and more
            h[124] = static_cast<char>(0x80);
            for (int i = 0; i < 8; ++i) h[135 - i] = static_cast<char>((size >> (8 * i)) & 0xff);
        }
        octal(h + 136, 12, 0);
        h[156] = '0';
        std::memcpy(h + 257, "ustar\0" "00", 8);
        std::memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (char c : h) sum += static_cast<unsigned char>(c);
        std::snprintf(h + 148, 8, "%06o", sum);
        h[155] = ' ';
        out_.write(h, kBlock);
        std::uint64_t written = 0;
        produce([&](const char* data, std::size_t n) {
            if (n > size - written) throw Error(Errc::SizeMismatch, name + ": more than its " + std::to_string(size) + " bytes");
            out_.write(data, n);
            written += n;
        });
        if (written != size) throw Error(Errc::SizeMismatch, name + ": " + std::to_string(written) + " of its " + std::to_string(size) + " bytes");
        out_.write(kZeros, (kBlock - size % kBlock) % kBlock);
    }

    void finish() override {
        out_.write(kZeros, sizeof kZeros);
        out_.flush();
    }

private:
    FdOut& out_;
};

// Members as files below a directory (the OCI layout's blobs/sha256/ made first).
class DirContainer final : public Container {
public:
    DirContainer(int dir, mode_t mode) : dir_(dir), mode_(mode) {
        sys::mkdir_at(dir_, "blobs", 0755, true);
        sys::UniqueFd blobs = sys::open_beneath(dir_, "blobs", O_RDONLY | O_DIRECTORY);
        sys::mkdir_at(blobs.get(), "sha256", 0755, true);
    }
    void put(const std::string& name, std::uint64_t size, const Producer& produce) override {
        sys::UniqueFd fd = sys::open_beneath(dir_, name, O_WRONLY | O_CREAT | O_EXCL, mode_);
        FdOut out(fd.get(), name);
        produce([&](const char* data, std::size_t n) { out.write(data, n); });
        out.flush();
        if (out.bytes() != size) throw Error(Errc::SizeMismatch, name + ": " + std::to_string(out.bytes()) + " of its " + std::to_string(size) + " bytes");
        sys::fsync_fd(fd.get(), name);
    }
    void finish() override { sys::fsync_fd(dir_, "output directory"); }

private:
    int dir_;
    mode_t mode_;
};

// gzip through ISA-L's deflate (level 1: several times zlib's speed, about its -1 ratio).
class GzipWriter {
public:
    explicit GzipWriter(const layer::TarSink& out) : out_(out), level_buf_(ISAL_DEF_LVL1_DEFAULT), buffer_(256 << 10) {
        isal_deflate_init(&s_);
        s_.gzip_flag = IGZIP_GZIP;
        s_.level = 1;
        s_.level_buf = level_buf_.data();
        s_.level_buf_size = static_cast<std::uint32_t>(level_buf_.size());
    }
    void write(const char* data, std::size_t size) {
        while (size > 0) {
            auto n = static_cast<std::uint32_t>(std::min<std::size_t>(size, 1u << 30));
            s_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(data));
            s_.avail_in = n;
            s_.end_of_stream = 0;
            s_.flush = NO_FLUSH;
            while (s_.avail_in > 0) run();
            data += n;
            size -= n;
        }
    }
    void finish() {
        s_.next_in = nullptr;
        s_.avail_in = 0;
        s_.end_of_stream = 1;
        s_.flush = NO_FLUSH;
        do {
            run();
        } while (s_.internal_state.state != ZSTATE_END);
    }

private:
    void run() {
        s_.next_out = reinterpret_cast<std::uint8_t*>(buffer_.data());
        s_.avail_out = static_cast<std::uint32_t>(buffer_.size());
        int rc = isal_deflate(&s_);
        if (rc != COMP_OK) throw Error(Errc::Corrupt, "gzip compression failed (" + std::to_string(rc) + ")");
        std::size_t produced = buffer_.size() - s_.avail_out;
        if (produced) out_(buffer_.data(), produced);
    }

    const layer::TarSink& out_;
    isal_zstream s_{};
    std::vector<std::uint8_t> level_buf_;
    std::vector<char> buffer_;
};

// The layer's tar, regenerated and checked against its diff_id as it goes to `out`.
void write_layer(const store::Store& store, const Digest& diff_id, std::uint64_t size, const layer::TarSink& out) {
    std::string rel = "layers/" + diff_id.hex() + "/" + layer::kTarRecordName;
    auto [record, err] = sys::try_open_beneath(store.root_fd(), rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (err == ENOENT) {
        throw Error(Errc::NotFound, "no tar record (unpacked by an older imgtool, which kept none): remove the image "
                                    "and import it again to save it");
    }
    if (err) throw_errno(err, "open", store.root() + "/" + rel);
    if (!S_ISREG(sys::fstat_fd(record.get(), rel).st_mode)) throw Error(Errc::Corrupt, rel + ": not a regular file");
    sys::UniqueFd diff = store.open_layer(diff_id);
    digest::Sha256 hash;
    layer::regenerate_tar(record.get(), diff.get(), size, [&](const char* data, std::size_t n) {
        hash.update(data, n);
        out(data, n);
    });
    Digest got = hash.finish();
    if (got != diff_id) {
        throw Error(Errc::DigestMismatch, "the regenerated tar is " + got.str() + ", not the diff_id (the layer's tree "
                                          "was changed in the store)");
    }
}

std::uint64_t layer_size(const store::Store& store, const Digest& diff_id) {
    auto info = store.layer_info(diff_id);
    if (!info) throw Error(Errc::NotFound, "not in the store");
    return info->size;
}

struct Blob {
    Digest digest;
    std::uint64_t size = 0;
};

// An OCI layer: the tar regenerated, verified and gzip-compressed into a spool file in the store's
// tmp/, then copied into the container under its digest.
Blob put_compressed_layer(store::Store& store, Container& container, const Digest& diff_id) {
    std::uint64_t size = layer_size(store, diff_id);
    store::Staging spool = store.new_staging();
    sys::UniqueFd fd = sys::open_at(spool.dir_fd(), "layer.gz", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    digest::Sha256 hash;
    FdOut file(fd.get(), spool.path() + "/layer.gz");
    layer::TarSink to_file = [&](const char* data, std::size_t n) {
        hash.update(data, n);
        file.write(data, n);
    };
    GzipWriter gzip(to_file);
    write_layer(store, diff_id, size, [&](const char* data, std::size_t n) { gzip.write(data, n); });
    gzip.finish();
    file.flush();
    Blob blob{hash.finish(), file.bytes()};
    container.put("blobs/sha256/" + blob.digest.hex(), blob.size, [&](const layer::TarSink& out) {
        std::vector<char> buffer(1 << 20);
        std::uint64_t offset = 0;
        while (offset < blob.size) {
            ssize_t n = ::pread(fd.get(), buffer.data(), buffer.size(), static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("read", spool.path() + "/layer.gz");
            }
            if (n == 0) throw Error(Errc::SizeMismatch, "spool file shrank");
            out(buffer.data(), static_cast<std::size_t>(n));
            offset += static_cast<std::uint64_t>(n);
        }
    });
    return blob;
}

// Runs `fn` with the image's reference (and the layer) as context, as every error names them.
template <typename Fn>
decltype(auto) for_image(const SaveRequest& req, Fn&& fn) {
    return with_context(req.reference, std::forward<Fn>(fn));
}

void write_docker(store::Store& store, Container& out, const std::vector<SaveRequest>& images, SaveStats& stats) {
    std::set<Digest> done;
    json manifest = json::array();
    for (const SaveRequest& req : images) {
        for_image(req, [&] {
            std::string config_name = req.image.id.hex() + ".json";
            if (done.insert(req.image.id).second) out.put(config_name, store.read_blob(req.image.id));
            json layers = json::array();
            for (const Digest& d : req.image.layers) {
                std::string name = d.hex() + ".tar";
                layers.push_back(name);
                if (!done.insert(d).second) continue;
                with_context("layer " + d.str(), [&] {
                    std::uint64_t size = layer_size(store, d);
                    out.put(name, size, [&](const layer::TarSink& sink) { write_layer(store, d, size, sink); });
                });
                ++stats.layers;
            }
            manifest.push_back({{"Config", config_name}, {"RepoTags", req.tags}, {"Layers", layers}});
        });
    }
    out.put("manifest.json", manifest.dump());  // last: without it, nothing loads the archive
    out.finish();
}

void write_oci(store::Store& store, Container& out, const std::vector<SaveRequest>& images, SaveStats& stats) {
    out.put("oci-layout", std::string_view(R"({"imageLayoutVersion":"1.0.0"})"));
    std::set<Digest> done;
    std::map<Digest, Blob> layers;
    json index_manifests = json::array();
    for (const SaveRequest& req : images) {
        for_image(req, [&] {
            std::string config = store.read_blob(req.image.id);
            if (done.insert(req.image.id).second) out.put("blobs/sha256/" + req.image.id.hex(), config);
            json descs = json::array();
            for (const Digest& d : req.image.layers) {
                auto it = layers.find(d);
                if (it == layers.end()) {
                    Blob blob = with_context("layer " + d.str(), [&] { return put_compressed_layer(store, out, d); });
                    it = layers.emplace(d, blob).first;
                    ++stats.layers;
                }
                descs.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                 {"digest", it->second.digest.str()},
                                 {"size", it->second.size}});
            }
            json manifest = {{"schemaVersion", 2},
                             {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                             {"config",
                              {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                               {"digest", req.image.id.str()},
                               {"size", config.size()}}},
                             {"layers", descs}};
            std::string bytes = manifest.dump();
            Digest md = digest::Sha256::of(bytes);
            if (done.insert(md).second) out.put("blobs/sha256/" + md.hex(), bytes);
            json desc = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"}, {"digest", md.str()}, {"size", bytes.size()}};
            if (req.tags.empty()) index_manifests.push_back(desc);
            for (const std::string& tag : req.tags) {
                json named = desc;
                // ref.name as the OCI layout asks (the tag: umoci, skopeo's oci:DIR:TAG); the full name
                // as containerd writes it (what pull-local names the image by).
                auto colon = tag.rfind(':');
                bool has_tag = colon != std::string::npos && tag.find('/', colon) == std::string::npos;
                named["annotations"] = {{"org.opencontainers.image.ref.name", has_tag ? tag.substr(colon + 1) : tag},
                                        {"io.containerd.image.name", tag}};
                index_manifests.push_back(named);
            }
        });
    }
    json index = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", index_manifests}};
    out.put("index.json", index.dump());  // last: without it, nothing loads the layout
    out.finish();
}

void write_all_images(store::Store& store, Container& out, Format format, const std::vector<SaveRequest>& images,
                      SaveStats& stats) {
    if (format == Format::DockerArchive) {
        write_docker(store, out, images, stats);
    } else {
        write_oci(store, out, images, stats);
    }
}

// A temporary name beside `path` (same directory, so rename is atomic), removed unless committed.
class TempBeside {
public:
    explicit TempBeside(const std::string& path) : target_(path) {
        auto slash = path.rfind('/');
        std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
        if (base.empty() || base == "." || base == "..") throw Error(Errc::InvalidArgument, path + ": not a file name");
        dir_ = sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        name_ = sys::unique_name("." + base + ".tmp-");
        base_ = base;
    }
    ~TempBeside() {
        if (committed_ || !made_) return;
        try {
            sys::remove_tree_at(dir_.get(), name_);
        } catch (...) {
        }
    }
    int dir() const { return dir_.get(); }
    const std::string& name() const { return name_; }
    void made() { made_ = true; }
    void commit() {
        if (::renameat(dir_.get(), name_.c_str(), dir_.get(), base_.c_str()) != 0) throw_errno("rename", target_);
        committed_ = true;
        sys::fsync_fd(dir_.get(), target_);
    }

private:
    std::string target_, name_, base_;
    sys::UniqueFd dir_;
    bool made_ = false, committed_ = false;
};

}  // namespace

Format parse_format(const std::string& name) {
    if (name == "docker-archive") return Format::DockerArchive;
    if (name == "oci-archive") return Format::OciArchive;
    if (name == "oci-dir") return Format::OciDir;
    throw Error(Errc::InvalidArgument, "unknown format \"" + name + "\" (docker-archive, oci-archive or oci-dir)");
}

SaveStats save_images(store::Store& store, const std::vector<SaveRequest>& images, const SaveOptions& options) {
    SaveStats stats;
    if (options.format == Format::OciDir) {
        if (options.output.empty()) throw Error(Errc::InvalidArgument, "oci-dir needs -o DIRECTORY");
        if (::access(options.output.c_str(), F_OK) == 0) {
            throw Error(Errc::InvalidArgument, options.output + ": already exists (oci-dir makes a new directory)");
        }
        TempBeside temp(options.output);
        sys::mkdir_at(temp.dir(), temp.name(), 0755, false);
        temp.made();
        sys::UniqueFd dir = sys::open_beneath(temp.dir(), temp.name(), O_RDONLY | O_DIRECTORY);
        DirContainer out(dir.get(), options.file_mode);
        write_oci(store, out, images, stats);
        temp.commit();
        return stats;
    }
    if (options.output.empty()) {
        FdOut fd(options.stdout_fd, "standard output");
        TarContainer out(fd);
        write_all_images(store, out, options.format, images, stats);
        stats.bytes = fd.bytes();
        return stats;
    }
    // What is already at -o decides. A character device or a FIFO is written into (-o /dev/null, a
    // named pipe), as docker writes; replacing it would leave a regular file where every process
    // expects the device. A regular file is replaced through a temporary name (a failed save leaves it
    // as it was). Anything else is refused: a symlink may have been planted by someone else, and
    // following it could write into whatever it names.
    struct stat existing {};
    if (::lstat(options.output.c_str(), &existing) == 0) {
        if (S_ISLNK(existing.st_mode)) {
            throw Error(Errc::UnsafePath, options.output + ": a symbolic link (give the file itself, or -o - for standard output)");
        }
        if (S_ISCHR(existing.st_mode) || S_ISFIFO(existing.st_mode)) {
            // O_NONBLOCK: a FIFO nobody reads fails (ENXIO) instead of hanging; cleared for the writes.
            sys::UniqueFd target = sys::open_at(AT_FDCWD, options.output, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0,
                                                options.output);
            struct stat opened = sys::fstat_fd(target.get(), options.output);
            if (opened.st_ino != existing.st_ino || opened.st_dev != existing.st_dev) {
                throw Error(Errc::UnsafePath, options.output + ": replaced while being opened");
            }
            if (::fcntl(target.get(), F_SETFL, 0) != 0) throw_errno("fcntl", options.output);
            FdOut fd(target.get(), options.output);
            TarContainer out(fd);
            write_all_images(store, out, options.format, images, stats);
            stats.bytes = fd.bytes();
            return stats;
        }
        if (!S_ISREG(existing.st_mode)) {
            throw Error(Errc::InvalidArgument, options.output + ": exists and is not a regular file, a device or a FIFO");
        }
    }
    TempBeside temp(options.output);
    sys::UniqueFd file = sys::open_at(temp.dir(), temp.name(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                      options.file_mode);
    temp.made();
    FdOut fd(file.get(), options.output);
    TarContainer out(fd);
    write_all_images(store, out, options.format, images, stats);
    sys::fsync_fd(file.get(), options.output);
    temp.commit();
    stats.bytes = fd.bytes();
    return stats;
}

}  // namespace imgtool::save
