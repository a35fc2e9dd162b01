#include "mybackup/util/path_walk.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::catch_error;
using testing::TempDir;

/// The (device, inode) of what `path` names, following links: to compare with an open handle.
std::pair<dev_t, ino_t> identity_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return {info.st_dev, info.st_ino};
}

std::pair<dev_t, ino_t> identity_of(const EnvFd& fd) {
  struct stat info {};
  EXPECT_EQ(::fstat(fd.get(), &info), 0);
  return {info.st_dev, info.st_ino};
}

constexpr uid_t kNobody = 65534;

class PathWalk : public ::testing::Test {
 protected:
  PathWalk() { EXPECT_EQ(::mkdir((dir_ / "real").c_str(), 0755), 0); }

  Env& env_ = Env::default_env();
  TempDir dir_{"path_walk_test_"};
};

TEST_F(PathWalk, OpensAPathAndCreatesWhatIsMissing) {
  const EnvFd opened = open_directory_path(env_, dir_ / "real", PathUse::write_into);
  EXPECT_EQ(identity_of(opened), identity_of(dir_ / "real"));

  const Error missing = catch_error([&] { open_directory_path(env_, dir_ / "real/new/deeper", PathUse::write_into); });
  EXPECT_EQ(missing.kind(), ErrorKind::not_found);
  const EnvFd made = open_directory_path(env_, dir_ / "real/new/deeper", PathUse::write_into, CreateMissing::yes, 0700);
  EXPECT_EQ(identity_of(made), identity_of(dir_ / "real/new/deeper"));
  struct stat info {};
  ASSERT_EQ(::stat((dir_ / "real/new").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777 & ~0700U, 0U);

  ASSERT_NO_FATAL_FAILURE(testing::write_text_file(dir_ / "real/file", "x"));
  const Error not_directory = catch_error([&] { open_directory_path(env_, dir_ / "real/file/below", PathUse::write_into); });
  EXPECT_EQ(not_directory.kind(), ErrorKind::not_found) << not_directory.what();
}

TEST_F(PathWalk, FollowsItsOwnLinksAboveButNeverTheLastComponent) {
  ASSERT_EQ(::symlink("real", (dir_ / "mine").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "real").c_str(), (dir_ / "mine_absolute").c_str()), 0);
  ASSERT_EQ(::mkdir((dir_ / "real/inside").c_str(), 0755), 0);
  EXPECT_EQ(identity_of(open_directory_path(env_, dir_ / "mine/inside", PathUse::write_into)), identity_of(dir_ / "real/inside"));
  EXPECT_EQ(identity_of(open_directory_path(env_, dir_ / "mine_absolute/inside", PathUse::write_into)), identity_of(dir_ / "real/inside"));

  const Error last = catch_error([&] { open_directory_path(env_, dir_ / "mine", PathUse::write_into); });
  EXPECT_EQ(last.kind(), ErrorKind::denied);
  EXPECT_NE(std::string(last.what()).find(dir_ / "mine is a symbolic link"), std::string::npos) << last.what();
  EXPECT_NE(std::string(last.what()).find("give the real path"), std::string::npos) << last.what();
  // Opening the folder that holds a source: its last component is a component like any other.
  EXPECT_EQ(identity_of(open_directory_path(env_, dir_ / "mine", PathUse::look_up)), identity_of(dir_ / "real"));
}

TEST_F(PathWalk, ALinkInADirectoryOthersCanWriteIsNotFollowed) {
  ASSERT_EQ(::mkdir((dir_ / "shared").c_str(), 0777), 0);
  ASSERT_EQ(::chmod((dir_ / "shared").c_str(), 0777), 0);  // past the umask; not sticky
  ASSERT_EQ(::symlink((dir_ / "real").c_str(), (dir_ / "shared/link").c_str()), 0);
  ASSERT_EQ(::mkdir((dir_ / "real/inside").c_str(), 0755), 0);
  const Error error = catch_error([&] { open_directory_path(env_, dir_ / "shared/link/inside", PathUse::write_into); });
  EXPECT_EQ(error.kind(), ErrorKind::denied);
  EXPECT_NE(std::string(error.what()).find("another user could have placed"), std::string::npos) << error.what();

  // Sticky (like /tmp): others cannot replace our link, so it is followed.
  ASSERT_EQ(::chmod((dir_ / "shared").c_str(), 01777), 0);
  EXPECT_EQ(identity_of(open_directory_path(env_, dir_ / "shared/link/inside", PathUse::write_into)), identity_of(dir_ / "real/inside"));
}

TEST_F(PathWalk, AnotherUsersLinkIsNeverFollowed) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "only root can make a link another user owns";
  }
  ASSERT_EQ(::symlink((dir_ / "real").c_str(), (dir_ / "theirs").c_str()), 0);
  ASSERT_EQ(::lchown((dir_ / "theirs").c_str(), kNobody, kNobody), 0);
  const Error error = catch_error([&] { open_directory_path(env_, dir_ / "theirs/x", PathUse::write_into, CreateMissing::yes); });
  EXPECT_EQ(error.kind(), ErrorKind::denied);
  EXPECT_NE(std::string(error.what()).find("owner uid 65534"), std::string::npos) << error.what();
  EXPECT_NE(::access((dir_ / "real/x").c_str(), F_OK), 0) << "nothing was created through the link";
}

// As open(2) does, a walk needs only search permission on the folders above: a user can back up
// and restore below a 0711 folder they cannot list.
TEST_F(PathWalk, FoldersAboveNeedOnlySearchPermission) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "the test drops to another user, which needs root";
  }
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  ASSERT_EQ(::mkdir((dir_ / "real/x_only").c_str(), 0711), 0);
  ASSERT_EQ(::mkdir((dir_ / "real/x_only/theirs").c_str(), 0755), 0);
  ASSERT_EQ(::chown((dir_ / "real/x_only/theirs").c_str(), kNobody, kNobody), 0);
  const std::string inside = dir_ / "real/x_only/theirs";
  EXPECT_EXIT(
      {
        if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) {
          std::_Exit(3);
        }
        Env& env = Env::default_env();
        const bool listed = open_directory_path(env, inside, PathUse::write_into).valid();
        const bool looked_up = open_directory_path(env, inside + "/new", PathUse::look_up, CreateMissing::yes).valid();
        std::_Exit(listed && looked_up ? 0 : 4);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(PathWalk, BelowNeverFollowsALinkNorClimbsOut) {
  ASSERT_EQ(::mkdir((dir_ / "real/a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir_ / "real/a/b").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("a", (dir_ / "real/link").c_str()), 0);
  const EnvFd real = open_directory_path(env_, dir_ / "real", PathUse::write_into);
  const EnvFd below(env_, open_directory_below(env_, real.get(), "a/b"));
  ASSERT_TRUE(below.valid()) << -below.get();
  EXPECT_EQ(identity_of(below), identity_of(dir_ / "real/a/b"));
  const EnvFd itself(env_, open_directory_below(env_, real.get(), ""));
  EXPECT_EQ(identity_of(itself), identity_of(dir_ / "real"));
  const int through_link = open_directory_below(env_, real.get(), "link/b");
  EXPECT_TRUE(through_link == -ELOOP || through_link == -ENOTDIR) << through_link;
  EXPECT_EQ(open_directory_below(env_, real.get(), "a/../.."), -EINVAL);
}

}  // namespace
}  // namespace mybackup
