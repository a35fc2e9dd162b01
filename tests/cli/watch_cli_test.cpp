// End-to-end tests of `mybackup watch`: the real binary, real inotify, real backups.

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

class WatchCliTest : public CliTest {
 protected:
  /// Stops a running watch with SIGTERM and checks that it ends cleanly.
  void stop(pid_t pid, Result& result) {
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    finish(pid, result);
    EXPECT_EQ(result.code, 0) << result;
    EXPECT_TRUE(contains(read_text(log_path()), "watch: stopped (pid " + std::to_string(pid) + ")")) << read_text(log_path());
  }
};

TEST_F(WatchCliTest, AnEditedFileIsBackedUpWithinTheDebounce) {
  configure();
  ASSERT_TRUE(succeeded(run({"config", "set", "watch.debounce", "1"})));
  Result watch;
  // --quiet: the commands run meanwhile reuse the harness's output files.
  const pid_t pid = start({"--quiet", "watch", "--interval", "3600"}, watch);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 1; })) << read_text(log_path());

  write_text(src_ + "/a.txt", "alpha, edited\n");
  const auto edited = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 2; })) << read_text(log_path());
  EXPECT_LT(std::chrono::steady_clock::now() - edited, std::chrono::seconds(10));

  // A new directory and a file in it are picked up too.
  ASSERT_EQ(::mkdir((src_ + "/later").c_str(), 0755), 0);
  write_text(src_ + "/later/new.txt", "new\n");
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/later/new.txt") == 1; })) << read_text(log_path());
  stop(pid, watch);
  EXPECT_TRUE(contains(read_text(log_path()), "watch: backup (changes)")) << read_text(log_path());
}

TEST_F(WatchCliTest, IntervalOnlyBacksUpWithoutEvents) {
  configure();
  Result watch;
  const pid_t pid = start({"--quiet", "watch", "--interval", "1", "--no-realtime"}, watch);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 1; })) << read_text(log_path());
  write_text(src_ + "/a.txt", "alpha, edited\n");
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 2; })) << read_text(log_path());
  stop(pid, watch);
  EXPECT_TRUE(contains(read_text(log_path()), "realtime off")) << read_text(log_path());
  EXPECT_TRUE(contains(read_text(log_path()), "watch: backup (interval)")) << read_text(log_path());
}

TEST_F(WatchCliTest, AFailedRunIsNotifiedAndTheWatcherGoesOn) {
  configure();
  write_text(root_ + "/not-a-directory", "x");
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", root_ + "/not-a-directory/dest"})));
  const std::string note = root_ + "/note";
  ASSERT_TRUE(succeeded(run({"config", "set", "notify.command",
                             "sh -c 'printf \"%s|%s|%s|%s\" \"$1\" \"$2\" \"$3\" \"${MYBACKUP_PASSPHRASE-unset}\" > " +
                                 note + "' notify '{message}' {exit_code} '{source}'"})));
  Result watch;
  // A passphrase in the environment never reaches the notification command (issue 11, item 13).
  RunOptions with_passphrase;
  with_passphrase.env = {{"MYBACKUP_PASSPHRASE", "secret passphrase 42"}};
  const pid_t pid = start({"watch", "--interval", "3600"}, watch, with_passphrase);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return !read_text(note).empty(); })) << read_text(log_path());
  const std::string text = read_text(note);
  EXPECT_EQ(text.rfind("backup failed: ", 0), 0u) << text;
  EXPECT_TRUE(contains(text, "|1|" + src_ + "|unset")) << text;
  EXPECT_FALSE(contains(text, "secret passphrase")) << text;
  EXPECT_EQ(::kill(pid, 0), 0) << "the watcher ended after a failed run";
  stop(pid, watch);
  EXPECT_TRUE(contains(watch.err, "mybackup: error: backup failed: ")) << watch;
  const Result status = run({"watch", "status"});
  EXPECT_TRUE(contains(status.out, ", failed: ")) << status;
  EXPECT_TRUE(contains(read_text(log_path()), "watch: backup failed: ")) << read_text(log_path());
}

TEST_F(WatchCliTest, StartStatusStopInTheBackground) {
  configure();
  ASSERT_TRUE(succeeded(run({"config", "set", "watch.debounce", "1"})));
  const Result not_yet = run({"watch", "status"});
  ASSERT_TRUE(succeeded(not_yet));
  EXPECT_TRUE(contains(not_yet.out, "Watch daemon: not running")) << not_yet;

  const Result started = run({"watch", "start", "--interval", "3600"});
  ASSERT_TRUE(succeeded(started));
  ASSERT_TRUE(contains(started.out, "Watch daemon started (pid ")) << started;
  const std::string pid = started.out.substr(started.out.find("(pid ") + 5, started.out.find(')') - started.out.find("(pid ") - 5);
  const Result running = run({"watch", "status"});
  EXPECT_TRUE(contains(running.out, "Watch daemon: running (pid " + pid + ")")) << running;
  const Result again = run({"watch", "start"});
  EXPECT_TRUE(succeeded(again));
  EXPECT_TRUE(contains(again.out, "already running (pid " + pid + ")")) << again;

  EXPECT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 1; })) << read_text(log_path());
  write_text(src_ + "/a.txt", "alpha, edited in the background\n");
  EXPECT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 2; })) << read_text(log_path());

  const Result stopped = run({"watch", "stop"});
  EXPECT_TRUE(succeeded(stopped));
  EXPECT_TRUE(contains(stopped.out, "Watch daemon stopped (pid " + pid + ")")) << stopped;
  if (!contains(stopped.out, "stopped")) {
    ::kill(std::stoi(pid), SIGKILL);  // never leave a daemon behind
  }
  const Result after = run({"watch", "status"});
  EXPECT_TRUE(contains(after.out, "Watch daemon: not running")) << after;
  EXPECT_TRUE(contains(after.out, "Last backup: ")) << after;
  EXPECT_TRUE(contains(after.out, ", ok")) << after;
  EXPECT_TRUE(contains(read_text(log_path()), "watch: stopped (pid " + pid + ")")) << read_text(log_path());
  EXPECT_TRUE(contains(run({"watch", "stop"}).out, "The watch daemon is not running"));
}

TEST_F(WatchCliTest, WaitsForAnotherWriterInsteadOfFailing) {
  first_backup();
  // A live writer's lock (this test process, on this host).
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  ASSERT_TRUE(::mkdir((dest_ + "/locks").c_str(), 0755) == 0 || errno == EEXIST) << std::strerror(errno);
  write_text(dest_ + "/locks/0123456789abcdef.json", std::string("{\"host\": \"") + host + "\", \"pid\": " +
                                                std::to_string(::getpid()) + ", \"purpose\": \"backup\", \"time_ns\": " +
                                                std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                                   std::chrono::system_clock::now().time_since_epoch())
                                                                   .count()) +
                                                "}");
  write_text(src_ + "/a.txt", "alpha, edited while locked\n");
  Result watch;
  const pid_t pid = start({"--quiet", "watch", "--interval", "3600"}, watch);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return contains(read_text(log_path()), "watch: repository busy"); })) << read_text(log_path());
  EXPECT_EQ(versions_of(src_ + "/a.txt"), 1u);
  ASSERT_EQ(::unlink((dest_ + "/locks/0123456789abcdef.json").c_str()), 0);
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 2; })) << read_text(log_path());
  stop(pid, watch);
  EXPECT_FALSE(contains(read_text(log_path()), "watch: backup failed")) << read_text(log_path());
}

TEST_F(WatchCliTest, NeedsADestination) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  EXPECT_TRUE(failed_with(run({"watch"}), 2, {"destination missing"}));
  EXPECT_TRUE(failed_with(run({"watch", "start"}), 2, {"destination missing"}));
  EXPECT_TRUE(contains(run({"watch", "status"}).out, "Watch daemon: not running"));
}

}  // namespace
}  // namespace mybackup_cli_test
