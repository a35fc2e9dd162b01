// `mybackup schedule …`: the legacy scheduler (daily tar archives of a path at a local time),
// with the commands, file format and output of the original backup_manager.py.
//
// Works without `mybackup init` (it needs no key or destination): its files default to the home
// and config.yaml is read when there is one (schedule.file, .archive_dir, .log_dir, .catch_up).
// Logs: <log_dir>/backup_manager.log (every command) and <log_dir>/backup_service.log (the
// service and every archive run, `schedule run` included).

#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "cli.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/util/pid_file.hpp"
#include "mybackup/legacy/schedule_book.hpp"
#include "mybackup/legacy/scheduler_service.hpp"
#include "mybackup/legacy/tar_archiver.hpp"

namespace mybackup::cli {

namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;
constexpr auto kStopTimeout = std::chrono::seconds(30);

struct SchedulePaths {
  std::string file;
  std::string archive_dir;
  std::string log_dir;
  std::string base_dir;  // relative schedule paths are read from the home
  std::string pid_file;
  bool catch_up = true;
};

SchedulePaths paths_of(Context& context) {
  const Home& home = context.home();
  Config config;  // the defaults, when the home has no config.yaml
  if (home.initialized()) {
    config = mybackup::load_config(home.config_path());
  }
  return {home.schedule_file(config), home.schedule_archive_directory(config), home.schedule_log_directory(config),
          home.root(), home.schedule_pid_path(), config.schedule_catch_up};
}

std::shared_ptr<spdlog::logger> open_log(const std::string& directory, const std::string& name, bool to_stdout) {
  make_directories(directory, 0700);
  std::vector<spdlog::sink_ptr> sinks;
  const std::string path = join_path(directory, name + ".log");
  try {
    // Appends (O_APPEND): the manager, the service and `schedule run` may write at the same time.
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false, private_log_file()));
  } catch (const spdlog::spdlog_ex& error) {
    throw Error(ErrorKind::io, "cannot open the log " + path + ": " + error.what() + " (check schedule.log_dir)");
  }
  if (to_stdout) {
    sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  }
  auto logger = std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end());
  logger->set_formatter(log_formatter("%Y-%m-%d %H:%M:%S.%e %z [%l] pid=%P %v"));
  logger->flush_on(spdlog::level::info);
  return logger;
}

/// backup_manager.log; a log that cannot be opened never stops a command (it gets a no-op logger).
std::shared_ptr<spdlog::logger> manager_log(const SchedulePaths& paths) {
  try {
    return open_log(paths.log_dir, "backup_manager", false);
  } catch (const std::exception&) {
    return std::make_shared<spdlog::logger>("backup_manager", std::make_shared<spdlog::sinks::null_sink_mt>());
  }
}

std::string seconds_text(std::int64_t ns) { return format_duration(static_cast<double>(ns) / kNsPerSecond); }

std::string local_minute(std::int64_t ns) { return format_local(ns).substr(0, 16); }  // "2026-11-22 09:00"

std::string time_until(std::int64_t ns) {
  const std::int64_t minutes = (ns + 59 * kNsPerSecond) / (60 * kNsPerSecond);
  if (minutes < 60) {
    return std::to_string(minutes) + " min";
  }
  return std::to_string(minutes / 60) + " h " + std::to_string(minutes % 60) + " min";
}

std::string archive_summary(const ArchiveResult& result) {
  return format_bytes(result.bytes) + ", " + counted(result.files, "file") + ", " +
         counted(result.directories, "directory", "directories") +
         (result.symlinks > 0 ? ", " + counted(result.symlinks, "symlink") : "");
}

/// Logs every event of the service to backup_service.log.
class LoggingObserver final : public ServiceObserver {
 public:
  explicit LoggingObserver(spdlog::logger& log) : log_(log) {}
  void started(std::size_t schedules) override { log_.info("service running with {} schedule(s)", schedules); }
  void reloaded(std::size_t schedules) override {
    log_.info("schedule file changed: reloaded, {} schedule(s)", schedules);
  }
  void reload_failed(const Error& error) override {
    log_.error("schedule file not reloaded, the previous schedules stay in force: {}", error.what());
  }
  void catching_up(const Schedule& schedule, std::int64_t missed) override {
    log_.info("catch-up: {} was due at {} and has no archive since: archiving now", schedule.name, local_minute(missed));
  }
  void skipping_missed(const Schedule& schedule, std::int64_t missed) override {
    log_.info("{} was due at {} (missed while the service was not running); schedule.catch_up is off: next run tomorrow",
              schedule.name, local_minute(missed));
  }
  void archive_started(const Schedule& schedule, const std::string& source) override {
    log_.info("archive {} started: {} ({})", schedule.name, source, schedule.line());
  }
  void archive_finished(const Schedule& schedule, const ArchiveResult& result, std::int64_t duration) override {
    log_.info("archive {} finished: {} bytes ({}) in {} -> {}", schedule.name, result.bytes, archive_summary(result),
              seconds_text(duration), result.archive_path);
    for (const std::string& problem : result.problems) {
      log_.warn("archive {}: skipped {}", schedule.name, problem);
    }
  }
  void archive_failed(const Schedule& schedule, const Error& error, std::int64_t duration) override {
    log_.error("archive {} failed after {}: {} [{}]", schedule.name, seconds_text(duration), error.what(),
               to_string(error.kind()));
  }
  void next_due(const Schedule* schedule, std::int64_t due) override {
    if (schedule == nullptr) {
      log_.info("no schedules: waiting for the schedule file to change");
    } else {
      log_.info("next archive: {} at {}", schedule->name, local_minute(due));
    }
  }
  void stopping() override { log_.info("stop requested"); }

 private:
  spdlog::logger& log_;
};

/// Runs the service in this process until SIGTERM/SIGINT. `ready` is called once the pid file
/// is held and the schedule file has been read, so a caller can report success.
void serve(const SchedulePaths& paths, bool to_stdout, const std::function<void()>& ready) {
  PidFile pid_file(paths.pid_file);
  const ScheduleBook book = load_schedule_book(paths.file);  // an invalid file fails the start, visibly
  make_directories(paths.archive_dir, 0700);
  make_directories(parent_directory(paths.file), 0700);  // so that its changes can be watched
  const auto log = open_log(paths.log_dir, "backup_service", to_stdout);
  SystemWaiter waiter(paths.file, system_clock());
  log->info("service started (pid {}): {} schedule(s) in {}, archives in {}, catch-up {}", ::getpid(), book.size(),
            paths.file, paths.archive_dir, paths.catch_up ? "on" : "off");
  ready();
  LoggingObserver observer(*log);
  try {
    SchedulerService(ServiceSettings{paths.file, paths.archive_dir, paths.base_dir, paths.catch_up}, system_clock(),
                     waiter, observer)
        .run();
  } catch (const Error& error) {
    log->error("service failed: {} [{}]", error.what(), to_string(error.kind()));
    throw;
  }
  log->info("service stopped (pid {})", ::getpid());
}

// ---------------------------------------------------------------- the commands

void create(Context& context, const std::string& line) {
  const SchedulePaths paths = paths_of(context);
  const auto log = manager_log(paths);
  try {
    const std::size_t index = add_schedule(paths.file, line, paths.base_dir);
    const Schedule schedule = parse_schedule(line);
    log->info("create: schedule {}: {}", index, schedule.line());
    say(context, "Created schedule " + std::to_string(index) + ": " + schedule.line());
  } catch (const Error& error) {
    log->error("create \"{}\" refused: {}", line, error.what());
    throw;
  }
}

void list(Context& context) {
  const SchedulePaths paths = paths_of(context);
  const ScheduleBook book = load_schedule_book(paths.file);
  manager_log(paths)->info("list: {} schedule(s)", book.size());
  const std::vector<Schedule> schedules = book.schedules();
  for (std::size_t i = 0; i < schedules.size(); ++i) {
    print_line(std::to_string(i) + ": " + schedules[i].line());
  }
  if (schedules.empty() && !context.quiet) {
    print_error("No schedules yet (create one with `mybackup schedule create \"PATH;HH:MM;NAME\"`)");
  }
}

void remove(Context& context, const std::string& index) {
  const SchedulePaths paths = paths_of(context);
  const auto log = manager_log(paths);
  try {
    const Schedule removed = delete_schedule(paths.file, index);
    log->info("delete: schedule {}: {}", index, removed.line());
    say(context, "Deleted schedule " + index + ": " + removed.line());
  } catch (const Error& error) {
    log->error("delete {} refused: {}", index, error.what());
    throw;
  }
}

void backups(Context& context) {
  const SchedulePaths paths = paths_of(context);
  const std::vector<ArchiveInfo> archives = list_archives(paths.archive_dir);
  manager_log(paths)->info("backups: {} archive(s) in {}", archives.size(), paths.archive_dir);
  for (const ArchiveInfo& archive : archives) {
    print_line(archive.file_name);
  }
  if (archives.empty() && !context.quiet) {
    print_error("No archives yet in " + paths.archive_dir);
  }
}

void run_now(Context& context, const std::string& name) {
  const SchedulePaths paths = paths_of(context);
  const auto log = manager_log(paths);
  const ScheduleBook book = load_schedule_book(paths.file);
  const std::optional<Schedule> schedule = book.find(name);
  if (!schedule) {
    std::vector<std::string> names;
    for (const Schedule& each : book.schedules()) {
      names.push_back(each.name);
    }
    const Error error(ErrorKind::usage, "there is no schedule named '" + name + "' (schedules: " + join(names, "none") +
                                            "): see `mybackup schedule list`");
    log->error("run {} refused: {}", name, error.what());
    throw error;
  }
  log->info("run: {} now, in the foreground", name);
  const auto service_log = open_log(paths.log_dir, "backup_service", false);
  LoggingObserver observer(*service_log);
  const std::string source = schedule->resolved_path(paths.base_dir);
  install_stop_handlers();
  const std::int64_t start = system_clock().now_ns();
  observer.archive_started(*schedule, source);
  ArchiveResult result;
  try {
    result = TarArchiver(paths.archive_dir).write(source, name, [] { return stop_requested().load(); });
  } catch (const Error& error) {
    observer.archive_failed(*schedule, error, system_clock().now_ns() - start);
    throw;
  }
  const std::int64_t duration = system_clock().now_ns() - start;
  observer.archive_finished(*schedule, result, duration);
  for (const std::string& problem : result.problems) {
    print_error("mybackup: warning: skipped " + problem);
  }
  say(context, "Archived " + source + " to " + result.archive_path + " (" + archive_summary(result) + ", " +
                   seconds_text(duration) + ")");
  if (!result.problems.empty()) {
    context.exit_code = kPartial;
  }
}

void start(Context& context) {
  const SchedulePaths paths = paths_of(context);
  const auto log = manager_log(paths);
  const PidFileState state = inspect_pid_file(paths.pid_file);
  if (state.running) {
    log->info("start: the service is already running (pid {})", state.pid);
    say(context, "The backup service is already running (pid " + std::to_string(state.pid) + ")");
    return;
  }
  if (state.stale) {
    log->warn("start: stale pid file {}: process {} ended without `schedule stop`", paths.pid_file, state.pid);
  }
  make_directories(parent_directory(paths.pid_file), 0700);
  std::optional<std::string> pid;
  try {
    pid = start_daemon(context, "the backup service",
                       "the backup service stopped at once: see " + join_path(paths.log_dir, "backup_service.log"),
                       [&paths](const std::function<void()>& ready) { serve(paths, false, ready); });
  } catch (const Error& error) {
    log->error("start failed: {}", error.what());
    throw;
  }
  if (!pid) {
    return;  // in the service, once it ended
  }
  log->info("start: service started (pid {})", *pid);
  say(context, "Backup service started (pid " + *pid + "); log: " + join_path(paths.log_dir, "backup_service.log"));
}

void status(Context& context) {
  const SchedulePaths paths = paths_of(context);
  const PidFileState state = inspect_pid_file(paths.pid_file);
  ScheduleBook book;
  std::optional<Error> unreadable;
  try {
    book = load_schedule_book(paths.file);
  } catch (const Error& error) {
    unreadable = error;  // the service's state is still worth showing
  }
  manager_log(paths)->info("status: {}", state.running ? "running (pid " + std::to_string(state.pid) + ")" : "not running");
  if (state.running) {
    print_line("Backup service: running (pid " + std::to_string(state.pid) + ")");
  } else if (state.stale) {
    print_line("Backup service: not running (stale pid file: process " + std::to_string(state.pid) +
               " ended without `mybackup schedule stop`; `mybackup schedule start` replaces it)");
  } else {
    print_line("Backup service: not running (start it with `mybackup schedule start`)");
  }
  if (unreadable) {
    print_line("Schedules: cannot be read (" + paths.file + ")");
  } else {
    print_line("Schedules: " + std::to_string(book.size()) + " in " + paths.file);
  }
  const std::int64_t now = system_clock().now_ns();
  const Schedule* next = nullptr;
  std::int64_t next_ns = 0;
  const std::vector<Schedule> schedules = book.schedules();
  for (const Schedule& schedule : schedules) {
    const std::int64_t due = next_occurrence(schedule, now);
    if (next == nullptr || due < next_ns) {
      next = &schedule;
      next_ns = due;
    }
  }
  if (next != nullptr) {
    print_line("Next archive: " + next->name + " at " + local_minute(next_ns) + " (in " + time_until(next_ns - now) + ")" +
               (state.running ? "" : ", once the service runs"));
  }
  print_line("Archives: " + std::to_string(list_archives(paths.archive_dir).size()) + " in " + paths.archive_dir);
  print_line("Logs: " + join_path(paths.log_dir, "backup_service.log") + ", " + join_path(paths.log_dir, "backup_manager.log"));
  if (unreadable) {
    std::cout.flush();
    print_error(std::string("mybackup: error: ") + unreadable->what());
    context.exit_code = kError;
  }
}

void stop(Context& context) {
  const SchedulePaths paths = paths_of(context);
  const auto log = manager_log(paths);
  const PidFileState state = inspect_pid_file(paths.pid_file);
  if (!state.running) {
    const std::string stale = state.stale ? " (stale pid file: process " + std::to_string(state.pid) + " had ended)" : "";
    log->info("stop: the service is not running{}", stale);
    say(context, "The backup service is not running" + stale);
    return;
  }
  log->info("stop: sending SIGTERM to pid {}", state.pid);
  const long pid = stop_daemon(paths.pid_file, "the backup service", "mybackup schedule stop", "a large archive may be ending",
                               kStopTimeout);
  log->info("stop: service stopped (pid {})", pid);
  say(context, "Backup service stopped (pid " + std::to_string(pid) + ")");
}

void service(Context& context, bool foreground) {
  if (!foreground) {
    throw Error(ErrorKind::usage, "`schedule service` runs the service in this process: add --foreground (for systemd "
                                  "or a container), or use `mybackup schedule start` to run it in the background");
  }
  const SchedulePaths paths = paths_of(context);
  const auto log = manager_log(paths);
  log->info("service --foreground (pid {})", ::getpid());
  try {
    serve(paths, true, [] {});
  } catch (const Error& error) {
    log->error("service --foreground failed: {}", error.what());
    throw;
  }
}

}  // namespace

void register_schedule(CLI::App& app, Context& context) {
  auto* schedule = app.add_subcommand("schedule", "Daily tar archives at fixed times (the legacy scheduler)");
  schedule->require_subcommand(1);
  add_example(*schedule,
              "mybackup schedule create \"documents;09:00;docs_morning\"\n  mybackup schedule list\n"
              "  mybackup schedule start\n  mybackup schedule backups");

  auto* create_command = schedule->add_subcommand("create", "Add a schedule: PATH;HH:MM;NAME (archive PATH daily into NAME.tar)");
  auto line = std::make_shared<std::string>();
  create_command->add_option("schedule", *line, "PATH;HH:MM;NAME (a relative PATH is read from the home)")->required();
  add_example(*create_command, "mybackup schedule create \"/home/me/photos;18:30;photos_evening\"");
  create_command->callback([&context, line] { create(context, *line); });

  auto* list_command = schedule->add_subcommand("list", "List the schedules with their index");
  add_example(*list_command, "mybackup schedule list");
  list_command->callback([&context] { list(context); });

  auto* delete_command = schedule->add_subcommand("delete", "Delete the schedule at an index shown by `list`");
  auto index = std::make_shared<std::string>();
  delete_command->add_option("index", *index, "Index from `mybackup schedule list`")->required();
  add_example(*delete_command, "mybackup schedule delete 0");
  delete_command->callback([&context, index] { remove(context, *index); });

  auto* start_command = schedule->add_subcommand("start", "Start the service in the background");
  add_example(*start_command, "mybackup schedule start");
  start_command->callback([&context] { start(context); });

  auto* stop_command = schedule->add_subcommand("stop", "Stop the background service");
  add_example(*stop_command, "mybackup schedule stop");
  stop_command->callback([&context] { stop(context); });

  auto* status_command = schedule->add_subcommand("status", "Is the service running, and what is due next");
  add_example(*status_command, "mybackup schedule status");
  status_command->callback([&context] { status(context); });

  auto* backups_command = schedule->add_subcommand("backups", "List the archives made (*.tar)");
  add_example(*backups_command, "mybackup schedule backups");
  backups_command->callback([&context] { backups(context); });

  auto* run_command = schedule->add_subcommand("run", "Make one schedule's archive now, in the foreground");
  auto name = std::make_shared<std::string>();
  run_command->add_option("name", *name, "The schedule's NAME")->required();
  add_example(*run_command, "mybackup schedule run docs_morning");
  run_command->callback([&context, name] { run_now(context, *name); });

  auto* service_command =
      schedule->add_subcommand("service", "Run the service in this process (systemd, containers); logs to stdout too");
  auto foreground = std::make_shared<bool>(false);
  service_command->add_flag("--foreground", *foreground, "Stay in the foreground (required)");
  add_example(*service_command, "mybackup schedule service --foreground");
  service_command->callback([&context, foreground] { service(context, *foreground); });
}

}  // namespace mybackup::cli
