#pragma once
// Private: the one owner of a POSIX file descriptor, and the one loop that writes a whole buffer.

#include <unistd.h>

#include <string>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

/// Closes its descriptor when it leaves scope (or on reset()). Movable, not copyable.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }
  /// Gives up ownership: returns the descriptor, which the caller must close.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  /// Closes now and returns what close(2) returned (it can report a deferred write error).
  int close_checked() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_ = -1;
};


}  // namespace mybackup
