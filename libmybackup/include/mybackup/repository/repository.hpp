#pragma once
// A repository: the destination's objects, read and written with the repository's keys.
//
//   mybackup-repo.json          plaintext marker: format, version, id, chunker parameters, key check
//   data/<2 hex>/<64 hex>.enc   packs (pack.hpp), named by the SHA-256 of their bytes
//   snapshots/<seq>-<id>.enc    one manifest per run (manifest.hpp)
//   locks/<random>.json         writer locks (lock.hpp)
// All object names are made in this module and nowhere else.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/format/chunker.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/format/manifest.hpp"
#include "mybackup/format/pack.hpp"

namespace mybackup {

constexpr int kRepositoryFormatVersion = 1;

struct RepositoryInfo {
  std::string id;  // 32 hex digits, random
  int version = kRepositoryFormatVersion;
  ChunkerParams chunker;
  std::int64_t created_ns = 0;
};

enum class CreateIfMissing { no, yes };

class Repository {
 public:
  /// Opens the repository in `backend`.
  /// - No marker and CreateIfMissing::yes: creates one if the location is empty (or absent).
  /// - No marker otherwise: Error(not_found) if the location is empty, Error(mismatch) if it holds
  ///   other files ("not a mybackup repository").
  /// - A marker whose key check fails: Error(wrong_key) ("created with a different key").
  /// - A marker of an unknown format or version: Error(corrupt).
  static std::unique_ptr<Repository> open(std::unique_ptr<Backend> backend, const MasterKey& key,
                                          CreateIfMissing create);

  const RepositoryInfo& info() const { return info_; }
  const KeySet& keys() const { return keys_; }
  Backend& backend() { return *backend_; }
  const Backend& backend() const { return *backend_; }
  std::string location() const { return backend_->location(); }

  // ---- names
  /// The plaintext marker ("mybackup-repo.json"): written once, when the repository is created.
  static std::string marker_key();
  static std::string pack_key(const std::string& pack_name);
  static std::string manifest_key(std::uint64_t seq, const std::string& run_id);
  /// The pack name in a pack key ("data/ab/ab12….enc" → "ab12…"), or "" if the key is not one.
  static std::string pack_name(const std::string& key);
  /// The sequence number in a manifest key, or 0 if the key is not a manifest name.
  static std::uint64_t manifest_seq(const std::string& key);

  // ---- packs and chunks
  /// Stores a finished pack (atomic, durable). A pack already present is left as it is.
  void put_pack(const FinishedPack& pack);
  /// Reads one blob from a pack, authenticates it, decompresses it and checks that its
  /// content hashes to its id. Error(not_found) if the pack is missing, Error(crypto) or
  /// Error(corrupt) if the blob is damaged. With a fallback (below), a chunk missing or damaged
  /// here is read from the fallback instead; the original error is thrown if that fails too.
  Bytes read_chunk(const std::string& pack_name, const PackEntry& where) const;

  /// Another copy of this repository (the secondary destination) that read_chunk falls back to.
  /// REQUIRES: the same repository id.
  void set_fallback(std::unique_ptr<Repository> fallback);
  /// Packs whose chunks had to be read from the fallback so far (each once, sorted), with why.
  struct FallbackRead {
    std::string pack;
    std::string reason;  // the primary's error
  };
  std::vector<FallbackRead> fallback_reads() const;
  /// The same checks on a blob already in memory (`blob`: the `where.length` bytes at
  /// `where.offset` of the pack), for callers that hold the whole pack. Same errors.
  Bytes open_chunk(const std::string& pack_name, const PackEntry& where, ByteView blob) const;
  /// The chunk id of `data` (HMAC-SHA256 with id_key).
  ChunkId chunk_id(ByteView data) const;

  /// Names of every pack stored on the destination, sorted.
  std::vector<std::string> pack_names() const;

  // ---- manifests
  /// Encodes, compresses, encrypts and stores a manifest under manifest_key(seq, run_id).
  /// Returns the key. Error(exists) if that key is taken.
  std::string put_manifest(const Manifest& manifest);
  /// Keys of all manifests, in sequence order.
  std::vector<std::string> manifest_keys() const;
  Manifest read_manifest(const std::string& key) const;
  /// One more than the highest sequence number on the destination.
  std::uint64_t next_manifest_seq() const;

 private:
  Repository(std::unique_ptr<Backend> backend, KeySet keys, RepositoryInfo info);
  Bytes read_chunk_here(const std::string& pack_name, const PackEntry& where) const;

  std::unique_ptr<Backend> backend_;
  KeySet keys_;
  RepositoryInfo info_;
  std::unique_ptr<Repository> fallback_;
  mutable std::mutex fallback_mutex_;
  mutable std::map<std::string, std::string> fallback_reads_;  // pack → the primary's error
};

}  // namespace mybackup
