#include "imgtool/digest/sha256.hpp"

#include <openssl/evp.h>

#include "imgtool/core/error.hpp"

namespace imgtool::digest {

struct Sha256::Impl {
    EVP_MD_CTX* ctx = nullptr;
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MD_CTX_new();
    if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
        throw Error(Errc::Unsupported, "OpenSSL: cannot initialise sha256");
    }
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
    if (size != 0 && EVP_DigestUpdate(impl_->ctx, data, size) != 1) {
        throw Error(Errc::Unsupported, "OpenSSL: sha256 update failed");
    }
}

Digest Sha256::finish() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(impl_->ctx, out, &len) != 1 || len != 32) {
        throw Error(Errc::Unsupported, "OpenSSL: sha256 final failed");
    }
    static const char hexdigits[] = "0123456789abcdef";
    std::string hex(64, '0');
    for (unsigned i = 0; i < 32; ++i) {
        hex[2 * i] = hexdigits[out[i] >> 4];
        hex[2 * i + 1] = hexdigits[out[i] & 15];
    }
    return Digest::sha256_hex(hex);
}

Digest Sha256::of(std::string_view data) {
    Sha256 h;
    h.update(data.data(), data.size());
    return h.finish();
}

}  // namespace imgtool::digest
