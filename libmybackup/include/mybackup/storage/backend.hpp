#pragma once
// Where the bytes of a repository live. A Backend stores immutable objects under '/'-separated
// keys ("data/ab/ab12….enc", "snapshots/0000000001-….enc"); the repository decides the key names
// (see repo_layout.hpp), the backend only stores them.
//
// Every backend guarantees: put() is atomic (a reader sees the whole object or nothing, even after
// a crash) and durable (once put() returns, the object survives a power loss). This is what lets
// the repository order its writes (packs, then the manifest, then the local catalog) safely.
//
// Errors: Error(not_found) for a missing key; Error(exists) when put(…, Overwrite::no) finds the
// key taken; Error(no_space) when the device is full; Error(io) for anything else the storage
// refuses. A failed put() leaves no trace under the key.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

enum class Overwrite { no, yes };

class Backend {
 public:
  virtual ~Backend() = default;

  /// Human-readable location for messages ("/mnt/backups").
  virtual std::string location() const = 0;

  /// Stores `data` under `key`, atomically and durably. With Overwrite::no an existing key is an
  /// Error(exists) and the existing object is untouched (the check and the store are one atomic
  /// step, so two writers racing for one key cannot both succeed).
  virtual void put(const std::string& key, ByteView data, Overwrite overwrite) = 0;

  /// The whole object. Error(not_found) if missing.
  virtual Bytes get(const std::string& key) const = 0;

  /// `length` bytes from `offset`. Error(not_found) if missing, Error(corrupt) if the object is
  /// shorter than offset + length.
  virtual Bytes get_range(const std::string& key, std::uint64_t offset, std::uint64_t length) const = 0;

  /// Size in bytes, or nullopt if the key does not exist.
  virtual std::optional<std::uint64_t> size(const std::string& key) const = 0;

  /// Keys of every object below `prefix` ("data", "snapshots"), at any depth, sorted.
  /// An absent prefix yields an empty list.
  virtual std::vector<std::string> list(const std::string& prefix) const = 0;

  /// True if nothing at all is stored there (the location may not exist yet).
  virtual bool empty() const = 0;

  /// Deletes `key`; removing a missing key is not an error.
  virtual void remove(const std::string& key) = 0;
};

/// A directory on a local (or mounted) filesystem. Objects are files under `root`; writes go to a
/// temporary file in the target directory, are fsync'ed, renamed into place, and the directory is
/// fsync'ed. The root is created on the first put() if missing. New files get `file_mode` (0600 for
/// key material in the home), new directories the same with x wherever it has r (0755, 0700).
std::unique_ptr<Backend> make_local_backend(const std::string& root, unsigned file_mode = 0644);

}  // namespace mybackup
