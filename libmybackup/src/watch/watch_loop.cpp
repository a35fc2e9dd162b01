#include "mybackup/watch/watch_loop.hpp"

#include <algorithm>

namespace mybackup {

WatchLoop::WatchLoop(WatchSettings settings, const Clock& clock, WatchEvents& events,
                     std::function<RunOutcome(RunTrigger)> run_backup)
    : settings_(settings), clock_(clock), events_(events), run_backup_(std::move(run_backup)) {}

std::int64_t WatchLoop::retry_delay(std::uint64_t failures) const {
  std::int64_t delay = settings_.retry_initial_ns;
  for (std::uint64_t i = 1; i < failures && delay < settings_.retry_max_ns; ++i) {
    delay *= 2;
  }
  return std::min(delay, settings_.retry_max_ns);
}

std::int64_t WatchLoop::next_due() const {
  if (retry_at_ >= 0) {
    return retry_at_;
  }
  std::int64_t due = last_start_ + settings_.interval_ns;
  if (pending_) {
    due = std::min(due, std::min(last_change_ + settings_.debounce_ns, first_change_ + settings_.max_delay_ns));
  }
  return due;
}

void WatchLoop::run() {
  RunTrigger trigger = RunTrigger::start;
  bool due_now = true;
  while (!events_.stop_requested()) {
    if (!due_now) {
      const std::int64_t due = next_due();
      if (clock_.now_ns() < due) {
        if (events_.wait_until(due)) {
          const std::int64_t now = clock_.now_ns();
          ++stats_.changes;
          if (!pending_) {
            pending_ = true;
            first_change_ = now;
          }
          last_change_ = now;
        }
        continue;  // re-read the clock, the stop flag and the due time
      }
      trigger = retry_at_ >= 0 ? RunTrigger::retry : pending_ ? RunTrigger::change : RunTrigger::interval;
    }
    due_now = false;
    // The changes seen so far are in this run; those arriving during it make the next one.
    pending_ = false;
    last_start_ = clock_.now_ns();
    ++stats_.runs;
    const RunOutcome outcome = run_backup_(trigger);
    const std::int64_t end = clock_.now_ns();
    switch (outcome) {
      case RunOutcome::ok:
        failed_in_row_ = 0;
        retry_at_ = -1;
        break;
      case RunOutcome::failed:
        ++stats_.failures;
        ++failed_in_row_;
        retry_at_ = end + retry_delay(failed_in_row_);
        break;
      case RunOutcome::busy:
        retry_at_ = end + settings_.busy_retry_ns;
        break;
    }
  }
}

}  // namespace mybackup
