#pragma once
// A real OpenSSH server on loopback for the SFTP tests (unit and end-to-end): /usr/sbin/sshd on a
// free 127.0.0.1 port, run as the current user (root in CI, or not: then with UsePAM yes, since
// sshd without PAM refuses locked accounts such as nobody), with a host key, a user key,
// authorized_keys and known_hosts made for the run in its own temporary folder, and the
// internal-sftp subsystem. Nothing outside that folder is touched, except /run/sshd, which sshd
// needs when started by root and which is created if missing.
//
// Every failure throws std::runtime_error (a test using the server fails, never skips); a missing
// /usr/sbin/sshd says to run scripts/bootstrap --servers.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mybackup::test_servers {

/// Runs `argv` (argv[0] searched in PATH), its stdout and stderr into `output` when given;
/// returns its exit status (-1 if it did not exit normally or could not start).
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr);

class SshdServer {
 public:
  /// Generates the keys and the configuration and starts the server; returns once it accepts
  /// connections.
  SshdServer();
  /// Stops the server and every session it serves; removes its folder.
  ~SshdServer();
  SshdServer(const SshdServer&) = delete;
  SshdServer& operator=(const SshdServer&) = delete;

  /// sftp://USER@127.0.0.1:PORT`path`?identity=…&known_hosts=… with this run's user key and
  /// known_hosts. `path` starts with '/' ("/abs/folder" or "/~/relative").
  std::string url(const std::string& path) const;
  /// The same with another key or known_hosts file.
  std::string url(const std::string& path, const std::string& identity, const std::string& known_hosts) const;

  std::uint16_t port() const { return port_; }
  /// The user the server lets in (the current one).
  const std::string& user() const { return user_; }
  /// The server's folder (keys, configuration, log); tests may put other files there.
  const std::string& folder() const { return folder_; }
  /// Where SFTP sessions start (internal-sftp -d): what sftp://host/~/path is relative to.
  std::string login_folder() const { return folder_ + "/login"; }
  const std::string& user_key() const { return user_key_; }
  const std::string& known_hosts() const { return known_hosts_; }
  /// "SHA256:…" of the host key, as ssh-keygen -l prints it.
  std::string host_key_fingerprint() const;
  /// A new key pair named `name` in the folder, not authorized: the private key's path.
  std::string make_key(const std::string& name) const;
  /// A known_hosts line for this server with the public key of `key` (a private key's path).
  std::string known_hosts_line(const std::string& key) const;
  /// What sshd wrote to stderr so far.
  std::string log() const;

  /// SIGKILL to the server and every process it started: every connection drops at once.
  void kill();
  /// Starts the server again (same port, same keys) and waits until it accepts connections.
  void start();
  bool running() const { return pid_ > 0; }

 private:
  void write_configuration() const;
  void wait_until_ready();

  std::string folder_;
  std::string user_;
  std::string user_key_;
  std::string host_key_;
  std::string known_hosts_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace mybackup::test_servers
