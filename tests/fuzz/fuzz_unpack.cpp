// libFuzzer target: a hostile layer blob through the library's extraction path, layer::unpack_blob:
// compression detected from its head (so gzip and zstd inputs reach ISA-L and libzstd), decompressed,
// unpacked into a fresh directory, the rest of the stream drained, as the import pipeline does.
//
// Containment, checked after every input: the unpack root is created (mkdtemp) inside a private
// directory next to an empty "sentinel" directory. Once the root has been removed (remove_tree_at), the
// private directory must hold exactly the sentinel, still empty, and the working directory must hold the
// entries it held at start-up (tools/fuzz.sh runs each target in an empty one). A violation aborts, so
// libFuzzer saves the input. imgtool::Error is the expected answer to hostile input; any other exception
// is a finding.
//
// Run as root, this creates device nodes, setuid files and trusted.* xattrs inside the private directory
// only; they never outlive the input.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/layer/compression.hpp"
#include "imgtool/layer/unpack.hpp"
#include "imgtool/sys/files.hpp"
#include "imgtool/sys/reader.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace layer = imgtool::layer;
namespace sys = imgtool::sys;

namespace {

// Decompressed bytes allowed per input. A few hundred bytes of zstd can describe gigabytes of zeroes;
// bombs are the caller's problem (the store's disk), not a memory-safety question, and would only
// make each run slow and fill /tmp.
constexpr std::uint64_t kMaxDecompressed = 64ull << 20;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_unpack: %s\n", what.c_str());
    std::abort();
}

// The blob as a stream. The chunk size varies with the input length (deterministically, so a saved
// input reproduces) to exercise short reads in the decompressors and in libarchive's callback.
class MemoryReader final : public sys::Reader {
public:
    MemoryReader(const std::uint8_t* data, std::size_t size)
        : data_(data), size_(size), chunk_(kChunks[size % std::size(kChunks)]) {}
    std::size_t read(void* buffer, std::size_t size) override {
        std::size_t n = std::min({size, size_ - offset_, chunk_});
        if (n > 0) std::memcpy(buffer, data_ + offset_, n);
        offset_ += n;
        return n;
    }

private:
    static constexpr std::size_t kChunks[] = {std::numeric_limits<std::size_t>::max(), 7, 512, 65536};
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t chunk_;
    std::size_t offset_ = 0;
};

// Names in a directory, without "." and "..".
std::vector<std::string> list_dir(int dirfd, const std::string& shown) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("open " + shown + ": " + std::strerror(errno));
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
        ::close(fd);
        fail("fdopendir " + shown + ": " + std::strerror(errno));
    }
    std::vector<std::string> names;
    while (const struct dirent* e = ::readdir(dir)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
}

struct Sandbox {
    std::string path;  // /tmp/imgtool-fuzz-unpack-XXXXXX
    sys::UniqueFd fd;
    sys::UniqueFd sentinel_fd;
    sys::UniqueFd cwd_fd;
    std::vector<std::string> cwd_entries;
};

Sandbox* g_sandbox = nullptr;

void remove_sandbox() {
    if (g_sandbox == nullptr) return;
    sys::UniqueFd tmp(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    try {
        sys::remove_tree_at(tmp.get(), g_sandbox->path.substr(std::strlen("/tmp/")));
    } catch (const imgtool::Error& e) {
        std::fprintf(stderr, "fuzz_unpack: cannot remove %s: %s\n", g_sandbox->path.c_str(), e.what());
    }
}

Sandbox& sandbox() {
    if (g_sandbox != nullptr) return *g_sandbox;
    auto* s = new Sandbox;
    char base[] = "/tmp/imgtool-fuzz-unpack-XXXXXX";
    if (::mkdtemp(base) == nullptr) fail(std::string("mkdtemp: ") + std::strerror(errno));
    s->path = base;
    s->fd = sys::UniqueFd(::open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!s->fd) fail("open " + s->path + ": " + std::strerror(errno));
    if (::mkdirat(s->fd.get(), "sentinel", 0755) != 0) fail(std::string("mkdir sentinel: ") + std::strerror(errno));
    s->sentinel_fd = sys::UniqueFd(::openat(s->fd.get(), "sentinel", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!s->sentinel_fd) fail(std::string("open sentinel: ") + std::strerror(errno));
    s->cwd_fd = sys::UniqueFd(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!s->cwd_fd) fail(std::string("open cwd: ") + std::strerror(errno));
    s->cwd_entries = list_dir(s->cwd_fd.get(), "cwd");
    g_sandbox = s;
    std::atexit(remove_sandbox);
    return *s;
}

void check_contained(Sandbox& s, const std::string& root_name) {
    std::vector<std::string> inside = list_dir(s.fd.get(), s.path);
    if (inside != std::vector<std::string>{"sentinel"}) {
        std::string names;
        for (const auto& n : inside) names += " " + n;
        fail("escape: " + s.path + " holds [" + names + " ] after removing " + root_name);
    }
    std::vector<std::string> in_sentinel = list_dir(s.sentinel_fd.get(), s.path + "/sentinel");
    if (!in_sentinel.empty()) fail("escape: " + s.path + "/sentinel/" + in_sentinel.front() + " was created");
    if (list_dir(s.cwd_fd.get(), "cwd") != s.cwd_entries) fail("escape: the working directory changed");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    sandbox();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Sandbox& s = sandbox();
    std::string root_path = s.path + "/root-XXXXXX";
    if (::mkdtemp(root_path.data()) == nullptr) fail("mkdtemp " + root_path + ": " + std::strerror(errno));
    std::string root_name = root_path.substr(s.path.size() + 1);
    {
        sys::UniqueFd root(::openat(s.fd.get(), root_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!root) fail("open " + root_path + ": " + std::strerror(errno));
        try {
            MemoryReader blob(data, size);
            // The library's single-threaded path: head, decompressor, unpack, drain (the pull's
            // pipeline runs the same steps on several threads).
            layer::unpack_blob(blob, root.get(), layer::UnpackOptions{}, kMaxDecompressed);
        } catch (const imgtool::Error&) {
        }
    }
    try {
        sys::remove_tree_at(s.fd.get(), root_name);
    } catch (const imgtool::Error& e) {
        fail("cannot remove the unpack root " + root_path + ": " + e.what());
    }
    check_contained(s, root_name);
    return 0;
}
