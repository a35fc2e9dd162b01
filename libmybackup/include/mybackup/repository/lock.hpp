#pragma once
// The exclusive writer lock of a repository.
//
// Each writer creates a lock file of its own, locks/<16 hex random>.json:
//
//   {"host": "laptop", "pid": 4242, "boot_id": "6f1c…", "pid_ns": 4026531836,
//    "purpose": "backup", "time_ns": 1795…, "time": "2026-…Z"}
//
// (boot_id and pid_ns are left out where the system does not tell them; locks of older versions
// lack them too.) It then lists locks/. If any other lock is there and not stale, it removes its
// own file and fails with Error(locked), naming the holder; stale locks it finds are removed, and
// then it lists again (a holder may have refreshed under a new name meanwhile). Two writers
// starting at the same moment may both back off (run again), but two can never both proceed, and
// nobody ever deletes a live writer's file, only its own or a dead one's (restic's protocol).
//
// Whether a lock is stale is judged from the holder's identity (Env::process_identity) and the
// lock's last refresh (time_ns):
//  - same host, boot_id and pid_ns as ours: the pid means the same process here, so the lock is
//    stale when that process no longer exists (or by age, below);
//  - same host, another boot_id: stale when last refreshed before this boot began and more than
//    two refresh intervals ago (a holder of the previous boot; the second condition spares a
//    live holder on another machine that happens to share the host name), or by age;
//  - anything else (another host, another pid namespace on this host such as a container sharing
//    the host name, a lock without boot_id or pid_ns): by age only, never by pid;
//  - by age: not refreshed for stale_after (a holder on another machine that died).
// A lock dated more than stale_after in the future (clocks apart) is never stale and never
// ignored: taking the lock fails with Error(locked), naming the file and saying to check the
// clocks (and to delete the file if no other writer runs).
//
// Every refresh_interval the holder refreshes: it creates a new lock file, then checks that its
// previous one is still there, then deletes the previous one. A previous file that is gone was
// removed by a writer who judged this holder stale (after a long suspend): the lock is lost() and
// the run must stop. A removal after the check is seen by that writer's second listing, which
// finds the new file. (Rewriting one file in place cannot tell: the rewrite may recreate a file
// removed between "is it still there?" and the write.)

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
  /// The clock of the lock's times and the refresher's wait, and who this writer is
  /// (process_identity, read once, and process_exists). nullptr: Env::default_env().
  Env* env = nullptr;
};

class RepositoryLock {
 public:
  static constexpr std::chrono::nanoseconds kRefreshInterval = LockOptions{}.refresh_interval;
  static constexpr std::chrono::nanoseconds kStaleAfter = LockOptions{}.stale_after;

  /// Takes the lock or throws Error(locked): another writer holds it, a lock file there is
  /// unreadable, or one is dated in the future. `purpose` is recorded ("backup", "clean"). Errors
  /// of the backend (Error(io), ...) pass through, with no lock file left behind.
  RepositoryLock(Backend& backend, const std::string& purpose, const LockOptions& options = LockOptions());
  /// Releases the lock (removes this holder's file).
  ~RepositoryLock();
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;

  /// This holder's current lock file ("locks/….json"); it changes at every refresh.
  std::string key() const;
  /// True once this holder's file was found removed by someone else (by the refresher, or by
  /// still_held()). Never true again false.
  bool lost() const { return lost_.load(); }
  /// Checks now, on the destination, that this holder's file is still there (before a step that
  /// must not happen without the lock: committing a manifest, deleting packs). False (and lost())
  /// if it is gone; a backend error passes through.
  bool still_held() const;

 private:
  void refresh_loop();
  void refresh();
  std::string describe_self() const;
  static std::string new_key();

  Backend& backend_;
  std::string purpose_;
  LockOptions options_;
  Env& env_;
  ProcessIdentity self_;  // read once, written into every lock file
  std::string key_;  // guarded by mutex_ (the refresher renames it)
  mutable std::atomic<bool> lost_{false};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread refresher_;
};

}  // namespace mybackup
