#pragma once
// A test decorator for mybackup::Backend that makes chosen calls fail or wait, to exercise the
// error paths of code that uses a destination (a full disk in the middle of a backup, an I/O
// error while storing the manifest, a timeout while listing, a slow network, ...).
//
// It wraps (and owns) another Backend and forwards every call to it. Each call of an operation
// (put, get, get_range, size, list, empty, remove) whose name starts with the key filter ("" =
// every name, the default) is numbered 1, 2, 3, ... per operation and counted; a call whose number
// is selected by fail() (or fail_put_number() / fail_puts_after() for put) throws Error(kind)
// instead of being forwarded, so, like a real backend, a failed put leaves no trace under its
// name. set_latency() makes every forwarded call wait first.
//
// Typical use with a Repository (which takes ownership of its backend, so keep a raw pointer):
//
//   auto owned = std::make_unique<mybackup::testing::FaultInjectingBackend>(
//       mybackup::make_local_backend(dir));
//   mybackup::testing::FaultInjectingBackend* faults = owned.get();  // valid while repo lives
//   auto repo = mybackup::Repository::open(std::move(owned), key, mybackup::CreateIfMissing::yes);
//   faults->set_key_filter("data/");                      // count only pack writes
//   faults->fail_put_number(2, mybackup::ErrorKind::no_space);  // the second pack write fails
//   ... run the code under test ...
//   EXPECT_EQ(faults->failed_puts(), 1);
//
// Thread-safe: the backup engine calls put() from its writer thread while the test may read the
// counters.
//
// Note: this namespace is mybackup::testing. Inside `namespace mybackup { ... }` an unqualified
// `testing::Test` now names this namespace, not GoogleTest's; write `::testing::Test` there.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup::testing {

class FaultInjectingBackend : public Backend {
 public:
  enum class Op { put, get, get_range, size, list, empty, remove };

  explicit FaultInjectingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  // ---- configuring faults (each call replaces the previous plan of that operation; counters are kept)

  /// Calls number `first` to `last` (1-based; nullopt: every later one) of `op` fail with `kind`.
  void fail(Op op, int first, std::optional<int> last, ErrorKind kind) {
    const std::lock_guard<std::mutex> guard(mutex_);
    plans_[op] = Plan{first, last, kind};
  }

  /// Only the put with this number (1-based, counting matching puts since construction or the
  /// last reset_counts()) fails. Later puts succeed again.
  void fail_put_number(int n, ErrorKind kind = ErrorKind::no_space) { fail(Op::put, n, n, kind); }

  /// The first `n` matching puts succeed and every later one fails (fail_puts_after(0): all fail).
  void fail_puts_after(int n, ErrorKind kind = ErrorKind::no_space) { fail(Op::put, n + 1, std::nullopt, kind); }

  /// No call fails any more.
  void clear_faults() {
    const std::lock_guard<std::mutex> guard(mutex_);
    plans_.clear();
  }

  /// Every forwarded call first waits this long (a slow network).
  void set_latency(std::chrono::microseconds latency) {
    const std::lock_guard<std::mutex> guard(mutex_);
    latency_ = latency;
  }

  /// Only calls whose name starts with `prefix` are numbered, counted and may fail ("data/",
  /// "snapshots/", "mybackup-repo.json"); the others are forwarded untouched. "" matches all.
  /// list() and empty() match by their prefix argument ("" for empty()).
  void set_key_filter(std::string prefix) {
    const std::lock_guard<std::mutex> guard(mutex_);
    filter_ = std::move(prefix);
  }

  /// Restarts the numbering: the next matching call is number 1 again; counters go to zero.
  void reset_counts() {
    const std::lock_guard<std::mutex> guard(mutex_);
    calls_.clear();
    failed_.clear();
    stored_keys_.clear();
  }

  // ---- observing

  /// Matching calls of `op` seen so far, failed ones included.
  int calls(Op op) const {
    const std::lock_guard<std::mutex> guard(mutex_);
    const auto found = calls_.find(op);
    return found == calls_.end() ? 0 : found->second;
  }
  /// Matching calls of `op` that were made to fail.
  int failed(Op op) const {
    const std::lock_guard<std::mutex> guard(mutex_);
    const auto found = failed_.find(op);
    return found == failed_.end() ? 0 : found->second;
  }
  int puts() const { return calls(Op::put); }
  int failed_puts() const { return failed(Op::put); }
  /// Keys of the matching puts that were forwarded and succeeded, in call order.
  std::vector<std::string> stored_keys() const {
    const std::lock_guard<std::mutex> guard(mutex_);
    return stored_keys_;
  }

  Backend& inner() { return *inner_; }

  // ---- Backend

  std::string location() const override { return inner_->location(); }

  void put(const std::string& key, ByteView data, Overwrite overwrite) override {
    const bool matches = enter(Op::put, key);
    inner_->put(key, data, overwrite);
    if (matches) {
      const std::lock_guard<std::mutex> guard(mutex_);
      stored_keys_.push_back(key);
    }
  }

  Bytes get(const std::string& key, std::uint64_t max_size) const override {
    enter(Op::get, key);
    return inner_->get(key, max_size);
  }

  Bytes get_range(const std::string& key, std::uint64_t offset, std::uint64_t length) const override {
    enter(Op::get_range, key);
    return inner_->get_range(key, offset, length);
  }

  std::optional<std::uint64_t> size(const std::string& key) const override {
    enter(Op::size, key);
    return inner_->size(key);
  }

  std::vector<ObjectInfo> list(const std::string& prefix) const override {
    enter(Op::list, prefix);
    return inner_->list(prefix);
  }

  bool empty() const override {
    enter(Op::empty, "");
    return inner_->empty();
  }

  void remove(const std::string& key) override {
    enter(Op::remove, key);
    inner_->remove(key);
  }

 private:
  struct Plan {
    int first = 0;
    std::optional<int> last;
    ErrorKind kind = ErrorKind::no_space;
  };

  static const char* name_of(Op op) {
    switch (op) {
      case Op::put: return "put";
      case Op::get: return "get";
      case Op::get_range: return "get_range";
      case Op::size: return "size";
      case Op::list: return "list";
      case Op::empty: return "empty";
      case Op::remove: return "remove";
    }
    return "?";
  }

  /// Numbers a call, waits the latency, and throws if the plan says this call fails. Returns
  /// whether the call matched the filter.
  bool enter(Op op, const std::string& key) const {
    std::chrono::microseconds latency{0};
    {
      const std::lock_guard<std::mutex> guard(mutex_);
      latency = latency_;
      if (!key.starts_with(filter_)) {
        return false;
      }
      const int number = ++calls_[op];
      const auto plan = plans_.find(op);
      if (plan != plans_.end() && number >= plan->second.first &&
          (!plan->second.last.has_value() || number <= *plan->second.last)) {
        ++failed_[op];
        const ErrorKind kind = plan->second.kind;
        throw Error(kind, "injected fault: " + std::string(name_of(op)) + " #" + std::to_string(number) + " of '" + key +
                              "' failed (" + std::string(to_string(kind)) + ")");
      }
    }
    if (latency.count() > 0) {
      std::this_thread::sleep_for(latency);
    }
    return true;
  }

  std::unique_ptr<Backend> inner_;
  mutable std::mutex mutex_;
  std::string filter_;
  std::map<Op, Plan> plans_;
  std::chrono::microseconds latency_{0};
  mutable std::map<Op, int> calls_;
  mutable std::map<Op, int> failed_;
  std::vector<std::string> stored_keys_;
};

}  // namespace mybackup::testing
