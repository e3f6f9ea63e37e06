#include "imgtool/registry/http.hpp"

#include <curl/curl.h>
#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <mutex>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::registry {
namespace {

// libcurl's global state, once per process, before any thread uses it.
void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What a curl failure says, without the URL (a redirect's URL may carry a signed query string).
std::string describe(CURLcode code, const char* detail) {
    std::string text = detail && *detail ? detail : curl_easy_strerror(code);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return printable(text);
}

constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";

}  // namespace

// DNS results and TLS sessions are shared between the streams of one Http: parallel layer downloads
// resume one TLS session instead of each doing a full handshake.
struct Http::Shared {
    CURLSH* share = nullptr;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;
    std::string ca_blob;  // system CAs plus the extra ones, when there are extra ones

    Shared() {
        share = curl_share_init();
        if (!share) throw Error(Errc::Unsupported, "curl_share_init failed");
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(share, CURLSHOPT_USERDATA, this);
        curl_share_setopt(share, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data data, curl_lock_access, void* self) {
            static_cast<Shared*>(self)->locks[static_cast<std::size_t>(data)].lock();
        });
        curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data data, void* self) {
            static_cast<Shared*>(self)->locks[static_cast<std::size_t>(data)].unlock();
        });
    }
    ~Shared() { curl_share_cleanup(share); }
};

struct Stream::Impl {
    CURLM* multi = nullptr;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::vector<std::pair<std::string, std::string>> response_headers;
    std::string buffer;  // received, not yet read
    std::size_t buffer_pos = 0;
    bool done = false;
    CURLcode result = CURLE_OK;
    char error[CURL_ERROR_SIZE] = {};
    bool body_started = false;

    ~Impl() {
        if (multi && easy) curl_multi_remove_handle(multi, easy);
        if (easy) curl_easy_cleanup(easy);
        if (multi) curl_multi_cleanup(multi);
        curl_slist_free_all(headers);
    }

    static std::size_t on_body(char* data, std::size_t, std::size_t n, void* self) {
        auto* impl = static_cast<Impl*>(self);
        impl->body_started = true;
        if (impl->buffer_pos == impl->buffer.size()) {
            impl->buffer.clear();
            impl->buffer_pos = 0;
        }
        impl->buffer.append(data, n);
        return n;
    }

    static std::size_t on_header(char* data, std::size_t, std::size_t n, void* self) {
        auto* impl = static_cast<Impl*>(self);
        std::string_view line(data, n);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
        if (line.rfind("HTTP/", 0) == 0) {
            impl->response_headers.clear();  // a new response (after a redirect or a 100)
            return n;
        }
        auto colon = line.find(':');
        if (colon == std::string_view::npos) return n;
        std::string name(line.substr(0, colon));
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        if (impl->response_headers.size() < 200) impl->response_headers.emplace_back(std::move(name), std::string(value));
        return n;
    }

    // Runs the transfer until bytes arrive or it ends.
    void pump() {
        int running = 0;
        while (true) {
            CURLMcode mc = curl_multi_perform(multi, &running);
            if (mc != CURLM_OK) throw TransportError(curl_multi_strerror(mc));
            int queued = 0;
            while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
                if (msg->msg == CURLMSG_DONE) {
                    done = true;
                    result = msg->data.result;
                }
            }
            if (done || buffer_pos < buffer.size()) return;
            mc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
            if (mc != CURLM_OK) throw TransportError(curl_multi_strerror(mc));
        }
    }

    void check_result() const {
        if (result != CURLE_OK) throw TransportError(describe(result, error));
    }
};

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stream::~Stream() = default;

std::vector<std::string> Stream::header(const std::string& lower_name) const {
    std::vector<std::string> values;
    for (const auto& [name, value] : impl_->response_headers) {
        if (name == lower_name) values.push_back(value);
    }
    return values;
}

std::optional<std::uint64_t> Stream::content_length() const {
    auto values = header("content-length");
    if (values.size() != 1 || values[0].empty() || values[0].size() > 19) return std::nullopt;
    if (values[0].find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(values[0]);
}

std::size_t Stream::read(void* out, std::size_t size) {
    Impl& impl = *impl_;
    while (impl.buffer_pos == impl.buffer.size()) {
        if (impl.done) {
            impl.check_result();
            return 0;
        }
        impl.pump();
    }
    std::size_t n = std::min(size, impl.buffer.size() - impl.buffer_pos);
    std::memcpy(out, impl.buffer.data() + impl.buffer_pos, n);
    impl.buffer_pos += n;
    return n;
}

std::string Stream::read_all(std::size_t limit, const std::string& what) {
    std::string body;
    char chunk[16384];
    while (std::size_t n = read(chunk, sizeof chunk)) {
        if (body.size() + n > limit) {
            throw Error(Errc::Corrupt, what + ": larger than " + std::to_string(limit) + " bytes");
        }
        body.append(chunk, n);
    }
    return body;
}

Http::Http(TlsSettings tls, std::chrono::seconds stall) : tls_(std::move(tls)), stall_(stall) {
    init_curl_once();
    shared_ = std::make_unique<Shared>();
    if (!tls_.ca_files.empty()) {
        // Extra CAs are trusted besides the system's, as podman and docker do; curl takes one bundle.
        try {
            shared_->ca_blob = sys::read_file_at(AT_FDCWD, kSystemBundle, 16 << 20);
        } catch (const Error&) {
            // No system bundle: only the extra CAs are trusted.
        }
        for (const std::string& file : tls_.ca_files) shared_->ca_blob += "\n" + sys::read_file_at(AT_FDCWD, file, 1 << 20);
    }
}

Http::~Http() = default;

std::unique_ptr<Stream> Http::open(const Request& request) const {
    auto impl = std::make_unique<Stream::Impl>();
    impl->easy = curl_easy_init();
    impl->multi = curl_multi_init();
    if (!impl->easy || !impl->multi) throw Error(Errc::Unsupported, "libcurl could not make a handle");
    CURL* e = impl->easy;
    curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(e, CURLOPT_SHARE, shared_->share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, impl->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    // From https, redirects stay on https: a registry's blob must not come over plain text.
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, request.url.rfind("https:", 0) == 0 ? "https" : "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "imgtool/0.1");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
    // A transfer that receives less than one byte a second for `stall` seconds has stalled.
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(stall_.count()));
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L << 10);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Stream::Impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, impl.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Stream::Impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, impl.get());
    if (request.method == "HEAD") curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (!tls_.verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!shared_->ca_blob.empty()) {
        curl_blob blob{shared_->ca_blob.data(), shared_->ca_blob.size(), CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (!tls_.client_cert.empty()) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls_.client_cert.c_str());
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls_.client_key.c_str());
    }
    for (const std::string& h : request.headers) impl->headers = curl_slist_append(impl->headers, h.c_str());
    if (request.range_from) {
        impl->headers = curl_slist_append(impl->headers, ("Range: bytes=" + std::to_string(*request.range_from) + "-").c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, impl->headers);
    curl_multi_add_handle(impl->multi, e);
    while (!impl->done && !impl->body_started) impl->pump();
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    // A body that started is delivered before its failure surfaces (read() throws after the bytes
    // that arrived: a resumed transfer continues from there). An error status is the answer even when
    // its body is broken (distribution's 416 promises the blob's length and sends 33 bytes). Anything
    // else that failed before the body is a transport error.
    bool answered = impl->body_started || (status >= 300 && impl->result == CURLE_PARTIAL_FILE);
    if (impl->done && !answered) impl->check_result();
    std::unique_ptr<Stream> stream(new Stream(std::move(impl)));
    stream->status_ = status;
    return stream;
}

}  // namespace imgtool::registry
