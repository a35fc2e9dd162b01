// Attack tests (issue 11, item 2): someone who can write to the destination puts a fifo, a link to
// /dev/zero or a huge file where mybackup reads a lock, the marker or a pack. Every command ends
// promptly (the harness fails a command that runs a minute) with a clear error or by passing the
// object over, and never reads without a bound.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

class DestinationAttackCliTest : public CliTest {
 protected:
  /// One pack of the destination, as a path.
  std::string a_pack() const {
    for (const std::string& name : files_below(dest_ + "/data")) {
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".enc") == 0) {
        return dest_ + "/data/" + name;
      }
    }
    return "";
  }
};

TEST_F(DestinationAttackCliTest, AFifoAsAPackFailsOnlyWhatItHolds) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  const std::string pack = a_pack();
  ASSERT_FALSE(pack.empty()) << listing(dest_);
  fs::rename(pack, root_ + "/saved-pack");
  ASSERT_EQ(::mkfifo(pack.c_str(), 0644), 0);

  const Result restore = run({"restore", "--directory", src_, "--destination", root_ + "/out/r"});
  EXPECT_EQ(restore.code, 1) << restore;
  EXPECT_TRUE(contains(restore.err, "not a regular file")) << restore;
  const Result verify = run({"verify", "--read-data"});
  EXPECT_EQ(verify.code, 1) << verify;

  ::unlink(pack.c_str());
  fs::rename(root_ + "/saved-pack", pack);
  EXPECT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", root_ + "/out/r2"})));
}

TEST_F(DestinationAttackCliTest, AFifoALinkToDevZeroOrAHugeFileAsALockNeverHangsOrFloods) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  const std::string locks = dest_ + "/locks";
  fs::create_directories(locks);
  ASSERT_EQ(::mkfifo((locks + "/00000000000000aa.json").c_str(), 0644), 0);
  ASSERT_EQ(::symlink("/dev/zero", (locks + "/00000000000000bb.json").c_str()), 0);
  write_text(src_ + "/a.txt", "alpha, with planted locks\n");
  const Result passed_over = run({"backup"});
  EXPECT_TRUE(succeeded(passed_over)) << passed_over << "a fifo or a link is not a lock file: never opened";

  // 300 MB (sparse): refused by its size before anything is read into memory.
  const std::string huge = locks + "/00000000000000cc.json";
  write_text(huge, "");
  ASSERT_EQ(::truncate(huge.c_str(), 300L * 1024 * 1024), 0);
  write_text(src_ + "/a.txt", "alpha, with a huge lock\n");
  const Result refused = run({"backup"});
  EXPECT_EQ(refused.code, 1) << refused;
  EXPECT_TRUE(contains(refused.err, "00000000000000cc.json is 314572800 bytes, more than the 65536")) << refused;
}

TEST_F(DestinationAttackCliTest, AFifoAsTheMarkerIsAClearError) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  const std::string marker = dest_ + "/mybackup-repo.json";
  ASSERT_EQ(::unlink(marker.c_str()), 0);
  ASSERT_EQ(::mkfifo(marker.c_str(), 0644), 0);
  for (const std::vector<std::string>& command : {std::vector<std::string>{"backup"}, {"verify"}}) {
    const Result result = run(command);
    EXPECT_NE(result.code, 0) << result;
    EXPECT_TRUE(contains(result.err, "not a regular file")) << result;
  }
}

}  // namespace
}  // namespace mybackup_cli_test
