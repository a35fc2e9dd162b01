#pragma once
// Private: what a backup's pipeline tells the catalog as it goes (engine/backup.cpp): chunks
// placed in the pack being filled, packs stored, versions read. Each goes to a RunRecorder at
// once, except a version listing a chunk not yet placed (still being compressed, or waiting in a
// reader's batch): it waits, keyed by that chunk, until the chunk is placed.
//
// Not thread-safe: the pipeline's recording thread makes every call.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mybackup/catalog/catalog.hpp"

namespace mybackup {

/// One thing the pipeline tells the catalog.
struct RunEvent {
  enum class Kind { chunks_placed, pack_stored, version };
  Kind kind = Kind::version;
  std::uint64_t pack = 0;        // the pipeline's number for the pack (chunks_placed, pack_stored)
  std::vector<PackEntry> blobs;  // chunks_placed
  std::string name;              // pack_stored: hex SHA-256
  std::uint64_t size = 0;        // pack_stored
  ManifestVersion version;       // version

  /// Roughly the memory it holds, for the queue's budget.
  std::size_t weight() const;
};

class RunFeed {
 public:
  /// `recorder` must outlive the feed.
  explicit RunFeed(RunRecorder& recorder) : recorder_(recorder) {}

  /// Records the event, or keeps a version until its chunks are placed. Errors: RunRecorder's.
  void apply(RunEvent&& event);

  /// Versions still waiting for a chunk.
  std::size_t waiting() const { return waiting_.size(); }

  /// After the last event: Error(corrupt) if a version still waits (it lists a chunk no pack
  /// of this run or an earlier one holds).
  void finish() const;

 private:
  void offer(ManifestVersion&& version);
  std::int64_t pack_row(std::uint64_t pack);

  RunRecorder& recorder_;
  std::unordered_map<std::uint64_t, std::int64_t> pack_rows_;  // pipeline number -> catalog row
  std::unordered_multimap<ChunkId, ManifestVersion, ChunkIdHash> waiting_;  // by the chunk awaited
};

}  // namespace mybackup
