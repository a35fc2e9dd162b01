#pragma once
// The one error type the library throws. Callers branch on kind(), never on the message text;
// the message is a single line a user can act on (what went wrong and how to fix it).

#include <stdexcept>
#include <string>
#include <string_view>

namespace mybackup {

enum class ErrorKind {
  usage,       // the request itself is invalid (bad argument, unknown key, value out of range)
  config,      // config.yaml or another local state file cannot be read or parsed
  not_found,   // something named does not exist (path, home, source, version)
  exists,      // something that must not exist already does (init on an existing home, duplicate source)
  corrupt,     // stored data failed a structural or integrity check
  crypto,      // authentication failed or key material is missing or damaged
  io,          // the operating system refused a read or write (permission, I/O error)
  no_space,    // the device is full (ENOSPC, EDQUOT)
  locked,      // another process holds the lock
  mismatch,    // the destination belongs to another repository
  wrong_key,   // the key or passphrase given does not open this repository or wrapped key
  interrupted, // the user asked to stop (SIGINT/SIGTERM); nothing of the run was recorded
};

/// Short stable name of a kind ("usage", "io", ...), for logs and JSON output.
std::string_view to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// Throws an Error of kind io (or no_space for ENOSPC/EDQUOT) whose message is
/// "<what>: <strerror(errnum)>". Use right after a failed system call.
[[noreturn]] void throw_system_error(int errnum, const std::string& what);

}  // namespace mybackup
