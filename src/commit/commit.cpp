#include "imgtool/commit/commit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <thread>

#include "imgtool/commit/change.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/image/json.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/import/pull.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/mountinfo.hpp"
#include "imgtool/sys/process.hpp"
#include "imgtool/sys/reader.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::commit {
namespace {

std::string join_words(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
    return out;
}

// The layer tar, written to a file of the staging directory and hashed in the same pass.
class TarFile {
public:
    explicit TarFile(int dir_fd) {
        int fd = ::openat(dir_fd, "layer.tar", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) throw_errno("create", "layer.tar");
        fd_ = std::make_shared<sys::UniqueFd>(fd);
        buffer_.reserve(kBuffer);
    }
    void write(const void* data, std::size_t size) {
        hash_.update(data, size);
        size_ += size;
        const char* p = static_cast<const char*>(data);
        if (buffer_.size() + size > kBuffer) flush();
        if (size >= kBuffer) {
            sys::write_all(fd_->get(), p, size, "layer.tar");
        } else {
            buffer_.append(p, size);
        }
    }
    void flush() {
        if (!buffer_.empty()) sys::write_all(fd_->get(), buffer_.data(), buffer_.size(), "layer.tar");
        buffer_.clear();
    }
    digest::Digest finish() {
        flush();
        return hash_.finish();
    }
    std::uint64_t size() const { return size_; }
    std::shared_ptr<const sys::UniqueFd> fd() const { return fd_; }

private:
    static constexpr std::size_t kBuffer = 1 << 20;
    std::shared_ptr<sys::UniqueFd> fd_;
    std::string buffer_;
    digest::Sha256 hash_;
    std::uint64_t size_ = 0;
};

// The committed image as an import source: one image, its plan made here; the base layers are in the
// store already (the pipeline reuses them), the new one is the staged tar.
class CommitSource final : public import::BlobSource {
public:
    CommitSource(image::ImagePlan plan, std::shared_ptr<const sys::UniqueFd> tar, std::uint64_t size)
        : plan_(std::move(plan)), tar_(std::move(tar)), size_(size) {}
    std::string name() const override { return "commit"; }
    std::vector<image::ImagePlan> plan(const image::PlanOptions&) override { return {plan_}; }
    std::unique_ptr<sys::Reader> open_layer(const image::LayerPlan& layer, import::Spool*) const override {
        if (layer.member != "layer.tar") {
            throw Error(Errc::NotFound, "layer " + layer.diff_id.str() + " is no longer in the store");
        }
        return std::make_unique<sys::FileRangeReader>(tar_, 0, size_, "layer.tar");
    }

private:
    image::ImagePlan plan_;
    std::shared_ptr<const sys::UniqueFd> tar_;
    std::uint64_t size_;
};

// While a container is frozen, a signal that ends commit (^C, kill) first thaws it: the handler writes
// the thaw to a control file opened beforehand (write(2) is async-signal-safe), then the signal takes
// its default course. SIGKILL cannot be caught: `imgtool stop` or `rm -f` then ends the container.
int g_thaw_fd = -1;
const char* g_thaw_text = nullptr;
std::size_t g_thaw_size = 0;
constexpr int kEndingSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2};

extern "C" void thaw_and_die(int sig) {
    if (g_thaw_fd >= 0) (void)!::write(g_thaw_fd, g_thaw_text, g_thaw_size);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

// A running container's own cgroup (one imgtool made for it, "imgtool-<pid>-<hex>", when run was given
// a limit), frozen for the life of this object: cgroup v2's cgroup.freeze, else the v1 freezer. A
// container in a cgroup it shares (no limit given) has nothing that freezes only it: then nothing is.
class Freeze {
public:
    // `pid` is the container's supervisor (its cgroups hold only the container: then its child, the
    // container's PID 1, is the one to look at) or --init's PID 1.
    explicit Freeze(int pid) {
        std::vector<int> candidates{pid};
        try {
            std::string proc = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
            for (const auto& word : split(sys::read_file_at(AT_FDCWD, proc, 4096), ' ')) {
                if (!word.empty() && word != "\n") candidates.push_back(std::atoi(word.c_str()));
            }
        } catch (const Error&) {
        }
        for (int candidate : candidates) {
            if (candidate > 0 && freeze_cgroup_of(candidate)) return;
        }
    }
    ~Freeze() {
        thaw();
        disarm();
    }
    Freeze(const Freeze&) = delete;
    Freeze& operator=(const Freeze&) = delete;
    bool frozen() const { return static_cast<bool>(dir_); }

private:
    bool freeze_cgroup_of(int pid) {
        std::string text;
        try {
            text = sys::read_file_at(AT_FDCWD, "/proc/" + std::to_string(pid) + "/cgroup", 64 << 10);
        } catch (const Error&) {
            return false;
        }
        std::vector<sys::MountInfo> mounts;
        try {
            mounts = sys::read_mountinfo();
        } catch (const Error&) {
            return false;
        }
        for (bool v2 : {true, false}) {
            for (const auto& line : split(text, '\n')) {
                auto first = line.find(':');
                auto second = line.find(':', first + 1);
                if (first == std::string::npos || second == std::string::npos) continue;
                std::string controllers = line.substr(first + 1, second - first - 1);
                std::string path = line.substr(second + 1);
                if (v2 != (line.substr(0, first) == "0" && controllers.empty())) continue;
                if (!v2 && controllers != "freezer") continue;
                if (path.substr(path.rfind('/') + 1).rfind("imgtool-", 0) != 0) continue;
                for (const auto& m : mounts) {
                    bool match = v2 ? m.fstype == "cgroup2"
                                    : m.fstype == "cgroup" && ("," + m.super_options + ",").find(",freezer,") != std::string::npos;
                    if (!match || m.root != "/") continue;
                    int fd = ::open((m.mount_point + path).c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (fd < 0) continue;
                    dir_.reset(fd);
                    v2_ = v2;
                    arm();
                    if (control(v2 ? "cgroup.freeze" : "freezer.state", v2 ? "1" : "FROZEN") && settled()) return true;
                    thaw();
                    disarm();
                    dir_.reset();
                }
            }
        }
        return false;
    }

    // Every task stopped: v2's cgroup.events says "frozen 1", v1's freezer.state "FROZEN" (not FREEZING).
    bool settled() const {
        for (int i = 0; i < 200; ++i) {
            try {
                std::string state = sys::read_file_at(dir_.get(), v2_ ? "cgroup.events" : "freezer.state", 4096);
                if (v2_ ? state.find("frozen 1") != std::string::npos : state.rfind("FROZEN", 0) == 0) return true;
            } catch (const Error&) {
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }
    void thaw() {
        if (dir_) control(v2_ ? "cgroup.freeze" : "freezer.state", v2_ ? "0" : "THAWED");
    }
    // Before the freeze: the ending signals thaw first (see thaw_and_die).
    void arm() {
        int fd = ::openat(dir_.get(), v2_ ? "cgroup.freeze" : "freezer.state", O_WRONLY | O_CLOEXEC);
        if (fd < 0) return;
        thaw_fd_.reset(fd);
        g_thaw_text = v2_ ? "0" : "THAWED";
        g_thaw_size = std::strlen(g_thaw_text);
        g_thaw_fd = thaw_fd_.get();
        struct sigaction sa {};
        sa.sa_handler = thaw_and_die;
        sigemptyset(&sa.sa_mask);
        for (std::size_t i = 0; i < std::size(kEndingSignals); ++i) ::sigaction(kEndingSignals[i], &sa, &saved_[i]);
        armed_ = true;
    }
    void disarm() {
        if (!armed_) return;
        for (std::size_t i = 0; i < std::size(kEndingSignals); ++i) ::sigaction(kEndingSignals[i], &saved_[i], nullptr);
        g_thaw_fd = -1;
        thaw_fd_.reset();
        armed_ = false;
    }
    sys::UniqueFd thaw_fd_;
    struct sigaction saved_[std::size(kEndingSignals)] {};
    bool armed_ = false;
    bool control(const char* file, std::string_view value) const {
        int fd = ::openat(dir_.get(), file, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return false;
        sys::UniqueFd f(fd);
        return ::write(f.get(), value.data(), value.size()) == static_cast<ssize_t>(value.size());
    }
    sys::UniqueFd dir_;
    bool v2_ = true;
};

}  // namespace

CommitResult commit(store::Store& store, const CommitOptions& options) {
    CommitResult result;
    // Checked before anything is written: a bad --change or name fails fast.
    for (const auto& c : options.changes) parse_change(c);
    std::string tag = options.tag.empty() ? "" : image::normalize_tag(options.tag);

    std::optional<digest::Digest> base_id;
    sys::UniqueFd upper;
    std::string created_by = "imgtool commit";
    int running_pid = 0;
    if (!options.container.empty()) {
        store::Store::Container c = store.find_container(options.container, true);
        if (c.area.empty() || c.area.find('/') != std::string::npos || c.area == "." || c.area == "..") {
            throw Error(Errc::Corrupt, "container " + c.id.substr(0, 12) + ": bad record");
        }
        auto [fd, err] = sys::try_open_beneath(store.root_fd(), "tmp/" + c.area + "/diff", O_RDONLY | O_DIRECTORY);
        if (err) throw_errno(err, "open the writable layer of container", c.id.substr(0, 12));
        upper = std::move(fd);
        // The copy driver (no overlayfs) fills root/ with the whole tree and leaves diff/ empty: there
        // is no layer of changes to commit, and committing the empty one would say "no changes".
        auto [tree, tree_err] = sys::try_open_beneath(store.root_fd(), "tmp/" + c.area + "/root", O_RDONLY | O_DIRECTORY);
        if (!tree_err && !sys::directory_is_empty(tree.get(), "root")) {
            throw Error(Errc::Unsupported, "container " + c.id.substr(0, 12) + " ran on the copy driver (a full copy of "
                                               "the image, no overlay upper): its changes are not a layer to commit");
        }
        // run always leaves its mount points for /etc/hosts... in the upper: an empty one means the
        // changes went elsewhere (run --upper DIR, which the record does not keep).
        result.empty_upper = sys::directory_is_empty(upper.get(), "the writable layer");
        base_id = c.image;
        if (!c.command.empty()) created_by = join_words(c.command);
        if (c.state == store::Store::ContainerState::Running) running_pid = c.pid;
    } else {
        if (options.upper.empty() || options.base.empty()) {
            throw Error(Errc::InvalidArgument, "give a container, or --upper DIR with --base IMAGE");
        }
        base_id = store.resolve(options.base).id;
        int fd = ::open(options.upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw_errno("open", options.upper);
        upper.reset(fd);
    }
    store::ImageRecord base = store.resolve(base_id->str());

    store::Staging staging = store.new_staging();
    TarFile tar(staging.dir_fd());
    {
        std::optional<Freeze> freeze;
        if (running_pid > 0 && options.pause) freeze.emplace(running_pid);
        if (running_pid > 0) result.paused = freeze && freeze->frozen() ? Paused::Yes : Paused::No;
        result.stats = write_upper_tar(
            upper.get(), [&tar](const void* data, std::size_t size) { tar.write(data, size); },
            UpperOptions{.rootless = options.rootless, .max_depth = 256});
    }
    result.diff_id = tar.finish();
    result.layer_bytes = tar.size();

    std::string base_bytes = store.read_blob(base.id);
    nlohmann::json base_config = image::parse_json_strict(base_bytes, "config " + base.id.str());
    ConfigUpdate update{.changes = options.changes, .diff_id = result.diff_id, .created = utc_now_rfc3339(),
                        .created_by = created_by, .comment = options.message, .author = options.author};
    std::string config_bytes = update_config(base_config, update).dump();

    image::ImagePlan plan{.id = digest::Sha256::of(config_bytes), .config_bytes = config_bytes,
                          .config = image::parse_config(config_bytes, "new config"), .manifest_digest = std::nullopt,
                          .manifest_bytes = {}, .layers = {}, .tags = {}, .repo_digests = {}};
    for (const auto& diff_id : base.layers) {
        auto info = store.layer_info(diff_id);
        if (!info) throw Error(Errc::NotFound, "layer " + diff_id.str() + " of the base image is missing from the store");
        plan.layers.push_back(image::LayerPlan{"", info->blob_digest, info->size, diff_id});
    }
    plan.layers.push_back(image::LayerPlan{"layer.tar", result.diff_id, result.layer_bytes, result.diff_id});
    if (!tag.empty()) plan.tags.push_back(tag);

    CommitSource source(std::move(plan), tar.fd(), result.layer_bytes);
    import::PullOptions pull_options;
    pull_options.rootless = options.rootless;
    pull_options.squash_owners = options.squash_owners;
    pull_options.jobs = 1;
    auto pulled = import::pull(store, source, pull_options);
    if (pulled.size() != 1) throw Error(Errc::Corrupt, "the import made " + std::to_string(pulled.size()) + " images");
    result.id = pulled[0].id;
    result.moved_tags = pulled[0].moved_tags;
    return result;
}

}  // namespace imgtool::commit
