#pragma once
// Passphrase-wrapped copies of the master key, so that the destination and a passphrase alone
// can open the repository on a new machine (the home's `key` file stays the everyday key).
//
// Where they live: `keys/<id>.json` in a Backend -- the destination, or the home while no
// destination has received them yet ("pending", see move_wrapped_keys). Any number of wrapped
// keys may exist; each opens the same master key with its own passphrase.
//
// Format (version 1; a JSON object, also documented in docs/format.md):
//   {
//     "format": "mybackup-wrapped-key", "version": 1,
//     "kdf": "scrypt", "N": 32768, "r": 8, "p": 1,     scrypt cost parameters
//     "salt": "<32+ hex>",                            16+ random bytes
//     "nonce": "<24 hex>",                            12 random bytes
//     "sealed": "<96 hex>",                           AES-256-GCM(master key) || tag, 32 + 16 bytes
//     "created": "2026-11-21T13:43:00Z", "host": "laptop", "label": "offsite"
//   }
// Construction: kek = scrypt(passphrase, salt, N, r, p, 32 bytes);
//               sealed = AES-256-GCM(kek, nonce, master key, aad)
//               aad = "mybackup-wrapped-key v1 scrypt N=<N> r=<r> p=<p> salt=<salt hex>"
// so a changed salt, parameter or sealed byte fails authentication. created/host/label are
// descriptive only (not authenticated). The id is the first 16 hex digits of the SHA-256 of the
// file's bytes: the same file always has the same name, so copying it twice is harmless.
//
// Nothing here prints; passphrases and keys never appear in an error message. Derived keys are
// wiped from memory after use.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/crypto/keys.hpp"

namespace mybackup {

/// scrypt cost parameters. The defaults are the production cost (N = 2^15, r = 8, p = 1: about
/// 32 MiB and a tenth of a second); tests pass low-cost ones (e.g. N = 16).
struct ScryptParams {
  std::uint64_t n = std::uint64_t{1} << 15;
  std::uint64_t r = 8;
  std::uint64_t p = 1;

  /// Bytes of memory scrypt needs with these parameters: 128 * r * (N + p).
  std::uint64_t memory() const;
  /// True if N is a power of two in [2, 2^20], 1 <= r <= 32, 1 <= p <= 16 and 128 * r * N <= 1 GiB:
  /// the parameters this program accepts from a file (a damaged file must not make it allocate
  /// gigabytes or run for hours).
  bool acceptable() const;
};

/// What a wrapped key says about itself (readable without the passphrase).
struct WrappedKeyInfo {
  std::string id;       // 16 hex digits (the file name without ".json")
  std::string created;  // UTC, "2026-11-21T13:43:00Z"
  std::string host;     // the machine that made it
  std::string label;    // the user's note ("" if none)
  ScryptParams params;
  bool damaged = false;  // the file cannot be parsed: only id is meaningful
};

/// As JSON (`key list --json`): id, created, host, label, damaged (not the scrypt parameters).
void to_json(nlohmann::ordered_json& json, const WrappedKeyInfo& info);

/// Descriptive fields stored beside a wrapped key. REQUIRES: no control characters.
struct WrapDetails {
  std::string created;
  std::string host;
  std::string label;
};

/// A serialized wrapped key and its id.
struct WrappedKey {
  std::string id;
  std::string text;
};

/// "keys/<id>.json".
std::string wrapped_key_object(const std::string& id);

/// Wraps `key` with `passphrase`. Error(usage) if the passphrase is empty, the parameters are not
/// acceptable() or a detail holds a control character; Error(crypto) if OpenSSL fails.
WrappedKey wrap_master_key(const MasterKey& key, std::string_view passphrase, const ScryptParams& params,
                           const WrapDetails& details);

/// The master key inside `text`. Error(wrong_key) if the passphrase does not open it (or the
/// salt, parameters, nonce or sealed key were changed: authentication cannot tell these apart);
/// Error(corrupt) if `text` is not a well-formed wrapped key of a known version.
MasterKey unwrap_master_key(std::string_view text, std::string_view passphrase);

/// The descriptive fields of `text`, with `id` computed from it. Error(corrupt) if damaged.
WrappedKeyInfo describe_wrapped_key(std::string_view text);

// ---- wrapped keys in a backend (the destination, or the home's pending keys)

/// Every keys/<id>.json of `backend`, sorted by creation time then id. Damaged files are listed
/// with damaged = true rather than failing the whole list.
std::vector<WrappedKeyInfo> list_wrapped_keys(const Backend& backend);

/// Stores `key` as keys/<id>.json (atomic, Overwrite::no). Storing the same key again is a no-op
/// (the id is a hash of the content).
void add_wrapped_key(Backend& backend, const WrappedKey& key);

/// The text of every wrapped key of `backend` whose content matches its name, by id (to copy
/// them elsewhere); damaged or misnamed files are left out.
std::map<std::string, std::string> wrapped_key_texts(const Backend& backend);

enum class LastKey { refuse, allow };

/// Deletes keys/<id>.json. Error(not_found) if there is no such key; Error(usage) if it is the
/// last wrapped key in `backend` and `last` is LastKey::refuse.
void remove_wrapped_key(Backend& backend, const std::string& id, LastKey last);

/// Copies every wrapped key of `from` that `to` lacks into `to`, then deletes it from `from`
/// (pending keys in the home move to the destination). Returns the ids moved. A failure leaves
/// every key in at least one of the two places.
std::vector<std::string> move_wrapped_keys(Backend& from, Backend& to);

/// Tries `passphrase` on every wrapped key of `backend` and returns the master key of the first
/// one it opens. Error(not_found) if there are no wrapped keys (with a hint to use the key file);
/// Error(wrong_key) if none opens; Error(corrupt) if every wrapped key is damaged.
MasterKey unlock_with_passphrase(const Backend& backend, std::string_view passphrase);

}  // namespace mybackup
