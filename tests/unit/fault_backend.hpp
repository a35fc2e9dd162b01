#pragma once
// A test decorator for mybackup::Backend that makes chosen put() calls fail, to exercise the
// error paths of code that writes to a destination (a full disk in the middle of a backup, an
// I/O error while storing the manifest, ...).
//
// It wraps (and owns) another Backend and forwards every call to it. Each put() whose key starts
// with the key filter ("" = every key, the default) is numbered 1, 2, 3, ... and counted; a put
// whose number is selected by fail_put_number() or fail_puts_after() throws Error(kind) instead of
// storing anything, so, like a real backend, a failed put leaves no trace under its key.
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

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup::testing {

class FaultInjectingBackend : public Backend {
 public:
  explicit FaultInjectingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  // ---- configuring faults (each call replaces the previous fault plan; counters are kept)

  /// Only the put with this number (1-based, counting matching puts since construction or the
  /// last reset_counts()) fails. Later puts succeed again.
  void fail_put_number(int n, ErrorKind kind = ErrorKind::no_space) {
    const std::lock_guard<std::mutex> guard(mutex_);
    first_failing_ = n;
    last_failing_ = n;
    kind_ = kind;
  }

  /// The first `n` matching puts succeed and every later one fails (fail_puts_after(0): all fail).
  void fail_puts_after(int n, ErrorKind kind = ErrorKind::no_space) {
    const std::lock_guard<std::mutex> guard(mutex_);
    first_failing_ = n + 1;
    last_failing_ = std::nullopt;
    kind_ = kind;
  }

  /// No put fails any more.
  void clear_faults() {
    const std::lock_guard<std::mutex> guard(mutex_);
    first_failing_ = std::nullopt;
    last_failing_ = std::nullopt;
  }

  /// Only puts whose key starts with `prefix` are numbered, counted and may fail ("data/",
  /// "snapshots/", "mybackup-repo.json"); the others are forwarded untouched. "" matches all.
  void set_key_filter(std::string prefix) {
    const std::lock_guard<std::mutex> guard(mutex_);
    filter_ = std::move(prefix);
  }

  /// Restarts the numbering: the next matching put is number 1 again; counters go to zero.
  void reset_counts() {
    const std::lock_guard<std::mutex> guard(mutex_);
    puts_ = 0;
    failed_puts_ = 0;
    stored_keys_.clear();
  }

  // ---- observing

  /// Matching put() calls seen so far, failed ones included.
  int puts() const {
    const std::lock_guard<std::mutex> guard(mutex_);
    return puts_;
  }
  /// Matching put() calls that were made to fail.
  int failed_puts() const {
    const std::lock_guard<std::mutex> guard(mutex_);
    return failed_puts_;
  }
  /// Keys of the matching puts that were forwarded and succeeded, in call order.
  std::vector<std::string> stored_keys() const {
    const std::lock_guard<std::mutex> guard(mutex_);
    return stored_keys_;
  }

  Backend& inner() { return *inner_; }

  // ---- Backend

  std::string location() const override { return inner_->location(); }

  void put(const std::string& key, ByteView data, Overwrite overwrite) override {
    bool matches = false;
    {
      const std::lock_guard<std::mutex> guard(mutex_);
      matches = key.starts_with(filter_);
      if (matches) {
        ++puts_;
        const bool fails = first_failing_.has_value() && puts_ >= *first_failing_ &&
                           (!last_failing_.has_value() || puts_ <= *last_failing_);
        if (fails) {
          ++failed_puts_;
          throw Error(kind_, "injected fault: put #" + std::to_string(puts_) + " of " + key + " failed (" +
                                 std::string(to_string(kind_)) + ")");
        }
      }
    }
    inner_->put(key, data, overwrite);
    if (matches) {
      const std::lock_guard<std::mutex> guard(mutex_);
      stored_keys_.push_back(key);
    }
  }

  Bytes get(const std::string& key) const override { return inner_->get(key); }

  Bytes get_range(const std::string& key, std::uint64_t offset, std::uint64_t length) const override {
    return inner_->get_range(key, offset, length);
  }

  std::optional<std::uint64_t> size(const std::string& key) const override { return inner_->size(key); }

  std::vector<std::string> list(const std::string& prefix) const override { return inner_->list(prefix); }

  bool empty() const override { return inner_->empty(); }

  void remove(const std::string& key) override { inner_->remove(key); }

 private:
  std::unique_ptr<Backend> inner_;
  mutable std::mutex mutex_;
  std::string filter_;
  std::optional<int> first_failing_;
  std::optional<int> last_failing_;
  ErrorKind kind_ = ErrorKind::no_space;
  int puts_ = 0;
  int failed_puts_ = 0;
  std::vector<std::string> stored_keys_;
};

}  // namespace mybackup::testing
