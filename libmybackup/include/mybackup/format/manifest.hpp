#pragma once
// A manifest records what one run changed on the destination. Replaying every manifest in
// sequence order rebuilds the catalog on a fresh machine, so the destination alone (plus the key)
// is enough to restore everything.
//
// Stored as snapshots/<seq:10 digits>-<run id:16 hex>.enc: the encoding below, zstd-compressed,
// sealed as a blob whose id is SHA-256("manifest " + file name) (docs/format.md).
//
//   manifest := "MBKM" version:u8(=2) kind:u8 seq:varint run_id:string host:string
//               started_ns:svarint finished_ns:svarint
//               sources:count string*
//               packs:count pack*
//               versions:count version*
//               removed:count (path:string number:varint)*      (format version 2)
//               deleted_packs:count name:32*                     (format version 2)
//               config:string                                    (format version 2)
//   pack     := name:32 (raw SHA-256) size:varint blobs:count (id:32 offset:varint length:varint
//               raw_length:varint flags:u8)*
//   version  := path:string type:u8 number:varint mode:varint mtime_ns:svarint size:varint
//               inode:varint sha256:32 (files only) target:string (symlinks only)
//               chunks:count id:32*  (files only)
//
// A clean run's manifest lists the versions it removed from history, the packs it wrote (its live
// chunks copied out of packs it rewrote: a chunk listed here moves to its new place) and the packs
// it deleted. Replaying it applies them in that order: moves, removals, deletions. Version 1
// manifests (no removed or deleted_packs sections) are still read.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mybackup/format/pack.hpp"
#include "mybackup/source/metadata.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup {

enum class RunKind : std::uint8_t { backup = 1, clean = 2 };

struct ManifestPack {
  std::string name;  // hex SHA-256 of the pack
  std::uint64_t size = 0;
  std::vector<PackEntry> blobs;  // by offset

  bool operator==(const ManifestPack&) const = default;
};

struct ManifestVersion {
  std::string path;
  EntryType type = EntryType::file;  // EntryType::deleted marks a deletion
  std::uint32_t number = 0;          // per path, 1, 2, 3, … in the order versions were recorded
  std::uint32_t mode = 0;
  std::int64_t mtime_ns = 0;
  std::uint64_t size = 0;
  std::uint64_t inode = 0;
  Digest sha256{};                   // of the whole file
  std::string link_target;
  std::vector<ChunkId> chunks;       // in file order
  FileMetadata meta;                 // owner, links, device number, extended attributes

  bool operator==(const ManifestVersion&) const = default;
};

/// A version that a clean run removed from history.
struct ManifestRemoval {
  std::string path;
  std::uint32_t number = 0;
};

/// A manifest's packs and versions kept outside memory (ManifestSpool: a backup of millions of
/// files), read back one at a time. Implementations say whether they are thread-safe.
class ManifestRecords {
 public:
  virtual ~ManifestRecords() = default;
  virtual std::uint64_t pack_count() const = 0;
  virtual std::uint64_t version_count() const = 0;
  /// Where temporary files about this manifest may go (the storing of its object).
  virtual const std::string& directory() const = 0;
  /// Each pack (then each version), in the order added. Throws what `visit` throws, and
  /// Error(io) if the records cannot be read back.
  virtual void for_each_pack(const std::function<void(const ManifestPack&)>& visit) const = 0;
  virtual void for_each_version(const std::function<void(const ManifestVersion&)>& visit) const = 0;
};

struct Manifest {
  RunKind kind = RunKind::backup;
  std::uint64_t seq = 0;     // 1, 2, 3, … per repository
  std::string run_id;        // 16 hex digits, random
  std::string host;
  std::int64_t started_ns = 0;   // Unix time
  std::int64_t finished_ns = 0;
  std::vector<std::string> sources;
  std::vector<ManifestPack> packs;
  std::vector<ManifestVersion> versions;
  std::vector<ManifestRemoval> removed;    // clean runs only
  std::vector<std::string> deleted_packs;  // clean runs only: hex names
  /// The text of config.yaml when the run was made (empty if not recorded): what `init --from`
  /// restores on a new machine. It holds settings only, never key material.
  std::string config;
  /// More packs and versions, after those of `packs` and `versions` (optional). Read them all
  /// through for_each_pack and for_each_version.
  std::shared_ptr<const ManifestRecords> spooled;
};

/// The manifest's packs (those in memory, then the spooled ones) and their number.
std::uint64_t pack_count(const Manifest& manifest);
void for_each_pack(const Manifest& manifest, const std::function<void(const ManifestPack&)>& visit);
/// The same for its versions.
std::uint64_t version_count(const Manifest& manifest);
void for_each_version(const Manifest& manifest, const std::function<void(const ManifestVersion&)>& visit);

/// The encoding, in pieces of about 1 MiB given to `sink` in order: a manifest of millions of
/// files is never held whole.
void encode_manifest(const Manifest& manifest, const std::function<void(ByteView piece)>& sink);

Bytes encode_manifest(const Manifest& manifest);
/// Error(corrupt) on any structural problem.
Manifest decode_manifest(ByteView data);

/// One pack or version alone, encoded as in a manifest of the current format: what a spool
/// keeps. The decoders throw Error(corrupt) on any structural problem or trailing byte.
void encode_pack_record(const ManifestPack& pack, Bytes& out);
ManifestPack decode_pack_record(ByteView data);
void encode_version_record(const ManifestVersion& version, Bytes& out);
ManifestVersion decode_version_record(ByteView data);

}  // namespace mybackup
