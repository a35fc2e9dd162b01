#pragma once
// The repository's key material.
//
// One random 256-bit master key per repository, made by `mybackup init`, kept in the home's `key`
// file (mode 0600). Everything else is derived from it with HKDF-SHA256 (salt "mybackup-v1"):
//   enc_key    info "mybackup enc"    AES-256-GCM key of every blob, pack header and manifest
//   id_key     info "mybackup id"     HMAC-SHA256 key of chunk ids, so ids do not reveal content
//   gear_seed  info "mybackup gear"   seed of the chunker's gear table (chunk boundaries)
//   check_key  info "mybackup check"  proves in mybackup-repo.json that a key is the right one
// Key material is wiped from memory when these objects are destroyed and never appears in a
// message or a log.

#include <array>
#include <string>

#include "mybackup/crypto/crypto.hpp"

namespace mybackup {

struct MasterKey {
  std::array<std::uint8_t, 32> bytes{};

  MasterKey() = default;
  MasterKey(const MasterKey&) = default;
  MasterKey& operator=(const MasterKey&) = default;
  ~MasterKey();

  /// A fresh random key.
  static MasterKey generate();
};

struct KeySet {
  AeadKey enc_key{};
  Digest id_key{};
  Digest gear_seed{};
  Digest check_key{};

  KeySet() = default;
  KeySet(const KeySet&) = default;
  KeySet& operator=(const KeySet&) = default;
  ~KeySet();

  static KeySet derive(const MasterKey& master);
};

/// Key file format (text, mode 0600):
///   # comment lines
///   mybackup-key-v1
///   <64 hex digits: the master key>
///   <8 hex digits: the first 4 bytes of SHA-256(master key), to catch a damaged copy>
/// Fails with Error(exists) if `path` exists.
void save_key_file(const std::string& path, const MasterKey& key);

/// Error(crypto) naming the file if it is missing, unreadable or damaged.
MasterKey load_key_file(const std::string& path);

}  // namespace mybackup
