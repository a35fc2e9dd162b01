#include "mybackup/format/chunk_id_set.hpp"

#include <cstring>
#include <stdexcept>

namespace mybackup {

namespace {

constexpr std::size_t kInitialSlots = 1024;  // a power of two

std::uint64_t hash_of(const ChunkId& id) {
  std::uint64_t value = 0;
  std::memcpy(&value, id.data(), sizeof value);
  return value;
}

}  // namespace

CompactChunkIdSet::CompactChunkIdSet() : slots_(kInitialSlots, 0) {}

std::size_t CompactChunkIdSet::find_slot(const ChunkId& id) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t slot = hash_of(id) & mask;; slot = (slot + 1) & mask) {
    const std::uint32_t held = slots_[slot];
    if (held == 0 || at(held - 1) == id) {
      return slot;
    }
  }
}

bool CompactChunkIdSet::contains(const ChunkId& id) const { return slots_[find_slot(id)] != 0; }

bool CompactChunkIdSet::insert(const ChunkId& id) {
  std::size_t slot = find_slot(id);
  if (slots_[slot] != 0) {
    return false;
  }
  if (size_ >= UINT32_MAX - 1) {
    throw std::length_error("CompactChunkIdSet: too many ids");
  }
  // Below 3/4 full, linear probing stays short.
  if ((size_ + 1) * 4 > slots_.size() * 3) {
    grow();
    slot = find_slot(id);
  }
  if (size_ % kBlockIds == 0) {
    blocks_.push_back(std::make_unique<ChunkId[]>(kBlockIds));
  }
  blocks_.back()[size_ % kBlockIds] = id;
  slots_[slot] = static_cast<std::uint32_t>(++size_);
  return true;
}

void CompactChunkIdSet::grow() {
  std::vector<std::uint32_t> old(slots_.size() * 2, 0);
  old.swap(slots_);
  const std::size_t mask = slots_.size() - 1;
  for (const std::uint32_t held : old) {
    if (held != 0) {
      std::size_t slot = hash_of(at(held - 1)) & mask;
      while (slots_[slot] != 0) {
        slot = (slot + 1) & mask;
      }
      slots_[slot] = held;
    }
  }
}

}  // namespace mybackup
