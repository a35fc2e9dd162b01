#include "mybackup/crypto/key_wrap.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <tuple>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {
constexpr const char* kFormatName = "mybackup-wrapped-key";
constexpr int kFormatVersion = 1;
constexpr const char* kKdfName = "scrypt";
constexpr const char* kDirectory = object_names::kKeys;
constexpr std::size_t kSaltSize = 16;
constexpr std::size_t kIdDigits = 16;
constexpr std::uint64_t kMaxMemory = std::uint64_t{1} << 30;

/// A wrapped key as parsed from its file, before any decryption.
struct Parsed {
  WrappedKeyInfo info;
  Bytes salt;
  AeadNonce nonce{};
  Bytes sealed;
};

std::string id_of(std::string_view text) { return to_hex(Sha256::hash(as_bytes(text))).substr(0, kIdDigits); }

bool is_id(std::string_view id) { return object_names::is_lower_hex(std::string(id), kIdDigits); }

/// The id in "keys/<id>.json", or "" if `object` is not a wrapped key's name.
std::string id_in(const std::string& object) { return object_names::parse_wrapped_key(object).value_or(""); }

std::string associated_data(const ScryptParams& params, ByteView salt) {
  return std::string(kFormatName) + " v" + std::to_string(kFormatVersion) + " " + kKdfName + " N=" + std::to_string(params.n) +
         " r=" + std::to_string(params.r) + " p=" + std::to_string(params.p) + " salt=" + to_hex(salt);
}

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

/// scrypt(passphrase, salt) as an AES-256-GCM key; the caller wipes it.
AeadKey derive_kek(std::string_view passphrase, ByteView salt, const ScryptParams& params) {
  AeadKey kek{};
  // OpenSSL treats a null passphrase pointer as "no passphrase"; an empty view may have one.
  const std::string_view safe = passphrase.data() == nullptr ? std::string_view("") : passphrase;
  // A little above what scrypt needs: OpenSSL's own default limit (32 MiB) would refuse N = 2^15, r = 8.
  scrypt(safe, salt, params.n, params.r, params.p, params.memory() + (std::uint64_t{1} << 20), kek);
  return kek;
}

Parsed parse(std::string_view text) {
  Parsed parsed;
  try {
    const nlohmann::json root = nlohmann::json::parse(text);
    if (!root.is_object() || root.value("format", "") != kFormatName) {
      throw Error(ErrorKind::corrupt, "not a mybackup wrapped key (its format field is not \"" + std::string(kFormatName) + "\")");
    }
    const int version = root.at("version").get<int>();
    if (version != kFormatVersion) {
      throw Error(ErrorKind::corrupt, "wrapped key version " + std::to_string(version) +
                                          " is not supported by this mybackup (it reads version " +
                                          std::to_string(kFormatVersion) + ")");
    }
    const std::string kdf = root.at("kdf").get<std::string>();
    if (kdf != kKdfName) {
      throw Error(ErrorKind::corrupt, "wrapped key uses an unknown key derivation \"" + kdf + "\"");
    }
    parsed.info.params.n = root.at("N").get<std::uint64_t>();
    parsed.info.params.r = root.at("r").get<std::uint64_t>();
    parsed.info.params.p = root.at("p").get<std::uint64_t>();
    parsed.salt = from_hex(root.at("salt").get<std::string>());
    const Bytes nonce = from_hex(root.at("nonce").get<std::string>());
    parsed.sealed = from_hex(root.at("sealed").get<std::string>());
    parsed.info.created = root.value("created", "");
    parsed.info.host = root.value("host", "");
    parsed.info.label = root.value("label", "");
    if (!parsed.info.params.acceptable()) {
      throw Error(ErrorKind::corrupt, "wrapped key has scrypt parameters out of range (N=" + std::to_string(parsed.info.params.n) +
                                          ", r=" + std::to_string(parsed.info.params.r) +
                                          ", p=" + std::to_string(parsed.info.params.p) + ")");
    }
    if (parsed.salt.size() < kSaltSize || nonce.size() != kAeadNonceSize ||
        parsed.sealed.size() != sizeof(MasterKey::bytes) + kAeadTagSize) {
      throw Error(ErrorKind::corrupt, "wrapped key has a salt, nonce or sealed key of the wrong length");
    }
    std::copy(nonce.begin(), nonce.end(), parsed.nonce.begin());
  } catch (const nlohmann::json::exception& error) {
    throw Error(ErrorKind::corrupt, "wrapped key is damaged: " + std::string(error.what()));
  } catch (const Error& error) {
    throw Error(ErrorKind::corrupt, error.what());  // from_hex's errors are corrupt already; keep one kind
  }
  parsed.info.id = id_of(text);
  return parsed;
}

/// "<location>/keys/<id>.json" for messages.
std::string where(const Backend& backend, const std::string& id) { return backend.location() + "/" + wrapped_key_object(id); }
}  // namespace

std::uint64_t ScryptParams::memory() const { return 128 * r * (n + p); }

bool ScryptParams::acceptable() const {
  const bool power_of_two = n >= 2 && n <= (std::uint64_t{1} << 20) && (n & (n - 1)) == 0;
  return power_of_two && r >= 1 && r <= 32 && p >= 1 && p <= 16 && 128 * r * n <= kMaxMemory;
}

std::string wrapped_key_object(const std::string& id) { return object_names::wrapped_key(id); }

WrappedKey wrap_master_key(const MasterKey& key, std::string_view passphrase, const ScryptParams& params,
                           const WrapDetails& details) {
  if (passphrase.empty()) {
    throw Error(ErrorKind::usage, "an empty passphrase protects nothing: choose a passphrase");
  }
  if (!params.acceptable()) {
    throw Error(ErrorKind::usage, "scrypt parameters out of range (N must be a power of two from 2 to 2^20, r 1 to 32, "
                                  "p 1 to 16, at most 1 GiB of memory)");
  }
  if (has_control_character(details.created) || has_control_character(details.host) ||
      has_control_character(details.label)) {
    throw Error(ErrorKind::usage, "a key label or host name cannot hold control characters or line breaks");
  }
  Bytes salt(kSaltSize);
  random_bytes(salt);
  AeadNonce nonce{};
  random_bytes(nonce);
  AeadKey kek = derive_kek(passphrase, salt, params);
  Bytes sealed;
  try {
    sealed = aes256gcm_seal(kek, nonce, key.bytes, as_bytes(associated_data(params, salt)));
  } catch (...) {
    secure_wipe(kek);
    throw;
  }
  secure_wipe(kek);

  const nlohmann::ordered_json file = {
      {"format", kFormatName},
      {"version", kFormatVersion},
      {"kdf", kKdfName},
      {"N", params.n},
      {"r", params.r},
      {"p", params.p},
      {"salt", to_hex(salt)},
      {"nonce", to_hex(nonce)},
      {"sealed", to_hex(sealed)},
      {"created", details.created},
      {"host", details.host},
      {"label", details.label},
  };
  WrappedKey wrapped;
  // A label or host name that is not UTF-8 is written with U+FFFD: JSON text must be UTF-8.
  wrapped.text = file.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  wrapped.id = id_of(wrapped.text);
  return wrapped;
}

MasterKey unwrap_master_key(std::string_view text, std::string_view passphrase) {
  const Parsed parsed = parse(text);
  AeadKey kek = derive_kek(passphrase, parsed.salt, parsed.info.params);
  Bytes plain;
  try {
    plain = aes256gcm_open(kek, parsed.nonce, parsed.sealed, as_bytes(associated_data(parsed.info.params, parsed.salt)));
  } catch (const Error&) {
    secure_wipe(kek);
    // The lengths were checked, so the only failure left is authentication.
    throw Error(ErrorKind::wrong_key, "the passphrase does not open wrapped key " + parsed.info.id +
                                          " (wrong passphrase, or the key file was changed)");
  }
  secure_wipe(kek);
  MasterKey key;
  std::copy(plain.begin(), plain.end(), key.bytes.begin());
  secure_wipe(plain);
  return key;
}

WrappedKeyInfo describe_wrapped_key(std::string_view text) { return parse(text).info; }

std::vector<WrappedKeyInfo> list_wrapped_keys(const Backend& backend) {
  std::vector<WrappedKeyInfo> keys;
  for (const ObjectInfo& listed : backend.list(kDirectory)) {
    const std::string& object = listed.name;
    const std::string id = id_in(object);
    if (id.empty()) {
      continue;  // not a wrapped key's name (a stray file): not ours to judge
    }
    const Bytes raw = backend.get(object, object_names::kMaxWrappedKeySize);
    WrappedKeyInfo info;
    try {
      info = describe_wrapped_key(as_text(raw));
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::corrupt) {
        throw;
      }
      info.damaged = true;
    }
    info.id = id;  // the name a user refers to, even if the content was changed
    keys.push_back(std::move(info));
  }
  std::sort(keys.begin(), keys.end(), [](const WrappedKeyInfo& a, const WrappedKeyInfo& b) {
    return std::tie(a.created, a.id) < std::tie(b.created, b.id);
  });
  return keys;
}

std::map<std::string, std::string> wrapped_key_texts(const Backend& backend) {
  std::map<std::string, std::string> texts;
  for (const ObjectInfo& listed : backend.list(kDirectory)) {
    const std::string id = id_in(listed.name);
    if (id.empty()) {
      continue;
    }
    std::string text(as_text(backend.get(listed.name, object_names::kMaxWrappedKeySize)));
    if (id_of(text) == id) {
      texts.emplace(id, std::move(text));
    }
  }
  return texts;
}

void add_wrapped_key(Backend& backend, const WrappedKey& key) {
  if (!is_id(key.id) || key.id != id_of(key.text)) {
    throw Error(ErrorKind::usage, "wrapped key id " + key.id + " does not match its content");
  }
  try {
    backend.put(wrapped_key_object(key.id), as_bytes(key.text), Overwrite::no);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::exists) {
      throw;
    }
    if (as_text(backend.get(wrapped_key_object(key.id), object_names::kMaxWrappedKeySize)) != key.text) {
      throw Error(ErrorKind::corrupt, where(backend, key.id) + " differs from the key it is named after: remove it with "
                                                               "`mybackup key remove " + key.id + "`");
    }
  }
}

void remove_wrapped_key(Backend& backend, const std::string& id, LastKey last) {
  const std::vector<WrappedKeyInfo> keys = list_wrapped_keys(backend);
  const bool known = is_id(id) && std::any_of(keys.begin(), keys.end(), [&](const WrappedKeyInfo& k) { return k.id == id; });
  if (!known) {
    throw Error(ErrorKind::not_found, "no wrapped key " + id + " in " + backend.location() + "/" + kDirectory +
                                          ": see `mybackup key list` for the ids");
  }
  if (keys.size() == 1 && last == LastKey::refuse) {
    throw Error(ErrorKind::usage, "wrapped key " + id + " is the last one in " + backend.location() +
                                      ": without it no passphrase opens the backups (only the key file); "
                                      "add another with `mybackup key add` first, or use --force");
  }
  backend.remove(wrapped_key_object(id));
}

std::vector<std::string> move_wrapped_keys(Backend& from, Backend& to) {
  std::vector<std::string> moved;
  for (const ObjectInfo& listed : from.list(kDirectory)) {
    const std::string& object = listed.name;
    const std::string id = id_in(object);
    if (id.empty()) {
      continue;
    }
    const Bytes raw = from.get(object, object_names::kMaxWrappedKeySize);
    if (to.size(object)) {
      if (to.get(object, object_names::kMaxWrappedKeySize) != raw) {
        continue;  // a different file under the same name there: keep ours pending, change nothing
      }
    } else {
      try {
        to.put(object, raw, Overwrite::no);
      } catch (const Error& error) {
        if (error.kind() != ErrorKind::exists || to.get(object, object_names::kMaxWrappedKeySize) != raw) {
          throw;
        }
      }
    }
    from.remove(object);  // only once the copy is durable in `to`
    moved.push_back(id);
  }
  return moved;
}

MasterKey unlock_with_passphrase(const Backend& backend, std::string_view passphrase) {
  const std::string location = backend.location() + "/" + kDirectory;
  const std::vector<ObjectInfo> objects = backend.list(kDirectory);
  std::size_t tried = 0;
  std::size_t damaged = 0;
  for (const ObjectInfo& listed : objects) {
    const std::string& object = listed.name;
    if (id_in(object).empty()) {
      continue;
    }
    const Bytes raw = backend.get(object, object_names::kMaxWrappedKeySize);
    try {
      return unwrap_master_key(as_text(raw), passphrase);
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::wrong_key) {
        ++tried;
      } else if (error.kind() == ErrorKind::corrupt) {
        ++damaged;
      } else {
        throw;
      }
    }
  }
  if (tried > 0) {
    throw Error(ErrorKind::wrong_key, "the passphrase opens none of the " + std::to_string(tried) + " wrapped key" +
                                          (tried == 1 ? "" : "s") + " in " + location +
                                          ": check it, or use the key file (--key-file)");
  }
  if (damaged > 0) {
    throw Error(ErrorKind::corrupt, "every wrapped key in " + location + " is damaged: use the key file (--key-file)");
  }
  throw Error(ErrorKind::not_found, "no passphrase-wrapped key in " + location +
                                        ": this repository can only be opened with its key file (--key-file)");
}


void to_json(nlohmann::ordered_json& json, const WrappedKeyInfo& info) {
  json = {
      {"id", info.id},
      {"created", info.created},
      {"host", info.host},
      {"label", info.label},
      {"damaged", info.damaged},
  };
}

}  // namespace mybackup
