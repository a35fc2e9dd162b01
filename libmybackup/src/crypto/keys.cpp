#include "mybackup/crypto/keys.hpp"

#include <sstream>

#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {
constexpr std::string_view kKeyFileMagic = "mybackup-key-v1";
constexpr std::string_view kHkdfSalt = "mybackup-v1";

template <std::size_t N>
void derive_into(const MasterKey& master, std::string_view info, std::array<std::uint8_t, N>& out) {
  Bytes derived = hkdf_sha256(master.bytes, as_bytes(kHkdfSalt), as_bytes(info), N);
  std::copy(derived.begin(), derived.end(), out.begin());
  secure_wipe(derived);
}

std::string checksum_of(const MasterKey& key) {
  const Digest digest = Sha256::hash(key.bytes);
  return to_hex(ByteView(digest.data(), 4));
}
}  // namespace

MasterKey::~MasterKey() { secure_wipe(bytes); }

MasterKey MasterKey::generate() {
  MasterKey key;
  random_bytes(key.bytes);
  return key;
}

KeySet::~KeySet() {
  secure_wipe(enc_key);
  secure_wipe(id_key);
  secure_wipe(gear_seed);
  secure_wipe(check_key);
}

KeySet KeySet::derive(const MasterKey& master) {
  KeySet keys;
  derive_into(master, "mybackup enc", keys.enc_key);
  derive_into(master, "mybackup id", keys.id_key);
  derive_into(master, "mybackup gear", keys.gear_seed);
  derive_into(master, "mybackup check", keys.check_key);
  return keys;
}

void save_key_file(const std::string& path, const MasterKey& key) {
  std::string text =
      "# mybackup master key. Anyone holding it can read your backups; without it nobody can.\n"
      "# Keep a copy somewhere safe, away from this computer.\n";
  text += kKeyFileMagic;
  text += "\n" + to_hex(key.bytes) + "\n" + checksum_of(key) + "\n";
  create_file_atomic(path, as_bytes(text), 0600);
  secure_wipe(std::span(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
}

MasterKey load_key_file(const std::string& path) {
  Bytes raw;
  try {
    raw = read_file(path);
  } catch (const Error& error) {
    if (error.kind() == ErrorKind::not_found) {
      throw Error(ErrorKind::crypto, "key file " + path +
                                         " is missing: restore it from your safe copy (without it the backups cannot be read)");
    }
    throw Error(ErrorKind::crypto, "key file " + path + " cannot be read: " + error.what());
  }
  std::istringstream lines(std::string(as_text(raw)));
  secure_wipe(raw);
  std::vector<std::string> fields;
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
      line.pop_back();
    }
    if (!line.empty() && line.front() != '#') {
      fields.push_back(line);
    }
  }
  const std::string damaged = "key file " + path + " is damaged: restore it from your safe copy";
  if (fields.size() != 3 || fields[0] != kKeyFileMagic || fields[1].size() != 64) {
    throw Error(ErrorKind::crypto, damaged);
  }
  MasterKey key;
  try {
    Bytes bytes = from_hex(fields[1]);
    std::copy(bytes.begin(), bytes.end(), key.bytes.begin());
    secure_wipe(bytes);
  } catch (const Error&) {
    throw Error(ErrorKind::crypto, damaged);
  }
  secure_wipe(std::span(reinterpret_cast<std::uint8_t*>(fields[1].data()), fields[1].size()));
  if (fields[2] != checksum_of(key)) {
    throw Error(ErrorKind::crypto, damaged + " (checksum mismatch)");
  }
  return key;
}

}  // namespace mybackup
