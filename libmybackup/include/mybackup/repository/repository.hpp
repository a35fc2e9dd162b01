#pragma once
// A repository: the destination's objects, read and written with the repository's keys. It is the
// only way engine code reaches the bytes of a destination: names come from object_names.hpp, and
// every read is bounded and checked (packs against the SHA-256 they are named by, blobs and
// manifests by authentication).
//
//   mybackup-repo.json          plaintext marker: format, version, id, chunker parameters, pack
//                               target size (options.hpp), key check
//   data/<2 hex>/<64 hex>.enc   packs (pack.hpp), named by the SHA-256 of their bytes
//   snapshots/<seq>-<id>.enc    one manifest per run (manifest.hpp)
//   locks/<random>.json         writer locks (lock.hpp)
//   keys/<id>.json              passphrase-wrapped keys (key_wrap.hpp)
//
// Thread safety: the const members and put_pack() may be called from several threads at once;
// everything else from one thread at a time.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/crypto/keys.hpp"
#include "mybackup/format/chunker.hpp"
#include "mybackup/format/manifest.hpp"
#include "mybackup/format/pack.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/options.hpp"
#include "mybackup/storage/backend.hpp"

namespace mybackup {

constexpr int kRepositoryFormatVersion = 1;

/// What the marker records. `chunker` and `pack_target_size` are the RepositoryOptions the
/// repository was created with; every writer uses them.
struct RepositoryInfo {
  std::string id;  // 32 hex digits, random
  int version = kRepositoryFormatVersion;
  ChunkerParams chunker;
  std::uint32_t pack_target_size = kDefaultPackTargetSize;
  std::int64_t created_ns = 0;

  RepositoryOptions options() const { return {chunker, pack_target_size}; }
};

enum class CreateIfMissing { no, yes };

class Repository {
 public:
  /// Opens the repository in `backend`.
  /// - No marker and CreateIfMissing::yes: creates one with `options` if the location is empty
  ///   (or absent). An existing repository keeps the options it was created with: `options` is
  ///   then ignored (info() has the repository's own).
  /// - No marker otherwise: Error(not_found) if the location is empty, Error(mismatch) if it holds
  ///   other files ("not a mybackup repository").
  /// - A marker whose key check fails: Error(wrong_key) ("created with a different key").
  /// - A marker of an unknown format or version, or whose options are out of bounds:
  ///   Error(corrupt). A marker without pack_target_size means the default.
  /// - With CreateIfMissing::yes, options out of bounds (options.hpp): Error(usage), whether or not
  ///   a repository exists, before anything is written.
  static std::unique_ptr<Repository> open(std::unique_ptr<Backend> backend, const MasterKey& key,
                                          CreateIfMissing create, const RepositoryOptions& options = {});

  /// Opens `backend` as a copy of `primary` (the secondary destination): an empty location gets
  /// primary's marker first (so that a lock file never makes a new copy look like "a folder with
  /// other files in it"); a location holding another marker is Error(mismatch), one holding
  /// other files too.
  static std::unique_ptr<Repository> open_copy(std::unique_ptr<Backend> backend, const Repository& primary);

  const RepositoryInfo& info() const { return info_; }
  const KeySet& keys() const { return keys_; }
  std::string location() const { return backend_->location(); }

  /// Takes this repository's writer lock (lock.hpp): Error(locked) if another writer holds it.
  std::unique_ptr<RepositoryLock> lock(const std::string& purpose, const LockOptions& options = {});
  /// Where the passphrase-wrapped keys live (keys/), for key_wrap.hpp's functions only.
  Backend& key_store() { return *backend_; }
  const Backend& key_store() const { return *backend_; }

  // ---- packs and chunks
  struct StoredPack {
    std::string name;  // 64 hex digits
    std::uint64_t size = 0;
  };
  /// Every pack stored on the destination with its size, sorted by name. Objects that are not
  /// well-formed pack names are not listed.
  std::vector<StoredPack> list_packs() const;
  /// Names of every pack stored on the destination, sorted.
  std::vector<std::string> pack_names() const;
  /// The size of a stored pack, or nullopt if it is not there.
  std::optional<std::uint64_t> pack_size(const std::string& pack_name) const;

  enum class CheckHash { yes, no };
  /// A whole pack, at most `max_size` bytes (the size the index records; Error(corrupt) if it is
  /// larger). With CheckHash::yes its SHA-256 must be its name (Error(corrupt) otherwise);
  /// CheckHash::no is for verify, which reports the mismatch itself. Error(not_found) if missing.
  Bytes read_pack(const std::string& pack_name, std::uint64_t max_size, CheckHash check = CheckHash::yes) const;

  /// Stores a finished pack (atomic, durable). A pack already present is left as it is.
  void put_pack(const FinishedPack& pack);
  /// Stores pack bytes read from another copy of this repository. Error(corrupt) if they do not
  /// hash to `pack_name` (nothing is stored then).
  void put_pack(const std::string& pack_name, ByteView bytes);
  /// Deletes a pack; a missing one is not an error.
  void delete_pack(const std::string& pack_name);
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
  /// `length` raw bytes at `offset` of a pack of this copy (no fallback): several neighbouring
  /// blobs in one read, each to be checked with open_chunk. Error(not_found) if the pack is
  /// missing, Error(corrupt) if it is shorter.
  Bytes read_pack_region(const std::string& pack_name, std::uint64_t offset, std::uint64_t length) const;
  /// The same checks on a blob already in memory (`blob`: the `where.length` bytes at
  /// `where.offset` of the pack), for callers that hold the whole pack. Same errors.
  Bytes open_chunk(const std::string& pack_name, const PackEntry& where, ByteView blob) const;
  /// The chunk id of `data` (HMAC-SHA256 with id_key).
  ChunkId chunk_id(ByteView data) const;

  // ---- manifests
  /// Encodes, compresses, encrypts and stores a manifest under manifest_key(seq, run_id).
  /// Returns the key. Error(exists) if that key is taken.
  std::string put_manifest(const Manifest& manifest);
  /// Keys of all manifests, in sequence order.
  std::vector<std::string> manifest_keys() const;
  /// Reads, authenticates and decodes a manifest. Error(not_found) if it is missing,
  /// Error(corrupt) if it is damaged, fails authentication or holds another sequence number
  /// than its name. With a `spool_directory`, a manifest of any size is read in constant
  /// memory: the object is fetched in ranges and decrypted into an unnamed file there, and
  /// only once its tag checks out decompressed and decoded, its packs and versions spooled to
  /// unnamed files there too (Manifest::spooled). Without one, it is read whole into memory.
  Manifest read_manifest(const std::string& key, const std::string& spool_directory = "") const;
  /// The stored bytes of a manifest, authenticated first (Error(corrupt) if they fail), to copy
  /// to another copy of this repository with put_manifest_object.
  Bytes read_manifest_object(const std::string& key) const;
  /// Stores a manifest object read with read_manifest_object. Error(exists) if the key is taken.
  void put_manifest_object(const std::string& key, ByteView object);
  /// The number for the next manifest: one more than the highest manifest on the destination that
  /// authenticates, and at least `known + 1` (`known`: the highest this caller has applied).
  /// Names that fail authentication are passed over (a planted `9999999999-…` name cannot push the
  /// sequence to its end), and so are numbers such a name holds right above the highest (no two
  /// files share a number). Reads only the manifests numbered above `known`.
  std::uint64_t next_manifest_seq(std::uint64_t known) const;

 private:
  Repository(std::unique_ptr<Backend> backend, KeySet keys, RepositoryInfo info);
  Bytes read_chunk_here(const std::string& pack_name, const PackEntry& where) const;
  Bytes open_manifest_object(const std::string& key, ByteView object) const;
  Manifest read_streamed_manifest(const std::string& key, const std::string& spool_directory) const;

  std::unique_ptr<Backend> backend_;
  KeySet keys_;
  RepositoryInfo info_;
  std::unique_ptr<Repository> fallback_;
  mutable std::mutex fallback_mutex_;
  mutable std::map<std::string, std::string> fallback_reads_;  // pack → the primary's error
};

}  // namespace mybackup
