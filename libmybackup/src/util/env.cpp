#include "mybackup/util/env.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <limits>
#include <string>

namespace mybackup {

namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;

/// The result convention of Env: the value on success, -errno on failure.
std::int64_t result_of(std::int64_t rc) { return rc < 0 ? -errno : rc; }
int result_of(int rc) { return rc < 0 ? -errno : rc; }

/// Runs a system call again while it fails with EINTR; returns its result in Env's convention.
template <typename Call>
auto retrying(Call call) {
  for (;;) {
    const auto rc = call();
    if (rc >= 0 || errno != EINTR) {
      return result_of(rc);
    }
  }
}

timespec to_timespec(std::int64_t ns) {
  timespec time{};
  time.tv_sec = static_cast<time_t>(ns / kNsPerSecond);
  time.tv_nsec = static_cast<long>(ns % kNsPerSecond);
  if (time.tv_nsec < 0) {
    time.tv_nsec += kNsPerSecond;
    time.tv_sec -= 1;
  }
  return time;
}

/// The first line of a small system file ("" if it cannot be read).
std::string first_line_of(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

/// The real operating system. Stateless, hence thread-safe.
class PosixEnv final : public Env {
 public:
  std::int64_t now_ns() const override {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::int64_t>(now.tv_sec) * kNsPerSecond + now.tv_nsec;
  }

  std::cv_status wait_for(std::condition_variable& condition, std::unique_lock<std::mutex>& lock,
                          std::chrono::nanoseconds timeout) override {
    return condition.wait_for(lock, timeout);
  }

  ProcessIdentity process_identity() override {
    ProcessIdentity self;
    self.host = host_name();
    self.pid = static_cast<long>(::getpid());
    self.boot_id = first_line_of("/proc/sys/kernel/random/boot_id");
    struct stat ns {};
    if (::stat("/proc/self/ns/pid", &ns) == 0) {
      self.pid_ns = static_cast<std::uint64_t>(ns.st_ino);
    }
    // CLOCK_BOOTTIME is the time since boot, suspends included (what /proc/uptime shows).
    timespec since_boot{};
    if (clock_gettime(CLOCK_BOOTTIME, &since_boot) == 0) {
      self.boot_started_ns = now_ns() - (static_cast<std::int64_t>(since_boot.tv_sec) * kNsPerSecond + since_boot.tv_nsec);
    }
    return self;
  }

  bool process_exists(long pid) override {
    if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) {
      return false;  // not a pid (and never a wrapped one)
    }
    return (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
  }

  int open_for_reading(int dir_fd, const char* path) override {
    // O_NOATIME keeps a backup from touching access times; only the owner (or root) may use it.
    // O_NONBLOCK: a fifo put where a file was opens at once instead of waiting for a writer.
    constexpr int kFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    const int fd = retrying([&] { return ::openat(dir_fd, path, kFlags | O_NOATIME); });
    if (fd != -EPERM) {
      return fd;
    }
    return retrying([&] { return ::openat(dir_fd, path, kFlags); });
  }

  int open_directory(int dir_fd, const char* path, FollowLinks follow) override {
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow == FollowLinks::no ? O_NOFOLLOW : 0);
    return retrying([&] { return ::openat(dir_fd, path, flags); });
  }

  int open_directory_for_lookup(int dir_fd, const char* path) override {
    return retrying([&] { return ::openat(dir_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW); });
  }

  int close(int fd) override {
    // Linux closes the descriptor even when close(2) reports EINTR: never retry it.
    return result_of(::close(fd));
  }

  std::int64_t read(int fd, void* buffer, std::size_t size) override {
    return retrying([&] { return static_cast<std::int64_t>(::read(fd, buffer, size)); });
  }

  int stat_fd(int fd, struct stat& info) override { return result_of(::fstat(fd, &info)); }

  int stat_at(int dir_fd, const char* path, struct stat& info) override {
    return result_of(::fstatat(dir_fd, path, &info, AT_SYMLINK_NOFOLLOW));
  }

  std::int64_t read_link_at(int dir_fd, const char* path, char* buffer, std::size_t size) override {
    return result_of(static_cast<std::int64_t>(::readlinkat(dir_fd, path, buffer, size)));
  }

  int list_directory(int dir_fd, const DirectoryVisitor& visit) override {
    // getdents64 on the caller's descriptor: no DIR stream (which would take the descriptor
    // over), no copy of the names.
    alignas(dirent64) char buffer[32 * 1024];
    for (;;) {
      const std::int64_t length = retrying([&] { return static_cast<std::int64_t>(::getdents64(dir_fd, buffer, sizeof buffer)); });
      if (length <= 0) {
        return static_cast<int>(length);
      }
      for (std::int64_t offset = 0; offset < length;) {
        const auto* item = reinterpret_cast<const dirent64*>(buffer + offset);
        offset += item->d_reclen;
        const char* name = item->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
          continue;
        }
        visit(name, item->d_type);
      }
    }
  }

  int create_file_at(int dir_fd, const char* name, unsigned mode) override {
    return retrying([&] { return ::openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode); });
  }

  int create_unnamed_file_at(int dir_fd, unsigned mode) override {
    const int fd = retrying([&] { return ::openat(dir_fd, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, mode); });
    // Kernels and filesystems without O_TMPFILE answer EISDIR (the flag reads as O_DIRECTORY)
    // or EOPNOTSUPP.
    return fd == -EISDIR || fd == -EINVAL ? -EOPNOTSUPP : fd;
  }

  int name_unnamed_file_at(int fd, int dir_fd, const char* name) override {
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (root); otherwise the file's /proc link names it.
    if (::linkat(fd, "", dir_fd, name, AT_EMPTY_PATH) == 0) {
      return 0;
    }
    if (errno != ENOENT && errno != EPERM) {
      return -errno;
    }
    const std::string proc_link = "/proc/self/fd/" + std::to_string(fd);
    if (::linkat(AT_FDCWD, proc_link.c_str(), dir_fd, name, AT_SYMLINK_FOLLOW) == 0) {
      return 0;
    }
    return errno == ENOENT && ::access("/proc/self/fd", F_OK) != 0 ? -EOPNOTSUPP : -errno;
  }

  std::int64_t write(int fd, const void* data, std::size_t size) override {
    return retrying([&] { return static_cast<std::int64_t>(::write(fd, data, size)); });
  }

  int set_direct_io(int fd, bool on) override {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) {
      return -errno;
    }
    return result_of(::fcntl(fd, F_SETFL, on ? (flags | O_DIRECT) : (flags & ~O_DIRECT)));
  }

  int sync(int fd) override { return retrying([&] { return ::fsync(fd); }); }

  int sync_filesystem(int fd) override { return result_of(::syncfs(fd)); }

  int make_directory_at(int dir_fd, const char* name, unsigned mode) override {
    return result_of(::mkdirat(dir_fd, name, mode));
  }

  int symlink_at(const char* target, int dir_fd, const char* name) override {
    return result_of(::symlinkat(target, dir_fd, name));
  }

  int rename_at(int dir_fd, const char* from, const char* to) override {
    return result_of(::renameat(dir_fd, from, dir_fd, to));
  }

  int unlink_at(int dir_fd, const char* name) override { return result_of(::unlinkat(dir_fd, name, 0)); }

  int set_mode(int fd, unsigned mode) override { return result_of(::fchmod(fd, mode & 07777)); }

  int set_times(int fd, std::int64_t mtime_ns) override {
    const timespec times[2] = {to_timespec(mtime_ns), to_timespec(mtime_ns)};
    return result_of(::futimens(fd, times));
  }

  int set_times_at(int dir_fd, const char* name, std::int64_t mtime_ns) override {
    const timespec times[2] = {to_timespec(mtime_ns), to_timespec(mtime_ns)};
    return result_of(::utimensat(dir_fd, name, times, AT_SYMLINK_NOFOLLOW));
  }

  int set_owner(int fd, std::uint32_t uid, std::uint32_t gid) override { return result_of(::fchown(fd, uid, gid)); }

  int set_owner_at(int dir_fd, const char* name, std::uint32_t uid, std::uint32_t gid) override {
    return result_of(::fchownat(dir_fd, name, uid, gid, AT_SYMLINK_NOFOLLOW));
  }

  int make_node_at(int dir_fd, const char* name, unsigned mode, std::uint64_t device) override {
    return result_of(::mknodat(dir_fd, name, static_cast<mode_t>(mode & (S_IFMT | 0777)), static_cast<dev_t>(device)));
  }

  int link_at(int from_dir, const char* from, int to_dir, const char* to) override {
    return result_of(::linkat(from_dir, from, to_dir, to, 0));
  }

  int set_xattr(int fd, const std::string& name, const std::string& value) override {
    return result_of(::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0));
  }
};

}  // namespace

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) {
    return "unknown";
  }
  return name;
}

Env& Env::default_env() {
  static PosixEnv env;
  return env;
}

int Env::write_all(int fd, ByteView data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const std::int64_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      return static_cast<int>(n);
    }
    if (n == 0) {
      return -EIO;  // no progress on a non-empty write: never loop forever
    }
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace mybackup
