#include "mybackup/util/error.hpp"

#include <cerrno>
#include <cstring>

namespace mybackup {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::usage: return "usage";
    case ErrorKind::config: return "config";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::exists: return "exists";
    case ErrorKind::corrupt: return "corrupt";
    case ErrorKind::crypto: return "crypto";
    case ErrorKind::io: return "io";
    case ErrorKind::denied: return "denied";
    case ErrorKind::transient: return "transient";
    case ErrorKind::no_space: return "no_space";
    case ErrorKind::locked: return "locked";
    case ErrorKind::mismatch: return "mismatch";
    case ErrorKind::wrong_key: return "wrong_key";
    case ErrorKind::interrupted: return "interrupted";
  }
  return "unknown";
}

bool is_damage(ErrorKind kind) { return kind == ErrorKind::corrupt || kind == ErrorKind::crypto; }

bool is_access_failure(ErrorKind kind) {
  return kind == ErrorKind::io || kind == ErrorKind::denied || kind == ErrorKind::transient ||
         kind == ErrorKind::no_space;
}

namespace {
ErrorKind kind_of_errno(int errnum) {
  switch (errnum) {
    case ENOENT: return ErrorKind::not_found;
    case ENOSPC:
    case EDQUOT: return ErrorKind::no_space;
    case EACCES:
    case EPERM:
    case EROFS: return ErrorKind::denied;
    case EAGAIN:
    case ETIMEDOUT:
    case EINTR:
    case ESTALE: return ErrorKind::transient;
    default: return ErrorKind::io;
  }
}
}  // namespace

void throw_system_error(int errnum, const std::string& what) {
  const ErrorKind kind = kind_of_errno(errnum);
  std::string message = what + ": " + std::strerror(errnum);
  if (kind == ErrorKind::no_space) {
    message += " (free some space on that device and run the command again)";
  }
  throw Error(kind, message);
}

}  // namespace mybackup
