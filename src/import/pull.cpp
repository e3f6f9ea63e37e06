#include "imgtool/import/pull.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/digest/verifying_reader.hpp"
#include "imgtool/image/source.hpp"
#include "imgtool/import/progress.hpp"
#include "imgtool/layer/chunk_pipe.hpp"
#include "imgtool/layer/compression.hpp"
#include "imgtool/layer/merged.hpp"
#include "imgtool/layer/tar_check.hpp"
#include "imgtool/layer/tar_record.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/layer/unpack.hpp"

namespace imgtool::import {
namespace {

using digest::Digest;

// An archive's names, all images together: far above real use, far below what tags.json can hold.
constexpr std::size_t kMaxTagsPerSource = 4096;
// Partial downloads (store::Store::open_partial) nobody resumed for this long are garbage.
constexpr std::int64_t kPartialMaxAge = 24 * 3600;

struct LayerJob {
    const image::LayerPlan* plan;
    std::optional<store::Staging> staging;
    std::optional<store::LayerInfo> info;  // set once the layer is verified
    layer::UnpackStats stats;             // implicit_dirs go to the store with the layer
    // Progress, read by the display thread (relaxed: a frame may show a counter a chunk late).
    std::atomic<std::uint64_t> fetched{0};       // of the blob, read from the source
    std::atomic<std::int64_t> started_ns{0};     // steady clock; 0 = waiting for a worker
    std::atomic<std::int64_t> finished_ns{0};
    std::atomic<bool> done{false};
};

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string layer_label(const image::LayerPlan& plan) { return "layer " + (plan.digest ? *plan.digest : plan.diff_id).str(); }

// Reads up to n bytes (fewer only at end of stream), so compression can be detected from the magic.
std::string read_head(sys::Reader& reader, std::size_t n) {
    std::string head(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        std::size_t r = reader.read(head.data() + got, n - got);
        if (r == 0) break;
        got += r;
    }
    head.resize(got);
    return head;
}

bool is_mismatch(const Error& e) {
    return e.code() == make_error_code(Errc::DigestMismatch) || e.code() == make_error_code(Errc::SizeMismatch);
}

bool is_mismatch(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const Error& e) {
        return is_mismatch(e);
    } catch (...) {
        return false;
    }
}

// Fills `chunk` from `reader`; fewer bytes only at end of stream.
std::size_t fill(sys::Reader& reader, std::vector<char>& chunk) {
    std::size_t used = 0;
    while (used < chunk.size()) {
        std::size_t n = reader.read(chunk.data() + used, chunk.size() - used);
        if (n == 0) break;
        used += n;
    }
    return used;
}

// What was learnt about the tar stream: its diff_id, complete only when every byte was hashed, and the
// first entry tar readers read differently (layer::TarCheck runs beside the hash, on the same bytes).
struct TarDigest {
    std::optional<Digest> digest;
    std::uint64_t bytes = 0;
    std::optional<layer::TarFinding> ambiguity;
    bool ended_cleanly = false;  // between entries or in an entry's padding (layer::TarCheck::ended_cleanly)
};

// The pipe's readers: the extractor, and (compressed layers only) the thread that hashes the tar.
constexpr std::size_t kExtractor = 0;
constexpr std::size_t kTarHasher = 1;

// A layer blob, opened, with its compression detected from the magic bytes: that decides who hashes
// the tar. A compressed layer's producer already inflates and hashes the blob, so the tar gets a
// hasher thread of its own (a single big gzip layer then keeps two cores busy). An uncompressed
// layer's producer only reads, so it hashes the tar itself: a third thread there only added
// hand-overs (measured 5% slower on the uncompressed benchmark image).
struct OpenedBlob {
    OpenedBlob(const BlobSource& source, const image::LayerPlan& plan, Spool* spool)
        : member(source.open_layer(plan, spool)), blob(*member, plan.digest, plan.size) {
        // An uncompressed blob whose digest is its diff_id is the tar stream itself: the diff_id hash
        // verifies it, so hashing it twice would only double the work.
        bool blob_is_tar = plan.digest && *plan.digest == plan.diff_id;
        if (blob_is_tar) blob.check_size_only();
        head = read_head(blob, 8);
        compression = layer::detect_compression(head);
        if (blob_is_tar && compression != layer::Compression::None) {
            throw Error(Errc::DigestMismatch, "blob digest equals the diff_id but the blob is compressed");
        }
    }
    bool producer_hashes_tar() const { return compression == layer::Compression::None; }

    std::unique_ptr<sys::Reader> member;
    digest::VerifyingReader blob;
    std::string head;  // read to detect the compression, replayed to the decompressor
    layer::Compression compression = layer::Compression::None;
};

// The most of a blob read past the point where its layer failed, only to name a digest mismatch as
// the cause: a blob that states a terabyte (a hostile registry's endless stream) is not read to its
// end.
constexpr std::uint64_t kMaxDrain = 16 << 20;

// Reads the rest of the blob, when little is left, so that a corrupt blob is reported as a digest
// mismatch rather than by what its corruption did downstream.
void drain_small_rest(digest::VerifyingReader& blob) {
    if (blob.remaining() <= kMaxDrain) blob.drain();
}

// Producer thread of one layer: read -> sha256 of the blob -> decompress (-> sha256 of the tar, when
// uncompressed; see OpenedBlob), into the pipe.
// When the stream cannot be decompressed, or the readers gave up, the rest of the blob is still read
// and hashed: if the blob itself is corrupt, its digest mismatch is the error to report.
void produce(OpenedBlob& opened, layer::ChunkPipe& pipe, const std::atomic<bool>& cancel, TarDigest& tar_digest,
             LayerJob& job, std::exception_ptr& error) {
    try {
        layer::PrefixReader replay(std::move(opened.head), opened.blob);
        auto decompressed = layer::make_decompressor(opened.compression, replay);
        bool hash_here = opened.producer_hashes_tar();
        digest::HashingReader tar(*decompressed);
        sys::Reader& stream = hash_here ? static_cast<sys::Reader&>(tar) : *decompressed;
        layer::TarCheck check;
        bool complete = false;
        try {
            while (std::vector<char>* chunk = pipe.acquire()) {
                if (cancel.load(std::memory_order_relaxed)) throw Error(Errc::Busy, "cancelled");
                std::size_t used = fill(stream, *chunk);
                job.fetched.store(opened.blob.bytes(), std::memory_order_relaxed);
                if (hash_here) check.feed({chunk->data(), used});
                complete = used < chunk->size();
                pipe.commit(chunk, used);
                if (complete) break;
            }
        } catch (const Error& e) {
            if (e.code() == make_error_code(Errc::Busy)) throw;
            drain_small_rest(opened.blob);  // throws the digest/size mismatch if the blob is what is wrong
            throw;
        }
        // At the stream's end the blob was read whole: this checks it. Abandoned by the readers (their
        // error is the one reported), only a small rest is read.
        if (complete) opened.blob.drain();
        else drain_small_rest(opened.blob);
        if (hash_here && complete) tar_digest = TarDigest{tar.finish(), tar.bytes(), check.finding(), check.ended_cleanly()};
        pipe.close();
    } catch (...) {
        error = std::current_exception();
        pipe.fail(error);
    }
}

// Hasher thread of a compressed layer: the diff_id of everything the producer decompressed, including
// bytes after the tar's end-of-archive blocks. Left empty when the stream did not arrive whole.
void hash_tar(layer::ChunkPipe& pipe, TarDigest& out) {
    try {
        digest::Sha256 hash;
        layer::TarCheck check;
        std::uint64_t bytes = 0;
        while (true) {
            std::span<const char> view = pipe.next(kTarHasher);
            if (view.empty()) break;
            hash.update(view.data(), view.size());
            check.feed(view);
            bytes += view.size();
        }
        if (!pipe.abandoned()) out = TarDigest{hash.finish(), bytes, check.finding(), check.ended_cleanly()};
    } catch (...) {
        // The producer's failure: it reports it itself.
    }
    pipe.leave(kTarHasher);
}

// Reads what is left of the pipe (bytes after the tar's end-of-archive blocks), without copying: they
// count in the diff_id, which verifies them (a gigabyte of zeros there is odd but honest).
void drain(layer::PipeReader& piped) {
    while (!piped.next().empty()) {
    }
}

Error diff_id_mismatch(const Digest& expected, const Digest& got) {
    return Error(Errc::DigestMismatch,
                 "diff_id mismatch: config says " + expected.str() + ", uncompressed layer is " + got.str());
}

// One pass over the blob, on two or three threads: the producer reads, hashes and decompresses; the
// tar is hashed by the producer or a hasher thread (see OpenedBlob); this thread extracts.
// The skeleton lower layer: the directories of the layer that hold whiteouts (see overlay::LayerRef).
void make_skeleton(int staging_dir, const std::vector<std::string>& dirs) {
    sys::mkdir_at(staging_dir, "skel", 0755, false);
    sys::UniqueFd skel = sys::open_beneath(staging_dir, "skel", O_RDONLY | O_DIRECTORY);
    for (const std::string& dir : dirs) {
        if (!dir.empty()) sys::open_dirs_in_root(skel.get(), dir, O_PATH);
    }
}

// The store's partial/ files as the pipeline's Spool.
class StoreSpool final : public Spool {
public:
    StoreSpool(store::Store& store, sys::SpaceReserve* reserve) : store_(store), reserve_(reserve) {}
    std::optional<sys::UniqueFd> open(const Digest& blob, const std::string& origin) override {
        return store_.open_partial(blob, origin);
    }
    sys::SpaceReserve* reserve() override { return reserve_; }

private:
    store::Store& store_;
    sys::SpaceReserve* reserve_;
};

void unpack_layer_job(const BlobSource& source, store::Store& store, LayerJob& job, const PullOptions& pull,
                      const std::atomic<bool>& cancel, sys::SpaceReserve* reserve) {
    const image::LayerPlan& plan = *job.plan;
    job.started_ns.store(steady_ns(), std::memory_order_relaxed);
    job.staging.emplace(store.new_staging());
    StoreSpool spool(store, reserve);
    OpenedBlob opened(source, plan, &spool);
    bool hasher_thread = !opened.producer_hashes_tar();
    layer::ChunkPipe pipe(256 << 10, 8, hasher_thread ? 2 : 1);
    TarDigest tar;
    std::exception_ptr producer_error;
    std::thread producer([&] { produce(opened, pipe, cancel, tar, job, producer_error); });
    std::optional<std::thread> hasher;
    if (hasher_thread) hasher.emplace([&] { hash_tar(pipe, tar); });

    layer::PipeReader piped(pipe, kExtractor);
    // The tar record (layer/tar_record.hpp) is written beside diff/ from the bytes the extractor reads,
    // so `save` can give the tar back byte for byte; it is committed with the layer.
    sys::UniqueFd record_fd = sys::open_at(job.staging->dir_fd(), layer::kTarRecordName,
                                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    layer::TarRecordWriter record;
    record.open(record_fd.get());
    layer::RecordingViewReader recorded(piped, record);
    layer::UnpackOptions options;
    options.record = &record;
    options.cancel = &cancel;
    options.rootless = pull.rootless;
    options.squash_owners = pull.squash_owners;
    options.reserve = reserve;
    layer::UnpackStats stats;
    std::exception_ptr consumer_error;
    try {
        stats = layer::unpack_layer(static_cast<sys::ViewReader&>(recorded), job.staging->diff_fd(), options);
        while (!recorded.next().empty()) {
        }
    } catch (...) {
        consumer_error = std::current_exception();
        // Docker archives state no blob digest: then a corrupt tar is best explained by its diff_id,
        // so the stream is read to its end and hashed. Otherwise the blob digest says it: stop
        // decompressing.
        if (plan.digest) {
            pipe.abandon();
        } else {
            try {
                drain(piped);
            } catch (...) {
            }
        }
    }
    piped.leave();
    producer.join();
    if (hasher) hasher->join();
    if (producer_error && (!consumer_error || is_mismatch(producer_error))) std::rethrow_exception(producer_error);
    if (consumer_error) {
        if (!plan.digest && tar.digest && *tar.digest != plan.diff_id) throw diff_id_mismatch(plan.diff_id, *tar.digest);
        std::rethrow_exception(consumer_error);
    }
    if (!tar.digest) throw Error(Errc::Corrupt, "layer stream ended early");  // not reached: the pipe was drained
    if (*tar.digest != plan.diff_id) throw diff_id_mismatch(plan.diff_id, *tar.digest);
    // Like a diff_id mismatch, and only once the layer unpacked cleanly: the whole stream was checked,
    // so the verdict does not depend on how far a failing unpack let the hasher read.
    if (tar.ambiguity) throw Error(Errc::Ambiguous, tar.ambiguity->message());
    // The unpacker supplied the zeros of a tar that stops without its end blocks (umoci 0.4.7 writes
    // those); a stream that stopped inside a header or a file's data is truncated, whatever it hashes to.
    if (stats.padded_end && !tar.ended_cleanly) throw Error(Errc::Corrupt, "layer tar ends inside an entry (truncated)");
    if (!stats.whiteout_dirs.empty()) make_skeleton(job.staging->dir_fd(), stats.whiteout_dirs);
    std::string not_reproducible = record.finish();
    if (!not_reproducible.empty()) log::debug("layer " + plan.diff_id.str() + ": tar record: not reproducible: " + not_reproducible);
    job.info = store::LayerInfo{.diff_id = plan.diff_id,
                                .size = tar.bytes,
                                .entries = stats.entries,
                                .blob_digest = plan.digest,
                                .compression = layer::compression_name(opened.compression),
                                .root_opaque = stats.root_opaque,
                                .skeleton = !stats.whiteout_dirs.empty(),
                                .implicit_dirs = stats.implicit_dirs.size(),
                                .dropped_xattrs = stats.dropped_xattrs};
    job.stats = stats;
    job.finished_ns.store(steady_ns(), std::memory_order_relaxed);
    job.done = true;
}

// The progress display's view of the pull: one row per distinct layer, in the images' order (bottom
// layer first, as docker and podman list them); a layer the store had is "already exists".
struct ProgressRow {
    const image::LayerPlan* plan;
    const LayerJob* job;  // null: in the store already
};

std::vector<LayerProgress> progress_snapshot(const std::vector<ProgressRow>& rows) {
    std::int64_t now = steady_ns();
    std::vector<LayerProgress> out;
    out.reserve(rows.size());
    for (const ProgressRow& row : rows) {
        LayerProgress p;
        p.digest = (row.plan->digest ? *row.plan->digest : row.plan->diff_id).str();
        p.total = row.plan->size;  // every source states it: descriptor, or the archive member's size
        const LayerJob* job = row.job;
        if (!job) {
            p.state = LayerState::Exists;
            out.push_back(std::move(p));
            continue;
        }
        std::int64_t started = job->started_ns.load(std::memory_order_relaxed);
        bool done = job->done.load(std::memory_order_acquire);
        p.state = done ? LayerState::Done : started ? LayerState::Unpacking : LayerState::Waiting;
        // A finished blob was read whole and its size checked: what the plan states.
        p.done = done ? row.plan->size : job->fetched.load(std::memory_order_relaxed);
        if (started) {
            std::int64_t end = done ? job->finished_ns.load(std::memory_order_relaxed) : now;
            double seconds = static_cast<double>(end - started) / 1e9;
            // The average over the layer's life so far; a layer just started has no rate worth showing.
            if (seconds > (done ? 0.0 : 0.1)) p.rate = static_cast<double>(p.done) / seconds;
        }
        out.push_back(std::move(p));
    }
    return out;
}

// Keeps the disk busy while the CPUs unpack: syncfs in a loop on its own thread, so the final syncfs
// before commit (crash safety) finds little left to write. Without it the kernel starts writeback only
// after 30 s or gigabytes of dirty pages, and the whole pull's I/O would wait until the end.
class BackgroundWriteback {
public:
    explicit BackgroundWriteback(store::Store& store) : thread_([this, &store] { loop(store); }) {}
    ~BackgroundWriteback() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }

private:
    void loop(store::Store& store) {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            lock.unlock();
            try {
                store.sync();
            } catch (const Error&) {
                // Only an early start: the final, checked syncfs reports any failure.
            }
            lock.lock();
            changed_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; });
        }
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    bool stopping_ = false;
    std::thread thread_;
};

void run_parallel(const std::vector<LayerJob*>& jobs, unsigned workers, const BlobSource& source,
                  store::Store& store, const PullOptions& options, sys::SpaceReserve& reserve) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> cancel{false};
    std::exception_ptr first_error;
    std::mutex error_mutex;
    auto worker = [&] {
        while (true) {
            std::size_t i = next.fetch_add(1);
            if (i >= jobs.size() || cancel) return;
            try {
                with_context(layer_label(*jobs[i]->plan), [&] { unpack_layer_job(source, store, *jobs[i], options, cancel, &reserve); });
            } catch (...) {
                std::lock_guard lock(error_mutex);
                if (!first_error) first_error = std::current_exception();
                cancel = true;
            }
        }
    };
    std::vector<std::thread> threads;
    for (unsigned t = 1; t < workers; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    if (first_error) std::rethrow_exception(first_error);
}

// A manifest is kept only if every layer blob it names was verified: read and hashed by this pull, or
// recorded as the very blob an earlier pull unpacked. A re-pull that skips a present layer does not
// read its blob, so a manifest naming another (maybe truncated) blob is not stored as this image's.
bool manifest_verified(const store::Store& store, const image::ImagePlan& plan, const std::set<Digest>& unpacked) {
    for (const auto& l : plan.layers) {
        if (unpacked.count(l.diff_id) && l.digest) continue;
        auto info = store.layer_info(l.diff_id);
        if (!l.digest || !info || !info->blob_digest || *info->blob_digest != *l.digest) return false;
    }
    return true;
}

// What the store commits for one image once its layers are in.
store::Store::ImageCommit image_commit(const store::Store& store, const image::ImagePlan& plan,
                                       const std::set<Digest>& unpacked) {
    bool keep_manifest = plan.manifest_digest && manifest_verified(store, plan, unpacked);
    store::ImageRecord record{.id = plan.id,
                              .manifest_digest = keep_manifest ? plan.manifest_digest : std::nullopt,
                              .layers = {},
                              .created = plan.config.created,
                              .architecture = plan.config.platform.architecture,
                              .os = plan.config.platform.os,
                              .size = 0,
                              // A registry digest names the manifest: only as verified as it is.
                              .repo_digests = keep_manifest ? plan.repo_digests : std::vector<std::string>{}};
    for (const auto& l : plan.layers) {
        record.layers.push_back(l.diff_id);
        if (auto info = store.layer_info(l.diff_id)) record.size += info->size;
    }
    return {.record = record,
            .manifest_bytes = keep_manifest ? std::optional<std::string>(plan.manifest_bytes) : std::nullopt,
            .config_bytes = plan.config_bytes,
            .tags = plan.tags};
}

// The same image listed several times (one manifest under many names, or a hostile index repeating an
// entry) is imported once, with all its names.
std::vector<image::ImagePlan> dedupe(std::vector<image::ImagePlan> plans) {
    std::vector<image::ImagePlan> out;
    for (auto& plan : plans) {
        auto same = std::find_if(out.begin(), out.end(), [&](const image::ImagePlan& p) { return p.id == plan.id; });
        if (same == out.end()) {
            out.push_back(std::move(plan));
            continue;
        }
        for (auto& tag : plan.tags) {
            if (std::find(same->tags.begin(), same->tags.end(), tag) == same->tags.end()) same->tags.push_back(tag);
        }
    }
    return out;
}

// Refuses an image where a layer's implicit directory (a parent its tar never lists) would cover a
// non-directory of the layers below it. overlayfs would show the new empty directory and hide the
// lower entry (a merged-/usr `bin -> usr/bin` would lose /bin/sh); containerd and umoci follow such a
// symlink instead, which a layer stored once per diff_id, whatever its parents, cannot do. Runs before
// anything is committed, so a refused image leaves the store as it was.
void check_implicit_dirs(const store::Store& store, const image::ImagePlan& plan,
                         const std::map<Digest, LayerJob*>& unpacked, bool rootless) {
    std::vector<sys::UniqueFd> opened;
    std::vector<layer::StackedLayer> stack;  // bottom first
    std::vector<std::vector<std::string>> implicit;
    for (const auto& l : plan.layers) {
        if (auto it = unpacked.find(l.diff_id); it != unpacked.end()) {
            stack.push_back({it->second->staging->diff_fd(), it->second->stats.root_opaque});
            implicit.push_back(it->second->stats.implicit_dirs);
            continue;
        }
        auto info = store.layer_info(l.diff_id);
        opened.push_back(store.open_layer(l.diff_id));
        stack.push_back({opened.back().get(), info && info->root_opaque});
        implicit.push_back(info && info->implicit_dirs ? store.implicit_dirs(l.diff_id) : std::vector<std::string>{});
    }
    const char* opaque = rootless ? "user.overlay.opaque" : "trusted.overlay.opaque";
    for (std::size_t n = 1; n < stack.size(); ++n) {
        if (implicit[n].empty()) continue;
        std::vector<layer::StackedLayer> below(stack.rend() - static_cast<std::ptrdiff_t>(n), stack.rend());
        for (const std::string& dir : implicit[n]) {
            layer::MergedEntry found = layer::merged_lookup(below, dir, opaque);
            if (found.kind != layer::MergedKind::Other) continue;
            throw Error(Errc::Unsupported,
                        layer_label(plan.layers[n]) + ": " + printable(dir) + " has entries but no entry of its own, and " +
                            "the layers below have a non-directory at " + printable(found.blocked_at) +
                            " (such as merged /usr's bin -> usr/bin); imgtool cannot follow it into the lower " +
                            "layers and refuses rather than hide it");
        }
    }
}

}  // namespace

std::vector<PullResult> pull(store::Store& store, BlobSource& source, const PullOptions& options, PullLosses* losses) {
    return with_context(source.name(), [&] {
        auto stored_blob = [&store](const Digest& d) -> std::optional<std::string> {
            if (!store.has_blob(d)) return std::nullopt;
            return store.read_blob(d);
        };
        auto plans = dedupe(source.plan(image::PlanOptions{options.platform, stored_blob, std::nullopt}));
        if (plans.size() > 1 && !options.extra_tags.empty()) {
            throw Error(Errc::InvalidArgument, "--tag needs an archive with a single image (this one has " +
                                                   std::to_string(plans.size()) + ")");
        }
        std::size_t tag_count = 0;
        for (auto& plan : plans) {
            for (const auto& tag : options.extra_tags) plan.tags.push_back(image::normalize_tag(tag));
            tag_count += plan.tags.size();
        }
        if (tag_count > kMaxTagsPerSource) {
            throw Error(Errc::Corrupt, std::to_string(tag_count) + " tags in one source (at most " +
                                           std::to_string(kMaxTagsPerSource) + ")");
        }

        // The whole archive is one batch: every layer of every image is verified before anything is
        // committed, so a bad second image leaves no trace of the first.
        // Locks on every distinct layer in ascending order (deadlock-free); then unpack the missing.
        std::set<Digest> distinct;
        for (const auto& plan : plans) {
            for (const auto& l : plan.layers) distinct.insert(l.diff_id);
        }
        std::vector<sys::RangeLock> locks;
        for (const Digest& d : distinct) locks.push_back(store.lock_layer(d));

        std::vector<std::unique_ptr<LayerJob>> owned;
        std::vector<LayerJob*> jobs;
        std::set<Digest> scheduled;
        for (const auto& plan : plans) {
            for (const auto& l : plan.layers) {
                if (store.has_layer(l.diff_id) || !scheduled.insert(l.diff_id).second) continue;
                owned.push_back(std::make_unique<LayerJob>());
                owned.back()->plan = &l;
                jobs.push_back(owned.back().get());
            }
        }
        // Rows for every layer, the present ones too, so a re-pull shows them "already exists". The
        // display is stopped (its final frame drawn) before anything else is said, on error too.
        std::vector<ProgressRow> rows;
        std::optional<ProgressDisplay> progress;
        if (options.progress) {
            std::map<Digest, const LayerJob*> by_diff_id;
            for (const LayerJob* job : jobs) by_diff_id.emplace(job->plan->diff_id, job);
            std::set<Digest> listed;
            for (const auto& plan : plans) {
                for (const auto& l : plan.layers) {
                    if (!listed.insert(l.diff_id).second) continue;
                    auto it = by_diff_id.find(l.diff_id);
                    rows.push_back({&l, it == by_diff_id.end() ? nullptr : it->second});
                }
            }
            progress.emplace(STDERR_FILENO, [&rows] { return progress_snapshot(rows); });
        }
        sys::SpaceReserve reserve(store.root_fd(), sys::space_limits_for(store.root_fd(), options.min_free), store.root());
        std::map<Digest, LayerJob*> unpacked;
        if (!jobs.empty()) {
            reserve.check();  // a filesystem already below its reserve gets nothing
            // Largest blobs first (longest-processing-time order): the last layer to start is a small
            // one, so the cores finish together instead of one waiting on a big latecomer.
            std::stable_sort(jobs.begin(), jobs.end(),
                             [](const LayerJob* a, const LayerJob* b) { return a->plan->size > b->plan->size; });
            unsigned cores = std::max(1u, std::thread::hardware_concurrency());
            unsigned workers = std::min<unsigned>(options.jobs ? options.jobs : cores, static_cast<unsigned>(jobs.size()));
            {
                BackgroundWriteback writeback(store);
                run_parallel(jobs, workers, source, store, options, reserve);
            }
            if (losses) {
                for (LayerJob* job : jobs) {
                    losses->skipped_devices += job->stats.skipped_devices;
                    losses->skipped_xattrs += job->stats.skipped_xattrs;
                    losses->squashed_owners += job->stats.squashed_owners;
                }
            }
            for (LayerJob* job : jobs) {
                unpacked.emplace(job->plan->diff_id, job);
                const layer::UnpackStats& st = job->stats;
                if (st.dropped_xattrs || st.dropped_whiteouts || !st.implicit_dirs.empty()) {
                    log::debug(layer_label(*job->plan) + ": " + std::to_string(st.dropped_xattrs) +
                               " overlay xattrs from the tar dropped, " + std::to_string(st.dropped_whiteouts) +
                               " redundant whiteouts dropped, " + std::to_string(st.implicit_dirs.size()) +
                               " implicit directories");
                }
            }
        }
        if (progress) progress->stop();
        for (const auto& plan : plans) check_implicit_dirs(store, plan, unpacked, options.rootless);
        if (!jobs.empty()) {
            // Every layer verified: now, and only now, make them visible. One syncfs covers them all.
            store.sync();
            for (LayerJob* job : jobs) store.commit_layer(std::move(*job->staging), *job->info, job->stats.implicit_dirs);
            // What a download kept for resuming is in the store now, unpacked.
            for (LayerJob* job : jobs) {
                if (job->plan->digest) store.remove_partial(*job->plan->digest);
            }
        }

        // Records and all names in one store commit (the names checked to fit before anything is
        // written, and written once: a source with many images rewrote tags.json per image).
        std::vector<store::Store::ImageCommit> commits;
        for (const auto& plan : plans) commits.push_back(image_commit(store, plan, scheduled));
        std::map<std::string, Digest> moved = store.commit_images(commits);
        store.prune_partials(kPartialMaxAge);
        std::vector<PullResult> results;
        for (const auto& plan : plans) {
            PullResult r{.id = plan.id, .tags = plan.tags, .layers_unpacked = 0, .layers_reused = 0, .moved_tags = {}};
            for (const auto& tag : plan.tags) {
                if (auto it = moved.find(tag); it != moved.end()) r.moved_tags.emplace_back(tag, it->second);
            }
            std::set<Digest> own;
            for (const auto& l : plan.layers) own.insert(l.diff_id);
            for (const Digest& d : own) (scheduled.count(d) ? r.layers_unpacked : r.layers_reused)++;
            results.push_back(std::move(r));
        }
        return results;
    });
}

}  // namespace imgtool::import
