#pragma once
// One connection of the SFTP backend (sftp_backend.hpp): an SSH session through libssh (connect,
// host key check, public key login) and an SFTP version 3 client spoken over its "sftp"
// subsystem channel. The SFTP layer is ours rather than libssh's so that the OpenSSH extensions
// the backend needs (hardlink, posix-rename, fsync, limits) are reachable and reads and writes
// are pipelined with large requests.
//
// Server answers come back as a Status (SSH_FX_* codes); only transport and protocol failures
// throw: Error(transient) for a lost, closed or silent connection, Error(io) for a reply that
// breaks the protocol, Error(denied) for host key and login refusals. After any throw the
// connection is broken() and must be dropped.
//
// Not thread-safe: one thread at a time (the backend's pool sees to it).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mybackup/storage/sftp_wire.hpp"
#include "mybackup/util/bytes.hpp"

struct ssh_session_struct;
struct ssh_channel_struct;

namespace mybackup::sftp {

/// Where and how to log in.
struct Endpoint {
  std::string host;
  std::uint16_t port = 22;
  std::string user;         // empty: the local user
  std::string identity;     // empty: ssh-agent, then the default keys
  std::string known_hosts;  // empty: ~/.ssh/known_hosts and the system's
  std::string location;     // the URL without its options, for messages
};

class Connection {
 public:
  /// Connects, checks the host key against known_hosts, logs in and starts SFTP.
  explicit Connection(const Endpoint& endpoint);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool broken() const { return broken_; }
  /// True if the server offers the extension `name` (version "1").
  bool supports(const std::string& name) const;
  /// The text of the last status the server sent (truncated, may be empty).
  const std::string& last_message() const { return last_message_; }

  Status lstat(const std::string& path, Attributes& out);
  Status open(const std::string& path, std::uint32_t flags, std::uint32_t mode, std::string& handle);
  Status fstat(const std::string& handle, Attributes& out);
  Status close(const std::string& handle);
  Status opendir(const std::string& path, std::string& handle);
  /// The next entries of a folder; Status::end_of_file at the end.
  Status readdir(const std::string& handle, std::vector<DirectoryEntry>& out);
  Status remove(const std::string& path);
  Status mkdir(const std::string& path, std::uint32_t mode);
  /// The plain SSH_FXP_RENAME (refused onto an existing name by SFTP v3 servers).
  Status rename(const std::string& from, const std::string& to);
  /// An extension taking two paths: "hardlink@openssh.com", "posix-rename@openssh.com".
  Status two_path_extension(const std::string& name, const std::string& from, const std::string& to);
  /// fsync@openssh.com. REQUIRES: supports("fsync@openssh.com").
  Status fsync(const std::string& handle);
  /// Writes all of `data` from offset 0, several requests in flight.
  Status write_all(const std::string& handle, ByteView data);
  /// Reads `length` bytes from `offset` into `out`, several requests in flight. Status::end_of_file
  /// if the file ends first.
  Status read_exactly(const std::string& handle, std::uint64_t offset, std::uint64_t length, std::uint8_t* out);

 private:
  struct Packet {
    std::uint8_t type = 0;
    std::uint32_t id = 0;
    Bytes body;  // after the type and id
  };

  void release();
  void connect(const Endpoint& endpoint);
  void check_host_key(const Endpoint& endpoint);
  void authenticate(const Endpoint& endpoint);
  void start_sftp();
  void read_limits();

  std::uint32_t send_request(std::uint8_t type, const Bytes& fields);
  Packet receive();
  Packet call(std::uint8_t type, const Bytes& fields);
  Status status_of(const Packet& reply);
  Status handle_reply(const Packet& reply, std::string& handle);
  Status attributes_reply(const Packet& reply, Attributes& out);
  void send_bytes(const std::uint8_t* data, std::size_t size);
  void receive_bytes(std::uint8_t* out, std::size_t size);
  template <typename Body>
  auto guarded(Body body) -> decltype(body());
  [[noreturn]] void fail(const std::string& what);
  [[noreturn]] void protocol_error(const std::string& what);

  std::string location_;
  ssh_session_struct* session_ = nullptr;
  ssh_channel_struct* channel_ = nullptr;
  std::map<std::string, std::string> extensions_;
  std::uint32_t next_id_ = 1;
  std::uint32_t max_read_ = 32 * 1024;   // what every server takes; limits@openssh.com may raise it
  std::uint32_t max_write_ = 32 * 1024;
  std::string last_message_;
  bool broken_ = false;
};

}  // namespace mybackup::sftp
