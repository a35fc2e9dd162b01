#pragma once
// Private: a multi-producer, multi-consumer queue bounded by the total weight (bytes) of what it
// holds, so pipeline memory is bounded by the budget, not by the data. An item heavier than the
// whole budget is still accepted when the queue is empty, so nothing can deadlock.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace mybackup {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t budget) : budget_(budget) {}

  /// Blocks while the queue is over budget. Returns false (dropping the item) once close() or
  /// abort() has been called.
  bool push(T item, std::size_t weight) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.empty() || weight_ + weight <= budget_; });
    if (closed_) {
      return false;
    }
    weight_ += weight;
    items_.emplace_back(std::move(item), weight);
    not_empty_.notify_one();
    return true;
  }

  /// Blocks until an item is available; nullopt once the queue is closed and drained (or aborted).
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty() || aborted_) {
      return std::nullopt;
    }
    auto [item, weight] = std::move(items_.front());
    items_.pop_front();
    weight_ -= weight;
    not_full_.notify_all();
    return std::move(item);
  }

  /// No more pushes; consumers drain what is left.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  /// Stop now: pending items are dropped, producers and consumers wake up.
  void abort() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    aborted_ = true;
    items_.clear();
    weight_ = 0;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<std::pair<T, std::size_t>> items_;
  std::size_t weight_ = 0;
  std::size_t budget_;
  bool closed_ = false;
  bool aborted_ = false;
};

}  // namespace mybackup
