#pragma once
// Private: recycles chunk-sized byte buffers between pipeline stages, so a backup does not
// allocate (and page-fault in) a fresh buffer for every chunk it copies, compresses or seals.
// Idle buffers are kept up to a byte budget; anything beyond it is freed, so the pool adds at
// most that budget to peak memory.

#include <cstddef>
#include <mutex>
#include <vector>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

class BufferPool {
 public:
  explicit BufferPool(std::size_t retained_budget) : budget_(retained_budget) {}

  /// An empty buffer, with whatever capacity a recycled one had.
  Bytes acquire() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) {
      return {};
    }
    Bytes buffer = std::move(idle_.back());
    idle_.pop_back();
    retained_ -= buffer.capacity();
    buffer.clear();
    return buffer;
  }

  /// Gives a buffer back for reuse (or frees it when the pool is full).
  void release(Bytes&& buffer) {
    const std::size_t capacity = buffer.capacity();
    std::lock_guard lock(mutex_);
    if (capacity == 0 || retained_ + capacity > budget_) {
      return;  // `buffer` is freed by the caller's moved-from object going out of scope
    }
    retained_ += capacity;
    idle_.push_back(std::move(buffer));
  }

 private:
  std::mutex mutex_;
  std::vector<Bytes> idle_;
  std::size_t retained_ = 0;
  std::size_t budget_;
};

}  // namespace mybackup
