// Attack test (issue 11, item 10) and file metadata end to end: when mybackup runs as root over a
// tree other users write, a user's setuid file must come back owned by that user (it came back
// setuid-root), and owners, extended attributes and fifos are recorded and restored.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

class MetadataCliTest : public CliTest {};

struct stat lstat_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info;
}

TEST_F(MetadataCliTest, AUsersSetuidFileNeverComesBackSetuidRoot) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "only root can back up another user's file as that user's";
  }
  ASSERT_NO_FATAL_FAILURE(configure());
  const std::string tool = src_ + "/tool";
  write_text(tool, "#!/bin/sh\necho hi\n");
  ASSERT_EQ(::chown(tool.c_str(), 65534, 65534), 0);  // nobody:nogroup
  ASSERT_EQ(::chmod(tool.c_str(), 04755), 0);
  ASSERT_EQ(::setxattr(tool.c_str(), "user.origin", "camera", 6, 0), 0);
  ASSERT_EQ(::mkfifo((src_ + "/pipe").c_str(), 0600), 0);
  ASSERT_EQ(::chmod((src_ + "/pipe").c_str(), 0620), 0);  // past the umask
  const Result backup = run({"backup"});
  ASSERT_TRUE(succeeded(backup)) << backup << "a fifo no longer makes a backup partial";

  const Result listed = run({"list", tool, "--json"});
  ASSERT_TRUE(succeeded(listed)) << listed;
  const auto version = json_of(listed.out)["versions"][0];
  EXPECT_EQ(version["uid"], 65534) << listed;
  EXPECT_EQ(version["owner"], "nobody") << listed;
  EXPECT_EQ(version["xattrs"][0], "user.origin") << listed;

  const std::string out = root_ + "/out/r";
  const Result restored = run({"restore", "--directory", src_, "--destination", out});
  ASSERT_TRUE(succeeded(restored)) << restored;
  const struct stat info = lstat_of(out + "/tool");
  EXPECT_EQ(info.st_uid, 65534U) << "the setuid bit belongs to the file's owner, never to root";
  EXPECT_EQ(info.st_gid, 65534U);
  EXPECT_EQ(info.st_mode & 07777, 04755U);
  char value[16] = {};
  EXPECT_EQ(::getxattr((out + "/tool").c_str(), "user.origin", value, sizeof value), 6);
  EXPECT_STREQ(value, "camera");
  EXPECT_TRUE(S_ISFIFO(lstat_of(out + "/pipe").st_mode));
  EXPECT_EQ(lstat_of(out + "/pipe").st_mode & 07777, 0620U);

  // A change of owner alone (same content, same mtime) is a new version.
  ASSERT_EQ(::chown(tool.c_str(), 0, 0), 0);
  const Result again = run({"backup", "--json"});
  ASSERT_TRUE(succeeded(again)) << again;
  EXPECT_EQ(json_of(again.out)["files_changed"], 1) << again;
}

}  // namespace
}  // namespace mybackup_cli_test
