#include "imgtool/registry/client.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "imgtool/core/error.hpp"
#include "imgtool/core/log.hpp"
#include "imgtool/core/strings.hpp"
#include "imgtool/digest/sha256.hpp"
#include "imgtool/image/json.hpp"
#include "imgtool/image/types.hpp"
#include "imgtool/sys/files.hpp"

namespace imgtool::registry {
namespace {

// distribution refuses manifests of 4 MiB and more; nothing valid is larger.
constexpr std::size_t kMaxManifest = 4 << 20;
constexpr std::size_t kMaxToken = 1 << 20;
constexpr std::size_t kMaxErrorBody = 64 << 10;

// Every type a registry may answer a manifest request with. Schema 1 is asked for only to name it in
// the error: a registry holding nothing else answers 404 otherwise, which would hide the reason.
const std::vector<std::string>& manifest_accept() {
    static const std::vector<std::string> accept = {
        "Accept: " + std::string(image::media::kOciIndex),
        "Accept: " + std::string(image::media::kOciManifest),
        "Accept: " + std::string(image::media::kDockerList),
        "Accept: " + std::string(image::media::kDockerManifest),
        "Accept: application/vnd.docker.distribution.manifest.v1+prettyjws",
        "Accept: application/vnd.docker.distribution.manifest.v1+json",
    };
    return accept;
}

bool is_transient(long status) { return status == 408 || status == 429 || (status >= 500 && status <= 599); }

std::string percent_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// The registry's own words from an error body ({"errors":[{"code":..,"message":..}]}), if it sent any.
std::string registry_message(Stream& response) {
    std::string body;
    try {
        body = response.read_all(kMaxErrorBody, "error body");
        nlohmann::json doc = image::parse_json_strict(body, "error body");
        const auto& first = doc.at("errors").at(0);
        std::string code = first.value("code", "");
        std::string message = first.value("message", "");
        std::string text = code.empty() ? message : code + (message.empty() ? "" : " (" + message + ")");
        return printable(text.substr(0, 200));
    } catch (...) {
        return {};
    }
}

// Lists regular files of `dir` ending in `suffix`, sorted (so the choice of a client pair is stable).
std::vector<std::string> files_ending(const std::string& dir, std::string_view suffix) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            // Regular files only: a FIFO named ca.crt would block the read for ever.
            struct stat st {};
            if (::lstat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) out.push_back(dir + "/" + name);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

TlsSettings tls_settings_for(const std::string& host, const ClientOptions& options) {
    TlsSettings tls;
    tls.verify = options.tls_verify;
    std::vector<std::string> dirs;
    if (options.cert_dir) {
        if (!is_directory(*options.cert_dir)) {
            throw Error(Errc::NotFound, "--cert-dir " + printable(*options.cert_dir) + ": no such directory");
        }
        dirs = {*options.cert_dir};
    } else {
        dirs = {"/etc/containers/certs.d/" + host, "/etc/docker/certs.d/" + host};
    }
    for (const std::string& dir : dirs) {
        if (!is_directory(dir)) continue;
        tls.ca_files = files_ending(dir, ".crt");
        for (const std::string& cert : files_ending(dir, ".cert")) {
            std::string key = cert.substr(0, cert.size() - 5) + ".key";
            if (::access(key.c_str(), R_OK) != 0) {
                throw Error(Errc::NotFound, printable(cert) + ": client certificate without its key " + printable(key));
            }
            tls.client_cert = cert;
            tls.client_key = key;
            break;
        }
        break;  // the first directory that exists is the one, as in podman
    }
    return tls;
}

Client::Client(image::Reference reference, ClientOptions options)
    : reference_(std::move(reference)), options_(std::move(options)) {
    credentials_ = options_.credentials;
    if (!credentials_) {
        credentials_ = lookup_credentials(auth_file_candidates(options_.authfile), reference_.registry, reference_.repository);
    }
    http_ = std::make_unique<Http>(tls_settings_for(reference_.api_host(), options_), options_.stall);
}

Client::~Client() = default;

std::string Client::base_url() const { return scheme_ + "://" + reference_.api_host() + "/v2/"; }

void Client::wait_before_retry(unsigned attempt, const Stream* response) const {
    auto wait = options_.backoff * (1u << std::min(attempt, 5u));
    if (response) {
        auto after = response->header("retry-after");
        if (!after.empty() && !after[0].empty() && after[0].size() < 6 &&
            after[0].find_first_not_of("0123456789") == std::string::npos) {
            wait = std::chrono::seconds(std::min(60, std::stoi(after[0])));
        }
    }
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(wait, std::chrono::seconds(60)));
}

std::unique_ptr<Stream> Client::send_once(Request request) {
    std::string used;
    {
        std::lock_guard lock(auth_mutex_);
        used = authorization_;
    }
    Request sent = request;
    if (!used.empty()) sent.headers.push_back("Authorization: " + used);
    auto response = http_->open(sent);
    if (response->status() != 401) return response;
    // A challenge counts only from the registry itself. A server a redirect led to (a CDN, object
    // storage) that answers 401 would otherwise pick the realm the user's credentials go to.
    if (response->answered_by() != origin_of(request.url)) {
        throw Error(Errc::Unauthorized, printable(response->answered_by()) +
                                            " (where the registry redirected) asks for authentication; credentials are only for the registry");
    }
    {
        // Several layers may be refused at once: the first refreshes, the others use its answer.
        std::lock_guard lock(auth_mutex_);
        if (authorization_ == used) authorize(response->header("www-authenticate"));
        used = authorization_;
    }
    if (used.empty()) return response;
    request.headers.push_back("Authorization: " + used);
    return http_->open(request);
}

std::unique_ptr<Stream> Client::send(Request request, const std::string& what, bool authorized) {
    for (unsigned attempt = 1;; ++attempt) {
        std::unique_ptr<Stream> response;
        try {
            response = authorized ? send_once(request) : http_->open(request);
        } catch (const TransportError& e) {
            if (e.lasting()) throw Error(Errc::Unavailable, what + ": " + e.what());
            if (attempt >= options_.attempts) {
                throw Error(Errc::Unavailable, what + ": " + e.what() + " (" + std::to_string(attempt) + " attempts)");
            }
            log::debug(what + ": " + e.what() + "; retrying");
            wait_before_retry(attempt, nullptr);
            continue;
        }
        if (!is_transient(response->status()) || attempt >= options_.attempts) return response;
        log::debug(what + ": HTTP " + std::to_string(response->status()) + "; retrying");
        wait_before_retry(attempt, response.get());
    }
}

void Client::throw_status(const Stream& response_const, const std::string& what) {
    auto& response = const_cast<Stream&>(response_const);
    long status = response.status();
    std::string said = registry_message(response);
    std::string tail = said.empty() ? "" : ": " + said;
    switch (status) {
    case 401:
        throw Error(Errc::Unauthorized, what + ": " + (credentials_ ? "credentials refused" : "authentication required (--creds, or imgtool login)") + tail);
    case 403: throw Error(Errc::Unauthorized, what + ": access denied" + tail);
    case 404: throw Error(Errc::NotFound, what + ": not found" + tail);
    default:
        if (is_transient(status)) {
            throw Error(Errc::Unavailable, what + ": HTTP " + std::to_string(status) + tail + " (" +
                                               std::to_string(options_.attempts) + " attempts)");
        }
        throw Error(Errc::Corrupt, what + ": unexpected HTTP " + std::to_string(status) + tail);
    }
}

void Client::authorize(const std::vector<std::string>& headers) {
    std::vector<Challenge> challenges;
    for (const auto& h : headers) {
        auto parsed = parse_challenges(h);
        challenges.insert(challenges.end(), parsed.begin(), parsed.end());
    }
    for (const Challenge& c : challenges) {
        if (c.scheme == "bearer" && c.params.count("realm")) {
            authorization_ = "Bearer " + fetch_token(c);
            return;
        }
    }
    for (const Challenge& c : challenges) {
        if (c.scheme == "basic") {
            if (!credentials_) return;  // the 401 stands: authentication required
            // A password in clear text only when the user said --tls-verify=false (a mirror marked
            // insecure in registries.conf is not the user's word for it).
            if (scheme_ == "http" && !options_.plain_http_credentials) {
                throw Error(Errc::Unauthorized, reference_.registry + " is plain HTTP; refusing to send credentials (--tls-verify=false allows it)");
            }
            authorization_ = basic_authorization(*credentials_);
            return;
        }
    }
    throw Error(Errc::Unauthorized, "the registry asks for an authentication scheme imgtool does not speak");
}

std::string Client::fetch_token(const Challenge& bearer) {
    std::string realm = bearer.params.at("realm");
    bool https = realm.rfind("https://", 0) == 0;
    if (!https && realm.rfind("http://", 0) != 0) throw Error(Errc::Corrupt, "token realm \"" + printable(realm) + "\" is not an http(s) URL");
    // Credentials go to the realm, not to the registry: never over plain text unless TLS is off anyway.
    if (!https && !options_.plain_http_credentials && credentials_) {
        throw Error(Errc::Unauthorized, "token realm " + printable(realm) + " is plain HTTP; refusing to send credentials (--tls-verify=false allows it)");
    }
    std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    if (auto s = bearer.params.find("service"); s != bearer.params.end()) url += "service=" + percent_encode(s->second) + "&";
    std::string scope = "repository:" + reference_.repository + ":pull";
    if (auto s = bearer.params.find("scope"); s != bearer.params.end()) scope = s->second;
    url += "scope=" + percent_encode(scope);
    Request request{.method = "GET", .url = url, .headers = {}, .range_from = std::nullopt};
    if (credentials_) request.headers.push_back("Authorization: " + basic_authorization(*credentials_));
    // The realm is asked with the user's credentials (if any), never with a token.
    std::unique_ptr<Stream> response = send(request, "token server", false);
    ++tokens_fetched_;
    if (response->status() == 401 || response->status() == 403) {
        throw Error(Errc::Unauthorized, credentials_ ? "credentials refused by the token server"
                                                     : "the token server wants credentials (--creds, or imgtool login)");
    }
    if (response->status() != 200) throw_status(*response, "token server");
    std::string body;
    try {
        body = response->read_all(kMaxToken, "token");
    } catch (const TransportError& e) {
        throw Error(Errc::Unavailable, "token server: " + e.message());
    }
    nlohmann::json doc;
    try {
        doc = image::parse_json_strict(body, "token server's answer");
    } catch (const Error&) {
        // The parser's excerpt of where it stopped may be the token itself.
        throw Error(Errc::Corrupt, "token server's answer is not valid JSON (the parser's excerpt is not shown: it may hold the token)");
    }
    for (const char* key : {"token", "access_token"}) {
        if (doc.is_object() && doc.contains(key) && doc[key].is_string() && !doc[key].get<std::string>().empty()) {
            std::string token = doc[key].get<std::string>();
            // token68 and the JWT alphabet are printable ASCII without spaces: anything else (a NUL that
            // would cut the header, control characters) is no token.
            if (std::any_of(token.begin(), token.end(), [](char ch) { return ch <= ' ' || ch >= 0x7f; })) {
                throw Error(Errc::Corrupt, "token server: the token holds characters a token cannot have");
            }
            return token;
        }
    }
    throw Error(Errc::Corrupt, "token server: answer has no token");
}

void Client::check() {
    if (checked_) return;
    auto ping = [&] { return send(Request{.method = "GET", .url = base_url(), .headers = {}, .range_from = std::nullopt}, "ping"); };
    std::unique_ptr<Stream> response;
    if (!options_.tls_verify) {
        // --tls-verify=false: HTTPS (unverified) once, then plain HTTP, as podman does. A registry
        // that speaks plain HTTP fails the TLS handshake at once; no point retrying it.
        try {
            response = send_once(Request{.method = "GET", .url = base_url(), .headers = {}, .range_from = std::nullopt});
        } catch (const TransportError& e) {
            log::debug("ping over HTTPS: " + std::string(e.what()) + "; trying plain HTTP");
            scheme_ = "http";
        }
    }
    if (!response) response = ping();
    if (response->status() != 200) {
        // The registry did not accept even the credentials (or the token) just obtained.
        throw_status(*response, "ping");
    }
    checked_ = true;
}

std::string Client::get_document(const Request& request, const std::string& what, std::size_t limit,
                                 std::vector<std::string>* content_type) {
    for (unsigned attempt = 1;; ++attempt) {
        auto response = send(request, what);
        if (response->status() != 200) throw_status(*response, what);
        try {
            std::string body = response->read_all(limit, what);
            if (content_type) *content_type = response->header("content-type");
            return body;
        } catch (const TransportError& e) {
            // Cut or stalled mid-body: a document is small, so it is fetched again whole.
            if (attempt >= options_.attempts) {
                throw Error(Errc::Unavailable, what + ": " + e.message() + " (" + std::to_string(attempt) + " attempts)");
            }
            log::debug(what + ": " + e.message() + "; retrying");
            wait_before_retry(attempt, nullptr);
        }
    }
}

FetchedManifest Client::manifest(const std::string& ref) {
    check();
    std::string what = "manifest " + ref;
    Request request{.method = "GET", .url = base_url() + reference_.repository + "/manifests/" + ref,
                    .headers = manifest_accept(), .range_from = std::nullopt};
    std::vector<std::string> content_type;
    FetchedManifest m{.bytes = get_document(request, what, kMaxManifest, &content_type), .media_type = {},
                      .digest = digest::Digest::sha256_hex(std::string(64, '0'))};
    m.digest = digest::Sha256::of(m.bytes);
    if (ref.rfind("sha256:", 0) == 0 && m.digest.str() != ref) {
        throw Error(Errc::DigestMismatch, what + ": digest mismatch: got " + m.digest.str());
    }
    nlohmann::json doc = image::parse_json_strict(m.bytes, what);
    if (doc.is_object() && doc.contains("mediaType") && doc["mediaType"].is_string()) {
        m.media_type = doc["mediaType"].get<std::string>();
    } else if (!content_type.empty()) {
        m.media_type = content_type[0].substr(0, content_type[0].find(';'));
    }
    bool schema1 = m.media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws" ||
                   m.media_type == "application/vnd.docker.distribution.manifest.v1+json" ||
                   (doc.is_object() && doc.contains("schemaVersion") && doc["schemaVersion"] == 1);
    if (schema1) {
        throw Error(Errc::UnsupportedMediaType, what + ": Docker schema 1 manifests are not supported (deprecated since "
                                                       "2017; push the image again with a current tool)");
    }
    return m;
}

std::string Client::small_blob(const digest::Digest& d, std::uint64_t size, const std::string& what) {
    check();
    if (size > image::kMaxJsonBytes) {
        throw Error(Errc::Corrupt, what + ": " + std::to_string(size) + " bytes is too large for a metadata document");
    }
    Request request{.method = "GET", .url = base_url() + reference_.repository + "/blobs/" + d.str(), .headers = {},
                    .range_from = std::nullopt};
    std::string bytes = get_document(request, what, static_cast<std::size_t>(size), nullptr);
    if (bytes.size() != size) {
        throw Error(Errc::SizeMismatch, what + ": size mismatch: descriptor says " + std::to_string(size) + " bytes, got " +
                                            std::to_string(bytes.size()));
    }
    if (digest::Sha256::of(bytes) != d) throw Error(Errc::DigestMismatch, what + ": digest mismatch");
    return bytes;
}

// A blob's bytes, resumed with Range requests after a cut; see Client::open_blob.
class BlobStream final : public sys::Reader {
public:
    BlobStream(Client& client, digest::Digest d, std::uint64_t size, std::optional<sys::UniqueFd> partial,
               sys::SpaceReserve* reserve)
        : client_(client), digest_(std::move(d)), size_(size), what_("blob " + digest_.str()), reserve_(reserve) {
        if (partial) adopt_partial(std::move(*partial));
    }

    std::size_t read(void* buffer, std::size_t n) override {
        if (offset_ < replay_end_) return replay(buffer, n);
        if (offset_ == size_) {
            check_end();
            return 0;
        }
        while (true) {
            if (!stream_) open();
            std::size_t got = 0;
            std::string failure;
            try {
                got = stream_->read(buffer, static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - offset_)));
                if (got == 0) failure = "connection closed after " + std::to_string(offset_) + " of " + std::to_string(size_) + " bytes";
            } catch (const TransportError& e) {
                failure = e.what();
            }
            if (failure.empty()) {
                keep(buffer, got);
                offset_ += got;
                failures_ = 0;  // progress: the retry budget is per stall, not per blob
                return got;
            }
            stream_.reset();
            // Each resume that made progress resets the budget, so a server cutting every connection
            // after a few bytes is bounded separately.
            if (++resumes_ > kMaxResumes) {
                throw Error(Errc::Unavailable, what_ + ": " + failure + " (gave up after " + std::to_string(kMaxResumes) + " resumed transfers)");
            }
            if (++failures_ >= client_.options_.attempts) {
                throw Error(Errc::Unavailable, what_ + ": " + failure + " (" + std::to_string(failures_) + " attempts)");
            }
            log::debug(what_ + ": " + failure + "; resuming from byte " + std::to_string(offset_));
            client_.wait_before_retry(failures_, nullptr);
        }
    }

private:
    // What an earlier, interrupted pull kept: a whole blob is used only if it hashes right; a prefix is
    // replayed and hashed with the rest (a mismatch at the end empties the file, so a bad prefix cannot
    // fail every later pull).
    void adopt_partial(sys::UniqueFd fd) {
        struct stat st = sys::fstat_fd(fd.get(), "partial " + digest_.str());
        std::uint64_t have = static_cast<std::uint64_t>(st.st_size);
        partial_ = std::move(fd);
        if (have > size_ || (have == size_ && !partial_matches())) {
            discard_partial();
            return;
        }
        replay_end_ = have;
        if (have > 0 && have < size_) hashing_.emplace();
        if (have > 0) log::debug(what_ + ": resuming from byte " + std::to_string(have) + " kept by an earlier pull");
    }

    bool partial_matches() {
        digest::Sha256 hash;
        std::vector<char> chunk(1 << 20);
        std::uint64_t at = 0;
        while (at < size_) {
            ssize_t n = ::pread(partial_->get(), chunk.data(), chunk.size(), static_cast<off_t>(at));
            if (n <= 0) return false;
            hash.update(chunk.data(), static_cast<std::size_t>(n));
            at += static_cast<std::uint64_t>(n);
        }
        return hash.finish() == digest_;
    }

    void discard_partial() {
        if (partial_ && ::ftruncate(partial_->get(), 0) != 0) partial_.reset();
        replay_end_ = 0;
        hashing_.reset();
    }

    std::size_t replay(void* buffer, std::size_t n) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, replay_end_ - offset_));
        ssize_t got = ::pread(partial_->get(), buffer, want, static_cast<off_t>(offset_));
        if (got <= 0) {
            // The file shrank under us (or cannot be read): download from here instead.
            replay_end_ = offset_;
            return read(buffer, n);
        }
        if (hashing_) hashing_->update(buffer, static_cast<std::size_t>(got));
        offset_ += static_cast<std::uint64_t>(got);
        return static_cast<std::size_t>(got);
    }

    // Appends downloaded bytes to the partial file; a write that fails (a full disk) only stops keeping.
    void keep(const void* buffer, std::size_t n) {
        if (hashing_) hashing_->update(buffer, n);
        if (partial_) {
            try {
                if (reserve_) reserve_->charge(n);
                sys::pwrite_all(partial_->get(), buffer, n, static_cast<off_t>(offset_), "partial");
            } catch (const Error&) {
                // The reserve reached, or the disk full: what was kept goes, so that it is not what
                // keeps the next pull from writing.
                discard_partial();
                partial_.reset();
            }
        }
        if (hashing_ && offset_ + n == size_ && hashing_->finish() != digest_) {
            // The kept prefix and the rest do not make the blob: the pipeline reports the mismatch;
            // the next pull starts from nothing.
            discard_partial();
        }
    }

    void open() {
        Request request{.method = "GET", .url = client_.base_url() + client_.reference_.repository + "/blobs/" + digest_.str(),
                        .headers = {}, .range_from = offset_ > 0 ? std::optional<std::uint64_t>(offset_) : std::nullopt};
        auto response = client_.send(request, what_);
        long status = response->status();
        if (status == 206 && offset_ > 0) {
            auto range = response->header("content-range");
            std::string want = "bytes " + std::to_string(offset_) + "-";
            if (range.empty() || range[0].rfind(want, 0) != 0) {
                throw Error(Errc::Corrupt, what_ + ": asked for bytes from " + std::to_string(offset_) +
                                               ", the server answered another range");
            }
        } else if (status == 200) {
            auto length = response->content_length();
            if (length && *length != size_) {
                throw Error(Errc::SizeMismatch, what_ + ": size mismatch: descriptor says " + std::to_string(size_) +
                                                    " bytes, the registry sends " + std::to_string(*length));
            }
            // No Range support: the whole blob again, the part already delivered skipped.
            std::uint64_t skip = offset_;
            char scratch[65536];
            while (skip > 0) {
                std::size_t n = response->read(scratch, static_cast<std::size_t>(std::min<std::uint64_t>(skip, sizeof scratch)));
                if (n == 0) throw TransportError("connection closed while skipping to byte " + std::to_string(offset_));
                skip -= n;
            }
        } else {
            client_.throw_status(*response, what_);
        }
        stream_ = std::move(response);
    }

    // The descriptor's size reached: a body that goes on is not the blob the manifest names.
    void check_end() {
        if (!stream_) return;
        char byte;
        std::size_t more = 0;
        try {
            more = stream_->read(&byte, 1);
        } catch (const TransportError&) {
            // Everything promised arrived; a failure after it does not matter.
        }
        stream_.reset();
        if (more) throw Error(Errc::SizeMismatch, what_ + ": size mismatch: longer than the descriptor's " + std::to_string(size_) + " bytes");
    }

    Client& client_;
    digest::Digest digest_;
    std::uint64_t size_;
    std::string what_;
    static constexpr unsigned kMaxResumes = 64;
    std::uint64_t offset_ = 0;
    unsigned failures_ = 0;
    unsigned resumes_ = 0;
    std::unique_ptr<Stream> stream_;
    std::optional<sys::UniqueFd> partial_;
    sys::SpaceReserve* reserve_ = nullptr;
    std::uint64_t replay_end_ = 0;          // bytes [0, replay_end_) come from the partial file
    std::optional<digest::Sha256> hashing_;  // set when a prefix was replayed: the whole must match
};

std::unique_ptr<sys::Reader> Client::open_blob(const digest::Digest& d, std::uint64_t size,
                                               std::optional<sys::UniqueFd> partial, sys::SpaceReserve* reserve) {
    check();
    return std::make_unique<BlobStream>(*this, d, size, std::move(partial), reserve);
}

}  // namespace imgtool::registry
