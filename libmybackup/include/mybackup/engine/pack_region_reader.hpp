#pragma once
// The chunks a restore from a remote destination needs, read grouped by pack (RestoreOptions::
// group_reads; a local disk serves single reads faster, in less memory). Every chunk of every
// file to restore is known before the first byte is written, so neighbours in a pack are fetched
// in one ranged read (a region: chunks at most `max_gap` apart, at most `max_region` long) and
// each chunk is cut from it. One read per chunk costs one round trip per chunk: tens of milliseconds each on a network,
// and 40 ms on a server that delays small replies (Nagle), for files of a few kilobytes.
//
// While the workers use one region, the next one of the same pack is read ahead (one at a time,
// on a thread of its own), since restores follow the order the backup packed in.
// Regions are kept in memory until each of their chunks has been read once, within
// `cache_budget` bytes (least recently used regions go first; one needed again is read again).
// A region that cannot be read, or a chunk in it that fails its checks, is read again on its own
// through Repository::read_chunk, with its fallback to the secondary: grouping never turns a
// readable chunk into a failure.
//
// Thread-safe: workers share one reader; two asking for one region wait for a single read.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/repository/repository.hpp"

namespace mybackup {

struct PackRegionLimits {
  std::uint64_t max_gap = 256 * 1024;            // bytes of unneeded blobs a region may span
  std::uint64_t max_region = 8 * 1024 * 1024;    // bytes in one read
  std::uint64_t cache_budget = 256 * 1024 * 1024;  // bytes of regions held at once
};

class PackRegionReader {
 public:
  /// `needed`: every chunk the restore will read (duplicates allowed). `repository` must outlive
  /// the reader.
  PackRegionReader(const Repository& repository, const std::vector<ChunkLocation>& needed, PackRegionLimits limits = {});
  ~PackRegionReader();
  PackRegionReader(const PackRegionReader&) = delete;
  PackRegionReader& operator=(const PackRegionReader&) = delete;

  /// The chunk, authenticated, decompressed and checked against its id (Repository::open_chunk).
  /// A chunk not announced in `needed` is read on its own. Errors: those of Repository::read_chunk.
  Bytes read_chunk(const std::string& pack, const PackEntry& entry);

  /// Ranged reads made so far, regions and single chunks (for tests and the log).
  std::uint64_t reads() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace mybackup
