// Incremental SHA-256 over OpenSSL EVP (uses SHA-NI where the CPU has it).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "imgtool/digest/digest.hpp"

namespace imgtool::digest {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;

    void update(const void* data, std::size_t size);
    // Finishes the hash; the object must not be updated afterwards.
    Digest finish();

    static Digest of(std::string_view data);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imgtool::digest
