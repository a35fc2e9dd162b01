#include "mybackup/legacy/scheduler_service.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::catch_error;
using testing::TempDir;
using testing::write_text_file;

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;

/// A UTC instant in ns.
std::int64_t utc(int year, int month, int day, int hour, int minute, int second = 0) {
  std::tm parts{};
  parts.tm_year = year - 1900;
  parts.tm_mon = month - 1;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&parts)) * kSecond;
}

Schedule at(int hour, int minute, const std::string& name = "s") {
  Schedule schedule;
  schedule.path = "/x";
  schedule.hour = hour;
  schedule.minute = minute;
  schedule.name = name;
  return schedule;
}

/// Runs each test in a fixed time zone (Europe/Paris: CET/CEST, DST on 2026-03-29 and 2026-10-25).
class InTimeZone : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* tz = std::getenv("TZ")) {
      saved_tz_ = tz;
    }
    ::setenv("TZ", "Europe/Paris", 1);
    ::tzset();
  }
  void TearDown() override {
    if (saved_tz_) {
      ::setenv("TZ", saved_tz_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }

 private:
  std::optional<std::string> saved_tz_;
};

// ---------------------------------------------------------------- due-time computation

using DueTime = InTimeZone;

TEST_F(DueTime, LocalOccurrenceIsTheLocalTimeOfThatDay) {
  const std::int64_t noon = utc(2026, 11, 21, 11, 0);  // 12:00 CET
  EXPECT_EQ(local_occurrence(9, 0, noon), utc(2026, 11, 21, 8, 0));
  EXPECT_EQ(local_occurrence(18, 30, noon), utc(2026, 11, 21, 17, 30));
  EXPECT_EQ(local_occurrence(9, 0, noon, 1), utc(2026, 11, 22, 8, 0));
  EXPECT_EQ(local_occurrence(0, 0, noon, 10), utc(2026, 11, 30, 23, 0));  // month end
  // 00:30 local on the 22nd is still the 21st in UTC: the local day counts.
  EXPECT_EQ(local_occurrence(23, 0, utc(2026, 11, 21, 23, 30)), utc(2026, 11, 22, 22, 0));
}

TEST_F(DueTime, AcrossMidnight) {
  const Schedule midnight = at(0, 0);
  const std::int64_t now = utc(2026, 11, 21, 22, 59, 30);  // 23:59:30 CET
  EXPECT_EQ(next_occurrence(midnight, now), utc(2026, 11, 21, 23, 0));  // in 30 s
  // Ran at today's 00:00: next is tomorrow's 00:00, 30 s away.
  EXPECT_EQ(due_time(midnight, utc(2026, 11, 20, 23, 0), now), utc(2026, 11, 21, 23, 0));
  // Never ran: today's 00:00 is due at once (catch-up decides whether to use it).
  EXPECT_EQ(due_time(midnight, 0, now), utc(2026, 11, 20, 23, 0));
  const Schedule late = at(23, 59);
  EXPECT_EQ(next_occurrence(late, utc(2026, 11, 21, 22, 59, 0)), utc(2026, 11, 22, 22, 59));
  EXPECT_EQ(next_occurrence(late, utc(2026, 11, 21, 22, 58, 59)), utc(2026, 11, 21, 22, 59));
}

TEST_F(DueTime, SpringForwardDay) {
  // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
  const std::int64_t day = utc(2026, 3, 29, 10, 0);
  EXPECT_EQ(local_occurrence(1, 59, day), utc(2026, 3, 29, 0, 59));
  EXPECT_EQ(local_occurrence(2, 30, day), utc(2026, 3, 29, 1, 0));  // does not exist: at the jump
  EXPECT_EQ(local_occurrence(2, 0, day), utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(local_occurrence(3, 0, day), utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(local_occurrence(9, 0, day), utc(2026, 3, 29, 7, 0));
  // The day before and after keep their own offsets: 09:00 is 23 h after the previous 09:00.
  const Schedule nine = at(9, 0);
  const std::int64_t before = local_occurrence(9, 0, utc(2026, 3, 28, 12, 0));
  EXPECT_EQ(before, utc(2026, 3, 28, 8, 0));
  EXPECT_EQ(due_time(nine, before, before + kSecond), utc(2026, 3, 29, 7, 0));
  EXPECT_EQ(utc(2026, 3, 29, 7, 0) - before, 23 * kHour);
  EXPECT_EQ(next_occurrence(at(2, 30), utc(2026, 3, 28, 12, 0)), utc(2026, 3, 29, 1, 0));
}

TEST_F(DueTime, FallBackDayTakesTheFirstOccurrence) {
  // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:30 happens twice.
  const std::int64_t day = utc(2026, 10, 25, 10, 0);
  EXPECT_EQ(local_occurrence(2, 30, day), utc(2026, 10, 25, 0, 30));
  EXPECT_EQ(local_occurrence(1, 30, day), utc(2026, 10, 24, 23, 30));
  EXPECT_EQ(local_occurrence(3, 30, day), utc(2026, 10, 25, 2, 30));
  const Schedule nine = at(9, 0);
  const std::int64_t before = utc(2026, 10, 24, 7, 0);  // 09:00 CEST
  EXPECT_EQ(due_time(nine, before, before + kSecond), utc(2026, 10, 25, 8, 0));  // 25 h later
  // Run at the first 02:30: during the second 02:30 it is not due again.
  const Schedule half_two = at(2, 30);
  const std::int64_t first = utc(2026, 10, 25, 0, 30);
  EXPECT_EQ(due_time(half_two, first, utc(2026, 10, 25, 1, 30)), utc(2026, 10, 26, 1, 30));
}

// ---------------------------------------------------------------- the service, on a fake clock

class FakeClock final : public Clock {
 public:
  std::int64_t now_ns() const override { return now; }
  std::int64_t now = 0;
};

/// Never sleeps: each wait jumps the clock to the deadline, unless `on_wait` handles it (returns
/// true). Stops the service once a deadline lies after `stop_after`.
class FakeWaiter final : public ServiceWaiter {
 public:
  explicit FakeWaiter(FakeClock& clock) : clock_(clock) {}
  void wait_until(std::int64_t deadline_ns) override {
    deadlines.push_back(deadline_ns);
    ++waits;
    if (on_wait && on_wait(deadline_ns)) {
      return;
    }
    if (deadline_ns > stop_after || waits > 1000) {
      stop = true;
      return;
    }
    clock_.now = deadline_ns;
  }
  bool stop_requested() override { return stop; }

  std::int64_t stop_after = 0;
  std::function<bool(std::int64_t)> on_wait;
  std::vector<std::int64_t> deadlines;
  int waits = 0;
  bool stop = false;

 private:
  FakeClock& clock_;
};

/// Records every event as a line of text, with the fake time in UTC.
class Recorder final : public ServiceObserver {
 public:
  explicit Recorder(const FakeClock& clock) : clock_(clock) {}
  void started(std::size_t n) override { add("started " + std::to_string(n)); }
  void reloaded(std::size_t n) override { add("reloaded " + std::to_string(n)); }
  void reload_failed(const Error& error) override { add(std::string("reload_failed ") + error.what()); }
  void catching_up(const Schedule& s, std::int64_t missed) override { add("catch_up " + s.name + " " + format_utc(missed)); }
  void skipping_missed(const Schedule& s, std::int64_t) override { add("skip " + s.name); }
  void archive_started(const Schedule& s, const std::string&) override {
    add("run " + s.name);
    runs.push_back(s.name + "@" + format_utc(clock_.now));
  }
  void archive_finished(const Schedule& s, const ArchiveResult& r, std::int64_t) override {
    add("done " + s.name + " " + std::to_string(r.files));
  }
  void archive_failed(const Schedule& s, const Error& e, std::int64_t) override {
    add("failed " + s.name + " " + std::string(to_string(e.kind())));
  }
  void next_due(const Schedule* s, std::int64_t due) override { add("next " + (s ? s->name + " " + format_utc(due) : "none")); }
  void stopping() override { add("stopping"); }

  bool has(const std::string& line) const { return std::find(events.begin(), events.end(), line) != events.end(); }
  std::string all() const {
    std::string text;
    for (const std::string& event : events) {
      text += event + "\n";
    }
    return text;
  }

  std::vector<std::string> events;
  std::vector<std::string> runs;  // "name@time" of every archive started

 private:
  void add(const std::string& line) { events.push_back(line); }
  const FakeClock& clock_;
};

class Service : public InTimeZone {
 protected:
  void SetUp() override {
    InTimeZone::SetUp();
    ASSERT_EQ(::mkdir((dir_ / "documents").c_str(), 0755), 0);
    write_text_file(dir_ / "documents/a.txt", "alpha");
    settings_.schedule_file = dir_ / "backup_schedules.txt";
    settings_.archive_directory = dir_ / "backups";
    settings_.base_directory = dir_.path();
  }

  void schedules(const std::string& text) { write_text_file(settings_.schedule_file, text); }

  void run_service() { SchedulerService(settings_, clock_, waiter_, recorder_).run(); }

  /// Gives <name>.tar a modification time on the fake clock's scale.
  void archive_made_at(const std::string& name, std::int64_t when) {
    ::mkdir(settings_.archive_directory.c_str(), 0755);
    const std::string path = settings_.archive_directory + "/" + name + ".tar";
    write_text_file(path, "old");
    const timespec times[2] = {{when / kSecond, 0}, {when / kSecond, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }

  TempDir dir_{"scheduler_service_test_"};
  ServiceSettings settings_;
  FakeClock clock_;
  FakeWaiter waiter_{clock_};
  Recorder recorder_{clock_};
};

TEST_F(Service, CatchesUpOnceAtStartThenRunsDailyAtItsTime) {
  schedules("# mine\ndocuments;09:00;docs\n");
  clock_.now = utc(2026, 11, 21, 9, 15);  // 10:15 CET: today's 09:00 was missed
  waiter_.stop_after = utc(2026, 11, 23, 12, 0);
  run_service();
  EXPECT_TRUE(recorder_.has("catch_up docs 2026-11-21T08:00:00Z")) << recorder_.all();
  EXPECT_EQ(recorder_.runs, (std::vector<std::string>{"docs@2026-11-21T09:15:00Z", "docs@2026-11-22T08:00:00Z",
                                                      "docs@2026-11-23T08:00:00Z"}))
      << recorder_.all();
  EXPECT_TRUE(recorder_.has("done docs 1")) << recorder_.all();
  // It waited for exactly the due times: no polling.
  EXPECT_EQ(waiter_.deadlines, (std::vector<std::int64_t>{utc(2026, 11, 22, 8, 0), utc(2026, 11, 23, 8, 0),
                                                          utc(2026, 11, 24, 8, 0)}));
  EXPECT_EQ(recorder_.events.back(), "stopping");
  EXPECT_TRUE(testing::files_under(settings_.archive_directory) == std::vector<std::string>{"docs.tar"});
}

TEST_F(Service, WithoutCatchUpTheMissedArchiveWaitsForTomorrow) {
  settings_.catch_up = false;
  schedules("documents;09:00;docs\n");
  clock_.now = utc(2026, 11, 21, 9, 15);
  waiter_.stop_after = utc(2026, 11, 22, 12, 0);
  run_service();
  EXPECT_TRUE(recorder_.has("skip docs")) << recorder_.all();
  EXPECT_EQ(recorder_.runs, std::vector<std::string>{"docs@2026-11-22T08:00:00Z"}) << recorder_.all();
}

TEST_F(Service, NoCatchUpWhenTodaysArchiveExistsOrTheTimeIsStillAhead) {
  schedules("documents;09:00;done_today\ndocuments;11:00;later\n");
  archive_made_at("done_today", utc(2026, 11, 21, 8, 0, 5));
  clock_.now = utc(2026, 11, 21, 9, 15);  // 10:15 CET
  waiter_.stop_after = utc(2026, 11, 21, 12, 0);
  run_service();
  EXPECT_EQ(recorder_.runs, std::vector<std::string>{"later@2026-11-21T10:00:00Z"}) << recorder_.all();
  EXPECT_FALSE(recorder_.has("catch_up done_today 2026-11-21T08:00:00Z")) << recorder_.all();
  EXPECT_EQ(waiter_.deadlines.front(), utc(2026, 11, 21, 10, 0));
}

TEST_F(Service, AnArchiveOfYesterdayDoesNotCountForToday) {
  schedules("documents;09:00;docs\n");
  archive_made_at("docs", utc(2026, 11, 20, 8, 0, 5));
  clock_.now = utc(2026, 11, 21, 9, 15);
  waiter_.stop_after = utc(2026, 11, 21, 12, 0);
  run_service();
  EXPECT_EQ(recorder_.runs, std::vector<std::string>{"docs@2026-11-21T09:15:00Z"}) << recorder_.all();
}

TEST_F(Service, AMissingSourceIsLoggedAndTheServiceGoesOn) {
  schedules("gone;09:00;broken\ndocuments;09:00;docs\n");
  clock_.now = utc(2026, 11, 21, 7, 0);
  waiter_.stop_after = utc(2026, 11, 22, 12, 0);
  run_service();
  EXPECT_EQ(recorder_.runs, (std::vector<std::string>{"broken@2026-11-21T08:00:00Z", "docs@2026-11-21T08:00:00Z",
                                                      "broken@2026-11-22T08:00:00Z", "docs@2026-11-22T08:00:00Z"}))
      << recorder_.all();
  EXPECT_TRUE(recorder_.has("failed broken not_found")) << recorder_.all();
  EXPECT_TRUE(recorder_.has("done docs 1")) << recorder_.all();
}

TEST_F(Service, ReloadsAChangedFileWithoutRestart) {
  schedules("documents;09:00;docs\n");
  clock_.now = utc(2026, 11, 21, 7, 0);  // 08:00 CET
  waiter_.stop_after = utc(2026, 11, 21, 23, 0);
  waiter_.on_wait = [&](std::int64_t) {
    if (waiter_.waits == 1) {  // woken by the change, at 08:30 CET
      schedules("documents;09:00;docs\n# added\ndocuments;10:00;extra\n");
      clock_.now = utc(2026, 11, 21, 7, 30);
      return true;
    }
    if (waiter_.waits == 3) {  // a broken edit: the schedules in force stay
      schedules("documents;10:00;extra\nnonsense\n");
      return true;
    }
    return false;
  };
  run_service();
  EXPECT_TRUE(recorder_.has("reloaded 2")) << recorder_.all();
  EXPECT_EQ(recorder_.runs, (std::vector<std::string>{"docs@2026-11-21T08:00:00Z", "extra@2026-11-21T09:00:00Z"}))
      << recorder_.all();
  bool failed = false;
  for (const std::string& event : recorder_.events) {
    failed = failed || event.find("reload_failed " + settings_.schedule_file + ":2: ") == 0;
  }
  EXPECT_TRUE(failed) << recorder_.all();
  EXPECT_TRUE(recorder_.has("next docs 2026-11-22T08:00:00Z")) << recorder_.all();  // still in force
}

TEST_F(Service, AScheduleAddedAfterItsTimeStartsTomorrow) {
  schedules("");
  clock_.now = utc(2026, 11, 21, 11, 0);
  waiter_.stop_after = utc(2026, 11, 22, 23, 0);
  waiter_.on_wait = [&](std::int64_t deadline) {
    EXPECT_LE(deadline, clock_.now + kDay);
    if (waiter_.waits == 1) {
      schedules("documents;09:00;docs\n");  // 09:00 has passed today
      return true;
    }
    return false;
  };
  run_service();
  EXPECT_TRUE(recorder_.has("next none")) << recorder_.all();
  EXPECT_EQ(recorder_.runs, std::vector<std::string>{"docs@2026-11-22T08:00:00Z"}) << recorder_.all();
}

TEST_F(Service, ClockJumpsRunOncePerDay) {
  schedules("documents;09:00;docs\n");
  clock_.now = utc(2026, 11, 21, 7, 0);
  waiter_.stop_after = utc(2026, 11, 30, 0, 0);
  waiter_.on_wait = [&](std::int64_t) {
    if (waiter_.waits == 2) {  // after the 09:00 run: the clock is set back to 08:30 the same day
      clock_.now = utc(2026, 11, 21, 7, 30);
      return true;
    }
    if (waiter_.waits == 4) {  // then jumps three days ahead, past the due time
      clock_.now = utc(2026, 11, 25, 12, 0);
      return true;
    }
    return false;
  };
  run_service();
  EXPECT_EQ(recorder_.runs, (std::vector<std::string>{"docs@2026-11-21T08:00:00Z", "docs@2026-11-22T08:00:00Z",
                                                      "docs@2026-11-25T12:00:00Z", "docs@2026-11-26T08:00:00Z",
                                                      "docs@2026-11-27T08:00:00Z", "docs@2026-11-28T08:00:00Z",
                                                      "docs@2026-11-29T08:00:00Z"}))
      << recorder_.all();
}

TEST_F(Service, RunsAcrossTheSpringForwardGap) {
  settings_.catch_up = false;  // 02:30 of the 28th has passed: not made at start-up
  schedules("documents;02:30;night\n");
  clock_.now = utc(2026, 3, 28, 11, 0);
  waiter_.stop_after = utc(2026, 3, 30, 12, 0);
  run_service();
  // 02:30 does not exist on the 29th: it runs when the clock jumps to 03:00 CEST.
  EXPECT_EQ(recorder_.runs, (std::vector<std::string>{"night@2026-03-29T01:00:00Z", "night@2026-03-30T00:30:00Z"}))
      << recorder_.all();
}

TEST_F(Service, AStopRequestEndsTheLoop) {
  schedules("documents;09:00;docs\n");
  clock_.now = utc(2026, 11, 21, 7, 0);
  waiter_.on_wait = [&](std::int64_t) {
    waiter_.stop = true;  // SIGTERM while waiting
    return true;
  };
  run_service();
  EXPECT_TRUE(recorder_.runs.empty());
  EXPECT_EQ(waiter_.waits, 1);
  EXPECT_EQ(recorder_.events.back(), "stopping");
}

TEST_F(Service, AnInvalidFileAtStartIsAConfigError) {
  schedules("documents;09:00;docs\ndocuments;9:00;bad\n");
  const Error error = catch_error([&] { run_service(); });
  EXPECT_EQ(error.kind(), ErrorKind::config);
  EXPECT_NE(std::string(error.what()).find(settings_.schedule_file + ":2: the time '9:00'"), std::string::npos)
      << error.what();
  EXPECT_EQ(waiter_.waits, 0);
}

// ---------------------------------------------------------------- the real waiter

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(SystemWaiter, WakesOnAChangeOfTheFileAndStopsOnSigterm) {
  TempDir dir("system_waiter_test_");
  const std::string file = dir / "backup_schedules.txt";
  write_text_file(file, "");
  {
    SystemWaiter waiter(file, system_clock());
    EXPECT_FALSE(waiter.stop_requested());

    // Another file of the directory does not end the wait early.
    write_file_atomic(dir / "other.txt", as_bytes("x"));
    auto start = std::chrono::steady_clock::now();
    waiter.wait_until(system_clock().now_ns() + 300 * 1'000'000);
    EXPECT_GE(seconds_since(start), 0.25);

    // A replacement of the schedule file (rename over it, as every edit does) ends it at once.
    write_file_atomic(file, as_bytes("documents;09:00;docs\n"));
    start = std::chrono::steady_clock::now();
    waiter.wait_until(system_clock().now_ns() + 20 * kSecond);
    EXPECT_LT(seconds_since(start), 5.0);

    // A deadline in the past returns at once.
    start = std::chrono::steady_clock::now();
    waiter.wait_until(system_clock().now_ns() - kSecond);
    EXPECT_LT(seconds_since(start), 1.0);

    // SIGTERM is blocked and read from the signalfd: a stop request, not the end of the process.
    ASSERT_EQ(::raise(SIGTERM), 0);
    EXPECT_TRUE(waiter.stop_requested());
    start = std::chrono::steady_clock::now();
    waiter.wait_until(system_clock().now_ns() + 20 * kSecond);
    EXPECT_LT(seconds_since(start), 1.0);
    EXPECT_TRUE(waiter.stop_requested());  // it stays requested
  }
  sigset_t mask;
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &mask), 0);
  EXPECT_EQ(sigismember(&mask, SIGTERM), 0);  // the mask is restored
  EXPECT_EQ(sigismember(&mask, SIGINT), 0);
}

}  // namespace
}  // namespace mybackup
