// End-to-end tests of an S3 destination: the mybackup binary against a real S3 server (Ceph's
// RADOS Gateway on loopback, the CTest fixture s3_server), as a user would run it: backup,
// restore, list, verify, clean and init --from through a bucket; a local primary with an S3
// secondary; wrong credentials.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "cli_harness.hpp"
#include "common/s3_test_server.hpp"
#include "common/tcp_proxy.hpp"

namespace mybackup_cli_test {
namespace {

using mybackup::testing::s3_test_server;
using mybackup::testing::s3_test_url;

class S3CliTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    bucket_url_ = s3_test_url();
  }

  /// init, the three-file tree, `add src`, the bucket as the primary.
  void configure_s3() {
    init();
    make_tree();
    ASSERT_TRUE(succeeded(run({"add", src_})));
    ASSERT_TRUE(succeeded(run({"config", "set", "destination", bucket_url_})));
  }

  void expect_restored(const std::string& out) {
    for (const std::string file : {"/a.txt", "/sub/b.txt", "/sub/c.bin"}) {
      EXPECT_EQ(read_text(out + file), read_text(src_ + file)) << file;
    }
  }

  /// A proxy to the RADOS Gateway that bucket_url_ now goes through (to cut its connections).
  std::unique_ptr<mybackup::testing::TcpProxy> proxy_to_the_server() {
    const std::string direct = s3_test_server().host_port;
    auto proxy = std::make_unique<mybackup::testing::TcpProxy>(std::stoi(direct.substr(direct.rfind(':') + 1)));
    bucket_url_.replace(bucket_url_.find(direct), direct.size(), "127.0.0.1:" + std::to_string(proxy->port()));
    return proxy;
  }

  std::string bucket_url_;
};

TEST_F(S3CliTest, BackupListRestoreVerifyAndCleanThroughABucket) {
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  const Result first = run({"backup", "--json"});
  ASSERT_TRUE(succeeded(first));
  EXPECT_EQ(json_of(first.out)["files_new"], 3) << first;
  write_text(src_ + "/a.txt", "alpha, second version\n");
  ASSERT_TRUE(succeeded(run({"backup"})));

  const Result versions = run({"list", src_ + "/a.txt", "--json"});
  ASSERT_TRUE(succeeded(versions));
  EXPECT_TRUE(contains(versions.out, "\"version\": 2") || contains(versions.out, "\"version\":2")) << versions;

  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
  const std::string v1 = root_ + "/v1";
  ASSERT_TRUE(succeeded(run({"restore", "--file", src_ + "/a.txt", "--version", "1", "--destination", v1})));
  EXPECT_EQ(read_text(v1), "alpha\n");

  const Result verify = run({"verify", "--read-data"});
  EXPECT_TRUE(succeeded(verify));
  const Result clean = run({"clean", "--keep-versions", "1"});
  EXPECT_TRUE(succeeded(clean));
  const Result after = run({"verify", "--read-data", "--json"});
  EXPECT_TRUE(succeeded(after));
}

TEST_F(S3CliTest, ASecondImplementationOverTlsWithItsOwnCaWorksTheSame) {
  bucket_url_ = mybackup::testing::s3rver_test_url();  // s3rver, keys from a profile, ca= option
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  ASSERT_TRUE(succeeded(run({"backup"})));
  write_text(src_ + "/a.txt", "alpha, second version\n");
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
  EXPECT_TRUE(succeeded(run({"verify", "--read-data"})));

  // Without the CA, the server's certificate is not trusted: one line saying how to fix it.
  const std::string without_ca = bucket_url_.substr(0, bucket_url_.find("?ca=")) + "?profile=s3rver";
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", without_ca})));
  const Result untrusted = run({"backup"});
  EXPECT_NE(untrusted.code, 0) << untrusted;
  EXPECT_TRUE(contains(untrusted.err, "certificate is not trusted")) << untrusted;
  EXPECT_TRUE(contains(untrusted.err, "?ca=")) << untrusted;
}

TEST_F(S3CliTest, ANewMachineRecoversFromTheBucketAndTheKeyAlone) {
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::string saved_key = root_ + "/saved-key";
  fs::copy_file(key_path(), saved_key);

  home_ = root_ + "/new-home";
  const Result recovered = run({"init", "--from", bucket_url_, "--key-file", saved_key});
  ASSERT_TRUE(succeeded(recovered));
  const Result shown = run({"config", "show"});
  EXPECT_TRUE(contains(shown.out, bucket_url_)) << shown;
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
}

TEST_F(S3CliTest, APassphraseKeptInTheBucketRecoversANewMachine) {
  RunOptions keys;
  keys.no_terminal = true;
  keys.env = {{"MYBACKUP_TEST_SCRYPT_N", "16"}, {"MYBACKUP_PASSPHRASE", "tulip anvil 42 orbit"}};
  ASSERT_TRUE(succeeded(run({"init", "--passphrase"}, keys)));
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", bucket_url_})));
  ASSERT_TRUE(succeeded(run({"backup"}, keys)));  // the wrapped key goes to the bucket's keys/
  const Result listed = run({"key", "list"}, keys);
  ASSERT_TRUE(succeeded(listed));
  EXPECT_TRUE(succeeded(run({"key", "check"}, keys)));

  home_ = root_ + "/new-home";  // a new computer: the bucket and the passphrase, nothing else
  ASSERT_TRUE(succeeded(run({"init", "--from", bucket_url_, "--passphrase"}, keys)));
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out}, keys)));
  expect_restored(out);
}

TEST_F(S3CliTest, SyncCopiesALocalPrimaryToABucketAndBetweenTwoBuckets) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", bucket_url_})));
  ASSERT_TRUE(succeeded(run({"sync"})));  // everything so far reaches the bucket
  // The bucket as the primary, another bucket (on the other server) as the secondary.
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", bucket_url_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", mybackup::testing::s3rver_test_url()})));
  write_text(src_ + "/a.txt", "alpha, from the bucket\n");
  ASSERT_TRUE(succeeded(run({"backup"})));
  EXPECT_TRUE(succeeded(run({"sync"})));
  const Result verify = run({"verify", "--read-data", "--json"});
  EXPECT_TRUE(succeeded(verify));
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
}

TEST_F(S3CliTest, ALocalPrimaryWithABucketAsSecondaryRestoresWhenThePrimaryIsGone) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", bucket_url_})));
  ASSERT_TRUE(succeeded(run({"backup"})));

  fs::remove_all(dest_);  // the disk is lost
  const std::string out = root_ + "/restored";
  const Result restored = run({"restore", "--directory", src_, "--destination", out});
  EXPECT_TRUE(contains(restored.out + restored.err, "secondary")) << restored;
  ASSERT_EQ(restored.code == 0 || restored.code == 3, true) << restored;
  expect_restored(out);
}

TEST_F(S3CliTest, AServerDyingMidBackupCommitsNothingAndALaterBackupCompletes) {
  using mybackup::testing::TcpProxy;
  const std::unique_ptr<TcpProxy> through = proxy_to_the_server();
  TcpProxy& proxy = *through;
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big.bin", 3 << 20, 21));  // ~3 MiB: a pack or more

  proxy.cut_after(TcpProxy::Direction::to_server, 500'000, -1);  // every upload dies after 500 kB
  const Result died = run({"backup"});
  EXPECT_NE(died.code, 0) << died;
  EXPECT_EQ(lines_of(died.err).size(), 1U) << died;
  EXPECT_GT(proxy.connections_cut(), 1) << "the upload is tried again before giving up";
  EXPECT_TRUE(failed_with(run({"list", src_ + "/big.bin"}), 1, {"no backup"}));

  proxy.cut_after(TcpProxy::Direction::to_server, 500'000, 1);  // one more drop, then the server is fine
  const Result completed = run({"backup", "--json"});
  ASSERT_TRUE(succeeded(completed));
  EXPECT_EQ(json_of(completed.out)["files_new"], 4) << completed;

  proxy.cut_after(TcpProxy::Direction::to_client, 400'000, 2);  // a restore whose downloads drop twice
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
  EXPECT_TRUE(read_text(out + "/big.bin") == read_text(src_ + "/big.bin"));
}

TEST_F(S3CliTest, AServerThatStopsAnsweringMidRestoreStopsItAndARerunFinishes) {
  using mybackup::testing::TcpProxy;
  const std::unique_ptr<TcpProxy> through = proxy_to_the_server();
  TcpProxy& proxy = *through;
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big.bin", 3 << 20, 23));
  ASSERT_TRUE(succeeded(run({"backup"})));

  proxy.cut_after(TcpProxy::Direction::to_client, 150'000, -1);  // no download of big.bin gets through
  const std::string out = root_ + "/restored";
  const Result stopped = run({"restore", "--directory", src_, "--destination", out});
  EXPECT_NE(stopped.code, 0) << stopped;
  EXPECT_TRUE(contains(stopped.err, "run the same restore again")) << stopped;
  EXPECT_FALSE(exists(out + "/big.bin")) << listing(out);

  proxy.cut_after(TcpProxy::Direction::to_client, 150'000, 0);  // the server is back
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
  EXPECT_TRUE(read_text(out + "/big.bin") == read_text(src_ + "/big.bin"));
}

TEST_F(S3CliTest, AnUploadLimitIsKeptAndSeveralConnectionsStillRestoreEverything) {
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big.bin", 3 << 20, 22));
  ASSERT_TRUE(succeeded(run({"config", "set", "transfer.upload_limit", "1MiB"})));
  ASSERT_TRUE(succeeded(run({"config", "set", "transfer.connections", "8"})));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(succeeded(run({"backup"})));
  // A lower bound only (it cannot flake on a slow machine): 3 MiB at 1 MiB/s, the first second's
  // budget free, is at least 2 s.
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1900));
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  expect_restored(out);
  EXPECT_TRUE(read_text(out + "/big.bin") == read_text(src_ + "/big.bin"));
}

TEST_F(S3CliTest, WrongCredentialsAreOneClearLineAndNothingIsRecorded) {
  ASSERT_NO_FATAL_FAILURE(configure_s3());
  const std::string wrong_secret = "0000000000000000000000000000000000000000";
  RunOptions wrong;
  wrong.env = {{"AWS_SECRET_ACCESS_KEY", wrong_secret}};
  const Result refused = run({"backup"}, wrong);
  EXPECT_NE(refused.code, 0) << refused;
  EXPECT_TRUE(contains(refused.err, "secret key from the environment is wrong")) << refused;
  EXPECT_FALSE(contains(refused.out + refused.err + read_text(log_path()), wrong_secret));
  EXPECT_FALSE(contains(refused.out + refused.err + read_text(log_path()), s3_test_server().secret_access_key));

  RunOptions none;
  none.env = {{"AWS_ACCESS_KEY_ID", std::nullopt}, {"AWS_SECRET_ACCESS_KEY", std::nullopt}};
  const Result missing = run({"backup"}, none);
  EXPECT_NE(missing.code, 0) << missing;
  EXPECT_TRUE(contains(missing.err, "no S3 credentials")) << missing;

  // With the right keys, the first backup is number 1: nothing of the refused ones was committed.
  const Result good = run({"backup", "--json"});
  ASSERT_TRUE(succeeded(good));
  EXPECT_EQ(json_of(good.out)["files_new"], 3) << good;
}

TEST_F(S3CliTest, APasswordInTheUrlIsRefusedAndNotSaved) {
  init();
  const std::string before = read_text(config_path());
  const std::string url = "s3+http://" + s3_test_server().host_port + "/bucket";
  const Result refused = run({"config", "set", "destination", "s3+http://key:hunter2@" + url.substr(10)});
  EXPECT_NE(refused.code, 0) << refused;
  EXPECT_TRUE(contains(refused.err, "password")) << refused;
  EXPECT_FALSE(contains(refused.err, "hunter2")) << refused;
  EXPECT_EQ(read_text(config_path()), before);
}

}  // namespace
}  // namespace mybackup_cli_test
