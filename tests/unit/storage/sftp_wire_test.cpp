// The SFTP v3 wire format (storage/sftp_wire.hpp) without a server: well-formed replies as
// OpenSSH sends them, and hostile ones that claim more than they carry.

#include "mybackup/storage/sftp_wire.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace mybackup::sftp {
namespace {

/// Asserts that `parse` throws MalformedReply.
template <typename Parse>
void expect_malformed(Parse parse) {
  try {
    parse();
    ADD_FAILURE() << "parsed a malformed reply";
  } catch (const MalformedReply& malformed) {
    EXPECT_FALSE(malformed.what.empty());
  }
}

Bytes attributes(std::uint64_t size, std::uint32_t permissions, int extended_pairs = 0) {
  Bytes out;
  put_u32(out, 0x1 | 0x2 | 0x4 | 0x8 | (extended_pairs > 0 ? 0x80000000U : 0U));
  put_u64(out, size);
  put_u64(out, 1000ULL << 32 | 1000);  // uid, gid
  put_u32(out, permissions);
  put_u64(out, 0);  // atime, mtime
  if (extended_pairs > 0) {
    put_u32(out, static_cast<std::uint32_t>(extended_pairs));
    for (int i = 0; i < extended_pairs; ++i) {
      put_string(out, std::string("name"));
      put_string(out, std::string("value"));
    }
  }
  return out;
}

TEST(SftpWire, PacketHeadersAreBoundedBeforeAnythingIsAllocated) {
  const std::uint8_t good[9] = {0, 0, 0, 9, kStatus, 0, 0, 0, 7};
  const PacketHeader header = parse_packet_header(good);
  EXPECT_EQ(header.body_size, 4U);
  EXPECT_EQ(header.type, kStatus);
  EXPECT_EQ(header.id, 7U);
  const std::uint8_t too_short[9] = {0, 0, 0, 4, kStatus, 0, 0, 0, 7};
  expect_malformed([&] { parse_packet_header(too_short); });
  const std::uint8_t huge[9] = {0xff, 0xff, 0xff, 0xff, kData, 0, 0, 0, 1};
  expect_malformed([&] { parse_packet_header(huge); });
  const std::uint8_t just_over[9] = {0, 0x10, 0, 1, kData, 0, 0, 0, 1};  // kLargestPacket + 1
  expect_malformed([&] { parse_packet_header(just_over); });
}

TEST(SftpWire, StatusesWithAndWithoutMessagesAndLongMessagesCut) {
  Bytes body;
  put_u32(body, Status::no_such_file);
  put_string(body, std::string("No such file"));
  put_string(body, std::string("en"));
  StatusReply reply = parse_status(body);
  EXPECT_EQ(reply.code, Status::no_such_file);
  EXPECT_EQ(reply.message, "No such file");

  Bytes bare;  // SFTP v2 and older send the code alone
  put_u32(bare, Status::failure);
  reply = parse_status(bare);
  EXPECT_EQ(reply.code, Status::failure);
  EXPECT_TRUE(reply.message.empty());

  Bytes chatty;
  put_u32(chatty, Status::failure);
  put_string(chatty, std::string(5000, 'x'));
  EXPECT_EQ(parse_status(chatty).message.size(), kMessageLimit);

  Bytes lying;  // a message longer than the packet
  put_u32(lying, Status::failure);
  put_u32(lying, 1000);
  lying.push_back('x');
  expect_malformed([&] { parse_status(lying); });
  expect_malformed([&] { parse_status(Bytes{0, 0}); });
}

TEST(SftpWire, DirectoryEntriesAndTheirAttributes) {
  Bytes body;
  put_u32(body, 2);
  put_string(body, std::string("ab"));
  put_string(body, std::string("drwx------ 2 u u 4096 Dec 2 10:00 ab"));
  const Bytes folder = attributes(4096, S_IFDIR | 0700, 2);
  body.insert(body.end(), folder.begin(), folder.end());
  put_string(body, std::string("link"));
  put_string(body, std::string("lrwxrwxrwx 1 u u 4 Dec 2 10:00 link -> /etc"));
  const Bytes link = attributes(4, S_IFLNK | 0777);
  body.insert(body.end(), link.begin(), link.end());

  const std::vector<DirectoryEntry> entries = parse_names(body);
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(entries[0].name, "ab");
  EXPECT_TRUE(entries[0].attributes.is_directory());
  EXPECT_EQ(entries[0].attributes.size, 4096U);
  EXPECT_EQ(entries[1].name, "link");
  EXPECT_FALSE(entries[1].attributes.is_regular());
  EXPECT_FALSE(entries[1].attributes.is_directory());

  // A count of four billion entries in a packet of a few bytes: refused, not allocated.
  Bytes boastful;
  put_u32(boastful, 0xffffffffU);
  put_string(boastful, std::string("a"));
  expect_malformed([&] { parse_names(boastful); });
}

TEST(SftpWire, AttributesWithOnlySomeFieldsAndTruncatedOnes) {
  Bytes size_only;
  put_u32(size_only, 0x1);
  put_u64(size_only, 123);
  const Attributes parsed = parse_attributes(size_only);
  EXPECT_EQ(parsed.size, 123U);
  EXPECT_FALSE(parsed.permissions.has_value());
  EXPECT_FALSE(parsed.is_regular());

  Bytes cut = attributes(10, S_IFREG | 0600);
  cut.resize(cut.size() - 3);
  expect_malformed([&] { parse_attributes(cut); });
  Bytes many_extensions;
  put_u32(many_extensions, 0x80000000U);
  put_u32(many_extensions, 0x7fffffffU);
  expect_malformed([&] { parse_attributes(many_extensions); });
}

TEST(SftpWire, DataHandlesVersionsAndLimits) {
  Bytes data;
  put_string(data, std::string("hello"));
  const ByteView view = parse_data(data);
  EXPECT_EQ(std::string(view.begin(), view.end()), "hello");
  Bytes short_data;
  put_u32(short_data, 6);
  short_data.push_back('h');
  expect_malformed([&] { parse_data(short_data); });

  Bytes handle;
  put_string(handle, std::string("\x01\x02", 2));
  EXPECT_EQ(parse_handle(handle), std::string("\x01\x02", 2));

  Bytes version;
  put_string(version, std::string("posix-rename@openssh.com"));
  put_string(version, std::string("1"));
  put_string(version, std::string("hardlink@openssh.com"));
  put_string(version, std::string("1"));
  const auto extensions = parse_version(version);
  EXPECT_EQ(extensions.size(), 2U);
  EXPECT_EQ(extensions.at("hardlink@openssh.com"), "1");
  version.pop_back();
  expect_malformed([&] { parse_version(version); });

  Bytes limits;
  put_u64(limits, 256 * 1024 + 1024);
  put_u64(limits, 255 * 1024);
  put_u64(limits, 0);
  const Limits parsed = parse_limits(limits);
  EXPECT_EQ(parsed.max_read, 255U * 1024);
  EXPECT_EQ(parsed.max_write, 0U);
  limits.resize(20);
  expect_malformed([&] { parse_limits(limits); });
}

TEST(SftpWire, RequestFieldsAreLengthPrefixedBigEndian) {
  Bytes out;
  put_u32(out, 0x01020304);
  put_u64(out, 0x0506070809101112ULL);
  put_string(out, std::string("ab"));
  put_permissions(out, 0600);
  const Bytes expected = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0x10, 0x11, 0x12, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 4, 0, 0, 0x01, 0x80};
  EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace mybackup::sftp
