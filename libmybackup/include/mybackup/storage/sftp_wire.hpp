#pragma once
// The SFTP version 3 wire format (draft-ietf-secsh-filexfer-02, plus OpenSSH's PROTOCOL
// extensions) as the SFTP backend speaks it: the fields of requests, and the replies of an
// untrusted server read field by field. Every parse_* function reads only within the packet it is
// given and throws MalformedReply for a field that runs past its end or a value out of range;
// nothing is allocated beyond the packet's own size. Pure functions; thread-safe.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/util/bytes.hpp"

namespace mybackup::sftp {

/// SSH_FXP_* packet types.
enum PacketType : std::uint8_t {
  kInit = 1,
  kVersion = 2,
  kOpen = 3,
  kClose = 4,
  kRead = 5,
  kWrite = 6,
  kLstat = 7,
  kFstat = 8,
  kOpendir = 11,
  kReaddir = 12,
  kRemove = 13,
  kMkdir = 14,
  kRename = 18,
  kStatus = 101,
  kHandle = 102,
  kData = 103,
  kName = 104,
  kAttrs = 105,
  kExtended = 200,
  kExtendedReply = 201,
};

/// SSH_FX_* status codes (SFTP v3, and the later ones some servers send).
enum Status : std::uint32_t {
  ok = 0,
  end_of_file = 1,
  no_such_file = 2,
  permission_denied = 3,
  failure = 4,
  bad_message = 5,
  no_connection = 6,
  connection_lost = 7,
  op_unsupported = 8,
  no_such_path = 10,
  file_already_exists = 11,
  write_protect = 12,
  no_space_on_filesystem = 14,
  quota_exceeded = 15,
};

/// SSH_FXF_* open flags.
enum OpenFlags : std::uint32_t { open_read = 0x01, open_write = 0x02, open_create = 0x08, open_exclusive = 0x20 };

/// What SFTP v3 attributes say about a path (only what the backend uses).
struct Attributes {
  std::optional<std::uint64_t> size;
  std::optional<std::uint32_t> permissions;  // with the S_IFMT type bits

  bool is_regular() const;
  bool is_directory() const;
};

struct DirectoryEntry {
  std::string name;
  Attributes attributes;  // of the entry itself, not of what a link points to (OpenSSH: lstat)
};

/// A reply that breaks the protocol; `what` says how, for the connection's error message.
struct MalformedReply {
  std::string what;
};

/// The most a reply packet may carry: a larger length is refused before anything is allocated.
constexpr std::size_t kLargestPacket = 1024 * 1024;
/// The most of a status message kept (a server's text, shown in errors).
constexpr std::size_t kMessageLimit = 200;

// ---- requests
void put_u32(Bytes& out, std::uint32_t value);
void put_u64(Bytes& out, std::uint64_t value);
void put_string(Bytes& out, ByteView text);
void put_string(Bytes& out, const std::string& text);
/// An attributes field setting only the permissions.
void put_permissions(Bytes& out, std::uint32_t mode);

// ---- replies
/// The 9 bytes before a packet's body: its length (type and id included), type and request id.
struct PacketHeader {
  std::uint32_t body_size = 0;  // the bytes that follow the header
  std::uint8_t type = 0;
  std::uint32_t id = 0;  // for VERSION: the server's protocol version
};
/// MalformedReply for a length under 5 or over kLargestPacket.
PacketHeader parse_packet_header(const std::uint8_t (&header)[9]);

/// VERSION's extension pairs (name -> version string).
std::map<std::string, std::string> parse_version(ByteView body);

struct StatusReply {
  Status code = Status::ok;
  std::string message;  // at most kMessageLimit bytes; empty when the server sent none (pre-v3)
};
StatusReply parse_status(ByteView body);
std::string parse_handle(ByteView body);
Attributes parse_attributes(ByteView body);
/// NAME's entries (a READDIR answer).
std::vector<DirectoryEntry> parse_names(ByteView body);
/// DATA's bytes, a view into `body`.
ByteView parse_data(ByteView body);

/// The reply to limits@openssh.com: 0 where the server sets no limit.
struct Limits {
  std::uint64_t max_read = 0;
  std::uint64_t max_write = 0;
};
Limits parse_limits(ByteView body);

}  // namespace mybackup::sftp
