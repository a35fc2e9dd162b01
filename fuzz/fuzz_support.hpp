#pragma once
// What the harnesses of fuzz/ share: the rule for rejections, a fixed test key and a Backend held
// in memory.
//
// A harness feeds its input to the function the product uses on outside input. An Error of a kind
// that function documents is the normal way to reject bad input; everything else is a finding:
// another Error kind, another exception type (std::terminate aborts the run), a sanitizer report,
// a timeout or an allocation above -malloc_limit_mb.

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/crypto/keys.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/storage/backend.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup::fuzz {

/// Aborts (a finding) unless `error` is of one of the `documented` kinds.
inline void expect_kind(const Error& error, std::initializer_list<ErrorKind> documented) {
  for (const ErrorKind kind : documented) {
    if (error.kind() == kind) {
      return;
    }
  }
  std::fprintf(stderr, "undocumented error kind %s: %s\n", std::string(to_string(error.kind())).c_str(), error.what());
  std::abort();
}

/// Aborts (a finding) with `what` unless `condition` holds: an invariant the harness checks.
inline void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

/// The master key of every harness that needs one: 0x00, 0x01, ..., 0x1f. The seed generator
/// (make_seeds.cpp) seals the seeds of the authenticated formats with it.
inline const MasterKey& test_key() {
  static const MasterKey key = [] {
    MasterKey made;
    for (std::size_t i = 0; i < made.bytes.size(); ++i) {
      made.bytes[i] = static_cast<std::uint8_t>(i);
    }
    return made;
  }();
  return key;
}

/// A Backend whose objects live in a map: the harnesses of stored objects need no file system.
/// Follows backend.hpp's contract for the calls the product makes (names are not checked).
class MemoryBackend final : public Backend {
 public:
  std::string location() const override { return "memory:"; }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    const std::lock_guard guard(mutex_);
    if (overwrite == Overwrite::no && objects_.count(name) != 0) {
      throw Error(ErrorKind::exists, name + " exists");
    }
    objects_[name] = Bytes(data.begin(), data.end());
  }

  Bytes get(const std::string& name, std::uint64_t max_size) const override {
    const std::lock_guard guard(mutex_);
    const Bytes& object = find(name);
    if (object.size() > max_size) {
      throw Error(ErrorKind::corrupt, name + " is too large");
    }
    return object;
  }

  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    const std::lock_guard guard(mutex_);
    const Bytes& object = find(name);
    if (offset > object.size() || length > object.size() - offset) {
      throw Error(ErrorKind::corrupt, name + " is too short");
    }
    const auto first = object.begin() + static_cast<std::ptrdiff_t>(offset);
    return Bytes(first, first + static_cast<std::ptrdiff_t>(length));
  }

  std::optional<std::uint64_t> size(const std::string& name) const override {
    const std::lock_guard guard(mutex_);
    const auto found = objects_.find(name);
    return found == objects_.end() ? std::nullopt : std::optional<std::uint64_t>(found->second.size());
  }

  std::vector<ObjectInfo> list(const std::string& prefix) const override {
    const std::lock_guard guard(mutex_);
    const std::string start = prefix.empty() ? "" : prefix + "/";
    std::vector<ObjectInfo> listed;
    for (auto it = objects_.lower_bound(start); it != objects_.end() && it->first.starts_with(start); ++it) {
      listed.push_back({it->first, it->second.size()});
    }
    return listed;
  }

  bool empty() const override {
    const std::lock_guard guard(mutex_);
    return objects_.empty();
  }

  void remove(const std::string& name) override {
    const std::lock_guard guard(mutex_);
    objects_.erase(name);
  }

 private:
  const Bytes& find(const std::string& name) const {
    const auto found = objects_.find(name);
    if (found == objects_.end()) {
      throw Error(ErrorKind::not_found, name + " not found");
    }
    return found->second;
  }

  mutable std::mutex mutex_;
  std::map<std::string, Bytes> objects_;
};

/// A repository under test_key() in memory, for harnesses that store the input as an object and
/// read it back through the Repository (the product's path for outside bytes).
struct MemoryRepository {
  MemoryBackend* backend = nullptr;  // owned by repository
  std::unique_ptr<Repository> repository;

  MemoryRepository() {
    auto owned = std::make_unique<MemoryBackend>();
    backend = owned.get();
    repository = Repository::open(std::move(owned), test_key(), CreateIfMissing::yes);
  }
};

}  // namespace mybackup::fuzz
