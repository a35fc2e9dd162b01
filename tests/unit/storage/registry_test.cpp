// Destinations as URLs: normalizing what users write, and the backend each scheme opens.

#include "mybackup/storage/registry.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::ErrorOutcome;

TEST(Registry, PlainPathsAreMadeAbsoluteAndNormalized) {
  EXPECT_EQ(normalize_destination("/mnt/backups/"), "/mnt/backups");
  EXPECT_EQ(normalize_destination("/mnt/a/../backups"), "/mnt/backups");
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(normalize_destination("relative/dir"), std::string(cwd) + "/relative/dir");
  EXPECT_EQ(normalize_destination(""), "");
}

TEST(Registry, FileUrlsAreLocalFolders) {
  EXPECT_EQ(normalize_destination("file:///mnt/backups"), "file:///mnt/backups");
  EXPECT_EQ(normalize_destination("FILE:///mnt/x/../backups/"), "file:///mnt/backups");
  EXPECT_EQ(normalize_destination("file://localhost/mnt/backups"), "file:///mnt/backups");
  EXPECT_EQ(normalize_destination("file:///mnt/my%20backups"), "file:///mnt/my backups");
  EXPECT_EQ(local_destination_path("file:///mnt/backups"), "/mnt/backups");
  EXPECT_EQ(local_destination_path("/mnt/backups"), "/mnt/backups");
  EXPECT_TRUE(same_destination("file:///mnt/backups", "/mnt/backups"));
  EXPECT_FALSE(same_destination("file:///mnt/backups", "/mnt/other"));
}

TEST(Registry, BadUrlsAreUsageErrorsNamingTheProblem) {
  try {
    normalize_destination("nosuch://x");
    ADD_FAILURE() << "an unknown scheme was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::usage);
    const std::string message = error.what();
    EXPECT_NE(message.find("'nosuch://'"), std::string::npos) << message;
    EXPECT_NE(message.find("supported: file://"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_EQ(error_kind([] { normalize_destination("file://otherhost/x"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { normalize_destination("file:///bad%zzescape"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { normalize_destination("file:///nul%00byte"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { open_backend("nosuch://x"); }), ErrorKind::usage);
  EXPECT_EQ(supported_schemes(), (std::vector<std::string>{"file", "s3", "s3+http", "sftp"}));
}

TEST(Registry, S3UrlsAreCheckedAndSpelledOneWay) {
  EXPECT_EQ(normalize_destination("S3://Minio.Example:9000/bucket/a//b/?style=path&region=eu-west-1"),
            "s3://minio.example:9000/bucket/a/b?region=eu-west-1&style=path");
  EXPECT_EQ(normalize_destination("s3+http://127.0.0.1:18080/my-bucket"), "s3+http://127.0.0.1:18080/my-bucket");
  EXPECT_FALSE(local_destination_path("s3://host/bucket").has_value());
  EXPECT_FALSE(same_destination("s3://host/bucket", "s3://host/bucket/p"));
  for (const std::string bad : {"s3://host", "s3://host/", "s3://host/Bad_Bucket", "s3://host/ab", "s3://host/-bucket",
                                "s3://key@host/bucket", "s3://key:secret@host/bucket", "s3://host/bucket?style=odd",
                                "s3://host/bucket?endpoint=x", "s3://host/bucket/../x"}) {
    const ErrorOutcome outcome = error_kind([&] { normalize_destination(bad); });
    EXPECT_EQ(outcome, ErrorKind::usage) << bad;
  }
  // The error names the way out.
  try {
    normalize_destination("s3://host/Bad_Bucket");
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("lower-case letters"), std::string::npos) << error.what();
  }
}

TEST(Registry, SftpUrlsAreRemoteAndNormalized) {
  EXPECT_EQ(normalize_destination("SFTP://Backup@NAS.example:2222/srv//backups/?known_hosts=/k&identity=/i"),
            "sftp://Backup@nas.example:2222/srv/backups?identity=/i&known_hosts=/k");  // user names keep their case
  EXPECT_EQ(normalize_destination("sftp://nas/~/backups"), "sftp://nas/~/backups");
  EXPECT_EQ(local_destination_path("sftp://nas/srv/backups"), std::nullopt);
  EXPECT_FALSE(same_destination("sftp://nas/srv/backups", "/srv/backups"));
  EXPECT_EQ(error_kind([] { normalize_destination("sftp://nas"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { normalize_destination("sftp://nas/"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { normalize_destination("sftp://user:secret@nas/x"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { normalize_destination("sftp://nas/x?password=1"); }), ErrorKind::usage);
  // Opening does not connect: a host nobody runs is only reached by the first call.
  EXPECT_EQ(open_backend("sftp://nas.invalid/srv/backups")->location(), "sftp://nas.invalid/srv/backups");
}

TEST(Registry, AFileUrlAndAPlainPathOpenTheSameStore) {
  testing::TempDir dir;
  const auto by_path = open_backend(dir / "store");
  by_path->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  const auto by_url = open_backend(normalize_destination("file://" + dir / "store"));
  EXPECT_EQ(as_text(by_url->get("data/ab/one.enc", 10)), "1");
  EXPECT_EQ(by_url->location(), dir / "store");
}

}  // namespace
}  // namespace mybackup
