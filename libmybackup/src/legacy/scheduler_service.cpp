#include "mybackup/legacy/scheduler_service.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <limits>
#include <optional>

#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::int64_t kMaxWaitNs = 60 * kSecond;

std::int64_t floor_seconds(std::int64_t ns) { return ns >= 0 ? ns / kSecond : -((-ns + kSecond - 1) / kSecond); }

std::tm local_parts(std::time_t seconds) {
  std::tm parts{};
  localtime_r(&seconds, &parts);
  return parts;
}

/// (year, month, day, hour, minute, second) of a local time, comparable as one number.
long long wall_key(const std::tm& t) {
  return ((((static_cast<long long>(t.tm_year) * 13 + t.tm_mon) * 32 + t.tm_mday) * 24 + t.tm_hour) * 60 + t.tm_min) * 60 +
         t.tm_sec;
}

std::string read_text_if_any(const std::string& path) {
  if (!path_exists(path)) {
    return "";
  }
  const Bytes data = read_file(path);
  return std::string(data.begin(), data.end());
}

}  // namespace

std::int64_t local_occurrence(int hour, int minute, std::int64_t instant_ns, int days_later) {
  // The calendar day: today's date plus `days_later`, normalized by mktime at noon (never in a gap).
  std::tm day = local_parts(static_cast<std::time_t>(floor_seconds(instant_ns)));
  day.tm_mday += days_later;
  day.tm_hour = 12;
  day.tm_min = 0;
  day.tm_sec = 0;
  day.tm_isdst = -1;
  day = local_parts(std::mktime(&day));

  std::tm wanted = day;
  wanted.tm_hour = hour;
  wanted.tm_min = minute;
  wanted.tm_sec = 0;
  const long long wanted_key = wall_key(wanted);

  // Both readings (standard and daylight time); keep those that really show hour:minute that day.
  std::optional<std::time_t> best;
  for (const int isdst : {0, 1}) {
    std::tm attempt = wanted;
    attempt.tm_isdst = isdst;
    const std::time_t candidate = std::mktime(&attempt);
    if (candidate != static_cast<std::time_t>(-1) && wall_key(local_parts(candidate)) == wanted_key &&
        (!best || candidate < *best)) {
      best = candidate;
    }
  }
  if (!best) {
    // A gap (spring forward): the first instant whose wall time is at or after hour:minute.
    std::tm attempt = wanted;
    attempt.tm_isdst = -1;
    const std::time_t guess = std::mktime(&attempt);
    std::time_t low = guess - 4 * 3600;  // before the gap: wall time earlier than wanted
    std::time_t high = guess + 4 * 3600;  // after it
    if (wall_key(local_parts(low)) >= wanted_key || wall_key(local_parts(high)) < wanted_key) {
      best = guess;
    } else {
      while (high - low > 1) {
        const std::time_t middle = low + (high - low) / 2;
        (wall_key(local_parts(middle)) >= wanted_key ? high : low) = middle;
      }
      best = high;
    }
  }
  return static_cast<std::int64_t>(*best) * kSecond;
}

std::int64_t due_time(const Schedule& schedule, std::int64_t last_run_ns, std::int64_t now_ns) {
  const std::int64_t today = local_occurrence(schedule.hour, schedule.minute, now_ns);
  if (last_run_ns < today) {
    return today;
  }
  return local_occurrence(schedule.hour, schedule.minute, now_ns, 1);
}

std::int64_t next_occurrence(const Schedule& schedule, std::int64_t now_ns) {
  const std::int64_t today = local_occurrence(schedule.hour, schedule.minute, now_ns);
  return today > now_ns ? today : local_occurrence(schedule.hour, schedule.minute, now_ns, 1);
}

// ---------------------------------------------------------------- SystemWaiter

struct SystemWaiter::Mask {
  sigset_t set;
};

SystemWaiter::SystemWaiter(const std::string& schedule_file, const Clock& clock)
    : clock_(clock), old_mask_(std::make_unique<Mask>()) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask_->set); rc != 0) {
    throw_system_error(rc, "cannot block SIGTERM and SIGINT");
  }
  signal_fd_ = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    const int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old_mask_->set, nullptr);
    throw_system_error(saved, "cannot create a signalfd");
  }
  // Without inotify (no kernel support, watch limit reached) changes are still seen within 60 s.
  const auto slash = schedule_file.find_last_of('/');
  file_name_ = slash == std::string::npos ? schedule_file : schedule_file.substr(slash + 1);
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0 &&
      ::inotify_add_watch(inotify_fd_, parent_directory(schedule_file).c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE) < 0) {
    ::close(inotify_fd_);
    inotify_fd_ = -1;
  }
}

SystemWaiter::~SystemWaiter() {
  if (inotify_fd_ >= 0) {
    ::close(inotify_fd_);
  }
  drain_signals();
  ::close(signal_fd_);
  pthread_sigmask(SIG_SETMASK, &old_mask_->set, nullptr);
}

void SystemWaiter::drain_signals() {
  signalfd_siginfo info{};
  while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    stop_ = true;
  }
}

void SystemWaiter::drain_changes() {
  alignas(inotify_event) char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
    if (n <= 0) {
      return;
    }
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if (event->len > 0 && file_name_ == event->name) {
        changed_ = true;
      }
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
}

bool SystemWaiter::stop_requested() {
  if (!stop_) {
    drain_signals();
  }
  return stop_;
}

void SystemWaiter::wait_until(std::int64_t deadline_ns) {
  changed_ = false;
  const std::int64_t start = clock_.now_ns();
  for (;;) {
    if (stop_requested()) {
      return;
    }
    const std::int64_t now = clock_.now_ns();
    // Give up after 60 s in all, or when the clock passed the deadline or jumped back by more.
    if (now >= deadline_ns || now - start >= kMaxWaitNs || now < start) {
      return;
    }
    const std::int64_t wait_ns = std::min({deadline_ns - now, kMaxWaitNs - (now - start)});
    const int timeout_ms = static_cast<int>((wait_ns + 999'999) / 1'000'000);
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (ready < 0 && errno != EINTR) {
      throw_system_error(errno, "poll failed while waiting for the next archive");
    }
    if (inotify_fd_ >= 0 && ready > 0 && (fds[1].revents & POLLIN) != 0) {
      drain_changes();
      if (changed_) {
        return;
      }
    }
  }
}

// ---------------------------------------------------------------- SchedulerService

SchedulerService::SchedulerService(ServiceSettings settings, const Clock& clock, ServiceWaiter& waiter,
                                   ServiceObserver& observer)
    : settings_(std::move(settings)),
      clock_(clock),
      waiter_(waiter),
      observer_(observer),
      archiver_(settings_.archive_directory) {}

std::int64_t SchedulerService::archive_time(const Schedule& schedule) const {
  struct stat info {};
  if (::stat(archiver_.archive_path(schedule.name).c_str(), &info) != 0) {
    return 0;
  }
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * kSecond + info.st_mtim.tv_nsec;
}

void SchedulerService::start_up() {
  file_text_ = read_text_if_any(settings_.schedule_file);
  book_ = ScheduleBook::parse(file_text_, settings_.schedule_file);
  const std::int64_t now = clock_.now_ns();
  for (const Schedule& schedule : book_.schedules()) {
    std::int64_t last = archive_time(schedule);
    const std::int64_t today = local_occurrence(schedule.hour, schedule.minute, now);
    if (now >= today && last < today) {
      if (settings_.catch_up) {
        observer_.catching_up(schedule, today);
      } else {
        observer_.skipping_missed(schedule, today);
        last = now;
      }
    }
    last_run_[schedule.name] = last;
  }
  observer_.started(book_.size());
}

void SchedulerService::reload() {
  std::string text;
  try {
    text = read_text_if_any(settings_.schedule_file);
  } catch (const Error& error) {
    observer_.reload_failed(error);
    return;
  }
  if (text == file_text_) {
    return;
  }
  file_text_ = text;  // an invalid text is reported once, not at every wake-up
  ScheduleBook book;
  try {
    book = ScheduleBook::parse(text, settings_.schedule_file);
  } catch (const Error& error) {
    observer_.reload_failed(error);
    return;
  }
  const std::int64_t now = clock_.now_ns();
  std::map<std::string, std::int64_t> last_run;
  for (const Schedule& schedule : book.schedules()) {
    if (const auto known = last_run_.find(schedule.name); known != last_run_.end()) {
      last_run[schedule.name] = known->second;
      continue;
    }
    // New: from its next occurrence on, unless its archive of today exists already.
    std::int64_t last = archive_time(schedule);
    if (now >= local_occurrence(schedule.hour, schedule.minute, now)) {
      last = std::max(last, now);
    }
    last_run[schedule.name] = last;
  }
  book_ = std::move(book);
  last_run_ = std::move(last_run);
  observer_.reloaded(book_.size());
}

void SchedulerService::run_archive(const Schedule& schedule) {
  const std::int64_t start = clock_.now_ns();
  last_run_[schedule.name] = start;
  const std::string source = schedule.resolved_path(settings_.base_directory);
  observer_.archive_started(schedule, source);
  try {
    const ArchiveResult result = archiver_.write(source, schedule.name, [this] { return waiter_.stop_requested(); });
    observer_.archive_finished(schedule, result, clock_.now_ns() - start);
  } catch (const Error& error) {
    observer_.archive_failed(schedule, error, clock_.now_ns() - start);
  } catch (const std::exception& error) {
    observer_.archive_failed(schedule, Error(ErrorKind::io, error.what()), clock_.now_ns() - start);
  }
}

void SchedulerService::run_due() {
  for (const Schedule& schedule : book_.schedules()) {
    if (waiter_.stop_requested()) {
      return;
    }
    const std::int64_t now = clock_.now_ns();
    if (now >= local_occurrence(schedule.hour, schedule.minute, now) &&
        last_run_[schedule.name] < local_occurrence(schedule.hour, schedule.minute, now)) {
      run_archive(schedule);
    }
  }
}

void SchedulerService::announce_next() {
  const std::int64_t now = clock_.now_ns();
  std::optional<Schedule> next;
  std::int64_t next_due_ns = std::numeric_limits<std::int64_t>::max();
  for (const Schedule& schedule : book_.schedules()) {
    const std::int64_t due = due_time(schedule, last_run_[schedule.name], now);
    if (due < next_due_ns) {
      next_due_ns = due;
      next = schedule;
    }
  }
  const std::string name = next ? next->name : "";
  if (name != announced_name_ || next_due_ns != announced_due_) {
    announced_name_ = name;
    announced_due_ = next_due_ns;
    observer_.next_due(next ? &*next : nullptr, next ? next_due_ns : 0);
  }
}

void SchedulerService::run() {
  start_up();
  while (!waiter_.stop_requested()) {
    reload();
    run_due();
    if (waiter_.stop_requested()) {
      break;
    }
    announce_next();
    const std::int64_t now = clock_.now_ns();
    std::int64_t deadline = std::numeric_limits<std::int64_t>::max();
    for (const Schedule& schedule : book_.schedules()) {
      deadline = std::min(deadline, due_time(schedule, last_run_[schedule.name], now));
    }
    if (book_.size() == 0) {
      deadline = now + 24 * 3600 * kSecond;  // nothing to run: wait for a change of the file
    }
    waiter_.wait_until(deadline);
  }
  observer_.stopping();
}

}  // namespace mybackup
