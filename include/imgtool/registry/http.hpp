// HTTP for the registry client, over libcurl: one request at a time per Stream, bodies pulled by the
// caller (sys::Reader) so a blob streams into the unpacker at the pace it is consumed, with no copy on
// disk and no thread of its own. Redirects are followed (registries hand blobs to object storage);
// curl drops the Authorization header when a redirect leaves the host.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imgtool/core/error.hpp"
#include "imgtool/sys/reader.hpp"

namespace imgtool::registry {

struct TlsSettings {
    bool verify = true;                 // false: no certificate or host name check (--tls-verify=false)
    std::vector<std::string> ca_files;  // extra CAs (PEM), trusted besides the system's
    std::string client_cert;            // PEM certificate and key for client authentication, if any
    std::string client_key;
};

struct Request {
    std::string method = "GET";  // GET or HEAD
    std::string url;
    std::vector<std::string> headers;      // "Accept: ...", "Authorization: ..."
    std::optional<std::uint64_t> range_from;  // "Range: bytes=N-"
};

// A transport failure (connection refused or reset, TLS, a stalled or cut transfer): worth retrying.
// HTTP statuses are not errors at this level.
// "https://Host:5000/v2/x?y" -> "https://host:5000": who a URL talks to.
std::string origin_of(const std::string& url);

class TransportError : public Error {
public:
    explicit TransportError(std::string message, bool lasting = false)
        : Error(Errc::Unavailable, std::move(message)), lasting_(lasting) {}
    // A failure that asking again cannot cure (a certificate refused, TLS to a plain-HTTP port).
    bool lasting() const { return lasting_; }

private:
    bool lasting_;
};

class Http;

// One response: its status and headers once open() returns, its body through read().
class Stream final : public sys::Reader {
public:
    ~Stream() override;
    long status() const { return status_; }
    // Header values by lower-case name, in arrival order (WWW-Authenticate may come several times).
    std::vector<std::string> header(const std::string& lower_name) const;
    std::optional<std::uint64_t> content_length() const;
    // scheme://host[:port] of the server that gave the final answer (after redirects).
    std::string answered_by() const { return answered_by_; }
    // Throws TransportError if the transfer fails; 0 at the end of the body.
    std::size_t read(void* buffer, std::size_t size) override;
    // The whole body, refusing more than `limit` bytes.
    std::string read_all(std::size_t limit, const std::string& what);

private:
    friend class Http;
    struct Impl;
    explicit Stream(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    long status_ = 0;
    std::string answered_by_;
};

class Http {
public:
    // stall: a transfer that receives nothing for this long fails (a TransportError), instead of
    // hanging forever on a dead peer.
    Http(TlsSettings tls, std::chrono::seconds stall);
    ~Http();
    Http(const Http&) = delete;
    Http& operator=(const Http&) = delete;
    // Sends the request and waits for the final response's headers (after redirects). Thread-safe.
    std::unique_ptr<Stream> open(const Request& request) const;

private:
    struct Shared;
    std::unique_ptr<Shared> shared_;
    TlsSettings tls_;
    std::chrono::seconds stall_;
};

}  // namespace imgtool::registry
