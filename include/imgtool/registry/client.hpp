// A client of one registry repository over the OCI distribution API (GET /v2/, manifests, blobs):
// scheme and authentication worked out once (anonymous, basic, or bearer tokens fetched from the
// realm the registry names and reused until refused), transient failures retried with backoff, and
// blobs streamed with resumption: a transfer cut mid-blob continues with a Range request from the
// last byte delivered. Every document it returns is verified against its digest; blob streams are
// verified by the caller (the import pipeline hashes them as it unpacks).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "imgtool/digest/digest.hpp"
#include "imgtool/image/reference.hpp"
#include "imgtool/registry/auth.hpp"
#include "imgtool/registry/http.hpp"
#include "imgtool/sys/reader.hpp"
#include "imgtool/sys/space.hpp"
#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::registry {

struct ClientOptions {
    bool tls_verify = true;                   // false: unverified TLS, then plain HTTP (podman's --tls-verify=false)
    bool plain_http_credentials = false;      // credentials may cross plain HTTP: the user's --tls-verify=false
    std::optional<std::string> cert_dir;      // else /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST
    std::optional<Credentials> credentials;   // --creds; else the auth files
    std::optional<std::string> authfile;      // --authfile
    unsigned attempts = 5;                    // per request, transient failures included
    std::chrono::seconds stall{30};           // a transfer silent this long has failed
    std::chrono::milliseconds backoff{250};   // first retry's wait, doubled each time (capped)
};

// The TLS settings for `host` ("name:port"): CAs (*.crt) and a client pair (*.cert + *.key) from the
// first directory of cert_dir, /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST that exists.
TlsSettings tls_settings_for(const std::string& host, const ClientOptions& options);

struct FetchedManifest {
    std::string bytes;
    std::string media_type;  // the document's own mediaType, else the response's Content-Type
    digest::Digest digest;   // sha256 of the bytes (checked against the reference when pinned)
};

class Client {
public:
    Client(image::Reference reference, ClientOptions options);
    ~Client();

    // GET /v2/: the registry answers, the scheme and the authentication it wants are known, and the
    // credentials (if any) are accepted. `login` uses it alone; everything else calls it first.
    void check();
    // The manifest or index by tag or digest; a digest reference is verified.
    FetchedManifest manifest(const std::string& reference);
    // A small blob (config), whole and verified.
    std::string small_blob(const digest::Digest& digest, std::uint64_t size, const std::string& what);
    // A blob's bytes as they arrive, resuming cut transfers with Range requests; the stream ends
    // after exactly `size` bytes (longer bodies are a size mismatch). Thread-safe: one stream per layer.
    // With a partial file (store::Store::open_partial), what it holds is delivered first and only the
    // rest is downloaded (a whole one is checked against the digest before use); every byte that
    // arrives is appended to it, so an interrupted pull resumes on the next run. Kept bytes count
    // against `reserve`: at the reserve, keeping stops and the partial file is emptied.
    std::unique_ptr<sys::Reader> open_blob(const digest::Digest& digest, std::uint64_t size,
                                           std::optional<sys::UniqueFd> partial = std::nullopt,
                                           sys::SpaceReserve* reserve = nullptr);

    const image::Reference& reference() const { return reference_; }
    // "registry/repository": whose bytes a partial file holds.
    std::string origin() const { return reference_.registry + "/" + reference_.repository; }
    // How many token requests were made (tests assert tokens are reused).
    unsigned tokens_fetched() const { return tokens_fetched_; }

private:
    friend class BlobStream;
    struct Attempted;
    // Sends `request`, with the registry's authorization unless `authorized` is false (the token
    // realm), retrying transient failures; returns the final response whatever its status.
    std::unique_ptr<Stream> send(Request request, const std::string& what, bool authorized = true);
    std::unique_ptr<Stream> send_once(Request request);
    // A 200 answer's whole body (at most `limit` bytes), the request repeated if the body is cut.
    std::string get_document(const Request& request, const std::string& what, std::size_t limit,
                             std::vector<std::string>* content_type);
    void authorize(const std::vector<std::string>& challenges);
    std::string fetch_token(const Challenge& bearer);
    std::string base_url() const;
    [[noreturn]] void throw_status(const Stream& response, const std::string& what);
    void wait_before_retry(unsigned attempt, const Stream* response) const;

    image::Reference reference_;
    ClientOptions options_;
    std::optional<Credentials> credentials_;
    std::unique_ptr<Http> http_;
    std::string scheme_ = "https";
    bool checked_ = false;
    mutable std::mutex auth_mutex_;
    std::string authorization_;  // the header to send, once known
    std::optional<Challenge> bearer_;
    unsigned tokens_fetched_ = 0;
};

}  // namespace imgtool::registry
