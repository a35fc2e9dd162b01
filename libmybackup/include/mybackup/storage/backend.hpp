#pragma once
// Where the bytes of a repository live: a flat store of immutable objects under '/'-separated
// names ("data/ab/ab12….enc", "snapshots/0000000001-….enc"). The repository decides the names
// (repository/object_names.hpp); a backend only stores them. A backend has no notion of files,
// directories, modes or renames: a local folder, an SFTP server and an S3 bucket all fit.
//
// The contract every implementation keeps (tests/unit/storage/backend_conformance.hpp checks it):
// - put() is atomic (a reader sees the whole object or nothing, even after a crash) and durable
//   (once put() returns, the object survives a power loss). This is what lets the repository order
//   its writes (packs, then the manifest, then the local catalog) safely.
// - put(…, Overwrite::no) is create-if-absent: the check and the store are one step, so of two
//   writers racing for one name exactly one succeeds and the other gets Error(exists).
// - Names are made of [A-Za-z0-9._-] segments separated by '/'; no segment is empty, "." or "..".
//   Error(usage) for any other name.
// - Thread safety: every method may be called from several threads at once on one instance
//   (the backup stores packs from a pipeline while it reads others).
//
// Errors (mybackup::Error kinds), so that callers can branch on what happened:
//   not_found  the object does not exist
//   exists     put(…, Overwrite::no) found the name taken (the stored object is untouched)
//   corrupt    the object is not what it should be (shorter than a range asked for, larger than
//              the caller's size bound)
//   denied     the storage refuses access (permissions, read-only, credentials)
//   transient  a failure worth trying again (timeouts, resets, throttling): see retry_backend.hpp
//   no_space   the storage is full
//   io         any other failure
// A failed put() leaves no object under the name (it may leave nothing visible at all).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

enum class Overwrite { no, yes };

/// One stored object, as list() reports it.
struct ObjectInfo {
  std::string name;        // full name ("data/ab/ab12….enc")
  std::uint64_t size = 0;  // in bytes

  bool operator==(const ObjectInfo&) const = default;
};

class Backend {
 public:
  virtual ~Backend() = default;

  /// Where this is, for messages: a path or a URL, never with credentials in it.
  virtual std::string location() const = 0;

  /// Stores `data` under `name`, atomically and durably. Overwrite::no is create-if-absent
  /// (Error(exists) if the name is taken); Overwrite::yes replaces an existing object atomically.
  virtual void put(const std::string& name, ByteView data, Overwrite overwrite) = 0;

  /// put() with the bytes 0 to `size` of the open file `fd` (read with pread; the caller keeps
  /// it): an object too large to hold in memory, such as the manifest of a backup of millions of
  /// files. This default reads the file whole and calls put(); the local backend copies it in
  /// pieces. Error(io) if the file is shorter than `size`.
  virtual void put_file(const std::string& name, int fd, std::uint64_t size, Overwrite overwrite);

  /// The whole object. Error(not_found) if missing; Error(corrupt) if it is larger than
  /// `max_size` (checked before reading, so a huge or endless object costs no memory).
  virtual Bytes get(const std::string& name, std::uint64_t max_size) const = 0;

  /// `length` bytes from `offset`. Error(not_found) if missing, Error(corrupt) if the object is
  /// shorter than offset + length.
  virtual Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const = 0;

  /// Size in bytes, or nullopt if the object does not exist.
  virtual std::optional<std::uint64_t> size(const std::string& name) const = 0;

  /// Every object whose name starts with `prefix` + "/" ("data", "snapshots"), at any depth,
  /// with its size, sorted by name. An empty prefix lists everything. Nothing stored there
  /// yields an empty list, not an error.
  virtual std::vector<ObjectInfo> list(const std::string& prefix) const = 0;

  /// True if nothing at all is stored (the location itself may not exist yet).
  virtual bool empty() const = 0;

  /// Deletes `name`; deleting a missing object is not an error.
  virtual void remove(const std::string& name) = 0;
};

/// Error(usage) unless `name` is a valid object name (see above).
void check_object_name(const std::string& name);

/// A directory on a local (or mounted) filesystem. Objects are files under `root` (written to a
/// temporary file, fsync'ed, renamed or linked into place, the directory fsync'ed). The root is
/// created on the first put() if missing. New files get `file_mode` (0600 for key material in the
/// home), new directories the same with x wherever it has r (0755, 0700).
std::unique_ptr<Backend> make_local_backend(const std::string& root, unsigned file_mode = 0644);

/// The bytes 0 to `size` of the open file `fd` (pread), for Backend::put_file. Error(io) if
/// shorter; `what` names the object in the message.
Bytes read_file_range(int fd, std::uint64_t size, const std::string& what);

}  // namespace mybackup
