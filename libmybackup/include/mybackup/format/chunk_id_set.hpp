#pragma once
// A set of chunk ids in about 40 bytes per id: the chunks a backup stores, which may be millions.
//
// The ids live in blocks of a fixed size (32 bytes each, never moved or copied when the set
// grows), found through an open-addressing table of 4-byte positions keyed by the id's first
// bytes (ids are HMAC outputs: uniformly distributed). A std::unordered_set<ChunkId> costs
// about 70 bytes per id.
//
// Not thread-safe: the caller serializes access.

#include <cstdint>
#include <memory>
#include <vector>

#include "mybackup/format/pack.hpp"

namespace mybackup {

class CompactChunkIdSet {
 public:
  CompactChunkIdSet();

  /// Adds `id`; true if it was not there yet. Throws std::length_error beyond 2^32 - 2 ids.
  bool insert(const ChunkId& id);
  bool contains(const ChunkId& id) const;
  std::size_t size() const { return size_; }

 private:
  static constexpr std::size_t kBlockIds = 65536;
  const ChunkId& at(std::uint32_t index) const { return blocks_[index / kBlockIds][index % kBlockIds]; }
  /// The slot holding `id`, or the empty slot where it would go.
  std::size_t find_slot(const ChunkId& id) const;
  void grow();

  std::vector<std::unique_ptr<ChunkId[]>> blocks_;
  std::vector<std::uint32_t> slots_;  // 0: empty, else index + 1
  std::size_t size_ = 0;
};

}  // namespace mybackup
