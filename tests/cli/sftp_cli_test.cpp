// End to end with an sftp:// destination: the built binary against a real OpenSSH server on
// loopback (tests/servers/sshd_server.hpp), from the first backup to a recovery on a new home.

#include "cli/cli_harness.hpp"
#include "servers/sshd_server.hpp"

namespace mybackup_cli_test {
namespace {

class SftpCliTest : public CliTest {
 protected:
  mybackup::test_servers::SshdServer server_;
};

TEST_F(SftpCliTest, BackupListRestoreVerifyCleanAndRecoverThroughSftp) {
  init();
  make_tree();
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big.bin", 3 * 1024 * 1024, 5));
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const std::string url = server_.url(dest_);
  const Result set = run({"config", "set", "destination", url});
  ASSERT_TRUE(succeeded(set));
  EXPECT_TRUE(contains(set.out, "destinations.primary = sftp://")) << set;

  ASSERT_TRUE(succeeded(run({"backup"})));
  EXPECT_TRUE(exists(dest_ + "/mybackup-repo.json")) << listing(dest_);
  const Result list = run({"list", src_ + "/a.txt"});
  ASSERT_TRUE(succeeded(list));
  EXPECT_TRUE(contains(list.out, "a.txt")) << list;

  const std::string restored = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", restored})));
  for (const std::string file : {"/a.txt", "/sub/b.txt", "/sub/c.bin", "/big.bin"}) {
    EXPECT_TRUE(read_text(restored + file) == read_text(src_ + file)) << file;
  }
  ASSERT_TRUE(succeeded(run({"verify", "--read-data"})));

  write_text(src_ + "/a.txt", "alpha, second version\n");
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_TRUE(succeeded(run({"clean", "--keep-days", "0", "--keep-versions", "1"})));
  ASSERT_TRUE(succeeded(run({"verify", "--read-data"})));

  // A new computer: the destination URL and the key file are all it needs.
  const std::string saved_key = root_ + "/saved-key";
  fs::copy_file(key_path(), saved_key);
  home_ = root_ + "/new-home";
  ASSERT_TRUE(succeeded(run({"init", "--from", url, "--key-file", saved_key})));
  const std::string recovered = root_ + "/recovered";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", recovered})));
  for (const std::string file : {"/a.txt", "/sub/b.txt", "/sub/c.bin", "/big.bin"}) {
    EXPECT_TRUE(read_text(recovered + file) == read_text(src_ + file)) << file;
  }
}

// `watch` backs up to a remote destination as `backup` does: a first run, then one per change.
TEST_F(SftpCliTest, WatchBacksUpEachChangeThroughSftp) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", server_.url(dest_)})));
  ASSERT_TRUE(succeeded(run({"config", "set", "watch.debounce", "1"})));
  Result watch;
  const pid_t pid = start({"--quiet", "watch", "--interval", "3600"}, watch);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 1; }, 30)) << read_text(log_path());
  write_text(src_ + "/a.txt", "alpha, edited while watched\n");
  ASSERT_TRUE(eventually([&] { return versions_of(src_ + "/a.txt") == 2; }, 30)) << read_text(log_path());
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  finish(pid, watch);
  EXPECT_EQ(watch.code, 0) << watch;

  const std::string restored = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", restored})));
  EXPECT_EQ(read_text(restored + "/a.txt"), "alpha, edited while watched\n");
  EXPECT_TRUE(read_text(restored + "/sub/c.bin") == read_text(src_ + "/sub/c.bin"));
}

TEST_F(SftpCliTest, AnUnknownServerIsRefusedWithOneActionableLine) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const std::string empty_known_hosts = root_ + "/known_hosts";
  write_text(empty_known_hosts, "");
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", server_.url(dest_, server_.user_key(), empty_known_hosts)})));
  const Result backup = run({"backup"});
  EXPECT_NE(backup.code, 0) << backup;
  EXPECT_TRUE(contains(backup.err, server_.host_key_fingerprint())) << backup;
  EXPECT_TRUE(contains(backup.err, "ssh-keyscan -p " + std::to_string(server_.port()))) << backup;
  EXPECT_FALSE(exists(dest_));
}

}  // namespace
}  // namespace mybackup_cli_test
