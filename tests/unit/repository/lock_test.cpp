#include "mybackup/repository/lock.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/repository/object_names.hpp"

#include <gtest/gtest.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/env.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::names_of;
using testing::kAnySize;

using testing::error_kind;
using testing::error_message;
using testing::parse_json_object;
using testing::TempDir;

constexpr std::int64_t kMinuteNs = 60'000'000'000;

/// A pid that certainly belonged to a process that no longer exists: a child, forked and reaped.
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) {
    ::_exit(0);
  }
  if (child < 0) {
    return 999999;
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

/// The key of a hand-written lock file: locks/<name>.json when `name` is a lock id (16 hex
/// digits), otherwise named after the first 16 hex digits of SHA-256(name), since only
/// well-formed lock names are locks.
std::string foreign_key(const std::string& name) {
  return object_names::lock(object_names::is_lower_hex(name, 16) ? name : to_hex(Sha256::hash(as_bytes(name))).substr(0, 16));
}

/// Writes locks/<name>.json as another writer would; returns its key.
std::string write_lock(Backend& backend, const std::string& name, const std::string& host, long pid,
                       std::int64_t time_ns, const std::string& purpose = "backup") {
  const nlohmann::json lock = {
      {"host", host}, {"pid", pid}, {"purpose", purpose}, {"time_ns", time_ns}, {"time", format_utc(time_ns)}};
  const std::string key = foreign_key(name);
  backend.put(key, as_bytes(lock.dump() + "\n"), Overwrite::no);
  return key;
}

std::string content_of(const Backend& backend, const std::string& key) {
  return std::string(as_text(backend.get(key, kAnySize)));
}

/// Every key under locks/.
std::vector<std::string> lock_files(const Backend& backend) { return names_of(backend.list(object_names::kLocks)); }

std::int64_t now_ns() { return system_clock().now_ns(); }

bool is_hex(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(Lock, lock_file_records_the_holder_as_json) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::int64_t before = now_ns();
  const RepositoryLock lock(*backend, "backup");
  EXPECT_EQ(std::string(object_names::kLocks), "locks");
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / lock.key())) << lock.key();
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});

  const std::string content = content_of(*backend, lock.key());
  const auto members = parse_json_object(content);
  ASSERT_EQ(members.size(), 5U) << content;
  EXPECT_EQ(members.at("host"), host_name());
  EXPECT_EQ(members.at("pid"), ::getpid());
  EXPECT_EQ(members.at("purpose"), "backup");
  const auto time_ns = members.at("time_ns").get<std::int64_t>();
  EXPECT_GE(time_ns, before);
  EXPECT_LE(time_ns, now_ns());
  EXPECT_EQ(members.at("time"), format_utc(time_ns));
}

TEST(Lock, each_holder_has_its_own_key_under_locks) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  std::string first_key;
  {
    const RepositoryLock first(*backend, "backup");
    first_key = first.key();
  }
  const RepositoryLock second(*backend, "backup");
  for (const std::string& key : {first_key, second.key()}) {
    ASSERT_EQ(key.rfind("locks/", 0), 0U) << key;
    ASSERT_GE(key.size(), 5U + std::string("locks/").size()) << key;
    EXPECT_EQ(key.substr(key.size() - 5), ".json") << key;
    const std::string name = key.substr(6, key.size() - 6 - 5);
    EXPECT_EQ(name.size(), 16U) << key;
    EXPECT_TRUE(is_hex(name)) << key;
  }
  EXPECT_NE(first_key, second.key());  // random, not a fixed name
}

TEST(Lock, a_second_lock_while_held_is_locked_and_names_the_holder) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock held(*backend, "backup");
  const std::string before = content_of(*backend, held.key());
  EXPECT_EQ(error_kind([&] { RepositoryLock second(*backend, "clean"); }), ErrorKind::locked);
  const std::string message = error_message([&] { RepositoryLock second(*backend, "clean"); });
  EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
  EXPECT_NE(message.find(host_name()), std::string::npos) << message;
  EXPECT_NE(message.find("backup"), std::string::npos) << message;
  EXPECT_NE(message.find(dir.path()), std::string::npos) << message;
  // The holder's lock is untouched, and the refused writers removed their own files.
  EXPECT_EQ(content_of(*backend, held.key()), before);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{held.key()});
  EXPECT_FALSE(held.lost());
}

TEST(Lock, released_on_destruction) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  std::string first_key;
  {
    const RepositoryLock first(*backend, "backup");
    first_key = first.key();
  }
  EXPECT_EQ(backend->size(first_key), std::nullopt);
  EXPECT_TRUE(lock_files(*backend).empty());
  std::string second_key;
  {
    const RepositoryLock second(*backend, "clean");
    second_key = second.key();
  }
  EXPECT_EQ(backend->size(second_key), std::nullopt);
  EXPECT_TRUE(lock_files(*backend).empty());
}

TEST(Lock, the_destructor_removes_only_its_own_file) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  std::string own_key;
  std::string foreign;
  {
    const RepositoryLock lock(*backend, "backup");
    own_key = lock.key();
    // Written after the lock was taken (so nobody judged it yet): a dead holder's lock, which
    // the next writer will break, but which the releasing holder must leave alone.
    foreign = write_lock(*backend, "someone-else", host_name(), dead_pid(), now_ns());
  }
  EXPECT_EQ(backend->size(own_key), std::nullopt);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{foreign});

  // The next writer breaks it.
  const RepositoryLock next(*backend, "backup");
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{next.key()});
}

TEST(Lock, is_not_lost_while_held_normally) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock lock(*backend, "backup");
  EXPECT_FALSE(lock.lost());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(lock.lost());
  EXPECT_TRUE(backend->size(lock.key()).has_value());
}

/// Polls `condition` every millisecond for up to five seconds; true once it holds.
template <typename Condition>
bool eventually(Condition condition) {
  for (int waited_ms = 0; waited_ms < 5000; ++waited_ms) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return condition();
}

LockOptions refreshing_every(std::chrono::milliseconds interval) {
  LockOptions options;
  options.refresh_interval = interval;
  return options;
}

TEST(Lock, rewrites_its_file_every_refresh_interval) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock lock(*backend, "backup", refreshing_every(std::chrono::milliseconds(5)));
  const auto time_of = [&] { return parse_json_object(content_of(*backend, lock.key())).at("time_ns").get<std::int64_t>(); };
  const std::int64_t first = time_of();
  EXPECT_TRUE(eventually([&] { return time_of() > first; }));
  EXPECT_FALSE(lock.lost());
}

TEST(Lock, is_lost_once_its_file_is_removed_and_never_recreates_it) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock lock(*backend, "backup", refreshing_every(std::chrono::milliseconds(5)));
  backend->remove(lock.key());  // another writer judged it stale
  EXPECT_TRUE(eventually([&] { return lock.lost(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // several more intervals
  EXPECT_EQ(backend->size(lock.key()), std::nullopt);
  // Meanwhile the other writer can take the repository.
  const RepositoryLock other(*backend, "clean");
  EXPECT_FALSE(other.lost());
}

/// A backend that runs `before_put` before each put (to act inside the lock's refresh).
class HookedBackend : public Backend {
 public:
  explicit HookedBackend(Backend& inner) : inner_(inner) {}
  std::function<void(const std::string& name)> before_put;
  std::string location() const override { return inner_.location(); }
  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    if (before_put) {
      before_put(name);
    }
    inner_.put(name, data, overwrite);
  }
  Bytes get(const std::string& name, std::uint64_t max_size) const override { return inner_.get(name, max_size); }
  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    return inner_.get_range(name, offset, length);
  }
  std::optional<std::uint64_t> size(const std::string& name) const override { return inner_.size(name); }
  std::vector<ObjectInfo> list(const std::string& prefix) const override { return inner_.list(prefix); }
  bool empty() const override { return inner_.empty(); }
  void remove(const std::string& name) override { inner_.remove(name); }

 private:
  Backend& inner_;
};

// Another writer removes the lock at the worst moment: after the holder decided to refresh, before
// its write. Rewriting the file in place recreated it there, and the holder never noticed.
TEST(Lock, a_removal_just_before_a_refresh_is_never_undone) {
  TempDir dir;
  auto local = make_local_backend(dir.path());
  HookedBackend hooked(*local);
  const RepositoryLock lock(hooked, "backup", refreshing_every(std::chrono::milliseconds(5)));
  const std::string taken = lock.key();
  std::atomic<bool> removed{false};
  hooked.before_put = [&](const std::string&) {
    if (!removed.exchange(true)) {
      local->remove(taken);  // judged stale by another writer
    }
  };
  EXPECT_TRUE(eventually([&] { return lock.lost(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE(local->list("locks").empty());  // neither the old file nor the refresh is left
  const RepositoryLock other(*local, "clean");
  EXPECT_FALSE(other.lost());
}

TEST(Lock, still_held_checks_the_destination_now) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock lock(*backend, "backup", refreshing_every(std::chrono::hours(1)));
  EXPECT_TRUE(lock.still_held());
  backend->remove(lock.key());
  EXPECT_FALSE(lock.still_held());
  EXPECT_TRUE(lock.lost());
}

TEST(Lock, stale_after_is_a_parameter) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  write_lock(*backend, "elsewhere", "some-other-host.example", 4242, now_ns() - kMinuteNs);
  // A minute old is fresh by default ...
  EXPECT_EQ(error_kind([&] { RepositoryLock lock(*backend, "backup"); }), ErrorKind::locked);
  // ... and stale for writers that agree on 30 seconds.
  LockOptions quick;
  quick.stale_after = std::chrono::seconds(30);
  const RepositoryLock lock(*backend, "backup", quick);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});
}

TEST(Lock, takes_its_time_from_the_env) {
  class FixedTimeEnv final : public EnvWrapper {
   public:
    FixedTimeEnv() : EnvWrapper(Env::default_env()) {}
    std::int64_t now_ns() const override { return 1'800'000'000'123'456'789; }
  };
  FixedTimeEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  // Two hours before the env's "now": stale for this writer, whatever the real time is.
  write_lock(*backend, "elsewhere", "some-other-host.example", 4242, env.now_ns() - 120 * kMinuteNs);
  LockOptions options;
  options.env = &env;
  const RepositoryLock lock(*backend, "backup", options);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});
  EXPECT_EQ(parse_json_object(content_of(*backend, lock.key())).at("time_ns").get<std::int64_t>(), 1800000000123456789LL);
}

// Racing writers may all back off, but two must never hold the lock at the same time.
TEST(Lock, racing_threads_never_hold_it_together) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  constexpr int kThreads = 4;
  constexpr int kAttempts = 25;
  std::atomic<bool> held{false};
  std::atomic<int> overlaps{0};
  std::atomic<int> taken{0};
  std::atomic<int> refused{0};
  std::atomic<int> other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<std::uint32_t>(t + 1));
      for (int attempt = 0; attempt < kAttempts; ++attempt) {
        try {
          const RepositoryLock lock(*backend, "backup");
          if (held.exchange(true)) {
            ++overlaps;  // someone else holds it too
          }
          ++taken;
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          held.store(false);
        } catch (const Error& error) {
          if (error.kind() == ErrorKind::locked) {
            ++refused;
          } else {
            ++other_errors;
          }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(random() % 500));
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(taken.load() + refused.load(), kThreads * kAttempts);
  EXPECT_GE(taken.load(), 1);  // 100 attempts: backing off every time would be a livelock
  // Every writer cleaned up after itself, and the lock can be taken again.
  EXPECT_TRUE(lock_files(*backend).empty());
  const RepositoryLock fresh(*backend, "backup");
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{fresh.key()});
}

TEST(Lock, a_lock_of_a_dead_process_on_this_host_is_broken) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::string foreign = write_lock(*backend, "dead", host_name(), dead_pid(), now_ns());
  const RepositoryLock lock(*backend, "backup");
  EXPECT_EQ(backend->size(foreign), std::nullopt);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});
  const auto members = parse_json_object(content_of(*backend, lock.key()));
  EXPECT_EQ(members.at("pid"), ::getpid());
}

TEST(Lock, a_lock_of_a_live_process_on_this_host_is_respected) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  // pid 1 always exists
  const std::string foreign = write_lock(*backend, "init", host_name(), 1, now_ns() - 5 * kMinuteNs);
  const std::string before = content_of(*backend, foreign);
  const std::string message = error_message([&] { RepositoryLock lock(*backend, "backup"); });
  EXPECT_EQ(error_kind([&] { RepositoryLock lock(*backend, "backup"); }), ErrorKind::locked);
  EXPECT_NE(message.find("pid 1 "), std::string::npos) << message;
  EXPECT_EQ(content_of(*backend, foreign), before);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{foreign});  // ours was removed
}

TEST(Lock, an_old_lock_from_another_host_is_broken) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::int64_t stale_ns = std::chrono::nanoseconds(RepositoryLock::kStaleAfter).count();
  const std::string foreign =
      write_lock(*backend, "elsewhere", "some-other-host.example", 4242, now_ns() - stale_ns - kMinuteNs);
  const RepositoryLock lock(*backend, "backup");
  EXPECT_EQ(backend->size(foreign), std::nullopt);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});
  const auto members = parse_json_object(content_of(*backend, lock.key()));
  EXPECT_EQ(members.at("host"), host_name());
  EXPECT_EQ(members.at("pid"), ::getpid());
}

// Found by fuzz/lock_fuzz.cpp: the age of a lock dated near the start of 64-bit time overflowed.
TEST(Lock, locks_dated_at_the_ends_of_time_are_judged_without_overflow) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::string past = write_lock(*backend, "elsewhere", "some-other-host.example", 4242,
                                      std::numeric_limits<std::int64_t>::min());
  const RepositoryLock lock(*backend, "backup");
  EXPECT_EQ(backend->size(past), std::nullopt);  // stale: broken
  const std::string future = write_lock(*backend, "later", "some-other-host.example", 4242,
                                        std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(error_kind([&] { RepositoryLock second(*backend, "backup"); }), ErrorKind::locked);
  EXPECT_NE(backend->size(future), std::nullopt);
}

TEST(Lock, a_fresh_lock_from_another_host_is_locked) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::int64_t stale_ns = std::chrono::nanoseconds(RepositoryLock::kStaleAfter).count();
  // Not refreshed for a while, but not yet for kStaleAfter; its pid does not exist here, which
  // must not matter for a lock held on another machine.
  const long pid = dead_pid();
  const std::string foreign = write_lock(*backend, "elsewhere", "some-other-host.example", pid,
                                         now_ns() - stale_ns + 5 * kMinuteNs, "clean");
  const std::string before = content_of(*backend, foreign);
  EXPECT_EQ(error_kind([&] { RepositoryLock lock(*backend, "backup"); }), ErrorKind::locked);
  const std::string message = error_message([&] { RepositoryLock lock(*backend, "backup"); });
  EXPECT_NE(message.find("some-other-host.example"), std::string::npos) << message;
  EXPECT_NE(message.find("clean"), std::string::npos) << message;
  EXPECT_NE(message.find("pid " + std::to_string(pid)), std::string::npos) << message;
  EXPECT_EQ(content_of(*backend, foreign), before);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{foreign});
}

TEST(Lock, stale_locks_are_removed_but_a_live_one_among_them_still_refuses) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::int64_t stale_ns = std::chrono::nanoseconds(RepositoryLock::kStaleAfter).count();
  // Sorted before the live one, so they are judged (and removed) first.
  const std::string dead = write_lock(*backend, "a000000000000001", host_name(), dead_pid(), now_ns());
  const std::string old = write_lock(*backend, "b000000000000002", "some-other-host.example", 4242, now_ns() - 2 * stale_ns);
  const std::string live = write_lock(*backend, "c000000000000003", "some-other-host.example", 4343, now_ns());
  EXPECT_EQ(error_kind([&] { RepositoryLock lock(*backend, "backup"); }), ErrorKind::locked);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{live});
  // Once the live holder is gone, the lock is free.
  backend->remove(live);
  const RepositoryLock lock(*backend, "backup");
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});
}

TEST(Lock, an_unreadable_lock_file_is_locked_and_left_alone) {
  const std::vector<std::string> garbage = {
      "",                                          // empty
      "\x01\x02 not a lock \xff\xfe",              // binary junk
      "{\"host\": \"laptop\", \"pid\": 4",         // truncated
      "{}",                                        // no members
      "[1, 2, 3]",                                 // not an object
      "{\"host\": \"laptop\", \"pid\": \"x\", \"time_ns\": 1}",  // pid not a number
      "{\"host\": \"\", \"pid\": 1, \"time_ns\": 1}",            // empty host
      // Found by fuzz/lock_fuzz.cpp: get<long>() of these was undefined behaviour.
      "{\"host\": \"laptop\", \"pid\": 1e300, \"time_ns\": 1}",      // pid not a whole number
      "{\"host\": \"laptop\", \"pid\": 1, \"time_ns\": -1.5e300}",  // time not a whole number
  };
  for (const std::string& content : garbage) {
    SCOPED_TRACE(content);
    TempDir dir;
    auto backend = make_local_backend(dir.path());
    const std::string key = foreign_key("garbage");
    backend->put(key, as_bytes(content), Overwrite::no);
    const testing::ErrorOutcome outcome = error_kind([&] { RepositoryLock lock(*backend, "backup"); });
    EXPECT_EQ(outcome, ErrorKind::locked) << outcome;
    EXPECT_NE(outcome.message().find("unreadable"), std::string::npos) << outcome;
    EXPECT_NE(outcome.message().find(dir / key), std::string::npos) << outcome;  // says which file
    EXPECT_EQ(content_of(*backend, key), content);  // not removed: it might be a live writer's
    EXPECT_EQ(lock_files(*backend), std::vector<std::string>{key});
  }
}

}  // namespace
}  // namespace mybackup

namespace mybackup {
namespace {

TEST(Lock, ObjectsInLocksThatAreNotLockNamesAreNeitherReadNorRemoved) {
  testing::TempDir dir;
  auto backend = make_local_backend(dir.path());
  // Not a lock's name: a writer must not read it (it may be huge, or a FIFO) nor delete it.
  backend->put("locks/notes.json", as_bytes("{\"host\": \"x\"}"), Overwrite::no);
  {
    const RepositoryLock lock(*backend, "backup");
    EXPECT_TRUE(object_names::is_lock(lock.key()));
  }
  EXPECT_EQ(as_text(backend->get("locks/notes.json", 100)), "{\"host\": \"x\"}");
}

}  // namespace
}  // namespace mybackup
