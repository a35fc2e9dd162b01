#pragma once
// The exclusive writer lock of a repository: locks/writer.json, holding who took it.
//
//   {"host": "laptop", "pid": 4242, "purpose": "backup", "time_ns": 1795…, "time": "2026-…Z"}
//
// Taking it is one atomic create (Backend::put with Overwrite::no). The holder rewrites the time
// every kRefreshInterval while it runs. A lock is stale, and is broken, when its holder is on this
// host and its process no longer exists, or when it has not been refreshed for kStaleAfter
// (a holder on another machine that died). Anything else is Error(locked), naming the holder.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "mybackup/backend.hpp"

namespace mybackup {

class RepositoryLock {
 public:
  static constexpr std::chrono::seconds kRefreshInterval{60};
  static constexpr std::chrono::seconds kStaleAfter{30 * 60};

  /// Takes the lock or throws Error(locked). `purpose` is recorded ("backup", "clean").
  RepositoryLock(Backend& backend, const std::string& purpose);
  /// Releases the lock (removes the file).
  ~RepositoryLock();
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;

  static constexpr const char* kKey = "locks/writer.json";

 private:
  void refresh_loop();
  std::string describe_self() const;

  Backend& backend_;
  std::string purpose_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread refresher_;
};

/// This machine's host name.
std::string host_name();

}  // namespace mybackup
