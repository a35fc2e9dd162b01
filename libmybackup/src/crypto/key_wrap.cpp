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
constexpr std::uint64_t kMaxN = std::uint64_t{1} << 20;
constexpr std::uint64_t kMaxR = 32;
constexpr std::uint64_t kMaxP = 16;
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

/// A wrapped key as parsed from its file, before any decryption.
struct Parsed {
  WrappedKeyInfo info;
  Bytes salt;
  AeadNonce nonce{};
  Bytes sealed;
};

bool is_id(std::string_view id) { return object_names::is_lower_hex(std::string(id), kIdDigits); }

/// True if `object` has a wrapped key's name (keys/<16 hex>.json), whatever the file holds.
bool has_key_name(const std::string& object) { return object_names::parse_wrapped_key(object).has_value(); }

std::string associated_data(const ScryptParams& params, ByteView salt) {
  return std::string(kFormatName) + " v" + std::to_string(kFormatVersion) + " " + kKdfName + " N=" + std::to_string(params.n) +
         " r=" + std::to_string(params.r) + " p=" + std::to_string(params.p) + " salt=" + to_hex(salt);
}

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

/// scrypt(passphrase, salt) as an AES-256-GCM key; the caller wipes it. REQUIRES: params.acceptable().
AeadKey derive_kek(std::string_view passphrase, ByteView salt, const ScryptParams& params) {
  AeadKey kek{};
  // OpenSSL treats a null passphrase pointer as "no passphrase"; an empty view may have one.
  const std::string_view safe = passphrase.data() == nullptr ? std::string_view("") : passphrase;
  // A little above what scrypt needs: OpenSSL's own default limit (32 MiB) would refuse the default cost.
  scrypt(safe, salt, params.n, params.r, params.p, params.memory() + kMiB, kek);
  return kek;
}

/// A member that must be an unsigned JSON integer (a negative or fractional N is damage, not a
/// huge number).
std::uint64_t unsigned_member(const nlohmann::json& root, const char* name) {
  const nlohmann::json& value = root.at(name);
  if (!value.is_number_unsigned()) {
    throw Error(ErrorKind::corrupt, std::string("its \"") + name + "\" is not a positive whole number");
  }
  return value.get<std::uint64_t>();
}

/// The structure of a wrapped key. Error(corrupt) whose message quotes nothing from `text` (it
/// may come from anyone who can write to the destination, and ends up on a terminal).
Parsed parse(std::string_view text) {
  Parsed parsed;
  try {
    const nlohmann::json root = nlohmann::json::parse(text);
    if (!root.is_object() || !root.contains("format") || root.at("format") != kFormatName) {
      throw Error(ErrorKind::corrupt, "not a mybackup wrapped key (its format field is not \"" + std::string(kFormatName) + "\")");
    }
    const nlohmann::json& version = root.at("version");
    if (!version.is_number_integer() || version.get<std::int64_t>() != kFormatVersion) {
      throw Error(ErrorKind::corrupt, "a wrapped key of a version this mybackup does not read (it reads version " +
                                          std::to_string(kFormatVersion) + ")");
    }
    if (root.at("kdf") != kKdfName) {
      throw Error(ErrorKind::corrupt, "its key derivation is not scrypt (the only one this mybackup knows)");
    }
    parsed.info.params.n = unsigned_member(root, "N");
    parsed.info.params.r = unsigned_member(root, "r");
    parsed.info.params.p = unsigned_member(root, "p");
    parsed.salt = from_hex(root.at("salt").get<std::string>());
    const Bytes nonce = from_hex(root.at("nonce").get<std::string>());
    parsed.sealed = from_hex(root.at("sealed").get<std::string>());
    parsed.info.created = root.value("created", "");
    parsed.info.host = root.value("host", "");
    parsed.info.label = root.value("label", "");
    if (parsed.salt.size() < kSaltSize || nonce.size() != kAeadNonceSize ||
        parsed.sealed.size() != sizeof(MasterKey::bytes) + kAeadTagSize) {
      throw Error(ErrorKind::corrupt, "its salt, nonce or sealed key has the wrong length");
    }
    std::copy(nonce.begin(), nonce.end(), parsed.nonce.begin());
  } catch (const nlohmann::json::parse_error& error) {
    throw Error(ErrorKind::corrupt, "not valid JSON (at byte " + std::to_string(error.byte) + ")");
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::corrupt, "a field is missing or has the wrong type");
  }
  // from_hex's errors are corrupt already and quote nothing.
  parsed.info.id = wrapped_key_id(text);
  return parsed;
}

/// One key-named file of keys/, read (bounded) and judged; `text` is empty unless it is usable.
struct Examined {
  WrappedKeyInfo info;
  std::string text;
};

Examined examine(const Backend& backend, const std::string& object) {
  Examined examined;
  examined.info.object = object;
  const std::string file = backend.location() + "/" + object;
  Bytes raw;
  try {
    raw = backend.get(object, object_names::kMaxWrappedKeySize);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::corrupt) {
      throw;  // the backend cannot be read: not this file's fault
    }
    // Too large, or a link: unread, so it has no id (the backend's message names the file).
    examined.info.damaged = true;
    examined.info.problem = std::string(error.what()) + ": not used (delete it by hand if you did not put it there)";
    return examined;
  }
  const std::string_view text = as_text(raw);
  try {
    const Parsed parsed = parse(text);
    examined.info.id = parsed.info.id;
    examined.info.created = parsed.info.created;
    examined.info.host = parsed.info.host;
    examined.info.label = parsed.info.label;
    examined.info.params = parsed.info.params;
  } catch (const Error& error) {
    examined.info.damaged = true;
    examined.info.id = wrapped_key_id(text);
    examined.info.problem = file + " is damaged and not used: " + error.what() + " (remove it with `mybackup key remove " +
                            examined.info.id + "`)";
    return examined;
  }
  const std::string& id = examined.info.id;
  if (const std::string refusal = examined.info.params.refusal(); !refusal.empty()) {
    examined.info.problem = file + " is not used: " + refusal + " (remove it with `mybackup key remove " + id + "`)";
  } else if (object != wrapped_key_object(id)) {
    // A renamed or planted copy: trying it would let a name stand for a key it is not.
    examined.info.problem = file + " is not used: its name does not match its content, whose id is " + id +
                            " (if it is yours, rename it " + id + ".json; else remove it with `mybackup key remove " + id +
                            "`)";
  } else {
    examined.text = std::string(text);
  }
  return examined;
}

/// The key-named objects of keys/ (sorted by name, as list() gives them).
std::vector<std::string> key_objects(const Backend& backend) {
  std::vector<std::string> objects;
  for (const ObjectInfo& listed : backend.list(kDirectory)) {
    if (has_key_name(listed.name)) {
      objects.push_back(listed.name);
    }
  }
  return objects;
}

std::string plural(std::size_t count, const std::string& word) {
  return std::to_string(count) + " " + word + (count == 1 ? "" : "s");
}

/// "<location>/keys/<id>.json" for messages.
std::string where(const Backend& backend, const std::string& id) { return backend.location() + "/" + wrapped_key_object(id); }
}  // namespace

std::uint64_t ScryptParams::memory() const { return 128 * r * (n + p); }

std::string ScryptParams::refusal() const {
  const std::string stated = "scrypt N=" + std::to_string(n) + ", r=" + std::to_string(r) + ", p=" + std::to_string(p);
  if (n < 2 || n > kMaxN || (n & (n - 1)) != 0) {
    return stated + ": N must be a power of two from 2 to " + std::to_string(kMaxN);
  }
  if (r < 1 || r > kMaxR || p < 1 || p > kMaxP) {
    return stated + ": r must be from 1 to " + std::to_string(kMaxR) + " and p from 1 to " + std::to_string(kMaxP);
  }
  // Bounded above, so neither product overflows.
  if (128 * r * n > kMaxScryptMemory) {
    return stated + " needs " + std::to_string(128 * r * n / kMiB) + " MiB of memory, over this program's cap of " +
           std::to_string(kMaxScryptMemory / kMiB) + " MiB";
  }
  if (work() > kMaxScryptWork) {
    return stated + " costs " + std::to_string(work() / ScryptParams{}.work()) +
           " times the default work, over this program's cap of " + std::to_string(kMaxScryptWork / ScryptParams{}.work());
  }
  return "";
}

bool ScryptParams::acceptable() const { return refusal().empty(); }

std::string wrapped_key_object(const std::string& id) { return object_names::wrapped_key(id); }

std::string wrapped_key_id(std::string_view text) { return to_hex(Sha256::hash(as_bytes(text))).substr(0, kIdDigits); }

WrappedKey wrap_master_key(const MasterKey& key, std::string_view passphrase, const ScryptParams& params,
                           const WrapDetails& details) {
  if (passphrase.empty()) {
    throw Error(ErrorKind::usage, "an empty passphrase protects nothing: choose a passphrase");
  }
  if (const std::string refusal = params.refusal(); !refusal.empty()) {
    throw Error(ErrorKind::usage, refusal);
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
  wrapped.id = wrapped_key_id(wrapped.text);
  return wrapped;
}

MasterKey unwrap_master_key(std::string_view text, std::string_view passphrase) {
  const Parsed parsed = parse(text);
  if (const std::string refusal = parsed.info.params.refusal(); !refusal.empty()) {
    throw Error(ErrorKind::corrupt, "wrapped key " + parsed.info.id + " is not used: " + refusal);
  }
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
  for (const std::string& object : key_objects(backend)) {
    keys.push_back(examine(backend, object).info);
  }
  std::sort(keys.begin(), keys.end(), [](const WrappedKeyInfo& a, const WrappedKeyInfo& b) {
    return std::tie(a.created, a.id, a.object) < std::tie(b.created, b.id, b.object);
  });
  return keys;
}

std::map<std::string, std::string> wrapped_key_texts(const Backend& backend) {
  std::map<std::string, std::string> texts;
  for (const std::string& object : key_objects(backend)) {
    const std::string id = object_names::parse_wrapped_key(object).value_or("");
    std::string text(as_text(backend.get(object, object_names::kMaxWrappedKeySize)));
    if (wrapped_key_id(text) == id) {
      texts.emplace(id, std::move(text));
    }
  }
  return texts;
}

void add_wrapped_key(Backend& backend, const WrappedKey& key) {
  if (!is_id(key.id) || key.id != wrapped_key_id(key.text)) {
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
  std::vector<std::string> files;
  bool usable = false;
  bool others_usable = false;
  for (const WrappedKeyInfo& key : keys) {
    if (key.id == id) {
      files.push_back(key.object);
      usable = usable || key.problem.empty();
    } else {
      others_usable = others_usable || key.problem.empty();
    }
  }
  if (!is_id(id) || files.empty()) {
    throw Error(ErrorKind::not_found, "no wrapped key " + id + " in " + backend.location() + "/" + kDirectory +
                                          ": see `mybackup key list` for the ids");
  }
  if (usable && !others_usable && last == LastKey::refuse) {
    throw Error(ErrorKind::usage, "wrapped key " + id + " is the last one in " + backend.location() +
                                      ": without it no passphrase opens the backups (only the key file); "
                                      "add another with `mybackup key add` first, or use --force");
  }
  for (const std::string& object : files) {
    backend.remove(object);
  }
}

std::vector<std::string> move_wrapped_keys(Backend& from, Backend& to) {
  std::vector<std::string> moved;
  for (const std::string& object : key_objects(from)) {
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
    moved.push_back(object_names::parse_wrapped_key(object).value_or(""));
  }
  return moved;
}

UnlockPlan plan_unlock(const Backend& backend) {
  UnlockPlan plan;
  plan.location = backend.location() + "/" + kDirectory;
  const std::vector<std::string> objects = key_objects(backend);
  plan.files = objects.size();
  const std::size_t read = std::min(objects.size(), kMaxWrappedKeysPerUnlock);
  for (std::size_t i = 0; i < read; ++i) {
    Examined examined = examine(backend, objects[i]);
    if (!examined.info.problem.empty()) {
      plan.warnings.push_back(std::move(examined.info.problem));
      continue;
    }
    plan.keys.push_back(UnlockCandidate{examined.info.id, examined.info.object, std::move(examined.text), examined.info.params});
  }
  if (objects.size() > read) {
    // One line, whatever their number: a planted folder must not flood the terminal either.
    plan.warnings.push_back(plural(objects.size() - read, "more wrapped key file") + " in " + plan.location +
                            " were not read (at most " + std::to_string(kMaxWrappedKeysPerUnlock) +
                            " per unlock, in name order), from " + objects[read] + " on: remove the ones you did not add");
  }
  // Cheapest first: a planted expensive key is tried, if ever, after every cheaper one.
  std::sort(plan.keys.begin(), plan.keys.end(), [](const UnlockCandidate& a, const UnlockCandidate& b) {
    return std::make_tuple(a.params.work(), a.params.memory(), a.id) < std::make_tuple(b.params.work(), b.params.memory(), b.id);
  });
  std::uint64_t spent = 0;
  std::size_t within = 0;
  while (within < plan.keys.size() && spent + plan.keys[within].params.work() <= kUnlockScryptBudget) {
    spent += plan.keys[within].params.work();
    ++within;
  }
  for (std::size_t i = within; i < plan.keys.size(); ++i) {
    const UnlockCandidate& key = plan.keys[i];
    plan.warnings.push_back(backend.location() + "/" + key.object + " is not tried: with the cheaper keys before it, its scrypt "
                            "cost (N=" + std::to_string(key.params.n) + ", r=" + std::to_string(key.params.r) + ", p=" +
                            std::to_string(key.params.p) + ") is over one unlock's budget of " +
                            std::to_string(kUnlockScryptBudget / ScryptParams{}.work()) +
                            " default-cost tries: remove the keys you did not add");
  }
  plan.keys.resize(within);
  return plan;
}

MasterKey unlock_with_passphrase(const UnlockPlan& plan, std::string_view passphrase) {
  for (const UnlockCandidate& candidate : plan.keys) {
    try {
      return unwrap_master_key(candidate.text, passphrase);
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::wrong_key) {
        throw;  // the plan holds only well-formed, acceptable keys: nothing else is expected
      }
    }
  }
  const std::size_t left_out = plan.files - plan.keys.size();
  const std::string not_tried = left_out == 0 ? "" : " (" + std::to_string(left_out) + " more not tried: see the warnings)";
  if (!plan.keys.empty()) {
    throw Error(ErrorKind::wrong_key, "the passphrase opens none of the " + plural(plan.keys.size(), "wrapped key") +
                                          " tried in " + plan.location + not_tried +
                                          ": check it, or use the key file (--key-file)");
  }
  if (plan.files > 0) {
    throw Error(ErrorKind::corrupt, "none of the " + plural(plan.files, "wrapped key file") + " in " + plan.location +
                                        " can be tried (see the warnings): use the key file (--key-file)");
  }
  throw Error(ErrorKind::not_found, "no passphrase-wrapped key in " + plan.location +
                                        ": this repository can only be opened with its key file (--key-file)");
}

void to_json(nlohmann::ordered_json& json, const WrappedKeyInfo& info) {
  json = {
      {"id", info.id},
      {"file", info.object},
      {"created", info.created},
      {"host", info.host},
      {"label", info.label},
      {"damaged", info.damaged},
      {"problem", info.problem},
  };
}

}  // namespace mybackup
