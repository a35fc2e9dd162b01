// The SFTP backend against a real OpenSSH server on loopback (tests/servers/sshd_server.hpp):
// host key checks, login refusals, a hostile destination folder, and the server dying mid-way.
// The contract itself is checked by the conformance suite (backend_conformance_test.cpp).

#include "mybackup/storage/sftp_backend.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "mybackup/storage/remote_url.hpp"
#include "mybackup/storage/retry_backend.hpp"
#include "servers/sshd_server.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::random_data;
using testing::TempDir;

namespace fs = std::filesystem;

/// The backend of an sftp:// URL, without the retry decorator (so each failure shows).
std::unique_ptr<Backend> sftp_backend(const std::string& url) {
  return make_sftp_backend(parse_remote_url("sftp", url.substr(7), url, sftp_url_options(), true));
}

class SftpBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = scratch_ / "store";
    backend_ = sftp_backend(server_.url(store_));
  }

  test_servers::SshdServer server_;
  TempDir scratch_;
  std::string store_;  // the destination folder, as the server (same machine) and the test see it
  std::unique_ptr<Backend> backend_;
};

TEST_F(SftpBackendTest, AnUnknownHostKeyIsRefusedWithItsFingerprintAndHowToAcceptIt) {
  const std::string empty_known_hosts = scratch_ / "known_hosts";
  testing::write_text_file(empty_known_hosts, "");
  const auto backend = sftp_backend(server_.url(store_, server_.user_key(), empty_known_hosts));
  const testing::ErrorOutcome outcome = error_kind([&] { backend->put("keys/k.json", as_bytes("x"), Overwrite::no); });
  ASSERT_EQ(outcome, ErrorKind::denied) << outcome;
  EXPECT_NE(outcome.message().find(server_.host_key_fingerprint()), std::string::npos) << outcome;
  EXPECT_NE(outcome.message().find("ssh-keyscan -p " + std::to_string(server_.port()) + " 127.0.0.1 >> " + empty_known_hosts),
            std::string::npos)
      << outcome;
  EXPECT_EQ(outcome.message().find('\n'), std::string::npos) << outcome;
  EXPECT_EQ(testing::read_text_file(empty_known_hosts), "") << "never accepted automatically";
  EXPECT_FALSE(fs::exists(store_)) << "nothing was sent to an unchecked server";
}

TEST_F(SftpBackendTest, AChangedHostKeyIsRefused) {
  const std::string impostor = server_.make_key("impostor_host_key");
  const std::string stale_known_hosts = scratch_ / "known_hosts";
  testing::write_text_file(stale_known_hosts, server_.known_hosts_line(impostor));
  const auto backend = sftp_backend(server_.url(store_, server_.user_key(), stale_known_hosts));
  const testing::ErrorOutcome outcome = error_kind([&] { backend->list(""); });
  ASSERT_EQ(outcome, ErrorKind::denied) << outcome;
  EXPECT_NE(outcome.message().find("CHANGED"), std::string::npos) << outcome;
  EXPECT_NE(outcome.message().find(server_.host_key_fingerprint()), std::string::npos) << outcome;
  EXPECT_NE(outcome.message().find("ssh-keygen -f " + stale_known_hosts + " -R '[127.0.0.1]:" +
                                   std::to_string(server_.port()) + "'"),
            std::string::npos)
      << outcome;
}

TEST_F(SftpBackendTest, AKeyTheServerDoesNotKnowIsDeniedAndNeverQuoted) {
  const std::string stranger = server_.make_key("stranger_key");
  const auto backend = sftp_backend(server_.url(store_, stranger, server_.known_hosts()));
  const testing::ErrorOutcome outcome = error_kind([&] { backend->size("keys/k.json"); });
  ASSERT_EQ(outcome, ErrorKind::denied) << outcome;
  EXPECT_NE(outcome.message().find("authorized_keys"), std::string::npos) << outcome;
  const std::string private_key = testing::read_text_file(stranger);
  const std::string key_body = private_key.substr(private_key.find('\n') + 1, 40);
  EXPECT_EQ(outcome.message().find(key_body), std::string::npos) << "key material in a message";

  const auto missing = sftp_backend(server_.url(store_, scratch_ / "no_such_key", server_.known_hosts()));
  EXPECT_EQ(error_kind([&] { missing->empty(); }), ErrorKind::denied);
}

TEST_F(SftpBackendTest, PlantedLinksAreNeitherListedNorFollowed) {
  backend_->put("data/ab/real.enc", as_bytes("real"), Overwrite::no);
  const std::string outside = scratch_ / "outside";
  fs::create_directories(outside);
  testing::write_text_file(outside + "/secret.enc", "secret bytes");
  fs::create_symlink(outside + "/secret.enc", store_ + "/data/ab/evil.enc");
  fs::create_symlink(outside, store_ + "/data/cd");

  EXPECT_EQ(testing::names_of(backend_->list("data")), std::vector<std::string>{"data/ab/real.enc"});
  EXPECT_EQ(testing::names_of(backend_->list("")), std::vector<std::string>{"data/ab/real.enc"});
  EXPECT_TRUE(backend_->list("data/cd").empty()) << "a link in the place of a folder holds no objects";
  EXPECT_EQ(error_kind([&] { backend_->get("data/ab/evil.enc", 1000); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend_->get_range("data/ab/evil.enc", 0, 4); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend_->size("data/ab/evil.enc"); }), ErrorKind::corrupt);
  EXPECT_EQ(testing::read_text_file(outside + "/secret.enc"), "secret bytes");
}

TEST_F(SftpBackendTest, AnObjectOverTheBoundIsRefusedWithoutBeingRead) {
  // 64 GiB that take no disk: reading it all would take minutes and more memory than there is.
  fs::create_directories(store_ + "/data/ab");
  const std::string huge = store_ + "/data/ab/huge.enc";
  testing::write_text_file(huge, "");
  fs::resize_file(huge, std::uint64_t{64} << 30);

  const auto started = std::chrono::steady_clock::now();
  const testing::ErrorOutcome outcome = error_kind([&] { backend_->get("data/ab/huge.enc", 1 << 20); });
  EXPECT_EQ(outcome, ErrorKind::corrupt) << outcome;
  EXPECT_NE(outcome.message().find("68719476736 bytes"), std::string::npos) << outcome;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_EQ(backend_->size("data/ab/huge.enc"), std::uint64_t{64} << 30);
  EXPECT_EQ(backend_->get_range("data/ab/huge.enc", std::uint64_t{40} << 30, 16), Bytes(16, 0));
}

TEST_F(SftpBackendTest, SpecialFilesAndFoldersAreNotObjects) {
  backend_->put("data/ab/real.enc", as_bytes("real"), Overwrite::no);
  ASSERT_EQ(::mkfifo((store_ + "/data/ab/fifo.enc").c_str(), 0600), 0);
  fs::create_directories(store_ + "/data/ab/folder.enc");

  // A FIFO opened for reading would wait for a writer forever: it must be refused before that.
  EXPECT_EQ(error_kind([&] { backend_->get("data/ab/fifo.enc", 1000); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend_->get_range("data/ab/fifo.enc", 0, 1); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend_->size("data/ab/fifo.enc"); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend_->get("data/ab/folder.enc", 1000); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend_->remove("data/ab/folder.enc"); }), ErrorKind::corrupt);
  EXPECT_EQ(testing::names_of(backend_->list("data")), std::vector<std::string>{"data/ab/real.enc"});
}

TEST_F(SftpBackendTest, AFileWhereAFolderBelongsIsCorruptForPut) {
  fs::create_directories(store_);
  testing::write_text_file(store_ + "/data", "not a folder");
  EXPECT_EQ(error_kind([&] { backend_->put("data/ab/x.enc", as_bytes("x"), Overwrite::no); }), ErrorKind::corrupt);
  EXPECT_EQ(testing::read_text_file(store_ + "/data"), "not a folder");
}

/// Names of the files in `folder` (recursively) that start with ".tmp-".
std::vector<std::string> temporaries_below(const std::string& folder) {
  std::vector<std::string> found;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(folder, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    if (it->path().filename().string().rfind(".tmp-", 0) == 0) {
      found.push_back(it->path().string());
    }
  }
  return found;
}

TEST_F(SftpBackendTest, AServerKilledMidUploadIsTransientAndLeavesNoObject) {
  backend_->put("data/ab/first.enc", as_bytes("1"), Overwrite::no);  // a pooled connection, and the folders
  const Bytes big = random_data(64 << 20, 7);
  testing::ErrorOutcome outcome;
  std::thread writer([&] { outcome = error_kind([&] { backend_->put("data/ab/big.enc", big, Overwrite::no); }); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (temporaries_below(store_).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_.kill();
  writer.join();
  EXPECT_EQ(outcome, ErrorKind::transient) << outcome;
  EXPECT_FALSE(fs::exists(store_ + "/data/ab/big.enc"));

  // The dead connection is dropped, not reused: after a restart the same backend works again.
  server_.start();
  EXPECT_FALSE(backend_->size("data/ab/big.enc").has_value());
  EXPECT_EQ(testing::names_of(backend_->list("")), std::vector<std::string>{"data/ab/first.enc"});
}

TEST_F(SftpBackendTest, TheRetryDecoratorCompletesAPutAcrossARestart) {
  backend_->put("data/ab/first.enc", as_bytes("1"), Overwrite::no);
  server_.kill();  // the pooled connection is dead and the server refuses new ones
  int waits = 0;
  RetryPolicy policy;
  policy.attempts = 4;
  policy.sleep = [&](std::chrono::milliseconds) {
    ++waits;
    if (waits == 2) {
      server_.start();
    }
  };
  const auto retrying = make_retrying_backend(std::move(backend_), policy);
  const Bytes data = random_data(300'000, 3);
  retrying->put("data/cd/second.enc", data, Overwrite::no);
  EXPECT_EQ(waits, 2);
  EXPECT_EQ(retrying->get("data/cd/second.enc", data.size()), data);
}

TEST_F(SftpBackendTest, FiftyMegabytesGoAndComeBackAtAUsefulSpeed) {
  const Bytes data = random_data(50 << 20, 11);
  const auto started = std::chrono::steady_clock::now();
  backend_->put("data/ef/fifty.enc", data, Overwrite::no);
  const auto stored = std::chrono::steady_clock::now();
  const Bytes back = backend_->get("data/ef/fifty.enc", data.size());
  const auto read = std::chrono::steady_clock::now();
  EXPECT_TRUE(back == data);
  const auto mb_per_s = [](std::chrono::steady_clock::duration took) {
    return 50.0 / std::chrono::duration<double>(took).count();
  };
  std::cout << "[ sftp     ] 50 MB over loopback: put " << mb_per_s(stored - started) << " MB/s, get "
            << mb_per_s(read - stored) << " MB/s\n";
  EXPECT_LT(read - started, std::chrono::seconds(60)) << "under 2 MB/s: requests are not pipelined";
}

TEST_F(SftpBackendTest, ATildePathIsBelowTheLoginFolder) {
  const auto backend = sftp_backend(server_.url("/~/relative/store"));
  backend->put("keys/k.json", as_bytes("key"), Overwrite::no);
  EXPECT_EQ(testing::read_text_file(server_.login_folder() + "/relative/store/keys/k.json"), "key");
  EXPECT_EQ(testing::names_of(backend->list("")), std::vector<std::string>{"keys/k.json"});

  const auto login_folder_itself = sftp_backend(server_.url("/~"));
  EXPECT_EQ(testing::names_of(login_folder_itself->list("relative")), std::vector<std::string>{"relative/store/keys/k.json"});
}

TEST_F(SftpBackendTest, AListingStopsAtFoldersNestedTooDeep) {
  std::string deep = store_ + "/data";
  for (int level = 0; level < 20; ++level) {
    deep += "/d" + std::to_string(level);
  }
  fs::create_directories(deep);
  testing::write_text_file(deep + "/x.enc", "x");
  EXPECT_EQ(error_kind([&] { backend_->list("data"); }), ErrorKind::corrupt);
}

TEST_F(SftpBackendTest, AUrlWithoutAPathIsRefused) {
  EXPECT_EQ(error_kind([&] { sftp_backend("sftp://127.0.0.1"); }), ErrorKind::usage);
}

}  // namespace
}  // namespace mybackup
