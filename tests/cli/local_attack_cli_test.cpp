// Attack tests (issue 11, items 11 and 12): mybackup run by root over folders other users can
// write. A user who replaces the restore destination, or a folder above a source, by a link must
// not steer root's writes or reads.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

constexpr uid_t kNobody = 65534;

class LocalAttackCliTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (::geteuid() != 0) {
      GTEST_SKIP() << "the attacks need root running mybackup and a link another user owns";
    }
    // A folder of root's that the attacker wants written into, and the attacker's own folder.
    victim_ = root_ + "/victim";
    ana_ = root_ + "/ana";
    ASSERT_EQ(::mkdir(victim_.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(ana_.c_str(), 0755), 0);
    ASSERT_EQ(::chown(ana_.c_str(), kNobody, kNobody), 0);
  }

  /// Makes `link` -> `target`, owned by the attacker.
  static void plant_link(const std::string& target, const std::string& link) {
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    ASSERT_EQ(::lchown(link.c_str(), kNobody, kNobody), 0);
  }

  std::string victim_;
  std::string ana_;
};

TEST_F(LocalAttackCliTest, ARestoreDestinationSwappedForALinkIsRefused) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  const std::string destination = ana_ + "/restored";
  ASSERT_NO_FATAL_FAILURE(plant_link(victim_, destination));

  for (const bool overwrite : {false, true}) {
    std::vector<std::string> args = {"restore", "--directory", src_, "--destination", destination};
    if (overwrite) {
      args.push_back("--overwrite");
    }
    const Result result = run(args);
    EXPECT_TRUE(failed_with(result, 1, {destination + " is a symbolic link", "give the real path"})) << result;
    EXPECT_EQ(listing(victim_), "") << "root wrote through the attacker's link";
    struct stat info {};
    ASSERT_EQ(::stat(victim_.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0700U) << "the link's target was made accessible";
  }

  // A link above the destination: refused too, and nothing is created through it.
  const Result below = run({"restore", "--directory", src_, "--destination", destination + "/new"});
  EXPECT_TRUE(failed_with(below, 1, {destination, "does not follow it"})) << below;
  EXPECT_EQ(listing(victim_), "");
}

TEST_F(LocalAttackCliTest, ASourceBehindTheAttackersLinkIsNotRead) {
  ASSERT_NO_FATAL_FAILURE(init());
  // The attacker's folder is a source; they replace it by a link to root's folder.
  write_text(victim_ + "/shadow", "root's secret\n");
  const std::string source = ana_ + "/docs";
  ASSERT_EQ(::mkdir(source.c_str(), 0755), 0);
  write_text(source + "/notes.txt", "ana's notes\n");
  ASSERT_EQ(::chown(source.c_str(), kNobody, kNobody), 0);
  const std::string projects = ana_ + "/projects";
  ASSERT_NO_FATAL_FAILURE(plant_link(victim_, projects));
  ASSERT_TRUE(succeeded(run({"add", source})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  // Added as a source below the link: the backup must not read through it.
  ASSERT_EQ(::mkdir((victim_ + "/sub").c_str(), 0700), 0);
  write_text(victim_ + "/sub/key", "root's key\n");
  const Result added = run({"add", projects + "/sub"});
  const Result backup = run({"backup"});
  EXPECT_NE(backup.code, 0) << backup;
  EXPECT_TRUE(contains(backup.err, "does not follow it")) << backup;
  const Result listed = run({"list", projects + "/sub/key"});
  EXPECT_NE(listed.code, 0) << "root's file was recorded under the attacker's path" << listed << added;
}

}  // namespace
}  // namespace mybackup_cli_test
