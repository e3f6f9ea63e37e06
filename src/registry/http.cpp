#include "imgtool/registry/http.hpp"

#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <mutex>
#include <utility>

#include "imgtool/core/error.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::registry {
namespace {

// libcurl is loaded when the first request is made, not linked: with its two dozen shared libraries
// (TLS, HTTP/2, IDN, LDAP, SSH...) every imgtool start took 15 ms longer, mount and run included
// (measured: 9 ms against 24 ms for `imgtool images`). Only pull and login pay for it now.
struct CurlApi {
    decltype(&::curl_global_init) global_init;
    decltype(&::curl_easy_init) easy_init;
    decltype(&::curl_easy_setopt) easy_setopt;
    decltype(&::curl_easy_getinfo) easy_getinfo;
    decltype(&::curl_easy_cleanup) easy_cleanup;
    decltype(&::curl_easy_strerror) easy_strerror;
    decltype(&::curl_easy_pause) easy_pause;
    decltype(&::curl_multi_init) multi_init;
    decltype(&::curl_multi_add_handle) multi_add_handle;
    decltype(&::curl_multi_remove_handle) multi_remove_handle;
    decltype(&::curl_multi_perform) multi_perform;
    decltype(&::curl_multi_poll) multi_poll;
    decltype(&::curl_multi_info_read) multi_info_read;
    decltype(&::curl_multi_cleanup) multi_cleanup;
    decltype(&::curl_multi_strerror) multi_strerror;
    decltype(&::curl_share_init) share_init;
    decltype(&::curl_share_setopt) share_setopt;
    decltype(&::curl_share_cleanup) share_cleanup;
    decltype(&::curl_slist_append) slist_append;
    decltype(&::curl_slist_free_all) slist_free_all;
};

constexpr const char* kLibcurl = "libcurl.so.4";

template <typename Fn>
void bind(void* library, Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(::dlsym(library, name));
    if (!fn) throw Error(Errc::Unsupported, std::string(kLibcurl) + " has no " + name + " (libcurl 7.85 or later needed)");
}

CurlApi load_curl() {
    // Never unloaded: libcurl keeps global state for the life of the process.
    void* lib = ::dlopen(kLibcurl, RTLD_LAZY | RTLD_LOCAL);
    if (!lib) throw Error(Errc::Unsupported, std::string(kLibcurl) + " not found: pulling needs libcurl (Debian package libcurl4)");
    CurlApi api{};
    bind(lib, api.global_init, "curl_global_init");
    bind(lib, api.easy_init, "curl_easy_init");
    bind(lib, api.easy_setopt, "curl_easy_setopt");
    bind(lib, api.easy_getinfo, "curl_easy_getinfo");
    bind(lib, api.easy_cleanup, "curl_easy_cleanup");
    bind(lib, api.easy_strerror, "curl_easy_strerror");
    bind(lib, api.easy_pause, "curl_easy_pause");
    bind(lib, api.multi_init, "curl_multi_init");
    bind(lib, api.multi_add_handle, "curl_multi_add_handle");
    bind(lib, api.multi_remove_handle, "curl_multi_remove_handle");
    bind(lib, api.multi_perform, "curl_multi_perform");
    bind(lib, api.multi_poll, "curl_multi_poll");
    bind(lib, api.multi_info_read, "curl_multi_info_read");
    bind(lib, api.multi_cleanup, "curl_multi_cleanup");
    bind(lib, api.multi_strerror, "curl_multi_strerror");
    bind(lib, api.share_init, "curl_share_init");
    bind(lib, api.share_setopt, "curl_share_setopt");
    bind(lib, api.share_cleanup, "curl_share_cleanup");
    bind(lib, api.slist_append, "curl_slist_append");
    bind(lib, api.slist_free_all, "curl_slist_free_all");
    api.global_init(CURL_GLOBAL_DEFAULT);
    return api;
}

// libcurl, loaded and initialised once per process, before any thread uses it.
const CurlApi& curl() {
    static const CurlApi api = load_curl();
    return api;
}

// What a curl failure says, without the URL (a redirect's URL may carry a signed query string).
std::string describe(CURLcode code, const char* detail) {
    std::string text = detail && *detail ? detail : curl().easy_strerror(code);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (code == CURLE_SSL_CONNECT_ERROR && text.find("wrong version number") != std::string::npos) {
        text += " (the server does not speak TLS: a plain-HTTP registry needs --tls-verify=false)";
    }
    return printable(text);
}

// Failures of configuration, not of the moment: retrying them only delays the error.
bool is_lasting(CURLcode code, const char* detail) {
    switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CIPHER:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
        return true;
    case CURLE_SSL_CONNECT_ERROR:
        // A reset mid-handshake is worth another try; a plain-HTTP answer to TLS is not.
        return detail && std::string_view(detail).find("wrong version number") != std::string_view::npos;
    default:
        return false;
    }
}

}  // namespace

std::string origin_of(const std::string& url) {
    auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return url;
    auto path = url.find_first_of("/?#", scheme_end + 3);
    std::string origin = url.substr(0, path);
    for (char& c : origin) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return origin;
}

namespace {

constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";

}  // namespace

// DNS results and TLS sessions are shared between the streams of one Http: parallel layer downloads
// resume one TLS session instead of each doing a full handshake.
struct Http::Shared {
    CURLSH* share = nullptr;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;
    std::string ca_blob;  // system CAs plus the extra ones, when there are extra ones

    Shared() {
        share = curl().share_init();
        if (!share) throw Error(Errc::Unsupported, "curl_share_init failed");
        curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl().share_setopt(share, CURLSHOPT_USERDATA, this);
        curl().share_setopt(share, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data data, curl_lock_access, void* self) {
            static_cast<Shared*>(self)->locks[static_cast<std::size_t>(data)].lock();
        });
        curl().share_setopt(share, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data data, void* self) {
            static_cast<Shared*>(self)->locks[static_cast<std::size_t>(data)].unlock();
        });
    }
    ~Shared() { curl().share_cleanup(share); }
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
    bool paused = false;
    bool tls_without_client_cert = false;
    // The caller's buffer while a read waits: body bytes land there without a copy through `buffer`.
    char* direct = nullptr;
    std::size_t direct_room = 0;
    std::size_t direct_filled = 0;

    // What one stream may hold unread. libcurl reads as long as the socket has data (dozens of
    // 256 KiB reads per call on loopback): past this, the transfer pauses until the reader catches up,
    // so memory stays flat whatever the layer size or -j.
    static constexpr std::size_t kMaxUnread = 1 << 20;

    ~Impl() {
        if (multi && easy) curl().multi_remove_handle(multi, easy);
        if (easy) curl().easy_cleanup(easy);
        if (multi) curl().multi_cleanup(multi);
        curl().slist_free_all(headers);
    }

    static std::size_t on_body(char* data, std::size_t, std::size_t n, void* self) {
        auto* impl = static_cast<Impl*>(self);
        impl->body_started = true;
        if (impl->buffer_pos == impl->buffer.size()) {
            impl->buffer.clear();
            impl->buffer_pos = 0;
        }
        if (impl->buffer.size() - impl->buffer_pos >= kMaxUnread) {
            impl->paused = true;
            return CURL_WRITEFUNC_PAUSE;  // curl keeps this chunk and offers it again on resume
        }
        std::size_t direct = 0;
        if (impl->direct != nullptr && impl->buffer_pos == impl->buffer.size()) {
            direct = std::min(n, impl->direct_room - impl->direct_filled);
            std::memcpy(impl->direct + impl->direct_filled, data, direct);
            impl->direct_filled += direct;
        }
        impl->buffer.append(data + direct, n - direct);
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
        if (paused) {
            paused = false;
            // May deliver the held chunk right here, through on_body.
            CURLcode rc = curl().easy_pause(easy, CURLPAUSE_CONT);
            if (rc != CURLE_OK) throw TransportError(curl().easy_strerror(rc));
            if (direct_filled > 0 || buffer_pos < buffer.size()) return;
        }
        int running = 0;
        while (true) {
            CURLMcode mc = curl().multi_perform(multi, &running);
            if (mc != CURLM_OK) throw TransportError(curl().multi_strerror(mc));
            int queued = 0;
            while (CURLMsg* msg = curl().multi_info_read(multi, &queued)) {
                if (msg->msg == CURLMSG_DONE) {
                    done = true;
                    result = msg->data.result;
                }
            }
            if (done || direct_filled > 0 || buffer_pos < buffer.size()) return;
            mc = curl().multi_poll(multi, nullptr, 0, 1000, nullptr);
            if (mc != CURLM_OK) throw TransportError(curl().multi_strerror(mc));
        }
    }

    void check_result() const {
        if (result == CURLE_OK) return;
        std::string text = describe(result, error);
        bool lasting = is_lasting(result, error);
        if (tls_without_client_cert && !body_started && (result == CURLE_SEND_ERROR || result == CURLE_RECV_ERROR)) {
            // A registry that demands a client certificate refuses after the TLS 1.3 handshake: the
            // client sees an alert, or (mostly) a connection already shut or reset when it sends.
            std::string_view detail(error);
            text += " (if the registry wants a client certificate: NAME.cert and NAME.key in the certificate directory)";
            lasting = detail.find("alert bad certificate") != std::string_view::npos ||
                      detail.find("certificate required") != std::string_view::npos;
        }
        throw TransportError(text, lasting);
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
    struct Detach {
        Impl& impl;
        ~Detach() { impl.direct = nullptr, impl.direct_room = 0; }
    } detach{impl};
    if (impl.buffer_pos == impl.buffer.size()) {
        // Nothing buffered: the transfer writes straight into `out` (one copy less on a layer's bytes).
        impl.direct = static_cast<char*>(out);
        impl.direct_room = size;
        impl.direct_filled = 0;
    }
    while (impl.direct_filled == 0 && impl.buffer_pos == impl.buffer.size()) {
        if (impl.done) {
            impl.check_result();
            return 0;
        }
        impl.pump();
    }
    if (impl.direct_filled > 0) return std::exchange(impl.direct_filled, 0);
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
    curl();  // loads libcurl, or says why it cannot
    shared_ = std::make_unique<Shared>();
    if (!tls_.ca_files.empty()) {
        // Extra CAs are trusted besides the system's, as podman and docker do; curl takes one bundle.
        try {
            shared_->ca_blob = sys::read_file_at(AT_FDCWD, kSystemBundle, 16 << 20);
        } catch (const Error&) {
            // No system bundle: only the extra CAs are trusted.
        }
        for (const std::string& file : tls_.ca_files) shared_->ca_blob.append("\n").append(sys::read_file_at(AT_FDCWD, file, 1 << 20));
    }
}

Http::~Http() = default;

std::unique_ptr<Stream> Http::open(const Request& request) const {
    auto impl = std::make_unique<Stream::Impl>();
    impl->easy = curl().easy_init();
    impl->tls_without_client_cert = request.url.rfind("https:", 0) == 0 && tls_.client_cert.empty();
    impl->multi = curl().multi_init();
    if (!impl->easy || !impl->multi) throw Error(Errc::Unsupported, "libcurl could not make a handle");
    CURL* e = impl->easy;
    curl().easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl().easy_setopt(e, CURLOPT_SHARE, shared_->share);
    curl().easy_setopt(e, CURLOPT_ERRORBUFFER, impl->error);
    curl().easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl().easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    // From https, redirects stay on https: a registry's blob must not come over plain text.
    curl().easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, request.url.rfind("https:", 0) == 0 ? "https" : "http,https");
    curl().easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl().easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl().easy_setopt(e, CURLOPT_USERAGENT, "imgtool/0.1");
    curl().easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
    // A transfer that receives less than 1 KiB a second for `stall` seconds has stalled: a server
    // trickling a byte now and then must not hold a pull for ever.
    curl().easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl().easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(stall_.count()));
    curl().easy_setopt(e, CURLOPT_BUFFERSIZE, 256L << 10);
    curl().easy_setopt(e, CURLOPT_WRITEFUNCTION, &Stream::Impl::on_body);
    curl().easy_setopt(e, CURLOPT_WRITEDATA, impl.get());
    curl().easy_setopt(e, CURLOPT_HEADERFUNCTION, &Stream::Impl::on_header);
    curl().easy_setopt(e, CURLOPT_HEADERDATA, impl.get());
    if (request.method == "HEAD") curl().easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (!tls_.verify) {
        curl().easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl().easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!shared_->ca_blob.empty()) {
        curl_blob blob{shared_->ca_blob.data(), shared_->ca_blob.size(), CURL_BLOB_NOCOPY};
        curl().easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (!tls_.client_cert.empty()) {
        curl().easy_setopt(e, CURLOPT_SSLCERT, tls_.client_cert.c_str());
        curl().easy_setopt(e, CURLOPT_SSLKEY, tls_.client_key.c_str());
    }
    for (const std::string& h : request.headers) impl->headers = curl().slist_append(impl->headers, h.c_str());
    if (request.range_from) {
        impl->headers = curl().slist_append(impl->headers, ("Range: bytes=" + std::to_string(*request.range_from) + "-").c_str());
    }
    curl().easy_setopt(e, CURLOPT_HTTPHEADER, impl->headers);
    curl().multi_add_handle(impl->multi, e);
    while (!impl->done && !impl->body_started) impl->pump();
    long status = 0;
    curl().easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char* effective = nullptr;
    curl().easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &effective);
    std::string answered_by = origin_of(effective ? effective : request.url);
    // A body that started is delivered before its failure surfaces (read() throws after the bytes
    // that arrived: a resumed transfer continues from there). An error status is the answer even when
    // its body is broken (distribution's 416 promises the blob's length and sends 33 bytes). Anything
    // else that failed before the body is a transport error.
    bool answered = impl->body_started || (status >= 300 && impl->result == CURLE_PARTIAL_FILE);
    if (impl->done && !answered) impl->check_result();
    std::unique_ptr<Stream> stream(new Stream(std::move(impl)));
    stream->status_ = status;
    stream->answered_by_ = std::move(answered_by);
    return stream;
}

}  // namespace imgtool::registry
