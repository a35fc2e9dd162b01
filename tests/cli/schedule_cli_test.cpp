// End-to-end tests of `mybackup schedule …`, the legacy scheduler: the seed's commands, file format
// and output; every invalid input refused with exit 2 and the file unchanged; `run` making a tar
// that extracts back to the source; and the real background service (start, status, stop)
// archiving a schedule that falls due a few seconds after it starts.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

class ScheduleCliTest : public CliTest {
 protected:
  void TearDown() override {
    // A test that failed half-way must not leave a service running.
    if (exists(pid_path()) && !read_text(pid_path()).empty()) {
      run({"schedule", "stop"});
    }
    CliTest::TearDown();
  }

  std::string schedules_path() const { return home_ + "/backup_schedules.txt"; }
  std::string pid_path() const { return home_ + "/backup_service.pid"; }
  std::string archive(const std::string& name) const { return home_ + "/backups/" + name + ".tar"; }
  std::string service_log() const { return read_text(home_ + "/logs/backup_service.log"); }
  std::string manager_log() const { return read_text(home_ + "/logs/backup_manager.log"); }

  void make_home_dirs(const std::vector<std::string>& names) {
    ::mkdir(home_.c_str(), 0700);
    for (const std::string& name : names) {
      ASSERT_EQ(::mkdir((home_ + "/" + name).c_str(), 0755), 0) << name;
    }
  }

  /// The process is gone, or a zombie (whose parent, init here, has not reaped it yet).
  static bool ended(int pid) {
    const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    return stat.empty() || (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z');
  }

  /// Extracts `tar_path` with GNU tar into out/<name> and returns that directory.
  std::string extract(const std::string& tar_path, const std::string& name) {
    const std::string into = root_ + "/out/" + name;
    EXPECT_EQ(::mkdir(into.c_str(), 0755), 0);
    const std::string command = "tar -xpf '" + tar_path + "' -C '" + into + "'";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return into;
  }

  /// The tree of src/ (three files, a subdirectory) plus a symlink and a 0600 file.
  void make_source() {
    make_tree();
    ASSERT_EQ(::symlink("sub/b.txt", (src_ + "/link").c_str()), 0);
    write_text(src_ + "/private.txt", "secret-ish\n");
    ASSERT_EQ(::chmod((src_ + "/private.txt").c_str(), 0600), 0);
    const timespec old_time[2] = {{1'500'000'000, 0}, {1'500'000'000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (src_ + "/a.txt").c_str(), old_time, 0), 0);
  }

  /// The extracted copy of src/ (under out/<name>/src) equals src/: content, modes, times, link.
  void expect_same_as_source(const std::string& extracted_root) {
    const std::string copy = extracted_root + "/src";
    EXPECT_EQ(listing(copy), listing(src_));
    EXPECT_EQ(file_mode(copy + "/private.txt"), 0600u);
    struct stat info {};
    ASSERT_EQ(::stat((copy + "/a.txt").c_str(), &info), 0);
    EXPECT_EQ(info.st_mtim.tv_sec, 1'500'000'000);
    char target[64] = {};
    ASSERT_GT(::readlink((copy + "/link").c_str(), target, sizeof target - 1), 0);
    EXPECT_STREQ(target, "sub/b.txt");
  }
};

// ---------------------------------------------------------------- the file and its commands

TEST_F(ScheduleCliTest, CreateListDeleteInTheSeedsFormat) {
  make_home_dirs({"documents", "photos", "code"});
  const Result first = run({"schedule", "create", "documents;09:00;docs_morning"});
  ASSERT_TRUE(succeeded(first));
  EXPECT_EQ(first.out, "Created schedule 0: documents;09:00;docs_morning\n");
  ASSERT_TRUE(succeeded(run({"schedule", "create", "photos;18:30;photos_evening"})));
  ASSERT_TRUE(succeeded(run({"schedule", "create", "code;23:59;code_nightly"})));

  const Result listed = run({"schedule", "list"});
  ASSERT_TRUE(succeeded(listed));
  EXPECT_EQ(listed.out, "0: documents;09:00;docs_morning\n1: photos;18:30;photos_evening\n2: code;23:59;code_nightly\n");
  EXPECT_EQ(read_text(schedules_path()), "documents;09:00;docs_morning\nphotos;18:30;photos_evening\ncode;23:59;code_nightly\n");

  const Result deleted = run({"schedule", "delete", "1"});
  ASSERT_TRUE(succeeded(deleted));
  EXPECT_EQ(deleted.out, "Deleted schedule 1: photos;18:30;photos_evening\n");
  EXPECT_EQ(run({"schedule", "list"}).out, "0: documents;09:00;docs_morning\n1: code;23:59;code_nightly\n");
  EXPECT_TRUE(contains(manager_log(), "create: schedule 2: code;23:59;code_nightly")) << manager_log();
  EXPECT_TRUE(contains(manager_log(), "delete: schedule 1: photos;18:30;photos_evening")) << manager_log();

  const Result empty_backups = run({"schedule", "backups"});
  ASSERT_TRUE(succeeded(empty_backups));
  EXPECT_EQ(empty_backups.out, "");
}

TEST_F(ScheduleCliTest, AHandWrittenFileIsReadAsIsAndKeepsItsComments) {
  make_home_dirs({"documents"});
  const std::string text = "# written by hand\r\ndocuments;09:00;docs_morning\r\n\r\n# photos later\n";
  write_text(schedules_path(), text);
  EXPECT_EQ(run({"schedule", "list"}).out, "0: documents;09:00;docs_morning\n");
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";06:05;src_early"})));
  EXPECT_EQ(read_text(schedules_path()),
            "# written by hand\ndocuments;09:00;docs_morning\n\n# photos later\n" + src_ + ";06:05;src_early\n");
  ASSERT_TRUE(succeeded(run({"schedule", "delete", "0"})));
  EXPECT_EQ(read_text(schedules_path()), "# written by hand\n\n# photos later\n" + src_ + ";06:05;src_early\n");

  // A broken line written by hand: named with its line number, and nothing is rewritten.
  append_text(schedules_path(), "photos;7:30;photos\n");
  const std::string broken = read_text(schedules_path());
  const Result listed = run({"schedule", "list"});
  EXPECT_TRUE(failed_with(listed, 1, {schedules_path() + ":5: the time '7:30' must be HH:MM"}));
  EXPECT_TRUE(failed_with(run({"schedule", "create", src_ + ";08:00;other"}), 1, {schedules_path() + ":5:"}));
  EXPECT_EQ(read_text(schedules_path()), broken);
}

TEST_F(ScheduleCliTest, EveryInvalidCreateIsExit2AndLeavesTheFileUnchanged) {
  make_home_dirs({"documents"});
  ASSERT_TRUE(succeeded(run({"schedule", "create", "documents;09:00;docs"})));
  const std::string before = read_text(schedules_path());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"documents;09:00", "has 2 fields separated by ';': expected PATH;HH:MM;NAME"},
      {"documents", "has 1 field"},
      {"documents;09:00;x;y", "has 4 fields"},
      {";09:00;x", "the path is empty"},
      {"documents;9:00;x", "the time '9:00' must be HH:MM with hours 00-23 and minutes 00-59"},
      {"documents;24:00;x", "the time '24:00'"},
      {"documents;12:60;x", "the time '12:60'"},
      {"documents;noon;x", "the time 'noon'"},
      {"documents;09:00;", "the name is empty"},
      {"documents;09:00;a/b", "the name 'a/b' contains '/'"},
      {"documents;09:00;my docs", "contains a space"},
      {"documents;09:00;.hidden", "starts with '.'"},
      {"documents;10:00;docs", "a schedule named 'docs' already exists (documents;09:00;docs)"},
      {"missing;09:00;m", "the path " + home_ + "/missing does not exist (a relative path is read from " + home_ + ")"},
      {"/no/such/place;09:00;m", "the path /no/such/place does not exist"},
  };
  for (const auto& [line, expected] : cases) {
    const Result result = run({"schedule", "create", line});
    EXPECT_TRUE(failed_with(result, 2, {expected})) << line;
    EXPECT_EQ(read_text(schedules_path()), before) << line;
  }
  EXPECT_EQ(count_of(manager_log(), "refused:"), cases.size()) << manager_log();
  EXPECT_TRUE(temporaries_below(home_).empty());
}

TEST_F(ScheduleCliTest, DeleteNeedsAnIndexInRange) {
  const Result none = run({"schedule", "delete", "0"});
  EXPECT_TRUE(failed_with(none, 2, {"there is no schedule 0: there are no schedules"}));
  EXPECT_FALSE(exists(schedules_path()));

  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";09:00;a"})));
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";10:00;b"})));
  const std::string before = read_text(schedules_path());
  EXPECT_TRUE(failed_with(run({"schedule", "delete", "2"}), 2, {"there is no schedule 2: the indexes are 0 to 1"}));
  EXPECT_TRUE(failed_with(run({"schedule", "delete", "one"}), 2, {"'one' is not a schedule index"}));
  EXPECT_TRUE(failed_with(run({"schedule", "delete", "1.0"}), 2, {"'1.0' is not a schedule index"}));
  EXPECT_EQ(read_text(schedules_path()), before);
}

// ---------------------------------------------------------------- archives in the foreground

TEST_F(ScheduleCliTest, RunMakesATarThatExtractsToTheSource) {
  make_source();
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";12:00;docs_morning"})));
  const Result ran = run({"schedule", "run", "docs_morning"});
  ASSERT_TRUE(succeeded(ran));
  EXPECT_TRUE(contains(ran.out, "Archived " + src_ + " to " + archive("docs_morning") + " (")) << ran;
  EXPECT_TRUE(contains(ran.out, "4 files, 2 directories, 1 symlink")) << ran;
  expect_same_as_source(extract(archive("docs_morning"), "docs"));
  EXPECT_EQ(run({"schedule", "backups"}).out, "docs_morning.tar\n");
  EXPECT_TRUE(contains(service_log(), "archive docs_morning started: " + src_)) << service_log();
  EXPECT_TRUE(contains(service_log(), "archive docs_morning finished: ")) << service_log();
  EXPECT_TRUE(temporaries_below(home_ + "/backups").empty());
}

TEST_F(ScheduleCliTest, RunFailuresAreNamed) {
  EXPECT_TRUE(failed_with(run({"schedule", "run", "nothing"}), 2, {"there is no schedule named 'nothing' (schedules: none)"}));
  const std::string gone = root_ + "/gone";
  ASSERT_EQ(::mkdir(gone.c_str(), 0755), 0);
  ASSERT_TRUE(succeeded(run({"schedule", "create", gone + ";12:00;gone"})));
  ASSERT_EQ(::rmdir(gone.c_str()), 0);
  const Result missing = run({"schedule", "run", "gone"});
  EXPECT_TRUE(failed_with(missing, 1, {"the source " + gone + " of 'gone' does not exist"}));
  EXPECT_FALSE(exists(archive("gone")));
  EXPECT_TRUE(contains(service_log(), "archive gone failed after")) << service_log();
  EXPECT_TRUE(files_below(home_ + "/backups").empty());
}

// ---------------------------------------------------------------- the background service

/// A time zone whose local clock is `lead` seconds before a whole minute right now, so that a
/// schedule at the next local minute falls due in `lead` seconds (POSIX TZ offsets take seconds).
struct SoonZone {
  std::string tz;
  std::string hhmm;
  std::time_t due = 0;  // Unix time at which the schedule falls due
};

SoonZone zone_due_in(int lead) {
  const std::time_t now = std::time(nullptr);
  const int shift = static_cast<int>((60 - (now + lead) % 60) % 60);  // local = UTC + shift seconds
  char tz[32];
  std::snprintf(tz, sizeof tz, "SOON-00:00:%02d", shift);
  const std::time_t due = now + shift + lead;  // a whole minute of the shifted clock
  std::tm parts{};
  gmtime_r(&due, &parts);
  char hhmm[8];
  std::snprintf(hhmm, sizeof hhmm, "%02d:%02d", parts.tm_hour, parts.tm_min);
  return {tz, hhmm, due - shift};
}

TEST_F(ScheduleCliTest, TheServiceArchivesWhenDueAndStartStatusStopReport) {
  make_source();
  const SoonZone zone = zone_due_in(4);
  const RunOptions in_zone{{{"TZ", zone.tz}}, ""};
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";" + zone.hhmm + ";soon"}, in_zone)));

  const Result started = run({"schedule", "start"}, in_zone);
  ASSERT_TRUE(succeeded(started));
  const bool started_before_due = std::time(nullptr) < zone.due;  // false only on a very slow machine
  EXPECT_TRUE(contains(started.out, "Backup service started (pid ")) << started;
  const std::string pid = lines_of(read_text(pid_path())).at(0);
  EXPECT_TRUE(contains(started.out, "(pid " + pid + ")")) << started;

  const Result again = run({"schedule", "start"}, in_zone);
  ASSERT_TRUE(succeeded(again));
  EXPECT_EQ(again.out, "The backup service is already running (pid " + pid + ")\n");

  const Result status = run({"schedule", "status"}, in_zone);
  ASSERT_TRUE(succeeded(status));
  EXPECT_TRUE(contains(status.out, "Backup service: running (pid " + pid + ")")) << status;
  EXPECT_TRUE(contains(status.out, "Schedules: 1 in " + schedules_path())) << status;

  ASSERT_TRUE(eventually([&] { return exists(archive("soon")); })) << service_log();
  EXPECT_TRUE(contains(service_log(), "next archive: soon at ")) << service_log();
  if (started_before_due) {
    EXPECT_FALSE(contains(service_log(), "catch-up:")) << service_log();  // it waited for the due time
  }
  expect_same_as_source(extract(archive("soon"), "soon"));
  ASSERT_TRUE(eventually([&] { return contains(service_log(), "archive soon finished"); }));

  const Result stopped = run({"schedule", "stop"});
  ASSERT_TRUE(succeeded(stopped));
  EXPECT_EQ(stopped.out, "Backup service stopped (pid " + pid + ")\n");
  EXPECT_TRUE(contains(service_log(), "service stopped (pid " + pid + ")")) << service_log();
  EXPECT_TRUE(eventually([&] { return ended(std::stoi(pid)); }, 5));

  const Result stopped_again = run({"schedule", "stop"});
  ASSERT_TRUE(succeeded(stopped_again));
  EXPECT_EQ(stopped_again.out, "The backup service is not running\n");
  EXPECT_TRUE(contains(run({"schedule", "status"}).out, "Backup service: not running")) << status;
  EXPECT_EQ(run({"schedule", "backups"}).out, "soon.tar\n");
}

TEST_F(ScheduleCliTest, TheServiceCatchesUpAtStartAndReloadsTheFile) {
  make_tree();
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";00:00;missed"})));  // always earlier today
  ASSERT_TRUE(succeeded(run({"schedule", "start"})));
  ASSERT_TRUE(eventually([&] { return contains(service_log(), "archive missed finished"); })) << service_log();
  EXPECT_TRUE(contains(service_log(), "catch-up: missed was due at ")) << service_log();

  // A new schedule while it runs: picked up without a restart; its time has passed, so not today.
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";00:00;added"})));
  ASSERT_TRUE(eventually([&] { return contains(service_log(), "reloaded, 2 schedule(s)"); }, 5)) << service_log();
  // And a broken edit is reported while the schedules in force stay.
  append_text(schedules_path(), "oops\n");
  ASSERT_TRUE(eventually([&] { return contains(service_log(), "schedule file not reloaded"); }, 5)) << service_log();
  ASSERT_TRUE(succeeded(run({"schedule", "stop"})));
  EXPECT_FALSE(exists(archive("added")));
  EXPECT_EQ(count_of(service_log(), "archive missed started"), 1u);
}

TEST_F(ScheduleCliTest, CatchUpCanBeTurnedOff) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"config", "set", "schedule.catch_up", "false"})));
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";00:00;missed"})));
  ASSERT_TRUE(succeeded(run({"schedule", "start"})));
  ASSERT_TRUE(eventually([&] { return contains(service_log(), "schedule.catch_up is off"); })) << service_log();
  ASSERT_TRUE(succeeded(run({"schedule", "stop"})));
  EXPECT_FALSE(exists(archive("missed")));
}

TEST_F(ScheduleCliTest, AStalePidFileIsDetected) {
  const pid_t child = ::fork();
  if (child == 0) {
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // `child` is now the pid of a dead process
  ::mkdir(home_.c_str(), 0700);
  write_text(pid_path(), std::to_string(child) + "\n");

  const Result status = run({"schedule", "status"});
  ASSERT_TRUE(succeeded(status));
  EXPECT_TRUE(contains(status.out, "not running (stale pid file: process " + std::to_string(child))) << status;
  const Result stop = run({"schedule", "stop"});
  ASSERT_TRUE(succeeded(stop));
  EXPECT_EQ(stop.out, "The backup service is not running (stale pid file: process " + std::to_string(child) + " had ended)\n");

  const Result start = run({"schedule", "start"});
  ASSERT_TRUE(succeeded(start));
  EXPECT_TRUE(contains(manager_log(), "stale pid file")) << manager_log();
  EXPECT_NE(lines_of(read_text(pid_path())).at(0), std::to_string(child));
  ASSERT_TRUE(succeeded(run({"schedule", "stop"})));
  EXPECT_EQ(read_text(pid_path()), "");  // a clean stop leaves nothing stale
}

TEST_F(ScheduleCliTest, AnInvalidScheduleFileStopsTheStartVisibly) {
  ::mkdir(home_.c_str(), 0700);
  write_text(schedules_path(), "x;09:00;ok\nbad line\n");
  const Result start = run({"schedule", "start"});
  EXPECT_TRUE(failed_with(start, 1, {schedules_path() + ":2: 'bad line' has 1 field"}));
  const Result status = run({"schedule", "status"});
  EXPECT_EQ(status.code, 1) << status;
  EXPECT_TRUE(contains(status.out, "Backup service: not running")) << status;
  EXPECT_TRUE(contains(status.out, "Schedules: cannot be read")) << status;
  EXPECT_TRUE(contains(status.err, schedules_path() + ":2: ")) << status;
}

TEST_F(ScheduleCliTest, ServiceInTheForegroundLogsToStdoutAndStopsOnSigterm) {
  EXPECT_TRUE(failed_with(run({"schedule", "service"}), 2, {"add --foreground"}));
  make_tree();
  ASSERT_TRUE(succeeded(run({"schedule", "create", src_ + ";00:00;fg"})));
  Result result;
  const pid_t pid = start({"schedule", "service", "--foreground"}, result);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return contains(service_log(), "archive fg finished"); })) << service_log();
  // (No other command runs meanwhile: the harness would reuse this one's stdout file.)
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  finish(pid, result);
  EXPECT_EQ(result.code, 0) << result;
  EXPECT_TRUE(contains(result.out, "service started (pid " + std::to_string(pid) + ")")) << result;
  EXPECT_TRUE(contains(result.out, "archive fg finished")) << result;
  EXPECT_TRUE(contains(result.out, "service stopped")) << result;
  EXPECT_TRUE(exists(archive("fg")));
}

}  // namespace
}  // namespace mybackup_cli_test
