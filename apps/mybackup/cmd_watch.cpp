// `mybackup watch`: backups on changes (inotify, debounced) and every watch.interval seconds, in
// the foreground until SIGTERM/SIGINT. Each run is an ordinary `mybackup backup` (backup_once):
// same lock, same manifests, retention.auto_clean and the secondary destination included.

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "cli.hpp"
#include "mybackup/watch/change_watcher.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/watch/notify.hpp"
#include "mybackup/util/pid_file.hpp"
#include "mybackup/watch/watch_loop.hpp"

namespace mybackup::cli {

namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;
constexpr auto kNotifyTimeout = std::chrono::seconds(10);

struct WatchFlags {
  int interval = 0;  // 0: watch.interval
  bool no_realtime = false;
};

/// Waits on the change watcher (if any) in slices, so a stop signal is noticed within 200 ms.
class SystemWatchEvents final : public WatchEvents {
 public:
  explicit SystemWatchEvents(ChangeWatcher* watcher) : watcher_(watcher) {}
  bool wait_until(std::int64_t deadline_ns) override {
    for (;;) {
      const std::int64_t left = deadline_ns - system_clock().now_ns();
      if (stop_requested() || left <= 0) {
        return false;
      }
      const int slice_ms = static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 200));
      if (watcher_ != nullptr) {
        if (!watcher_->wait(slice_ms).empty()) {
          return true;
        }
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(slice_ms));
      }
    }
  }
  bool stop_requested() override { return cli::stop_requested().load(); }

 private:
  ChangeWatcher* watcher_;
};

const char* trigger_name(RunTrigger trigger) {
  switch (trigger) {
    case RunTrigger::start: return "start-up";
    case RunTrigger::change: return "changes";
    case RunTrigger::interval: return "interval";
    case RunTrigger::retry: return "retry";
  }
  return "?";
}

/// Runs notify.command for a failed run; its own problems are logged, never thrown.
void notify_failure(Context& context, const Config& config, const std::string& message, int exit_code) {
  if (config.notify_command.empty()) {
    return;
  }
  try {
    const std::vector<std::string> argv =
        substitute_placeholders(split_command_line(config.notify_command),
                                {{"message", message}, {"source", source_paths(config)}, {"exit_code", std::to_string(exit_code)}});
    const CommandResult result = run_command(argv, kNotifyTimeout);
    if (!result.started) {
      context.log().warn("watch: notify.command could not run: {}", result.error);
      print_error("mybackup: warning: notify.command could not run: " + result.error);
    } else if (result.timed_out) {
      context.log().warn("watch: notify.command killed after {} s", kNotifyTimeout.count());
    } else if (result.exit_code != 0) {
      context.log().warn("watch: notify.command exited with {}", result.exit_code);
    }
  } catch (const Error& error) {
    context.log().warn("watch: {}", error.what());
    print_error(std::string("mybackup: warning: ") + error.what());
  }
}

/// The config as it is now (notify.command may have been set since the start), else `fallback`.
Config current_config(Context& context, const Config& fallback) {
  try {
    return context.load_config();
  } catch (const Error&) {
    return fallback;
  }
}

std::vector<WatchRoot> watch_roots(const Session& session) {
  std::vector<WatchRoot> roots;
  for (const BackupSource& source : session.backup_sources()) {
    roots.push_back({source.path, source.exclude});
  }
  return roots;
}

/// Watches until SIGTERM/SIGINT; `ready` is called once the watching has started.
void watch(Context& context, const WatchFlags& flags, const std::function<void()>& ready) {
  Config config;
  std::vector<WatchRoot> roots;
  {
    // Not kept open: each backup opens its own session (the config may change meanwhile).
    const std::unique_ptr<Session> session = context.open_session();
    session->require_destination();
    config = session->config();
    roots = watch_roots(*session);
  }

  std::unique_ptr<ChangeWatcher> watcher;
  const bool realtime = config.watch_realtime && !flags.no_realtime;
  const int interval = flags.interval > 0 ? flags.interval : config.watch_interval;
  if (realtime) {
    try {
      watcher = std::make_unique<ChangeWatcher>(roots);
      if (!watcher->complete()) {
        print_error("mybackup: warning: " + watcher->limit_message());
        context.log().warn("watch: {}", watcher->limit_message());
        watcher.reset();
      }
    } catch (const Error& error) {
      print_error(std::string("mybackup: warning: ") + error.what() + ": changes are only caught by the interval");
      context.log().warn("watch: {}: interval only", error.what());
    }
  }
  ready();
  say(context, "Watching " + source_paths(config) + (watcher ? " for changes (" + counted(watcher->watch_count(), "directory", "directories") + ", debounce " + std::to_string(config.watch_debounce) + " s) and" : "") +
                   " every " + format_duration(interval) + "; stop with Ctrl-C");
  context.log().info("watch: start (pid {}) sources [{}] realtime {} interval {} s debounce {} s", ::getpid(),
                     source_paths(config), watcher ? "on" : "off", interval, config.watch_debounce);

  WatchSettings settings;
  settings.interval_ns = static_cast<std::int64_t>(interval) * kNsPerSecond;
  settings.debounce_ns = static_cast<std::int64_t>(config.watch_debounce) * kNsPerSecond;
  settings.max_delay_ns = std::max<std::int64_t>(60 * kNsPerSecond, 12 * settings.debounce_ns);
  settings.retry_max_ns = std::max<std::int64_t>(settings.retry_initial_ns, std::min(settings.interval_ns, 3600 * kNsPerSecond));

  SystemWatchEvents events(watcher.get());
  WatchLoop loop(settings, system_clock(), events, [&](RunTrigger trigger) {
    context.log().info("watch: backup ({})", trigger_name(trigger));
    context.exit_code = kOk;
    try {
      backup_once(context, BackupFlags{});
      return RunOutcome::ok;
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::interrupted && stop_requested()) {
        return RunOutcome::ok;  // the loop ends next
      }
      if (error.kind() == ErrorKind::locked) {
        say(context, std::string("Repository busy (") + error.what() + "): trying again shortly");
        context.log().info("watch: repository busy, retrying: {}", error.what());
        return RunOutcome::busy;
      }
      print_error(std::string("mybackup: error: backup failed: ") + error.what());
      context.log().error("watch: backup failed: {} [{}]", error.what(), to_string(error.kind()));
      notify_failure(context, current_config(context, config), std::string("backup failed: ") + error.what(),
                     error.kind() == ErrorKind::wrong_key ? kWrongKey : kError);
      return RunOutcome::failed;
    } catch (const std::exception& error) {
      print_error(std::string("mybackup: error: backup failed: ") + error.what());
      context.log().error("watch: backup failed: {}", error.what());
      notify_failure(context, current_config(context, config), std::string("backup failed: ") + error.what(), kError);
      return RunOutcome::failed;
    }
  });
  loop.run();
  context.exit_code = kOk;
  context.log().info("watch: stopped (pid {}) after {} run(s), {} failed", ::getpid(), loop.stats().runs,
                     loop.stats().failures);
  say(context, "Watch stopped after " + counted(loop.stats().runs, "backup") +
                   (loop.stats().failures > 0 ? " (" + std::to_string(loop.stats().failures) + " failed)" : ""));
}

void start(Context& context, const WatchFlags& flags) {
  const std::string pid_path = context.home().watch_pid_path();
  context.load_config();  // an uninitialized home fails here, visibly
  const PidFileState state = inspect_pid_file(pid_path);
  if (state.running) {
    say(context, "The watch daemon is already running (pid " + std::to_string(state.pid) + ")");
    return;
  }
  if (state.stale) {
    context.log().warn("watch start: stale pid file {}: process {} ended without `watch stop`", pid_path, state.pid);
  }
  const std::string log_path = join_path(context.home().log_directory(), "mybackup.log");
  const std::optional<std::string> pid =
      start_daemon(context, "the watch daemon", "the watch daemon stopped at once: see " + log_path,
                   [&](const std::function<void()>& ready) {
                     std::optional<PidFile> pid_file;
                     try {
                       pid_file.emplace(pid_path);
                     } catch (const Error& error) {
                       if (error.kind() == ErrorKind::locked) {
                         throw Error(ErrorKind::locked, "the watch daemon is already running");
                       }
                       throw;
                     }
                     watch(context, flags, ready);
                   });
  if (!pid) {
    return;  // in the daemon, once it stopped
  }
  context.log().info("watch start: daemon started (pid {})", *pid);
  say(context, "Watch daemon started (pid " + *pid + "); log: " + log_path);
}

void stop(Context& context) {
  const std::string pid_path = context.home().watch_pid_path();
  const PidFileState state = inspect_pid_file(pid_path);
  if (!state.running) {
    say(context, "The watch daemon is not running" +
                     (state.stale ? " (stale pid file: process " + std::to_string(state.pid) + " had ended)" : ""));
    return;
  }
  const long pid = stop_daemon(pid_path, "the watch daemon", "mybackup watch stop", "a backup may be ending",
                               std::chrono::seconds(60));
  context.log().info("watch stop: daemon stopped (pid {})", pid);
  say(context, "Watch daemon stopped (pid " + std::to_string(pid) + ")");
}

void status(Context& context) {
  const PidFileState state = inspect_pid_file(context.home().watch_pid_path());
  if (state.running) {
    print_line("Watch daemon: running (pid " + std::to_string(state.pid) + ")");
  } else if (state.stale) {
    print_line("Watch daemon: not running (stale pid file: process " + std::to_string(state.pid) +
               " ended without `mybackup watch stop`; `mybackup watch start` replaces it)");
  } else {
    print_line("Watch daemon: not running (start it with `mybackup watch start`)");
  }
  if (context.home().initialized()) {
    // Watch backups are recorded like every backup: the last one tells whether it works.
    const std::optional<RunRecord> last = context.open_session()->catalog().last_run("backup");
    if (last) {
      print_line("Last backup: " + format_local(last->started_ns) + ", " + last->stats.status +
                 (last->stats.error.empty() ? "" : ": " + last->stats.error));
    } else {
      print_line("Last backup: none yet");
    }
  }
  print_line("Log: " + join_path(context.home().log_directory(), "mybackup.log"));
}

}  // namespace

void register_watch(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand(
      "watch", "Back up on every change (debounced) and every watch.interval seconds, until stopped");
  auto flags = std::make_shared<WatchFlags>();
  const auto add_options = [flags](CLI::App& target) {
    target.add_option("--interval", flags->interval, "Seconds between backups without changes (default: watch.interval)")
        ->check(CLI::Range(1, std::numeric_limits<int>::max()));
    target.add_flag("--no-realtime", flags->no_realtime, "Do not watch for changes: the interval only");
  };
  add_options(*command);
  add_example(*command, "mybackup watch\n  mybackup watch --interval 600 --no-realtime\n  mybackup watch start");

  auto* start_command = command->add_subcommand("start", "Run the watch in the background (pid file in the home)");
  add_options(*start_command);
  add_example(*start_command, "mybackup watch start --interval 600");
  start_command->callback([&context, flags] { start(context, *flags); });
  auto* stop_command = command->add_subcommand("stop", "Stop the background watch (at a safe point of a backup in progress)");
  add_example(*stop_command, "mybackup watch stop");
  stop_command->callback([&context] { stop(context); });
  auto* status_command = command->add_subcommand("status", "Is the background watch running");
  add_example(*status_command, "mybackup watch status");
  status_command->callback([&context] { status(context); });

  command->callback([&context, flags, command] {
    if (command->get_subcommands().empty()) {
      watch(context, *flags, [] {});
    }
  });
}

}  // namespace mybackup::cli
