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
};

Bytes encode_manifest(const Manifest& manifest);
/// Error(corrupt) on any structural problem.
Manifest decode_manifest(ByteView data);

}  // namespace mybackup
