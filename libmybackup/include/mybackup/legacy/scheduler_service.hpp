#pragma once
// The service of the legacy scheduler: makes each schedule's archive once a day at its local
// time, without polling.
//
// The loop: read the schedule file; run every schedule that is due; compute the next due time;
// wait until then, or until a stop request or a change of the schedule file, whichever comes
// first; repeat. Every wait re-reads the wall clock, and the real waiter never blocks longer than
// 60 s at a time, so a clock that jumps (DST, NTP, suspend) is noticed within a minute.
//
// "Due" (for a schedule at HH:MM, with `last` the start of its last archive run):
//   today = the instant of HH:MM on the local calendar day of `now` (local_occurrence)
//   due   = now >= today and last < today
// So each schedule runs at most once per local day, even when the clock is set back, and once (not
// once per missed day) when it jumps forward. A run that fails (say its source is missing) counts
// as the day's run: it is logged, and retried the next day, not in a loop.
//
// Start-up: `last` of a schedule is the modification time of its <name>.tar, if any. With
// catch_up (schedule.catch_up, default true) a schedule whose time has passed today without an
// archive since is run at once ("catch-up"); without it, that day is skipped. A schedule added
// while the service runs starts with the next occurrence of its time (like the original tool).
//
// Local time is whatever the process's time zone says (TZ). A time that does not exist on a
// day (skipped by a spring-forward change) is due at the first instant after the gap; a time that
// occurs twice (autumn) is due at its first occurrence.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/legacy/schedule_book.hpp"
#include "mybackup/legacy/tar_archiver.hpp"

namespace mybackup {

/// The instant (Unix ns) of hour:minute local time on the local calendar day that contains
/// `instant_ns`, moved by `days_later` days (see the DST rules above).
std::int64_t local_occurrence(int hour, int minute, std::int64_t instant_ns, int days_later = 0);

/// When `schedule` is next due, given the start of its last run (0 if never): today's occurrence
/// if it has not run since (this may be <= now: due at once), else tomorrow's.
std::int64_t due_time(const Schedule& schedule, std::int64_t last_run_ns, std::int64_t now_ns);

/// The first occurrence of the schedule's time strictly after `now_ns` (for `schedule status`).
std::int64_t next_occurrence(const Schedule& schedule, std::int64_t now_ns);

/// Where the service reads and writes.
struct ServiceSettings {
  std::string schedule_file;
  std::string archive_directory;
  std::string base_directory;  // relative schedule paths are read from here (the home)
  bool catch_up = true;
};

/// How the service passes time: the only thing it blocks on.
class ServiceWaiter {
 public:
  virtual ~ServiceWaiter() = default;
  /// Returns when the clock reaches `deadline_ns`, when a stop is requested, when the schedule
  /// file may have changed, or earlier; the service re-reads the clock and the file either way.
  virtual void wait_until(std::int64_t deadline_ns) = 0;
  /// True once a stop was requested (it stays true). Cheap: asked during archive runs too.
  virtual bool stop_requested() = 0;
};

/// The real waiter: SIGTERM and SIGINT request a stop, and changes to the schedule file (rename
/// over it, write, delete) wake it, through one poll(2) on a signalfd and an inotify watch of the
/// file's directory. No wait lasts more than 60 s (the clock may jump).
/// REQUIRES: constructed before the process starts any thread: it blocks SIGTERM and SIGINT for
/// the calling thread (so they are only read from the signalfd); the destructor restores the mask.
class SystemWaiter final : public ServiceWaiter {
 public:
  SystemWaiter(const std::string& schedule_file, const Clock& clock);
  ~SystemWaiter() override;
  SystemWaiter(const SystemWaiter&) = delete;
  SystemWaiter& operator=(const SystemWaiter&) = delete;

  void wait_until(std::int64_t deadline_ns) override;
  bool stop_requested() override;

 private:
  void drain_signals();
  void drain_changes();

  const Clock& clock_;
  std::string file_name_;  // the schedule file's name inside the watched directory
  int signal_fd_ = -1;
  int inotify_fd_ = -1;
  bool stop_ = false;
  bool changed_ = false;  // an event named the schedule file
  struct Mask;
  std::unique_ptr<Mask> old_mask_;
};

/// What the service reports; the command line logs each event. Every method has an empty default.
/// Times are Unix ns from the service's clock.
class ServiceObserver {
 public:
  virtual ~ServiceObserver() = default;
  virtual void started(std::size_t /*schedules*/) {}
  virtual void reloaded(std::size_t /*schedules*/) {}
  /// The schedule file became invalid while running: the previous schedules stay in force.
  virtual void reload_failed(const Error& /*error*/) {}
  /// On start-up, with catch_up: the archive of today was missed and is made now.
  virtual void catching_up(const Schedule& /*schedule*/, std::int64_t /*missed_ns*/) {}
  /// On start-up, without catch_up: today's archive was missed and is skipped.
  virtual void skipping_missed(const Schedule& /*schedule*/, std::int64_t /*missed_ns*/) {}
  virtual void archive_started(const Schedule& /*schedule*/, const std::string& /*source*/) {}
  virtual void archive_finished(const Schedule& /*schedule*/, const ArchiveResult& /*result*/, std::int64_t /*duration_ns*/) {}
  virtual void archive_failed(const Schedule& /*schedule*/, const Error& /*error*/, std::int64_t /*duration_ns*/) {}
  /// The next due archive changed (not repeated on every wake-up). `schedule` is null when there
  /// are no schedules.
  virtual void next_due(const Schedule* /*schedule*/, std::int64_t /*due_ns*/) {}
  virtual void stopping() {}
};

class SchedulerService {
 public:
  /// The references must outlive the service.
  SchedulerService(ServiceSettings settings, const Clock& clock, ServiceWaiter& waiter, ServiceObserver& observer);

  /// Runs until waiter.stop_requested(). Error(config) if the schedule file is invalid at start
  /// (later it is reported through reload_failed and the previous schedules are kept). An archive
  /// interrupted by the stop leaves its previous <name>.tar in place.
  void run();

 private:
  void start_up();
  void reload();
  void run_due();
  void run_archive(const Schedule& schedule);
  void announce_next();
  std::int64_t archive_time(const Schedule& schedule) const;

  ServiceSettings settings_;
  const Clock& clock_;
  ServiceWaiter& waiter_;
  ServiceObserver& observer_;
  TarArchiver archiver_;
  std::string file_text_;                          // the text the schedules were read from
  ScheduleBook book_;
  std::map<std::string, std::int64_t> last_run_;   // by name
  std::string announced_name_;                     // the last next_due() event
  std::int64_t announced_due_ = -1;
};

}  // namespace mybackup
