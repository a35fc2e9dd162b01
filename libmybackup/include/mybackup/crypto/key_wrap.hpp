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
//     "kdf": "scrypt", "N": 131072, "r": 8, "p": 1,    scrypt cost parameters
//     "salt": "<32+ hex>",                            16+ random bytes
//     "nonce": "<24 hex>",                            12 random bytes
//     "sealed": "<96 hex>",                           AES-256-GCM(master key) || tag, 32 + 16 bytes
//     "created": "2026-11-21T13:43:00Z", "host": "laptop", "label": "offsite"
//   }
// Construction: kek = scrypt(passphrase, salt, N, r, p, 32 bytes);
//               sealed = AES-256-GCM(kek, nonce, master key, aad)
//               aad = "mybackup-wrapped-key v1 scrypt N=<N> r=<r> p=<p> salt=<salt hex>"
// so a changed salt, parameter or sealed byte fails authentication. created/host/label are
// descriptive only (not authenticated).
//
// Identity: a wrapped key's id is the first 16 hex digits of the SHA-256 of the file's bytes,
// computed from the content every time it is read, never taken from the file name. The id thus
// commits to every byte (the sealed key, its parameters and the descriptive fields): renaming a
// file changes neither its id nor what it opens, and nobody can give a file the id of another
// without its exact bytes. mybackup names each file keys/<id>.json; a file whose name does not
// match its content is reported and never tried.
//
// The destination is untrusted (anyone who can write there can plant files in keys/), so an
// unlock is bounded: at most kMaxWrappedKeysPerUnlock files read (kMaxWrappedKeySize bytes each),
// scrypt parameters capped per key (ScryptParams::refusal) and in total (kUnlockScryptBudget),
// cheapest key first; every file left out is reported, never skipped silently.
//
// Nothing here prints; passphrases and keys never appear in an error message, and no text from
// a key file other than its numbers does either. Derived keys are wiped from memory after use.

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/crypto/keys.hpp"

namespace mybackup {

/// scrypt cost parameters. The defaults are the production cost for a key that opens every
/// backup: N = 2^17, r = 8, p = 1 (OWASP's recommendation for scrypt; 128 MiB of memory and about
/// half a second to a second per try). Tests pass low-cost ones (e.g. N = 16).
struct ScryptParams {
  std::uint64_t n = std::uint64_t{1} << 17;
  std::uint64_t r = 8;
  std::uint64_t p = 1;

  /// Bytes of memory scrypt needs with these parameters: 128 * r * (N + p).
  std::uint64_t memory() const;
  /// The work of one derivation, N * r * p (its time is proportional to it).
  constexpr std::uint64_t work() const { return n * r * p; }
  /// Why this program refuses these parameters, or "" if it accepts them: N must be a power of
  /// two in [2, 2^20], 1 <= r <= 32, 1 <= p <= 16, 128 * r * N at most kMaxScryptMemory and
  /// N * r * p at most kMaxScryptWork. One line, numbers only (safe to print).
  std::string refusal() const;
  /// refusal().empty().
  bool acceptable() const;
};

/// Caps on what a wrapped key file may ask of this program (a planted or damaged file must not
/// make an unlock allocate gigabytes or run for minutes): twice the default memory, four times
/// the default work.
inline constexpr std::uint64_t kMaxScryptMemory = std::uint64_t{256} << 20;
inline constexpr std::uint64_t kMaxScryptWork = 4 * ScryptParams{}.work();

/// The most wrapped key files one unlock reads and may try. A person has a handful of
/// passphrases (their own, an offsite copy, a partner, a recovery sheet); 16 leaves room for
/// that and for old keys not yet removed, while bounding what a planted folder can cost.
inline constexpr std::size_t kMaxWrappedKeysPerUnlock = 16;
/// The total scrypt work (sum of N * r * p) one unlock may spend: 16 derivations at the default
/// cost. Keys are tried cheapest first, so a default-cost key among the first 16 files is always
/// within it; only keys dearer than the default can fall outside.
inline constexpr std::uint64_t kUnlockScryptBudget = kMaxWrappedKeysPerUnlock * ScryptParams{}.work();

/// What a wrapped key says about itself (readable without the passphrase).
struct WrappedKeyInfo {
  std::string id;       // 16 hex digits from the file's bytes, whatever its name ("" if it cannot be read)
  std::string object;   // where it was found: "keys/<name>.json"
  std::string created;  // UTC, "2026-11-21T13:43:00Z" (descriptive, not authenticated)
  std::string host;     // the machine that made it
  std::string label;    // the user's note ("" if none)
  ScryptParams params;
  bool damaged = false;  // the file cannot be read as a wrapped key: only id and object are meaningful
  /// "" if an unlock would try this key; else one line naming the file and why not (damaged,
  /// scrypt parameters refused, or its name does not match its content).
  std::string problem;
};

/// As JSON (`key list --json`): id, file (the object name), created, host, label, damaged,
/// problem ("" if none); not the scrypt parameters.
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

/// The id of the wrapped key whose file holds `text`: the first 16 hex digits of its SHA-256.
std::string wrapped_key_id(std::string_view text);

/// Wraps `key` with `passphrase`. Error(usage) if the passphrase is empty, the parameters are not
/// acceptable() or a detail holds a control character; Error(crypto) if OpenSSL fails.
WrappedKey wrap_master_key(const MasterKey& key, std::string_view passphrase, const ScryptParams& params,
                           const WrapDetails& details);

/// The master key inside `text`. Error(wrong_key) if the passphrase does not open it (or the
/// salt, parameters, nonce or sealed key were changed: authentication cannot tell these apart);
/// Error(corrupt) if `text` is not a well-formed wrapped key of a known version, or its scrypt
/// parameters are refused (checked before any derivation).
MasterKey unwrap_master_key(std::string_view text, std::string_view passphrase);

/// The descriptive fields of `text`, with `id` computed from it (object and problem empty; the
/// parameters as stored, refused or not). Error(corrupt) if damaged.
WrappedKeyInfo describe_wrapped_key(std::string_view text);

// ---- wrapped keys in a backend (the destination, or the home's pending keys)

/// Every keys/<16 hex>.json of `backend` (other names are not ours and are ignored), sorted by
/// creation time then id, each with its id computed from its content and its problem if any.
/// Damaged, refused and misnamed files are listed rather than failing the whole list; a read
/// failure of the backend (io, denied...) is thrown.
std::vector<WrappedKeyInfo> list_wrapped_keys(const Backend& backend);

/// Stores `key` as keys/<id>.json (atomic, Overwrite::no). Storing the same key again is a no-op
/// (the id is a hash of the content).
void add_wrapped_key(Backend& backend, const WrappedKey& key);

/// The text of every wrapped key of `backend` whose content matches its name, by id (to copy
/// them elsewhere); damaged or misnamed files are left out.
std::map<std::string, std::string> wrapped_key_texts(const Backend& backend);

enum class LastKey { refuse, allow };

/// Deletes every file of keys/ whose content id is `id` (a renamed copy included: a key is
/// removed only if no file of it is left). Error(not_found) if there is none; Error(usage) if
/// the key could be tried by an unlock and no other such key would remain in `backend`, unless
/// `last` is LastKey::allow.
void remove_wrapped_key(Backend& backend, const std::string& id, LastKey last);

/// Copies every wrapped key of `from` that `to` lacks into `to`, then deletes it from `from`
/// (pending keys in the home move to the destination). Returns the ids moved. A failure leaves
/// every key in at least one of the two places.
std::vector<std::string> move_wrapped_keys(Backend& from, Backend& to);

// ---- unlocking with a passphrase

/// A wrapped key an unlock will try.
struct UnlockCandidate {
  std::string id;
  std::string object;
  std::string text;
  ScryptParams params;
};

/// What an unlock of one backend will try, decided before any passphrase is used.
struct UnlockPlan {
  std::string location;                 // "<backend location>/keys", for messages
  std::vector<UnlockCandidate> keys;    // to try, cheapest (N * r * p, then memory) first, then by id
  /// One line per wrapped key file left out, naming the file and why (damaged, parameters
  /// refused, misnamed, beyond kMaxWrappedKeysPerUnlock, beyond kUnlockScryptBudget). The
  /// caller shows them as warnings, whether the unlock then succeeds or not.
  std::vector<std::string> warnings;
  std::size_t files = 0;                // keys/<16 hex>.json files present, tried or not
};

/// Lists keys/ of `backend`; reads the first kMaxWrappedKeysPerUnlock key files in name order
/// (kMaxWrappedKeySize bytes at most each); keeps those well-formed, named after their content
/// and with acceptable scrypt parameters; orders them cheapest first and keeps as many as fit in
/// kUnlockScryptBudget. Throws only what the backend throws when it cannot be read (io,
/// denied...), never because of what a file holds.
UnlockPlan plan_unlock(const Backend& backend);

/// Tries `passphrase` on plan.keys in order and returns the master key of the first one it
/// opens. Error(not_found) if there are no wrapped key files (with a hint to use the key file);
/// Error(wrong_key) if none opens (saying how many were tried and, if any, how many were left
/// out); Error(corrupt) if there are wrapped key files but none could be tried.
MasterKey unlock_with_passphrase(const UnlockPlan& plan, std::string_view passphrase);

}  // namespace mybackup
