#include "mybackup/repository/lock.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/repository/object_names.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
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

/// Writes locks/<name>.json as a writer of this version would, with its boot and pid namespace.
std::string write_identified_lock(Backend& backend, const std::string& name, const ProcessIdentity& holder,
                                  std::int64_t time_ns) {
  const nlohmann::json lock = {{"host", holder.host},     {"pid", holder.pid},       {"boot_id", holder.boot_id},
                               {"pid_ns", holder.pid_ns}, {"purpose", "backup"},    {"time_ns", time_ns},
                               {"time", format_utc(time_ns)}};
  const std::string key = foreign_key(name);
  backend.put(key, as_bytes(lock.dump() + "\n"), Overwrite::no);
  return key;
}

/// A holder of this boot and pid namespace whose process no longer exists.
ProcessIdentity dead_holder_here() {
  ProcessIdentity dead = Env::default_env().process_identity();
  dead.pid = dead_pid();
  return dead;
}

constexpr std::int64_t kFakeNow = 1'800'000'000'000'000'000;

/// A writer's clock and identity set by hand (host, boot, pid namespace), and which pids exist.
class FakeIdentityEnv final : public EnvWrapper {
 public:
  FakeIdentityEnv() : EnvWrapper(Env::default_env()) {
    self.host = "box.example";
    self.pid = 100;
    self.boot_id = "11111111-2222-3333-4444-555555555555";
    self.pid_ns = 4026531836;
    self.boot_started_ns = kFakeNow - 10 * kMinuteNs;
  }
  std::int64_t now_ns() const override { return now; }
  ProcessIdentity process_identity() override { return self; }
  bool process_exists(long pid) override { return live_pids.count(pid) != 0; }

  /// Another writer: this one's identity with pid `pid`.
  ProcessIdentity other(long pid) const {
    ProcessIdentity holder = self;
    holder.pid = pid;
    return holder;
  }
  LockOptions options() {
    LockOptions options;
    options.env = this;
    return options;
  }

  std::int64_t now = kFakeNow;
  ProcessIdentity self;
  std::set<long> live_pids;
};

/// Whether a writer with `env` takes the lock (true), or is refused with Error(locked) (false).
bool takes_the_lock(Backend& backend, FakeIdentityEnv& env) {
  try {
    const RepositoryLock lock(backend, "backup", env.options());
    return true;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::locked) << error.what();
    return false;
  }
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
  ASSERT_EQ(members.size(), 7U) << content;
  EXPECT_EQ(members.at("host"), host_name());
  EXPECT_EQ(members.at("pid"), ::getpid());
  const ProcessIdentity self = Env::default_env().process_identity();
  EXPECT_EQ(members.at("boot_id"), self.boot_id);
  EXPECT_EQ(members.at("pid_ns"), self.pid_ns);
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
    foreign = write_identified_lock(*backend, "someone-else", dead_holder_here(), now_ns());
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
  const std::string foreign = write_identified_lock(*backend, "dead", dead_holder_here(), now_ns());
  const RepositoryLock lock(*backend, "backup");
  EXPECT_EQ(backend->size(foreign), std::nullopt);
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{lock.key()});
  const auto members = parse_json_object(content_of(*backend, lock.key()));
  EXPECT_EQ(members.at("pid"), ::getpid());
}

TEST(Lock, the_default_env_tells_who_this_process_is) {
  const ProcessIdentity self = Env::default_env().process_identity();
  EXPECT_EQ(self.host, host_name());
  EXPECT_EQ(self.pid, ::getpid());
  std::ifstream boot_id_file("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  std::getline(boot_id_file, boot_id);
  EXPECT_EQ(self.boot_id, boot_id);
  EXPECT_EQ(self.boot_id.size(), 36U) << self.boot_id;
  struct stat ns {};
  ASSERT_EQ(::stat("/proc/self/ns/pid", &ns), 0);
  EXPECT_EQ(self.pid_ns, ns.st_ino);
  EXPECT_GT(self.boot_started_ns, 0);
  EXPECT_LT(self.boot_started_ns, now_ns());
  EXPECT_TRUE(Env::default_env().process_exists(::getpid()));
  EXPECT_TRUE(Env::default_env().process_exists(1));
  EXPECT_FALSE(Env::default_env().process_exists(dead_pid()));
  EXPECT_FALSE(Env::default_env().process_exists(0));
  EXPECT_FALSE(Env::default_env().process_exists(-1));
  EXPECT_FALSE(Env::default_env().process_exists(std::numeric_limits<long>::max()));
}

TEST(Lock, records_the_identity_of_its_env) {
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock lock(*backend, "clean", env.options());
  const std::string content = content_of(*backend, lock.key());
  const auto members = parse_json_object(content);
  ASSERT_EQ(members.size(), 7U) << content;
  EXPECT_EQ(members.at("host"), "box.example");
  EXPECT_EQ(members.at("pid"), 100);
  EXPECT_EQ(members.at("boot_id"), "11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(members.at("pid_ns"), 4026531836U);
  EXPECT_EQ(members.at("purpose"), "clean");
  EXPECT_EQ(members.at("time_ns"), kFakeNow);
}

TEST(Lock, an_identity_the_system_does_not_tell_is_left_out) {
  FakeIdentityEnv env;
  env.self.boot_id.clear();
  env.self.pid_ns = 0;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const RepositoryLock lock(*backend, "backup", env.options());
  const auto members = parse_json_object(content_of(*backend, lock.key()));
  EXPECT_EQ(members.size(), 5U);
  EXPECT_EQ(members.count("boot_id"), 0U);
  EXPECT_EQ(members.count("pid_ns"), 0U);
}

// Issue 11, item 7: the rules of lock.hpp, one by one, with a faked identity and clock.
TEST(Lock, same_boot_and_pid_namespace_and_a_dead_pid_is_stale) {
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::string foreign = write_identified_lock(*backend, "dead", env.other(4242), env.now - kMinuteNs);
  EXPECT_TRUE(takes_the_lock(*backend, env));
  EXPECT_EQ(backend->size(foreign), std::nullopt);
}

TEST(Lock, same_boot_and_pid_namespace_and_a_live_pid_is_respected) {
  FakeIdentityEnv env;
  env.live_pids.insert(4242);
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::string foreign = write_identified_lock(*backend, "live", env.other(4242), env.now - kMinuteNs);
  EXPECT_FALSE(takes_the_lock(*backend, env));
  EXPECT_NE(backend->size(foreign), std::nullopt);
}

TEST(Lock, another_pid_namespace_on_this_host_is_never_judged_by_pid) {
  // Two containers sharing a host name (and a kernel): pid 4242 there is not pid 4242 here.
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  ProcessIdentity container = env.other(4242);
  container.pid_ns = 4026532500;
  const std::string foreign = write_identified_lock(*backend, "container", container, env.now - kMinuteNs);
  EXPECT_FALSE(takes_the_lock(*backend, env));
  EXPECT_NE(backend->size(foreign), std::nullopt);
  // Only once it is not refreshed for stale_after.
  env.now += std::chrono::nanoseconds(RepositoryLock::kStaleAfter).count();
  EXPECT_TRUE(takes_the_lock(*backend, env));
  EXPECT_EQ(backend->size(foreign), std::nullopt);
}

TEST(Lock, another_host_with_our_boot_and_namespace_is_never_judged_by_pid) {
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  ProcessIdentity elsewhere = env.other(4242);
  elsewhere.host = "other.example";
  write_identified_lock(*backend, "elsewhere", elsewhere, env.now - kMinuteNs);
  EXPECT_FALSE(takes_the_lock(*backend, env));
}

TEST(Lock, a_lock_without_boot_and_namespace_is_judged_by_age_only) {
  // Written by an older version on this host: its pid may be another boot's or container's.
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::string foreign = write_lock(*backend, "old", env.self.host, 4242, env.now - kMinuteNs);
  EXPECT_FALSE(takes_the_lock(*backend, env));
  env.now += std::chrono::nanoseconds(RepositoryLock::kStaleAfter).count();
  EXPECT_TRUE(takes_the_lock(*backend, env));
  EXPECT_EQ(backend->size(foreign), std::nullopt);
}

TEST(Lock, a_lock_of_an_earlier_boot_refreshed_before_this_boot_is_stale) {
  FakeIdentityEnv env;  // booted 10 minutes ago
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  ProcessIdentity earlier = env.other(4242);
  earlier.boot_id = "99999999-2222-3333-4444-555555555555";
  env.live_pids.insert(4242);  // a pid of the earlier boot means nothing now
  const std::string foreign = write_identified_lock(*backend, "earlier", earlier, env.self.boot_started_ns - kMinuteNs);
  EXPECT_TRUE(takes_the_lock(*backend, env));
  EXPECT_EQ(backend->size(foreign), std::nullopt);
}

TEST(Lock, a_lock_of_another_boot_refreshed_since_this_boot_is_respected) {
  // Another machine with the same host name, still refreshing its lock.
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  ProcessIdentity other = env.other(4242);
  other.boot_id = "99999999-2222-3333-4444-555555555555";
  write_identified_lock(*backend, "other", other, env.self.boot_started_ns + kMinuteNs);
  EXPECT_FALSE(takes_the_lock(*backend, env));
}

TEST(Lock, a_lock_of_another_boot_refreshed_moments_ago_is_respected_even_before_this_boot) {
  // This machine booted 30 seconds ago; the other one (same host name) refreshed 40 seconds ago,
  // within its refresh interval: it may well be alive.
  FakeIdentityEnv env;
  env.self.boot_started_ns = env.now - 30'000'000'000;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  ProcessIdentity other = env.other(4242);
  other.boot_id = "99999999-2222-3333-4444-555555555555";
  write_identified_lock(*backend, "other", other, env.now - 40'000'000'000);
  EXPECT_FALSE(takes_the_lock(*backend, env));
}

TEST(Lock, a_lock_dated_in_the_future_is_refused_naming_the_file_and_the_clocks) {
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const std::int64_t stale_ns = std::chrono::nanoseconds(RepositoryLock::kStaleAfter).count();
  // Even a lock that every other rule calls stale (this boot, a dead pid).
  const std::string foreign = write_identified_lock(*backend, "later", env.other(4242), env.now + stale_ns + kMinuteNs);
  const std::string before = content_of(*backend, foreign);
  std::string message;
  try {
    const RepositoryLock lock(*backend, "backup", env.options());
    ADD_FAILURE() << "took the lock";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::locked);
    message = error.what();
  }
  EXPECT_NE(message.find("dated in the future"), std::string::npos) << message;
  EXPECT_NE(message.find(dir.path() + "/" + foreign), std::string::npos) << message;
  EXPECT_NE(message.find("check the clocks"), std::string::npos) << message;
  EXPECT_NE(message.find("delete that file if no other mybackup is writing"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_EQ(content_of(*backend, foreign), before);  // never ignored, never removed
  EXPECT_EQ(lock_files(*backend), std::vector<std::string>{foreign});
  // Once the clocks agree within stale_after, the other rules apply (here: a dead pid of this boot).
  env.now += 2 * kMinuteNs;
  EXPECT_TRUE(takes_the_lock(*backend, env));
  EXPECT_EQ(backend->size(foreign), std::nullopt);
}

TEST(Lock, a_lock_slightly_in_the_future_is_a_live_holder) {
  // Within stale_after ahead: clocks a little apart, the usual "locked by" refusal.
  FakeIdentityEnv env;
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  ProcessIdentity elsewhere = env.other(4242);
  elsewhere.host = "other.example";
  write_identified_lock(*backend, "soon", elsewhere, env.now + 5 * kMinuteNs);
  std::string message;
  try {
    const RepositoryLock lock(*backend, "backup", env.options());
    ADD_FAILURE() << "took the lock";
  } catch (const Error& error) {
    message = error.what();
  }
  EXPECT_NE(message.find("locked by backup (pid 4242 on other.example"), std::string::npos) << message;
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
  const std::string dead = write_identified_lock(*backend, "a000000000000001", dead_holder_here(), now_ns());
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
