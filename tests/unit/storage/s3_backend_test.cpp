// The S3 backend against a real server (Ceph's RADOS Gateway on loopback, the CTest fixture
// s3_server): credentials, bounds, prefixes and network failures. The Backend contract itself is
// checked by the conformance suite (S3/Conformance.*).

#include "mybackup/storage/s3_backend.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/s3_test_server.hpp"
#include "common/tcp_proxy.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup::testing {
namespace {

RemoteUrl url_of(const std::string& text) {
  const std::string normalized = normalize_destination(text);
  const std::size_t colon = normalized.find("://");
  return parse_remote_url(normalized.substr(0, colon), normalized.substr(colon + 3), normalized, s3_url_options(), false);
}

/// Sets an environment variable for the life of the object, then puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      old_ = old;
    }
    value ? ::setenv(name, value->c_str(), 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string message_of(const std::function<void()>& action, ErrorKind expected) {
  try {
    action();
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), expected) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

class S3Server : public ::testing::Test {
 protected:
  void SetUp() override { url_ = s3_test_url(); }
  std::string url_;
};

TEST_F(S3Server, AWrongSecretIsDeniedAndNeverShown) {
  const std::string wrong = "WRONGSECRETwrongsecretWRONGSECRETwrongse";
  const ScopedEnv secret("AWS_SECRET_ACCESS_KEY", wrong);
  const auto backend = make_s3_backend(url_of(url_));
  const std::string message = message_of([&] { backend->put("data/ab/x.enc", as_bytes("x"), Overwrite::no); }, ErrorKind::denied);
  EXPECT_NE(message.find("secret key from the environment is wrong"), std::string::npos) << message;
  EXPECT_EQ(message.find(wrong), std::string::npos) << message;
  EXPECT_EQ(message.find(s3_test_server().access_key_id), std::string::npos) << message;
}

TEST_F(S3Server, AnUnknownAccessKeyIsDenied) {
  const ScopedEnv key("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000");
  const auto backend = make_s3_backend(url_of(url_));
  const std::string message = message_of([&] { backend->list("data"); }, ErrorKind::denied);
  EXPECT_NE(message.find("does not know the access key"), std::string::npos) << message;
}

TEST_F(S3Server, CredentialsComeFromAProfileWhenTheEnvironmentHasNone) {
  TempDir dir;
  const std::string file = dir / "credentials";
  write_text_file(file, "[other]\naws_access_key_id = nope\n\n[backup]\naws_access_key_id = " + s3_test_server().access_key_id +
                       "\naws_secret_access_key=" + s3_test_server().secret_access_key + "\n");
  const ScopedEnv key("AWS_ACCESS_KEY_ID", std::nullopt);
  const ScopedEnv secret("AWS_SECRET_ACCESS_KEY", std::nullopt);
  const ScopedEnv path("AWS_SHARED_CREDENTIALS_FILE", file);
  const auto backend = open_backend(normalize_destination(url_ + "?profile=backup"));
  backend->put("data/ab/x.enc", as_bytes("from a profile"), Overwrite::no);
  EXPECT_EQ(as_text(backend->get("data/ab/x.enc", 100)), "from a profile");
  // Without the profile named, "default" is looked for, and is not there.
  const std::string message = message_of([&] { open_backend(normalize_destination(url_)); }, ErrorKind::usage);
  EXPECT_NE(message.find("profile 'default'"), std::string::npos) << message;
  EXPECT_NE(message.find("AWS_ACCESS_KEY_ID"), std::string::npos) << message;
}

TEST_F(S3Server, AnObjectOverTheBoundIsRefused) {
  const auto backend = open_backend(normalize_destination(url_));
  backend->put("locks/big.json", random_data(1 << 20, 7), Overwrite::no);
  const std::string message = message_of([&] { backend->get("locks/big.json", 65536); }, ErrorKind::corrupt);
  EXPECT_NE(message.find("1048576 bytes, more than the 65536"), std::string::npos) << message;
  EXPECT_EQ(message_of([&] { backend->get_range("locks/big.json", (1 << 20) - 10, 11); }, ErrorKind::corrupt).empty(), false);
}

TEST_F(S3Server, APrefixSeesOnlyItsOwnObjects) {
  const auto inner = open_backend(normalize_destination(url_ + "/p"));
  const auto sibling = open_backend(normalize_destination(url_ + "/p2"));
  const auto outer = open_backend(normalize_destination(url_));
  inner->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  sibling->put("data/ab/two.enc", as_bytes("22"), Overwrite::no);
  EXPECT_EQ(inner->list("data"), (std::vector<ObjectInfo>{{"data/ab/one.enc", 1}}));
  EXPECT_EQ(sibling->list(""), (std::vector<ObjectInfo>{{"data/ab/two.enc", 2}}));
  EXPECT_EQ(outer->list(""), (std::vector<ObjectInfo>{{"p/data/ab/one.enc", 1}, {"p2/data/ab/two.enc", 2}}));
  EXPECT_FALSE(inner->size("data/ab/two.enc").has_value());
}

TEST_F(S3Server, TheFirstPutCreatesAMissingBucket) {
  const std::string bucket = "new-" + unique_s3_prefix();
  const auto backend = open_backend(normalize_destination(s3_test_url(bucket)));
  EXPECT_TRUE(backend->empty());
  EXPECT_TRUE(backend->list("data").empty());
  const std::string message = message_of([&] { backend->get("config", 100); }, ErrorKind::not_found);
  EXPECT_NE(message.find("bucket '" + bucket + "' does not exist"), std::string::npos) << message;
  backend->put("config", as_bytes("marker"), Overwrite::no);
  EXPECT_EQ(as_text(backend->get("config", 100)), "marker");
}

// A backup's first packs go up several at once, so several puts may find the bucket missing and
// create it together. Some servers (s3rver) answer the losers BucketAlreadyExists, as to a
// stranger: that was taken for someone else's bucket and failed the first backup.
TEST_F(S3Server, FirstPutsRacingToCreateTheBucketAllSucceed) {
  for (const bool second_server : {false, true}) {
    SCOPED_TRACE(second_server ? "s3rver" : "ceph_rgw");
    const std::string bucket = "race-" + unique_s3_prefix();
    constexpr int kWriters = 8;
    std::atomic<int> ready{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> writers;
    for (int i = 0; i < kWriters; ++i) {
      writers.emplace_back([&, i] {
        const auto backend =
            open_backend(normalize_destination(second_server ? s3rver_test_url(bucket) : s3_test_url(bucket)));
        ++ready;
        while (ready.load() < kWriters) {
          std::this_thread::yield();
        }
        try {
          backend->put("data/0" + std::to_string(i) + "/first.enc", as_bytes("pack " + std::to_string(i)), Overwrite::no);
        } catch (const Error& error) {
          ADD_FAILURE() << error.what();
          ++failed;
        }
      });
    }
    for (std::thread& writer : writers) {
      writer.join();
    }
    EXPECT_EQ(failed.load(), 0);
  }
}

TEST_F(S3Server, ListingsLongerThanAPageAreComplete) {
  const auto backend = open_backend(normalize_destination(url_));
  std::vector<ObjectInfo> expected;
  for (int i = 0; i < 1100; ++i) {  // RGW answers 1000 keys a page
    const std::string name = "index/" + std::to_string(10000 + i);
    expected.push_back({name, 1});
  }
  // Stored from several threads: the backend is shared.
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (std::size_t i = static_cast<std::size_t>(t); i < expected.size(); i += 4) {
        backend->put(expected[i].name, as_bytes("x"), Overwrite::no);
      }
    });
  }
  for (std::thread& writer : writers) {
    writer.join();
  }
  EXPECT_EQ(backend->list("index"), expected);
}

/// The RADOS Gateway's port.
int rgw_port() { return std::stoi(s3_test_server().host_port.substr(s3_test_server().host_port.rfind(':') + 1)); }

/// `url` (of the RADOS Gateway) reached through `proxy` instead.
std::string through(const TcpProxy& proxy, const std::string& url) {
  std::string proxied = url;
  const std::string direct = s3_test_server().host_port;
  proxied.replace(proxied.find(direct), direct.size(), "127.0.0.1:" + std::to_string(proxy.port()));
  return proxied;
}

TEST_F(S3Server, AnUploadCutMidwayIsTriedAgainAndStoredWhole) {
  TcpProxy proxy(rgw_port());
  proxy.cut_after(TcpProxy::Direction::to_server, 200'000, 1);
  const auto backend = open_backend(normalize_destination(through(proxy, url_)));
  const Bytes data = random_data(1 << 20, 11);
  backend->put("data/ab/big.enc", data, Overwrite::no);
  EXPECT_EQ(proxy.connections_cut(), 1);
  EXPECT_EQ(backend->get("data/ab/big.enc", data.size()), data);
}

TEST_F(S3Server, AServerGoneMidUploadIsTransientAndStoresNothing) {
  TcpProxy proxy(rgw_port());
  proxy.cut_after(TcpProxy::Direction::to_server, 200'000, -1);
  const auto backend = make_s3_backend(url_of(through(proxy, url_)));
  const std::string message =
      message_of([&] { backend->put("data/ab/big.enc", random_data(1 << 20, 12), Overwrite::no); }, ErrorKind::transient);
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(proxy.port())), std::string::npos) << message;
  const auto direct = open_backend(normalize_destination(url_));
  EXPECT_FALSE(direct->size("data/ab/big.enc").has_value()) << "a cut upload must leave no object";
  EXPECT_TRUE(direct->list("").empty());
  // Every new connection refused (the server stopped): transient too, so it is tried again.
  proxy.refuse(true);
  EXPECT_EQ(error_kind([&] { backend->list("data"); }), ErrorKind::transient);
}

TEST_F(S3Server, ADownloadCutMidwayIsTriedAgain) {
  const auto direct = open_backend(normalize_destination(url_));
  const Bytes data = random_data(1 << 20, 13);
  direct->put("data/ab/big.enc", data, Overwrite::no);
  TcpProxy proxy(rgw_port());
  proxy.cut_after(TcpProxy::Direction::to_client, 300'000, 2);
  const auto backend = open_backend(normalize_destination(through(proxy, url_)));
  EXPECT_EQ(backend->get_range("data/ab/big.enc", 1000, 900'000), Bytes(data.begin() + 1000, data.begin() + 901'000));
  EXPECT_EQ(backend->get("data/ab/big.enc", data.size()), data);
  EXPECT_EQ(proxy.connections_cut(), 2);
}

TEST(S3ServerDown, AClosedPortIsTransientAndNamesTheServer) {
  s3_test_server();  // credentials in the environment
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);
  ::close(probe);  // nothing listens there now
  const auto backend = make_s3_backend(url_of("s3+http://127.0.0.1:" + std::to_string(port) + "/bucket"));
  const std::string message = message_of([&] { backend->list("data"); }, ErrorKind::transient);
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << message;
}

}  // namespace
}  // namespace mybackup::testing
