#include "mybackup/crypto/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

// unique_ptr deleter calling an OpenSSL free function.
template <auto FreeFn>
struct OsslDeleter {
  template <typename T>
  void operator()(T* object) const noexcept {
    FreeFn(object);
  }
};

using MdPtr = std::unique_ptr<EVP_MD, OsslDeleter<EVP_MD_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OsslDeleter<EVP_MD_CTX_free>>;
using MacPtr = std::unique_ptr<EVP_MAC, OsslDeleter<EVP_MAC_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, OsslDeleter<EVP_MAC_CTX_free>>;
using KdfPtr = std::unique_ptr<EVP_KDF, OsslDeleter<EVP_KDF_free>>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, OsslDeleter<EVP_KDF_CTX_free>>;
using CipherPtr = std::unique_ptr<EVP_CIPHER, OsslDeleter<EVP_CIPHER_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, OsslDeleter<EVP_CIPHER_CTX_free>>;

// OpenSSL's int-sized length parameters: feed large buffers in pieces no bigger than this.
constexpr std::size_t kMaxPiece = std::size_t{1} << 30;

constexpr char kAuthFailed[] = "authentication failed (wrong key or damaged data)";

// Throws Error(crypto) for a failed OpenSSL call. The error queue is per thread and would otherwise
// grow; its reason string names the failure, never the data.
[[noreturn]] void fail(const char* what) {
  std::string message = std::string(what) + " failed";
  const unsigned long code = ERR_peek_last_error();
  if (code != 0) {
    if (const char* reason = ERR_reason_error_string(code); reason != nullptr) {
      message += ": ";
      message += reason;
    }
  }
  ERR_clear_error();
  throw Error(ErrorKind::crypto, message);
}

void check(int result, const char* what) {
  if (result <= 0) {
    fail(what);
  }
}

template <typename Ptr>
Ptr check_ptr(Ptr ptr, const char* what) {
  if (!ptr) {
    fail(what);
  }
  return ptr;
}

// An empty span may carry a null pointer, which some OpenSSL calls read as "no value given".
const std::uint8_t* non_null(ByteView data) {
  static constexpr std::uint8_t kEmpty = 0;
  return data.data() != nullptr ? data.data() : &kEmpty;
}

// Algorithms are fetched once: an implicit fetch on every init costs a provider lookup.
// A throwing initializer leaves the static uninitialized, so a later call retries.
const EVP_MD* sha256_md() {
  static const MdPtr md = check_ptr(MdPtr(EVP_MD_fetch(nullptr, "SHA256", nullptr)), "fetching SHA-256");
  return md.get();
}

EVP_MAC* hmac_mac() {
  static const MacPtr mac = check_ptr(MacPtr(EVP_MAC_fetch(nullptr, "HMAC", nullptr)), "fetching HMAC");
  return mac.get();
}

EVP_KDF* hkdf_kdf() {
  static const KdfPtr kdf = check_ptr(KdfPtr(EVP_KDF_fetch(nullptr, "HKDF", nullptr)), "fetching HKDF");
  return kdf.get();
}

const EVP_CIPHER* aes256gcm_cipher() {
  static const CipherPtr cipher =
      check_ptr(CipherPtr(EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr)), "fetching AES-256-GCM");
  return cipher.get();
}

[[noreturn]] void fail_moved_from(const char* type) {
  throw Error(ErrorKind::usage, std::string(type) + " used after being moved from");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SHA-256

struct Sha256::Impl {
  MdCtxPtr ctx;
  bool finished = false;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = check_ptr(MdCtxPtr(EVP_MD_CTX_new()), "allocating SHA-256 context");
  check(EVP_DigestInit_ex2(impl_->ctx.get(), sha256_md(), nullptr), "SHA-256 init");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(ByteView data) {
  if (!impl_) {
    fail_moved_from("Sha256");
  }
  if (impl_->finished) {
    throw Error(ErrorKind::usage, "Sha256 updated after finish()");
  }
  if (data.empty()) {
    return;
  }
  check(EVP_DigestUpdate(impl_->ctx.get(), data.data(), data.size()), "SHA-256 update");
}

Digest Sha256::finish() {
  if (!impl_) {
    fail_moved_from("Sha256");
  }
  if (impl_->finished) {
    throw Error(ErrorKind::usage, "Sha256 finished twice");
  }
  Digest digest{};
  unsigned int length = 0;
  check(EVP_DigestFinal_ex(impl_->ctx.get(), digest.data(), &length), "SHA-256 final");
  impl_->finished = true;
  if (length != digest.size()) {
    fail("SHA-256 final");
  }
  return digest;
}

Digest Sha256::hash(ByteView data) {
  Digest digest{};
  unsigned int length = 0;
  check(EVP_Digest(non_null(data), data.size(), digest.data(), &length, sha256_md(), nullptr),
        "SHA-256");
  if (length != digest.size()) {
    fail("SHA-256");
  }
  return digest;
}

// ---------------------------------------------------------------------------------------------
// HMAC-SHA256

struct HmacSha256::Impl {
  // Keyed once in the constructor; mac() re-initializes it with the stored key, which only
  // restores the precomputed inner/outer digest states. mac() is const but mutates this context,
  // so one object must not be used by two threads at once.
  MacCtxPtr ctx;
};

HmacSha256::HmacSha256(ByteView key) : impl_(std::make_unique<Impl>()) {
  impl_->ctx = check_ptr(MacCtxPtr(EVP_MAC_CTX_new(hmac_mac())), "allocating HMAC context");
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end(),
  };
  check(EVP_MAC_init(impl_->ctx.get(), non_null(key), key.size(), params), "HMAC-SHA256 init");
}

HmacSha256::~HmacSha256() = default;
HmacSha256::HmacSha256(HmacSha256&&) noexcept = default;
HmacSha256& HmacSha256::operator=(HmacSha256&&) noexcept = default;

Digest HmacSha256::mac(ByteView data) const {
  if (!impl_) {
    fail_moved_from("HmacSha256");
  }
  EVP_MAC_CTX* ctx = impl_->ctx.get();
  // A null key means "keep the current key": restarts the MAC without re-keying.
  check(EVP_MAC_init(ctx, nullptr, 0, nullptr), "HMAC-SHA256 init");
  if (!data.empty()) {
    check(EVP_MAC_update(ctx, data.data(), data.size()), "HMAC-SHA256 update");
  }
  Digest digest{};
  std::size_t length = 0;
  check(EVP_MAC_final(ctx, digest.data(), &length, digest.size()), "HMAC-SHA256 final");
  if (length != digest.size()) {
    fail("HMAC-SHA256 final");
  }
  return digest;
}

Digest HmacSha256::mac(ByteView key, ByteView data) {
  return HmacSha256(key).mac(data);
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256

Bytes hkdf_sha256(ByteView key, ByteView salt, ByteView info, std::size_t length) {
  constexpr std::size_t kMaxLength = 255 * kDigestSize;
  if (length > kMaxLength) {
    throw Error(ErrorKind::crypto, "HKDF-SHA256 output length exceeds 8160 bytes");
  }
  if (length == 0) {
    return {};
  }
  const KdfCtxPtr ctx = check_ptr(KdfCtxPtr(EVP_KDF_CTX_new(hkdf_kdf())), "allocating HKDF context");
  char digest_name[] = "SHA256";
  // OSSL_PARAM wants non-const pointers but only reads through them.
  auto octets = [](const char* name, ByteView data) {
    return OSSL_PARAM_construct_octet_string(
        name, const_cast<std::uint8_t*>(non_null(data)), data.size());
  };
  // An absent salt means a zero-filled one (RFC 5869 2.2); an empty info is simply omitted.
  OSSL_PARAM params[5];
  std::size_t count = 0;
  params[count++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest_name, 0);
  params[count++] = octets(OSSL_KDF_PARAM_KEY, key);
  if (!salt.empty()) {
    params[count++] = octets(OSSL_KDF_PARAM_SALT, salt);
  }
  if (!info.empty()) {
    params[count++] = octets(OSSL_KDF_PARAM_INFO, info);
  }
  params[count] = OSSL_PARAM_construct_end();

  Bytes output(length);
  if (EVP_KDF_derive(ctx.get(), output.data(), output.size(), params) <= 0) {
    secure_wipe(output);
    fail("HKDF-SHA256");
  }
  return output;
}

// ---------------------------------------------------------------------------------------------
// scrypt

void scrypt(std::string_view passphrase, ByteView salt, std::uint64_t n, std::uint64_t r, std::uint64_t p,
            std::uint64_t max_memory, std::span<std::uint8_t> out) {
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), salt.data(), salt.size(), n, r, p, max_memory, out.data(),
                     out.size()) != 1) {
    secure_wipe(out);
    fail("scrypt");
  }
}

// ---------------------------------------------------------------------------------------------
// AES-256-GCM

namespace {

// Runs EVP_{Encrypt,Decrypt}Update over `input` in int-sized pieces; GCM output equals input size.
template <typename UpdateFn>
void cipher_update(UpdateFn update_fn, EVP_CIPHER_CTX* ctx, ByteView input, std::uint8_t* output,
                   const char* what) {
  std::size_t done = 0;
  while (done < input.size()) {
    const std::size_t piece = std::min(input.size() - done, kMaxPiece);
    int written = 0;
    check(update_fn(ctx, output + done, &written, input.data() + done, static_cast<int>(piece)),
          what);
    if (static_cast<std::size_t>(written) != piece) {
      fail(what);
    }
    done += piece;
  }
}

// AAD goes through the same update call with a null output buffer.
template <typename UpdateFn>
void cipher_aad(UpdateFn update_fn, EVP_CIPHER_CTX* ctx, ByteView aad, const char* what) {
  std::size_t done = 0;
  while (done < aad.size()) {
    const std::size_t piece = std::min(aad.size() - done, kMaxPiece);
    int written = 0;
    check(update_fn(ctx, nullptr, &written, aad.data() + done, static_cast<int>(piece)), what);
    done += piece;
  }
}

constexpr const char* kSealing = "AES-256-GCM encryption";

/// A context ready to encrypt under `key` and `nonce`, with `aad` already taken in.
CipherCtxPtr start_sealing(const AeadKey& key, const AeadNonce& nonce, ByteView aad) {
  CipherCtxPtr ctx = check_ptr(CipherCtxPtr(EVP_CIPHER_CTX_new()), kSealing);
  // The default GCM IV length is 12 bytes, matching kAeadNonceSize.
  check(EVP_EncryptInit_ex2(ctx.get(), aes256gcm_cipher(), key.data(), nonce.data(), nullptr), kSealing);
  cipher_aad(EVP_EncryptUpdate, ctx.get(), aad, kSealing);
  return ctx;
}

/// Ends the encryption and writes the kAeadTagSize-byte tag to `tag` (GCM has no trailing bytes).
void finish_sealing(EVP_CIPHER_CTX* ctx, std::uint8_t* tag) {
  int written = 0;
  check(EVP_EncryptFinal_ex(ctx, tag, &written), kSealing);
  if (written != 0) {
    fail(kSealing);
  }
  check(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAeadTagSize), tag), kSealing);
}

// Writes ciphertext || tag to `output`, which has room for plaintext.size() + kAeadTagSize bytes.
void seal_into(const AeadKey& key, const AeadNonce& nonce, ByteView plaintext, ByteView aad,
               std::uint8_t* output) {
  const CipherCtxPtr ctx = start_sealing(key, nonce, aad);
  cipher_update(EVP_EncryptUpdate, ctx.get(), plaintext, output, kSealing);
  finish_sealing(ctx.get(), output + plaintext.size());
}

}  // namespace

struct Aes256GcmSealer::Impl {
  CipherCtxPtr ctx;
};

Aes256GcmSealer::Aes256GcmSealer(const AeadKey& key, const AeadNonce& nonce, ByteView aad) : impl_(std::make_unique<Impl>()) {
  impl_->ctx = start_sealing(key, nonce, aad);
}

Aes256GcmSealer::~Aes256GcmSealer() = default;

void Aes256GcmSealer::update(ByteView plaintext, Bytes& out) {
  const std::size_t old_size = out.size();
  out.resize(old_size + plaintext.size());
  cipher_update(EVP_EncryptUpdate, impl_->ctx.get(), plaintext, out.data() + old_size, kSealing);
}

void Aes256GcmSealer::finish(Bytes& out) {
  const std::size_t old_size = out.size();
  out.resize(old_size + kAeadTagSize);
  finish_sealing(impl_->ctx.get(), out.data() + old_size);
}

struct Aes256GcmOpener::Impl {
  CipherCtxPtr ctx;
};

Aes256GcmOpener::Aes256GcmOpener(const AeadKey& key, const AeadNonce& nonce, ByteView aad) : impl_(std::make_unique<Impl>()) {
  constexpr const char* kWhat = "AES-256-GCM decryption";
  impl_->ctx = check_ptr(CipherCtxPtr(EVP_CIPHER_CTX_new()), kWhat);
  check(EVP_DecryptInit_ex2(impl_->ctx.get(), aes256gcm_cipher(), key.data(), nonce.data(), nullptr), kWhat);
  cipher_aad(EVP_DecryptUpdate, impl_->ctx.get(), aad, kWhat);
}

Aes256GcmOpener::~Aes256GcmOpener() = default;

void Aes256GcmOpener::update(ByteView ciphertext, Bytes& out) {
  const std::size_t old_size = out.size();
  out.resize(old_size + ciphertext.size());
  cipher_update(EVP_DecryptUpdate, impl_->ctx.get(), ciphertext, out.data() + old_size, "AES-256-GCM decryption");
}

void Aes256GcmOpener::finish(ByteView tag) {
  constexpr const char* kWhat = "AES-256-GCM decryption";
  if (tag.size() != kAeadTagSize) {
    throw Error(ErrorKind::corrupt, "encrypted data is truncated (damaged data)");
  }
  // SET_TAG only reads the buffer despite the non-const parameter.
  check(EVP_CIPHER_CTX_ctrl(impl_->ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAeadTagSize),
                            const_cast<std::uint8_t*>(tag.data())),
        kWhat);
  std::array<std::uint8_t, 16> rest{};  // GCM writes nothing here
  int written = 0;
  if (EVP_DecryptFinal_ex(impl_->ctx.get(), rest.data(), &written) <= 0) {
    ERR_clear_error();
    throw Error(ErrorKind::corrupt, kAuthFailed);
  }
}

Bytes aes256gcm_seal(const AeadKey& key, const AeadNonce& nonce, ByteView plaintext, ByteView aad) {
  Bytes sealed(plaintext.size() + kAeadTagSize);
  seal_into(key, nonce, plaintext, aad, sealed.data());
  return sealed;
}

void aes256gcm_seal_append(const AeadKey& key, const AeadNonce& nonce, ByteView plaintext,
                           ByteView aad, Bytes& out) {
  const std::size_t old_size = out.size();
  out.resize(old_size + plaintext.size() + kAeadTagSize);
  try {
    seal_into(key, nonce, plaintext, aad, out.data() + old_size);
  } catch (...) {
    out.resize(old_size);
    throw;
  }
}

Bytes aes256gcm_open(const AeadKey& key, const AeadNonce& nonce, ByteView sealed, ByteView aad) {
  if (sealed.size() < kAeadTagSize) {
    throw Error(ErrorKind::corrupt, "encrypted data is truncated (damaged data)");
  }
  Aes256GcmOpener opener(key, nonce, aad);
  Bytes plaintext;
  opener.update(sealed.first(sealed.size() - kAeadTagSize), plaintext);
  try {
    opener.finish(sealed.last(kAeadTagSize));
  } catch (const Error&) {
    secure_wipe(plaintext);  // never hand out (or leave lying around) unauthenticated plaintext
    throw;
  }
  return plaintext;
}

// ---------------------------------------------------------------------------------------------
// Randomness and wiping

void random_bytes(std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t piece = std::min(out.size() - done, kMaxPiece);
    check(RAND_bytes(out.data() + done, static_cast<int>(piece)), "random number generation");
    done += piece;
  }
}

void secure_wipe(std::span<std::uint8_t> memory) {
  if (!memory.empty()) {
    OPENSSL_cleanse(memory.data(), memory.size());
  }
}

}  // namespace mybackup
