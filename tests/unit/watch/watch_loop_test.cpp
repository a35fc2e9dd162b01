// The scheduling of `mybackup watch`: a fake clock and scripted changes, nothing sleeps.

#include "mybackup/watch/watch_loop.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

namespace mybackup {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kS = 1'000'000'000;

class FakeClock final : public Clock {
 public:
  std::int64_t now_ns() const override { return now; }
  std::int64_t now = 0;
};

/// Changes at scripted times; each wait jumps the clock to the next change or to the deadline.
/// Stops once the clock reaches `end`.
class ScriptedEvents final : public WatchEvents {
 public:
  explicit ScriptedEvents(FakeClock& clock, std::int64_t end) : clock_(clock), end_(end) {}
  bool wait_until(std::int64_t deadline_ns) override {
    ++waits;
    if (!changes.empty() && changes.front() <= deadline_ns) {
      // Every change already due arrives at once, as the kernel queues them.
      clock_.now = std::max(clock_.now, changes.front());
      while (!changes.empty() && changes.front() <= clock_.now) {
        changes.pop_front();
      }
      return true;
    }
    clock_.now = std::max(clock_.now, std::min(deadline_ns, end_));
    return false;
  }
  bool stop_requested() override { return clock_.now >= end_ || waits > 1'000'000; }

  std::deque<std::int64_t> changes;  // sorted times
  int waits = 0;

 private:
  FakeClock& clock_;
  std::int64_t end_;
};

struct Run {
  std::int64_t at;
  RunTrigger trigger;
};

struct Harness {
  explicit Harness(std::int64_t end) : events(clock, end) {}
  /// Runs the loop; each backup takes `duration` of fake time and returns the next outcome of
  /// `outcomes` (ok once they are used up).
  void run(std::int64_t duration = 100 * kMs) {
    WatchLoop loop(settings, clock, events, [&](RunTrigger trigger) {
      runs.push_back({clock.now, trigger});
      clock.now += duration;
      if (outcomes.empty()) {
        return RunOutcome::ok;
      }
      const RunOutcome outcome = outcomes.front();
      outcomes.pop_front();
      return outcome;
    });
    loop.run();
    stats = loop.stats();
  }
  FakeClock clock;
  ScriptedEvents events;
  WatchSettings settings;
  std::deque<RunOutcome> outcomes;
  std::vector<Run> runs;
  WatchLoopStats stats;
};

TEST(WatchLoop, RunsOnceAtStartThenWaitsForTheInterval) {
  Harness h(10 * kS);
  h.settings.interval_ns = 100 * kS;
  h.run();
  ASSERT_EQ(h.runs.size(), 1u);
  EXPECT_EQ(h.runs[0].at, 0);
  EXPECT_EQ(h.runs[0].trigger, RunTrigger::start);
}

TEST(WatchLoop, TenSavesInOneSecondCostOneBackupAfterTheDebounce) {
  Harness h(100 * kS);
  h.settings.debounce_ns = 5 * kS;
  h.settings.interval_ns = 1000 * kS;
  for (int i = 0; i < 10; ++i) {
    h.events.changes.push_back(20 * kS + i * 100 * kMs);
  }
  h.run();
  ASSERT_EQ(h.runs.size(), 2u);  // the start-up run and one for the ten saves
  EXPECT_EQ(h.runs[1].trigger, RunTrigger::change);
  EXPECT_EQ(h.runs[1].at, 20 * kS + 900 * kMs + 5 * kS);  // debounce after the last save
}

TEST(WatchLoop, ABurstOfTenThousandChangesCostsAHandful) {
  Harness h(400 * kS);
  h.settings.debounce_ns = 5 * kS;
  h.settings.max_delay_ns = 60 * kS;
  h.settings.interval_ns = 1000 * kS;
  for (int i = 0; i < 10'000; ++i) {
    h.events.changes.push_back(10 * kS + i * 20 * kMs);  // one every 20 ms for 200 s
  }
  h.run(2 * kS);
  // Start-up, then every max_delay during the burst (a constant stream is still backed up), then
  // one after it ends.
  EXPECT_GE(h.runs.size(), 4u);
  EXPECT_LE(h.runs.size(), 6u);
  const std::int64_t burst_end = 10 * kS + 9'999 * 20 * kMs;
  EXPECT_EQ(h.runs.back().at, burst_end + 5 * kS);
  for (std::size_t i = 2; i + 1 < h.runs.size(); ++i) {
    EXPECT_LE(h.runs[i].at - (h.runs[i - 1].at + 2 * kS), 60 * kS + 20 * kMs) << i;
  }
}

TEST(WatchLoop, IntervalRunsWithoutAnyChange) {
  Harness h(35 * kS);
  h.settings.interval_ns = 10 * kS;
  h.run();
  ASSERT_EQ(h.runs.size(), 4u);
  EXPECT_EQ(h.runs[1].at, 10 * kS);
  EXPECT_EQ(h.runs[2].at, 20 * kS);
  EXPECT_EQ(h.runs[3].at, 30 * kS);
  EXPECT_EQ(h.runs[3].trigger, RunTrigger::interval);
}

TEST(WatchLoop, FailuresBackOffExponentiallyUpToTheCap) {
  Harness h(1000 * kS);
  h.settings.interval_ns = 10'000 * kS;
  h.settings.retry_initial_ns = 10 * kS;
  h.settings.retry_max_ns = 60 * kS;
  h.outcomes = {RunOutcome::failed, RunOutcome::failed, RunOutcome::failed, RunOutcome::failed, RunOutcome::failed};
  h.run(0);
  ASSERT_EQ(h.runs.size(), 6u);
  const std::vector<std::int64_t> expected = {0, 10 * kS, 30 * kS, 70 * kS, 130 * kS, 190 * kS};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(h.runs[i].at, expected[i]) << i;
  }
  EXPECT_EQ(h.runs[1].trigger, RunTrigger::retry);
  EXPECT_EQ(h.stats.failures, 5u);
}

TEST(WatchLoop, ASuccessResetsTheBackOff) {
  Harness h(1000 * kS);
  h.settings.interval_ns = 10'000 * kS;
  h.settings.retry_initial_ns = 10 * kS;
  h.outcomes = {RunOutcome::failed, RunOutcome::failed, RunOutcome::ok, RunOutcome::failed};
  h.events.changes = {100 * kS};
  h.run(0);
  ASSERT_EQ(h.runs.size(), 5u);
  EXPECT_EQ(h.runs[2].at, 30 * kS);                   // the second retry succeeds
  EXPECT_EQ(h.runs[3].at, 105 * kS);                  // a change, debounced
  EXPECT_EQ(h.runs[4].at, 115 * kS);                  // its failure: the first delay again
}

TEST(WatchLoop, ABusyRepositoryIsRetriedSoonWithoutCountingAsAFailure) {
  Harness h(100 * kS);
  h.settings.interval_ns = 10'000 * kS;
  h.settings.busy_retry_ns = 2 * kS;
  h.outcomes = {RunOutcome::busy, RunOutcome::busy, RunOutcome::ok};
  h.run(0);
  ASSERT_EQ(h.runs.size(), 3u);
  EXPECT_EQ(h.runs[1].at, 2 * kS);
  EXPECT_EQ(h.runs[2].at, 4 * kS);
  EXPECT_EQ(h.stats.failures, 0u);
}

TEST(WatchLoop, ChangesDuringARunLeadToTheNextRun) {
  Harness h(100 * kS);
  h.settings.interval_ns = 10'000 * kS;
  h.settings.debounce_ns = 1 * kS;
  h.events.changes = {500 * kMs};  // while the start-up run (1 s) is going
  h.run(1 * kS);
  ASSERT_EQ(h.runs.size(), 2u);
  EXPECT_EQ(h.runs[1].at, 2 * kS);  // seen when the run ends (1 s), debounced
}

TEST(WatchLoop, AStopEndsTheLoopBeforeTheFirstRun) {
  Harness h(0);
  h.run();
  EXPECT_TRUE(h.runs.empty());
}

TEST(WatchLoop, RetryDelayDoublesAndIsCapped) {
  FakeClock clock;
  ScriptedEvents events(clock, 0);
  WatchSettings settings;
  settings.retry_initial_ns = 30 * kS;
  settings.retry_max_ns = 3600 * kS;
  const WatchLoop loop(settings, clock, events, [](RunTrigger) { return RunOutcome::ok; });
  EXPECT_EQ(loop.retry_delay(1), 30 * kS);
  EXPECT_EQ(loop.retry_delay(2), 60 * kS);
  EXPECT_EQ(loop.retry_delay(7), 1920 * kS);
  EXPECT_EQ(loop.retry_delay(8), 3600 * kS);
  EXPECT_EQ(loop.retry_delay(1000), 3600 * kS);
}

}  // namespace
}  // namespace mybackup
