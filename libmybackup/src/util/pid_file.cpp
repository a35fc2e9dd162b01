#include "mybackup/util/pid_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "mybackup/util/error.hpp"
#include "util/unique_fd.hpp"

namespace mybackup {

namespace {

long read_pid(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  if (n <= 0) {
    return 0;
  }
  char* end = nullptr;
  const long pid = std::strtol(text, &end, 10);
  return end != text && pid > 0 ? pid : 0;
}

}  // namespace

PidFileState inspect_pid_file(const std::string& path) {
  PidFileState state;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      return state;
    }
    throw_system_error(errno, "cannot read the pid file " + path);
  }
  state.pid = read_pid(fd.get());
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      throw_system_error(errno, "cannot inspect the lock of " + path);
    }
    state.running = true;
    return state;
  }
  state.stale = state.pid != 0;
  return state;  // closing the descriptor releases the shared lock
}

PidFile::PidFile(std::string path) : path_(std::move(path)) {
  UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot open the pid file " + path_);
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      const long pid = read_pid(fd.get());
      throw Error(ErrorKind::locked, "the backup service is already running" +
                                         (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) +
                                         ": stop it first with `mybackup schedule stop`");
    }
    throw_system_error(errno, "cannot lock the pid file " + path_);
  }
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0) {
    throw_system_error(errno, "cannot write the pid file " + path_);
  }
  write_all(fd.get(), as_bytes(text), path_);
  fd_ = fd.release();
}

PidFile::~PidFile() {
  // Emptied while still locked: nobody sees a running service's file without its pid, and a
  // clean stop leaves nothing that looks stale.
  static_cast<void>(::ftruncate(fd_, 0));
  ::close(fd_);
}

}  // namespace mybackup
