#include "mybackup/util/pid_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::catch_error;
using testing::read_text_file;
using testing::TempDir;
using testing::write_text_file;

TEST(PidFile, HeldWhileAliveEmptiedOnRelease) {
  TempDir dir("pid_file_test_");
  const std::string path = dir / "service.pid";
  EXPECT_FALSE(inspect_pid_file(path).running);
  EXPECT_FALSE(inspect_pid_file(path).stale);
  {
    const PidFile held(path);
    EXPECT_EQ(read_text_file(path), std::to_string(::getpid()) + "\n");
    const PidFileState state = inspect_pid_file(path);
    EXPECT_TRUE(state.running);
    EXPECT_EQ(state.pid, ::getpid());
    // A second holder (another open file description, as another process would have) is refused.
    const Error error = catch_error([&] { PidFile second(path); });
    EXPECT_EQ(error.kind(), ErrorKind::locked);
    EXPECT_NE(std::string(error.what()).find("already running (pid " + std::to_string(::getpid()) + ")"),
              std::string::npos)
        << error.what();
    EXPECT_EQ(read_text_file(path), std::to_string(::getpid()) + "\n");  // the refused one changed nothing
  }
  EXPECT_EQ(read_text_file(path), "");
  const PidFileState after = inspect_pid_file(path);
  EXPECT_FALSE(after.running);
  EXPECT_FALSE(after.stale);
}

TEST(PidFile, AnUnlockedPidIsStaleAndCanBeTakenOver) {
  TempDir dir("pid_file_test_");
  const std::string path = dir / "service.pid";
  write_text_file(path, "4242\n");  // a process that died without cleaning up
  const PidFileState state = inspect_pid_file(path);
  EXPECT_FALSE(state.running);
  EXPECT_TRUE(state.stale);
  EXPECT_EQ(state.pid, 4242);
  const PidFile taken(path);
  EXPECT_TRUE(inspect_pid_file(path).running);
  EXPECT_EQ(inspect_pid_file(path).pid, ::getpid());
}

TEST(PidFile, AnUnwritablePlaceIsAnIoError) {
  TempDir dir("pid_file_test_");
  write_text_file(dir / "file", "x");
  EXPECT_EQ(catch_error([&] { PidFile held(dir / "file/service.pid"); }).kind(), ErrorKind::io);
}

}  // namespace
}  // namespace mybackup
