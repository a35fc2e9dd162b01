#pragma once
// When `mybackup watch` runs a backup: the scheduling of the watch loop, with no I/O of its own.
// Time comes from a Clock and changes from a WatchEvents, so tests drive it without sleeping.
//
// The rules (times in ns from the clock):
//   - A run at start-up (what changed while nothing watched).
//   - Debounce: after a change, a run starts once no change has arrived for `debounce`, but at
//     most `max_delay` after the first change not yet backed up, so a constant stream of changes
//     is still backed up every `max_delay`. Changes during a run lead to the next run.
//   - Interval: a run `interval` after the start of the previous one, changes or not.
//   - A failed run is retried after `retry_initial`, doubling after each further failure up to
//     `retry_max`; changes and the interval wait for the retry. A success resets the back-off.
//   - A busy run (another writer holds the repository lock) is retried after `busy_retry`, with
//     no back-off: it is not a failure.
//   - The loop ends when events.stop_requested(), checked before every run and after every wait.

#include <cstdint>
#include <functional>
#include <vector>

#include "mybackup/util/clock.hpp"

namespace mybackup {

/// Where the loop waits: for a change, a deadline or a stop.
class WatchEvents {
 public:
  virtual ~WatchEvents() = default;
  /// Returns by `deadline_ns` (or a little later), earlier when something changed or a stop was
  /// requested: true if changes arrived.
  virtual bool wait_until(std::int64_t deadline_ns) = 0;
  virtual bool stop_requested() = 0;
};

enum class RunOutcome { ok, failed, busy };
enum class RunTrigger { start, change, interval, retry };

struct WatchSettings {
  std::int64_t debounce_ns = 5'000'000'000;
  std::int64_t max_delay_ns = 60'000'000'000;
  std::int64_t interval_ns = 300'000'000'000;
  std::int64_t retry_initial_ns = 30'000'000'000;
  std::int64_t retry_max_ns = 3'600'000'000'000;
  std::int64_t busy_retry_ns = 5'000'000'000;
};

struct WatchLoopStats {
  std::uint64_t runs = 0;
  std::uint64_t failures = 0;  // runs that returned failed
  std::uint64_t changes = 0;   // wake-ups that reported changes
};

class WatchLoop {
 public:
  /// `run_backup` is called for every run, with why it runs. The references must outlive the loop.
  WatchLoop(WatchSettings settings, const Clock& clock, WatchEvents& events,
            std::function<RunOutcome(RunTrigger)> run_backup);

  /// Runs until events.stop_requested(); a run in progress is never interrupted by the loop.
  void run();

  const WatchLoopStats& stats() const { return stats_; }
  /// The delay before the retry that follows `failures` consecutive failures (>= 1).
  std::int64_t retry_delay(std::uint64_t failures) const;

 private:
  std::int64_t next_due() const;

  WatchSettings settings_;
  const Clock& clock_;
  WatchEvents& events_;
  std::function<RunOutcome(RunTrigger)> run_backup_;
  WatchLoopStats stats_;
  bool pending_ = false;            // a change not yet backed up
  std::int64_t first_change_ = 0;   // of the pending changes
  std::int64_t last_change_ = 0;
  std::int64_t last_start_ = 0;     // of the previous run
  std::uint64_t failed_in_row_ = 0;
  std::int64_t retry_at_ = -1;      // >= 0: a retry is due then (failure or busy)
};

}  // namespace mybackup
