// An SSH session (libssh) and the SFTP version 3 protocol over its "sftp" channel
// (draft-ietf-secsh-filexfer-02, plus OpenSSH's PROTOCOL extensions).

#include "storage/sftp_connection.hpp"

#include <libssh/libssh.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "mybackup/util/error.hpp"

namespace mybackup::sftp {

namespace {

constexpr std::uint32_t kLargestRequest = 255 * 1024;  // OpenSSH's limit for a read or a write
constexpr std::size_t kInFlight = 16;                  // pipelined requests: 4 MiB at most
constexpr int kTimeoutMs = 60'000;
constexpr long kConnectTimeoutSeconds = 30;

Bytes path_fields(const std::string& path) {
  Bytes fields;
  put_string(fields, path);
  return fields;
}


std::string host_in_known_hosts(const Endpoint& endpoint) {
  return endpoint.port == 22 ? endpoint.host : "[" + endpoint.host + "]:" + std::to_string(endpoint.port);
}

std::string known_hosts_file(const Endpoint& endpoint) {
  return endpoint.known_hosts.empty() ? "~/.ssh/known_hosts" : endpoint.known_hosts;
}

void initialize_libssh() {
  static const int result = ssh_init();  // the only global state: libssh's own
  if (result != SSH_OK) {
    throw Error(ErrorKind::io, "cannot initialize libssh");
  }
}

}  // namespace

// ---------------------------------------------------------------- connecting

Connection::Connection(const Endpoint& endpoint) : location_(endpoint.location) {
  initialize_libssh();
  try {
    connect(endpoint);
    check_host_key(endpoint);
    authenticate(endpoint);
    guarded([&] { start_sftp(); });
  } catch (...) {
    release();  // the destructor does not run for a constructor that throws
    throw;
  }
}

Connection::~Connection() { release(); }

void Connection::release() {
  broken_ = true;
  if (channel_ != nullptr) {
    ssh_channel_free(channel_);
    channel_ = nullptr;
  }
  if (session_ != nullptr) {
    ssh_disconnect(session_);
    ssh_free(session_);
    session_ = nullptr;
  }
}

void Connection::connect(const Endpoint& endpoint) {
  session_ = ssh_new();
  if (session_ == nullptr) {
    throw Error(ErrorKind::io, location_ + ": cannot start an SSH session (out of memory?)");
  }
  const unsigned int port = endpoint.port;
  const long timeout = kConnectTimeoutSeconds;
  const bool no = false;
  // The URL says everything: ~/.ssh/config is not read, so a run does not depend on it.
  ssh_options_set(session_, SSH_OPTIONS_PROCESS_CONFIG, &no);
  bool set = ssh_options_set(session_, SSH_OPTIONS_HOST, endpoint.host.c_str()) == SSH_OK &&
             ssh_options_set(session_, SSH_OPTIONS_PORT, &port) == SSH_OK &&
             ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout) == SSH_OK;
  if (!endpoint.user.empty()) {
    set = set && ssh_options_set(session_, SSH_OPTIONS_USER, endpoint.user.c_str()) == SSH_OK;
  }
  if (!endpoint.known_hosts.empty()) {
    // The file given is the only one trusted.
    set = set && ssh_options_set(session_, SSH_OPTIONS_KNOWNHOSTS, endpoint.known_hosts.c_str()) == SSH_OK &&
          ssh_options_set(session_, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") == SSH_OK;
  }
  if (!set) {
    throw Error(ErrorKind::usage, location_ + ": libssh refuses these connection settings (" + ssh_get_error(session_) + ")");
  }
  if (ssh_connect(session_) != SSH_OK) {
    fail(std::string("cannot connect (") + ssh_get_error(session_) + ")");
  }
}

void Connection::check_host_key(const Endpoint& endpoint) {
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(session_, &key) != SSH_OK) {
    fail(std::string("the server sent no host key (") + ssh_get_error(session_) + ")");
  }
  unsigned char* hash = nullptr;
  std::size_t hash_size = 0;
  const int hashed = ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_size);
  ssh_key_free(key);
  if (hashed != SSH_OK) {
    throw Error(ErrorKind::io, location_ + ": cannot hash the server's host key");
  }
  char* fingerprint_text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_size);
  ssh_clean_pubkey_hash(&hash);
  const std::string fingerprint = fingerprint_text != nullptr ? fingerprint_text : "SHA256:?";
  ssh_string_free_char(fingerprint_text);

  const std::string host = host_in_known_hosts(endpoint);
  const std::string file = known_hosts_file(endpoint);
  const std::string accept = "ssh-keyscan -p " + std::to_string(endpoint.port) + " " + endpoint.host + " >> " + file;
  switch (ssh_session_is_known_server(session_)) {
    case SSH_KNOWN_HOSTS_OK:
      return;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      throw Error(ErrorKind::denied,
                  location_ + ": the host key of " + host + " CHANGED (now " + fingerprint + "), so the server may be " +
                      "an impostor; if its administrator confirms this fingerprint, remove the old key with " +
                      "ssh-keygen -f " + file + " -R '" + host + "' and accept the new one with " + accept);
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
      throw Error(ErrorKind::denied, location_ + ": the host key of " + host + " (" + fingerprint + ") is not in " +
                                         file + ": compare this fingerprint with the server's (ssh-keygen -lf " +
                                         "/etc/ssh/ssh_host_*_key.pub there), then accept it with " + accept);
    case SSH_KNOWN_HOSTS_ERROR:
      break;
  }
  throw Error(ErrorKind::io, location_ + ": cannot check the host key against " + file + " (" + ssh_get_error(session_) + ")");
}

void Connection::authenticate(const Endpoint& endpoint) {
  int result = SSH_AUTH_DENIED;
  if (!endpoint.identity.empty()) {
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(endpoint.identity.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK) {
      throw Error(ErrorKind::denied, location_ + ": cannot load the key identity=" + endpoint.identity +
                                         " (missing, unreadable, or protected by a passphrase: load such a key into " +
                                         "ssh-agent and leave identity= out)");
    }
    result = ssh_userauth_publickey(session_, nullptr, key);
    ssh_key_free(key);
  } else {
    result = ssh_userauth_publickey_auto(session_, nullptr, nullptr);  // ssh-agent, then ~/.ssh/id_*
  }
  if (result == SSH_AUTH_SUCCESS) {
    return;
  }
  if (result == SSH_AUTH_ERROR) {
    fail(std::string("login failed (") + ssh_get_error(session_) + ")");
  }
  char* user = nullptr;
  ssh_options_get(session_, SSH_OPTIONS_USER, &user);
  const std::string user_name = user != nullptr ? user : "?";
  ssh_string_free_char(user);
  const std::string keys = endpoint.identity.empty() ? "the keys of ssh-agent and ~/.ssh" : "the key " + endpoint.identity;
  throw Error(ErrorKind::denied, location_ + ": the server refused " + keys + " for user " + user_name +
                                     ": add the public key to ~" + user_name + "/.ssh/authorized_keys on the server");
}

void Connection::start_sftp() {
  channel_ = ssh_channel_new(session_);
  if (channel_ == nullptr || ssh_channel_open_session(channel_) != SSH_OK) {
    fail(std::string("cannot open an SSH channel (") + ssh_get_error(session_) + ")");
  }
  if (ssh_channel_request_subsystem(channel_, "sftp") != SSH_OK) {
    throw Error(ErrorKind::io, location_ + ": the server offers no SFTP (" + ssh_get_error(session_) + ")");
  }
  Bytes init;
  put_u32(init, 5);
  init.push_back(kInit);
  put_u32(init, 3);
  send_bytes(init.data(), init.size());
  const Packet version = receive();  // VERSION has no request id: its place holds the version
  if (version.type != kVersion || version.id < 3) {
    protocol_error("no SFTP version 3 greeting");
  }
  extensions_ = parse_version(version.body);
  if (supports("limits@openssh.com")) {
    read_limits();
  }
}

void Connection::read_limits() {
  Bytes fields;
  put_string(fields, std::string("limits@openssh.com"));
  const Packet reply = call(kExtended, fields);
  if (reply.type != kExtendedReply) {
    return;  // keep the defaults every server takes
  }
  const Limits limits = parse_limits(reply.body);
  if (limits.max_read > 0) {
    max_read_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(limits.max_read, kLargestRequest));
  }
  if (limits.max_write > 0) {
    max_write_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(limits.max_write, kLargestRequest));
  }
}

bool Connection::supports(const std::string& name) const {
  const auto found = extensions_.find(name);
  return found != extensions_.end() && found->second == "1";
}

// ---------------------------------------------------------------- packets

template <typename Body>
auto Connection::guarded(Body body) -> decltype(body()) {
  try {
    return body();
  } catch (const MalformedReply& malformed) {
    protocol_error(malformed.what);
  } catch (...) {
    broken_ = true;
    throw;
  }
}

void Connection::fail(const std::string& what) {
  broken_ = true;
  throw Error(ErrorKind::transient, location_ + ": " + what);
}

void Connection::protocol_error(const std::string& what) {
  broken_ = true;
  throw Error(ErrorKind::io, location_ + ": the server broke the SFTP protocol (" + what + ")");
}

void Connection::send_bytes(const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const auto chunk = static_cast<std::uint32_t>(std::min<std::size_t>(size, 1U << 20));
    const int sent = ssh_channel_write(channel_, data, chunk);
    if (sent <= 0) {
      fail(std::string("connection lost while sending (") + ssh_get_error(session_) + ")");
    }
    data += sent;
    size -= static_cast<std::size_t>(sent);
  }
}

void Connection::receive_bytes(std::uint8_t* out, std::size_t size) {
  while (size > 0) {
    const auto chunk = static_cast<std::uint32_t>(std::min<std::size_t>(size, 1U << 20));
    const int got = ssh_channel_read_timeout(channel_, out, chunk, 0, kTimeoutMs);
    if (got > 0) {
      out += got;
      size -= static_cast<std::size_t>(got);
      continue;
    }
    if (got == SSH_ERROR) {
      fail(std::string("connection lost (") + ssh_get_error(session_) + ")");
    }
    if (ssh_channel_is_eof(channel_) != 0 || ssh_channel_is_open(channel_) == 0) {
      fail("the server closed the connection");
    }
    fail("no answer from the server for " + std::to_string(kTimeoutMs / 1000) + " s");
  }
}

std::uint32_t Connection::send_request(std::uint8_t type, const Bytes& fields) {
  const std::uint32_t id = next_id_++;
  Bytes packet;
  packet.reserve(9 + fields.size());
  put_u32(packet, static_cast<std::uint32_t>(5 + fields.size()));
  packet.push_back(type);
  put_u32(packet, id);
  packet.insert(packet.end(), fields.begin(), fields.end());
  send_bytes(packet.data(), packet.size());
  return id;
}

Connection::Packet Connection::receive() {
  std::uint8_t header[9];
  receive_bytes(header, sizeof header);
  const PacketHeader parsed = parse_packet_header(header);
  Packet packet;
  packet.type = parsed.type;
  packet.id = parsed.id;
  packet.body.resize(parsed.body_size);
  receive_bytes(packet.body.data(), packet.body.size());
  return packet;
}

Connection::Packet Connection::call(std::uint8_t type, const Bytes& fields) {
  const std::uint32_t id = send_request(type, fields);
  Packet reply = receive();
  if (reply.id != id) {
    protocol_error("an answer to another request");
  }
  return reply;
}

Status Connection::status_of(const Packet& reply) {
  if (reply.type != kStatus) {
    protocol_error("packet type " + std::to_string(reply.type) + " where a status belongs");
  }
  StatusReply status = parse_status(reply.body);
  last_message_ = std::move(status.message);
  return status.code;
}

Status Connection::handle_reply(const Packet& reply, std::string& handle) {
  if (reply.type == kHandle) {
    handle = parse_handle(reply.body);
    return Status::ok;
  }
  const Status status = status_of(reply);
  if (status == Status::ok) {
    protocol_error("a success status where a handle belongs");
  }
  return status;
}

Status Connection::attributes_reply(const Packet& reply, Attributes& out) {
  if (reply.type == kAttrs) {
    out = parse_attributes(reply.body);
    return Status::ok;
  }
  const Status status = status_of(reply);
  if (status == Status::ok) {
    protocol_error("a success status where attributes belong");
  }
  return status;
}

// ---------------------------------------------------------------- requests

Status Connection::lstat(const std::string& path, Attributes& out) {
  return guarded([&] { return attributes_reply(call(kLstat, path_fields(path)), out); });
}

Status Connection::open(const std::string& path, std::uint32_t flags, std::uint32_t mode, std::string& handle) {
  return guarded([&] {
    Bytes fields = path_fields(path);
    put_u32(fields, flags);
    put_permissions(fields, mode);
    return handle_reply(call(kOpen, fields), handle);
  });
}

Status Connection::fstat(const std::string& handle, Attributes& out) {
  return guarded([&] { return attributes_reply(call(kFstat, path_fields(handle)), out); });
}

Status Connection::close(const std::string& handle) {
  return guarded([&] { return status_of(call(kClose, path_fields(handle))); });
}

Status Connection::opendir(const std::string& path, std::string& handle) {
  return guarded([&] { return handle_reply(call(kOpendir, path_fields(path)), handle); });
}

Status Connection::readdir(const std::string& handle, std::vector<DirectoryEntry>& out) {
  return guarded([&] {
    const Packet reply = call(kReaddir, path_fields(handle));
    if (reply.type != kName) {
      const Status status = status_of(reply);
      if (status == Status::ok) {
        protocol_error("a success status where names belong");
      }
      return status;
    }
    std::vector<DirectoryEntry> entries = parse_names(reply.body);
    out.insert(out.end(), std::make_move_iterator(entries.begin()), std::make_move_iterator(entries.end()));
    return Status::ok;
  });
}

Status Connection::remove(const std::string& path) {
  return guarded([&] { return status_of(call(kRemove, path_fields(path))); });
}

Status Connection::mkdir(const std::string& path, std::uint32_t mode) {
  return guarded([&] {
    Bytes fields = path_fields(path);
    put_permissions(fields, mode);
    return status_of(call(kMkdir, fields));
  });
}

Status Connection::rename(const std::string& from, const std::string& to) {
  return guarded([&] {
    Bytes fields = path_fields(from);
    put_string(fields, to);
    return status_of(call(kRename, fields));
  });
}

Status Connection::two_path_extension(const std::string& name, const std::string& from, const std::string& to) {
  return guarded([&] {
    Bytes fields = path_fields(name);
    put_string(fields, from);
    put_string(fields, to);
    return status_of(call(kExtended, fields));
  });
}

Status Connection::fsync(const std::string& handle) {
  return guarded([&] {
    Bytes fields = path_fields("fsync@openssh.com");
    put_string(fields, handle);
    return status_of(call(kExtended, fields));
  });
}

Status Connection::write_all(const std::string& handle, ByteView data) {
  return guarded([&] {
    std::set<std::uint32_t> in_flight;
    std::size_t next = 0;
    Status result = Status::ok;
    for (;;) {
      while (result == Status::ok && next < data.size() && in_flight.size() < kInFlight) {
        const std::size_t size = std::min<std::size_t>(max_write_, data.size() - next);
        Bytes fields = path_fields(handle);
        put_u64(fields, next);
        put_string(fields, data.subspan(next, size));
        in_flight.insert(send_request(kWrite, fields));
        next += size;
      }
      if (in_flight.empty()) {
        return result;
      }
      // Every answer is collected, even after a failure, so the next request meets a quiet line.
      const Packet reply = receive();
      if (in_flight.erase(reply.id) == 0) {
        protocol_error("an answer to no pending write");
      }
      const Status status = status_of(reply);
      if (result == Status::ok) {
        result = status;
      }
    }
  });
}

Status Connection::read_exactly(const std::string& handle, std::uint64_t offset, std::uint64_t length, std::uint8_t* out) {
  struct Piece {
    std::uint64_t at = 0;  // from `offset`
    std::uint32_t size = 0;
  };
  return guarded([&] {
    std::deque<Piece> to_ask;
    for (std::uint64_t at = 0; at < length; at += max_read_) {
      to_ask.push_back({at, static_cast<std::uint32_t>(std::min<std::uint64_t>(max_read_, length - at))});
    }
    std::map<std::uint32_t, Piece> in_flight;
    Status result = Status::ok;
    for (;;) {
      while (result == Status::ok && !to_ask.empty() && in_flight.size() < kInFlight) {
        const Piece piece = to_ask.front();
        to_ask.pop_front();
        Bytes fields = path_fields(handle);
        put_u64(fields, offset + piece.at);
        put_u32(fields, piece.size);
        in_flight[send_request(kRead, fields)] = piece;
      }
      if (in_flight.empty()) {
        return result;
      }
      const Packet reply = receive();
      const auto found = in_flight.find(reply.id);
      if (found == in_flight.end()) {
        protocol_error("an answer to no pending read");
      }
      const Piece piece = found->second;
      in_flight.erase(found);
      if (reply.type != kData) {
        const Status status = status_of(reply);
        if (status == Status::ok) {
          protocol_error("a success status where data belongs");
        }
        if (result == Status::ok) {
          result = status;
        }
        continue;
      }
      const ByteView data = parse_data(reply.body);
      if (data.size() > piece.size) {
        protocol_error("more data than asked for");
      }
      if (data.empty()) {
        result = result == Status::ok ? Status::end_of_file : result;
        continue;
      }
      std::memcpy(out + piece.at, data.data(), data.size());
      if (data.size() < piece.size) {  // a short read: ask for the rest
        to_ask.push_front({piece.at + data.size(), static_cast<std::uint32_t>(piece.size - data.size())});
      }
    }
  });
}

}  // namespace mybackup::sftp
