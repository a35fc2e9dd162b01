#pragma once
// What someone who can write to a destination plants in its keys/ folder, for the attack tests
// of wrapped keys (unit and end-to-end). Header-only.

#include <nlohmann/json.hpp>

#include <string>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/storage/backend.hpp"

namespace mybackup::testing {

/// A well-formed wrapped key with scrypt parameters `params` that no passphrase opens (random
/// salt, nonce and sealed bytes), stored in `backend` as keys/<its id>.json, with an id that sorts
/// before `before` (so a reader going in name order meets it first; "g" sorts after every id).
/// Returns its id. The parameters are written as given, accepted or not.
inline std::string plant_wrapped_key(Backend& backend, const ScryptParams& params, const std::string& before = "g") {
  for (;;) {
    Bytes salt(16);
    Bytes nonce(12);
    Bytes sealed(48);
    random_bytes(salt);
    random_bytes(nonce);
    random_bytes(sealed);
    const nlohmann::ordered_json planted = {
        {"format", "mybackup-wrapped-key"}, {"version", 1}, {"kdf", "scrypt"}, {"N", params.n}, {"r", params.r},
        {"p", params.p}, {"salt", to_hex(salt)}, {"nonce", to_hex(nonce)}, {"sealed", to_hex(sealed)},
        {"created", "2020-01-01T00:00:00Z"}, {"host", "nas"}, {"label", "planted"},
    };
    const std::string text = planted.dump(2) + "\n";
    const std::string id = wrapped_key_id(text);
    if (id < before) {
      backend.put(wrapped_key_object(id), as_bytes(text), Overwrite::no);
      return id;
    }
  }
}

}  // namespace mybackup::testing
