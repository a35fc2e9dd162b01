#pragma once
// Cryptographic primitives, thin RAII wrappers over OpenSSL 3 EVP.
//
// Everything here is stateless or owns its OpenSSL context; no function prints or logs its inputs.
// Failures inside OpenSSL throw Error(crypto); a failed authentication throws Error(crypto) too.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

constexpr std::size_t kDigestSize = 32;
using Digest = std::array<std::uint8_t, kDigestSize>;

/// Streaming SHA-256. update() any number of times, then finish() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(ByteView data);
  /// REQUIRES: not called before on this object.
  Digest finish();

  /// One-shot convenience.
  static Digest hash(ByteView data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// HMAC-SHA256 with a key of any length. The object is reusable: each mac() call is independent,
/// and reusing one object avoids re-keying costs on hot paths (one per worker thread).
class HmacSha256 {
 public:
  explicit HmacSha256(ByteView key);
  ~HmacSha256();
  HmacSha256(HmacSha256&&) noexcept;
  HmacSha256& operator=(HmacSha256&&) noexcept;
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  Digest mac(ByteView data) const;

  /// One-shot convenience.
  static Digest mac(ByteView key, ByteView data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes (<= 8160).
Bytes hkdf_sha256(ByteView key, ByteView salt, ByteView info, std::size_t length);

/// scrypt (RFC 7914) of `passphrase` with `salt` and cost parameters N (a power of two > 1), r and
/// p, filling `out`. `max_memory` bounds the memory OpenSSL may use (scrypt needs about
/// 128 * r * (N + p) bytes; OpenSSL's own default limit is 32 MiB, too small for N = 2^15, r = 8).
/// Throws Error(crypto) if OpenSSL refuses the parameters or fails.
void scrypt(std::string_view passphrase, ByteView salt, std::uint64_t n, std::uint64_t r, std::uint64_t p,
            std::uint64_t max_memory, std::span<std::uint8_t> out);

constexpr std::size_t kAeadKeySize = 32;
constexpr std::size_t kAeadNonceSize = 12;
constexpr std::size_t kAeadTagSize = 16;
using AeadKey = std::array<std::uint8_t, kAeadKeySize>;
using AeadNonce = std::array<std::uint8_t, kAeadNonceSize>;

/// AES-256-GCM encryption. Returns ciphertext followed by the 16-byte tag
/// (output size = plaintext size + 16). `aad` is authenticated but not encrypted.
Bytes aes256gcm_seal(const AeadKey& key, const AeadNonce& nonce, ByteView plaintext, ByteView aad);

/// Same, appending ciphertext and tag to `out` (avoids a copy on hot paths).
void aes256gcm_seal_append(const AeadKey& key, const AeadNonce& nonce, ByteView plaintext,
                           ByteView aad, Bytes& out);

/// aes256gcm_seal given the plaintext in pieces: the same output (ciphertext, then the tag from
/// finish()), appended to `out` as it comes. For data too large to hold. Not thread-safe; spent
/// after finish(). Throws Error(crypto).
class Aes256GcmSealer {
 public:
  Aes256GcmSealer(const AeadKey& key, const AeadNonce& nonce, ByteView aad);
  ~Aes256GcmSealer();
  Aes256GcmSealer(const Aes256GcmSealer&) = delete;
  Aes256GcmSealer& operator=(const Aes256GcmSealer&) = delete;
  void update(ByteView plaintext, Bytes& out);
  void finish(Bytes& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// aes256gcm_open given the ciphertext in pieces (data too large to hold): update() appends the
/// decrypted piece to `out`, finish() checks the tag. What update() gave is NOT authenticated
/// until finish() returns: the caller keeps it aside (a temporary file) and uses nothing of it
/// before. finish() throws Error(corrupt) when authentication fails. Not thread-safe.
class Aes256GcmOpener {
 public:
  Aes256GcmOpener(const AeadKey& key, const AeadNonce& nonce, ByteView aad);
  ~Aes256GcmOpener();
  Aes256GcmOpener(const Aes256GcmOpener&) = delete;
  Aes256GcmOpener& operator=(const Aes256GcmOpener&) = delete;
  void update(ByteView ciphertext, Bytes& out);
  void finish(ByteView tag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// AES-256-GCM decryption of ciphertext||tag. Throws Error(crypto) if the input is shorter than a
/// tag or if authentication fails (wrong key, wrong aad, or any modified byte).
Bytes aes256gcm_open(const AeadKey& key, const AeadNonce& nonce, ByteView sealed, ByteView aad);

/// Fills `out` from the operating system's CSPRNG (OpenSSL RAND_bytes). Throws Error(crypto).
void random_bytes(std::span<std::uint8_t> out);

/// Overwrites memory in a way the compiler may not elide (OPENSSL_cleanse).
void secure_wipe(std::span<std::uint8_t> memory);

}  // namespace mybackup
