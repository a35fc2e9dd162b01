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
  corrupt,     // stored data failed a structural or integrity check, authentication included
  crypto,      // key material is missing or damaged, or the crypto library itself failed
  io,          // a read or write failed for good (I/O error, bad object, protocol error)
  denied,      // the storage or the operating system refused access (EACCES, EPERM, EROFS, HTTP 403)
  transient,   // a failure worth trying again later (timeout, reset connection, HTTP 5xx/429)
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

/// True for the kinds that say a storage could not be read or written (io, denied, transient,
/// no_space), as opposed to what it holds being missing or damaged.
bool is_access_failure(ErrorKind kind);

/// True for the kinds that say an object read failed authentication or decoding (corrupt,
/// crypto): the object's own fault, so a caller may pass over it and go on.
bool is_damage(ErrorKind kind);

/// Throws an Error whose message is "<what>: <strerror(errnum)>", of kind not_found (ENOENT),
/// no_space (ENOSPC, EDQUOT), denied (EACCES, EPERM, EROFS), transient (EAGAIN, ETIMEDOUT, EINTR,
/// ESTALE) or io (anything else). Use right after a failed system call.
[[noreturn]] void throw_system_error(int errnum, const std::string& what);

}  // namespace mybackup
