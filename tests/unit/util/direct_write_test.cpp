#include "mybackup/util/direct_write.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mybackup/util/fs.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::TempDir;

constexpr std::size_t kBlock = 4096;

/// Records what reaches the file system, and plays the file systems that refuse direct I/O
/// (at once or part way) or write less than asked.
class RecordingEnv : public EnvWrapper {
 public:
  RecordingEnv() : EnvWrapper(Env::default_env()) {}

  int set_direct_io(int fd, bool on) override {
    ++direct_switches;
    if (on && refuse_direct) {
      return -EINVAL;
    }
    return EnvWrapper::set_direct_io(fd, on);
  }

  std::int64_t write(int fd, const void* data, std::size_t size) override {
    if (fail_writes_with != 0) {
      return -std::exchange(fail_writes_with, 0);
    }
    const bool direct = (::fcntl(fd, F_GETFL) & O_DIRECT) != 0;
    if (!direct) {
      return EnvWrapper::write(fd, data, size);
    }
    if (direct_writes_before_refusal == 0) {
      return -EINVAL;  // a file system that takes no more direct writes
    }
    --direct_writes_before_refusal;
    if (cut_next_direct_write) {
      // Writes 1000 bytes, as some file systems do with O_DIRECT: the offset is no longer aligned.
      cut_next_direct_write = false;
      EnvWrapper::set_direct_io(fd, false);
      const std::int64_t written = EnvWrapper::write(fd, data, 1000);
      EnvWrapper::set_direct_io(fd, true);
      return written;
    }
    const std::int64_t written = EnvWrapper::write(fd, data, size);
    if (written > 0) {
      direct_bytes += static_cast<std::uint64_t>(written);
      aligned = aligned && reinterpret_cast<std::uintptr_t>(data) % kBlock == 0 && size % kBlock == 0;
    }
    return written;
  }

  bool refuse_direct = false;
  int direct_writes_before_refusal = 1 << 30;
  bool cut_next_direct_write = false;
  int fail_writes_with = 0;

  int direct_switches = 0;
  std::uint64_t direct_bytes = 0;  // written with O_DIRECT, and accepted by the kernel
  bool aligned = true;
};

class DirectWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The direct path can only be seen where the file system has direct I/O (not tmpfs).
    const int fd = ::open((dir_ / "probe").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_DIRECT, 0600);
    if (fd < 0) {
      GTEST_SKIP() << dir_.path() << " has no direct I/O";
    }
    ::close(fd);
  }

  /// Writes `data` to a new file `name` in `pieces`-byte pieces; returns what add/finish returned.
  int write_file(const std::string& name, const Bytes& data, std::size_t pieces) {
    const int fd = ::open((dir_ / name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    writer_.start(fd, data.size());
    int rc = 0;
    for (std::size_t at = 0; at < data.size() && rc == 0; at += pieces) {
      rc = writer_.add(ByteView(data).subspan(at, std::min(pieces, data.size() - at)));
    }
    if (rc == 0) {
      rc = writer_.finish();
    }
    still_direct_ = (::fcntl(fd, F_GETFL) & O_DIRECT) != 0;
    ::close(fd);
    return rc;
  }

  Bytes read_back(const std::string& name) { return read_file(dir_ / name); }

  TempDir dir_;
  RecordingEnv env_;
  DirectWriter writer_{env_};
  bool still_direct_ = false;
};

TEST_F(DirectWriteTest, ALargeFileGoesPastTheCacheInWholeAlignedBlocksAndItsTailTheOrdinaryWay) {
  const Bytes data = testing::random_data(3 * 1024 * 1024 + 5000, 1);
  ASSERT_EQ(write_file("large", data, 100 * 1024 + 7), 0);
  EXPECT_EQ(read_back("large"), data);
  EXPECT_EQ(env_.direct_bytes, 3 * 1024 * 1024 + kBlock);  // the last 904 bytes through the cache
  EXPECT_TRUE(env_.aligned);
  EXPECT_FALSE(still_direct_);
}

TEST_F(DirectWriteTest, ASmallFileIsWrittenTheOrdinaryWay) {
  const Bytes data = testing::random_data(kDirectWriteMinimum - 1, 2);
  ASSERT_EQ(write_file("small", data, 64 * 1024), 0);
  EXPECT_EQ(read_back("small"), data);
  EXPECT_EQ(env_.direct_switches, 0);
  EXPECT_EQ(env_.direct_bytes, 0U);
}

TEST_F(DirectWriteTest, AFileSystemWithoutDirectIoGetsTheSameBytes) {
  env_.refuse_direct = true;
  const Bytes data = testing::random_data(2 * 1024 * 1024 + 1, 3);
  ASSERT_EQ(write_file("refused", data, 300 * 1000), 0);
  EXPECT_EQ(read_back("refused"), data);
  EXPECT_EQ(env_.direct_bytes, 0U);
}

TEST_F(DirectWriteTest, AFileSystemThatRefusesPartWayGetsTheRestTheOrdinaryWay) {
  env_.direct_writes_before_refusal = 1;
  const Bytes data = testing::random_data(4 * 1024 * 1024 + 10, 4);
  ASSERT_EQ(write_file("part", data, 1024 * 1024 - 3), 0);
  EXPECT_EQ(read_back("part"), data);
  EXPECT_EQ(env_.direct_bytes, 1024U * 1024);
  EXPECT_FALSE(still_direct_);
}

TEST_F(DirectWriteTest, AShortWriteThatUnalignsTheOffsetSendsTheRestTheOrdinaryWay) {
  env_.cut_next_direct_write = true;
  const Bytes data = testing::random_data(3 * 1024 * 1024 + 123, 5);
  ASSERT_EQ(write_file("cut", data, 1 << 20), 0);
  EXPECT_EQ(read_back("cut"), data);
  EXPECT_FALSE(still_direct_);
}

TEST_F(DirectWriteTest, AFullDiskIsReportedAndTheNextFileStartsClean) {
  const Bytes first = testing::random_data(2 * 1024 * 1024, 6);
  env_.fail_writes_with = ENOSPC;
  EXPECT_EQ(write_file("full", first, 1 << 20), -ENOSPC);
  const Bytes second = testing::random_data(1024 * 1024 + 77, 7);
  ASSERT_EQ(write_file("next", second, 50 * 1000), 0);
  EXPECT_EQ(read_back("next"), second);
}

TEST_F(DirectWriteTest, WriteAllDirectWritesEveryByteAndReportsFailuresByName) {
  const Bytes data = testing::random_data(5 * 1024 * 1024 + 4097, 8);
  const int fd = ::open((dir_ / "all").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  write_all_direct(fd, data, "the pack");
  ::close(fd);
  EXPECT_EQ(read_back("all"), data);

  const int read_only = ::open((dir_ / "all").c_str(), O_RDONLY | O_CLOEXEC);
  const std::string message = testing::error_message([&] { write_all_direct(read_only, data, "the pack"); });
  ::close(read_only);
  EXPECT_NE(message.find("cannot write the pack"), std::string::npos) << message;
}

}  // namespace
}  // namespace mybackup
