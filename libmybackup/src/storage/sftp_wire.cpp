#include "mybackup/storage/sftp_wire.hpp"

#include <sys/stat.h>

#include <algorithm>

namespace mybackup::sftp {

namespace {

// Attribute flags.
constexpr std::uint32_t kAttrSize = 0x1;
constexpr std::uint32_t kAttrUidGid = 0x2;
constexpr std::uint32_t kAttrPermissions = 0x4;
constexpr std::uint32_t kAttrTimes = 0x8;
constexpr std::uint32_t kAttrExtended = 0x80000000;

/// Reads the fields of a reply; a field that runs past the end is MalformedReply.
class Reader {
 public:
  explicit Reader(ByteView packet) : bytes_(packet) {}

  bool done() const { return at_ == bytes_.size(); }

  std::uint32_t u32() {
    need(4);
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      value = (value << 8) | bytes_[at_++];
    }
    return value;
  }

  std::uint64_t u64() {
    const std::uint64_t high = u32();
    return (high << 32) | u32();
  }

  /// A string field as a view into the reply.
  ByteView bytes() {
    const std::uint32_t size = u32();
    need(size);
    const ByteView view = bytes_.subspan(at_, size);
    at_ += size;
    return view;
  }

  std::string text() {
    const ByteView view = bytes();
    return std::string(view.begin(), view.end());
  }

  Attributes attributes() {
    Attributes out;
    const std::uint32_t flags = u32();
    if ((flags & kAttrSize) != 0) {
      out.size = u64();
    }
    if ((flags & kAttrUidGid) != 0) {
      u64();
    }
    if ((flags & kAttrPermissions) != 0) {
      out.permissions = u32();
    }
    if ((flags & kAttrTimes) != 0) {
      u64();
    }
    if ((flags & kAttrExtended) != 0) {
      for (std::uint32_t count = u32(); count > 0; --count) {
        bytes();
        bytes();
      }
    }
    return out;
  }

 private:
  void need(std::size_t size) const {
    if (size > bytes_.size() - at_) {
      throw MalformedReply{"a field runs past the end of its packet"};
    }
  }

  ByteView bytes_;
  std::size_t at_ = 0;
};

}  // namespace

bool Attributes::is_regular() const { return permissions && S_ISREG(*permissions); }

bool Attributes::is_directory() const { return permissions && S_ISDIR(*permissions); }

void put_u32(Bytes& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

void put_u64(Bytes& out, std::uint64_t value) {
  put_u32(out, static_cast<std::uint32_t>(value >> 32));
  put_u32(out, static_cast<std::uint32_t>(value));
}

void put_string(Bytes& out, ByteView text) {
  put_u32(out, static_cast<std::uint32_t>(text.size()));
  out.insert(out.end(), text.begin(), text.end());
}

void put_string(Bytes& out, const std::string& text) { put_string(out, as_bytes(text)); }

void put_permissions(Bytes& out, std::uint32_t mode) {
  put_u32(out, kAttrPermissions);
  put_u32(out, mode);
}

PacketHeader parse_packet_header(const std::uint8_t (&header)[9]) {
  const std::uint32_t length = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
                               (std::uint32_t{header[2]} << 8) | header[3];
  if (length < 5 || length > kLargestPacket) {
    throw MalformedReply{"a packet of " + std::to_string(length) + " bytes"};
  }
  PacketHeader parsed;
  parsed.body_size = length - 5;
  parsed.type = header[4];
  parsed.id = (std::uint32_t{header[5]} << 24) | (std::uint32_t{header[6]} << 16) | (std::uint32_t{header[7]} << 8) | header[8];
  return parsed;
}

std::map<std::string, std::string> parse_version(ByteView body) {
  Reader reader(body);
  std::map<std::string, std::string> extensions;
  while (!reader.done()) {
    std::string name = reader.text();
    extensions[std::move(name)] = reader.text();
  }
  return extensions;
}

StatusReply parse_status(ByteView body) {
  Reader reader(body);
  StatusReply reply;
  reply.code = static_cast<Status>(reader.u32());
  if (!reader.done()) {  // SFTP v3 adds a message and a language tag; older servers may not
    const ByteView message = reader.bytes();
    reply.message.assign(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(std::min(message.size(), kMessageLimit)));
  }
  return reply;
}

std::string parse_handle(ByteView body) {
  Reader reader(body);
  return reader.text();
}

Attributes parse_attributes(ByteView body) {
  Reader reader(body);
  return reader.attributes();
}

std::vector<DirectoryEntry> parse_names(ByteView body) {
  Reader reader(body);
  std::vector<DirectoryEntry> entries;
  for (std::uint32_t count = reader.u32(); count > 0; --count) {
    DirectoryEntry entry;
    entry.name = reader.text();
    reader.bytes();  // the "ls -l" line
    entry.attributes = reader.attributes();
    entries.push_back(std::move(entry));
  }
  return entries;
}

ByteView parse_data(ByteView body) {
  Reader reader(body);
  return reader.bytes();
}

Limits parse_limits(ByteView body) {
  Reader reader(body);
  reader.u64();  // the largest packet: implied by the two below
  Limits limits;
  limits.max_read = reader.u64();
  limits.max_write = reader.u64();
  return limits;
}

}  // namespace mybackup::sftp
