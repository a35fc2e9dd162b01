#pragma once
// The chunks a restore from a remote destination needs, read grouped by pack and ahead of the
// workers (RestoreOptions::read_ahead; a local disk serves single reads faster, in less memory).
//
// Every chunk of every file to restore is known, in the order the workers will ask for them,
// before the first byte is written. Neighbours in a pack are fetched in one ranged read (a
// region: chunks at most `max_gap` apart, at most `max_region` long) and each chunk is cut from
// it. One read per chunk would cost one round trip per chunk: tens of milliseconds each on a
// network, and 40 ms on a server that delays small replies (Nagle), for files of a few kilobytes.
//
// `read_ahead` threads read the regions in the order they will be needed, several at once,
// while the workers decrypt and write: a large file restored by one worker still has several
// reads in flight. They stay at most `cache_budget` bytes ahead; a region is dropped once each
// of its chunks has been read once. A worker that reaches a region before them reads it itself.
// Past the budget (a region needed again, or left behind by a failed file) the least recently
// used regions go first; one needed again is read again.
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
  std::uint64_t max_gap = 256 * 1024;              // bytes of unneeded blobs a region may span
  std::uint64_t max_region = 8 * 1024 * 1024;      // bytes in one read
  std::uint64_t cache_budget = 64 * 1024 * 1024;  // bytes of regions held (or in flight) at once
  unsigned read_ahead = 4;                         // threads reading regions ahead; 0: none
};

class PackRegionReader {
 public:
  /// `needed`: every chunk the restore will read (duplicates allowed), in the order it will ask
  /// for them. `repository` must outlive the reader. Starts the read-ahead threads at once.
  PackRegionReader(const Repository& repository, const std::vector<ChunkLocation>& needed, PackRegionLimits limits = {});
  /// Stops the read-ahead, waiting for the reads in flight.
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
