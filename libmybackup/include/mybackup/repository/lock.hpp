#pragma once
// The exclusive writer lock of a repository.
//
// Each writer creates a lock file of its own, locks/<16 hex random>.json:
//
//   {"host": "laptop", "pid": 4242, "purpose": "backup", "time_ns": 1795…, "time": "2026-…Z"}
//
// then lists locks/. If any other lock is there and not stale, it removes its own file and fails
// with Error(locked), naming the holder; stale locks it finds are removed. Two writers starting at
// the same moment may both back off (run again), but two can never both proceed, and nobody
// ever deletes a live writer's file, only its own or a dead one's (restic's protocol).
//
// A lock is stale when its holder is on this host and its process no longer exists, or when it
// has not been refreshed for stale_after (a holder on another machine that died). The holder
// rewrites its file every refresh_interval; if it finds the file gone (someone judged it stale
// after a long suspend) it marks the lock lost() and the run must stop.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "mybackup/storage/backend.hpp"
#include "mybackup/util/env.hpp"

namespace mybackup {

/// The lock's timing. Every writer of a repository must use the same stale_after (the defaults
/// unless in a test, where milliseconds keep it fast).
struct LockOptions {
  /// How often the holder rewrites its file (and notices it was taken over).
  std::chrono::nanoseconds refresh_interval = std::chrono::seconds(60);
  /// How old another host's lock must be before it is broken. Must be well above
  /// refresh_interval.
  std::chrono::nanoseconds stale_after = std::chrono::minutes(30);
  /// The clock of the lock's times and the refresher's wait. nullptr: Env::default_env().
  Env* env = nullptr;
};

class RepositoryLock {
 public:
  static constexpr std::chrono::nanoseconds kRefreshInterval = LockOptions{}.refresh_interval;
  static constexpr std::chrono::nanoseconds kStaleAfter = LockOptions{}.stale_after;

  /// Takes the lock or throws Error(locked). `purpose` is recorded ("backup", "clean"). Errors
  /// of the backend (Error(io), ...) pass through, with no lock file left behind.
  RepositoryLock(Backend& backend, const std::string& purpose, const LockOptions& options = LockOptions());
  /// Releases the lock (removes this holder's file).
  ~RepositoryLock();
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;

  /// This holder's lock file ("locks/….json").
  const std::string& key() const { return key_; }
  /// True once the refresher found this holder's file removed by someone else.
  bool lost() const { return lost_.load(); }

 private:
  void refresh_loop();
  std::string describe_self() const;

  Backend& backend_;
  std::string purpose_;
  LockOptions options_;
  Env& env_;
  std::string key_;
  std::atomic<bool> lost_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread refresher_;
};

/// This machine's host name.
std::string host_name();

}  // namespace mybackup
