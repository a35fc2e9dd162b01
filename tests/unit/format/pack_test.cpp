#include "mybackup/format/pack.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::random_data;
using testing::to_bytes;

AeadKey make_key(std::uint8_t fill) {
  AeadKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<std::uint8_t>(fill + i);
  }
  return key;
}

ChunkId make_id(std::uint8_t fill) {
  ChunkId id{};
  id.fill(fill);
  id[0] = 0xc0;
  return id;
}

Bytes sealed(const AeadKey& key, const ChunkId& id, std::uint8_t flags, const Bytes& payload) {
  Bytes out;
  seal_blob(key, id, flags, payload, out);
  return out;
}

void put_u32le(Bytes& out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
}

void set_trailing_u32le(Bytes& pack, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i) {
    pack[pack.size() - 4 + i] = static_cast<std::uint8_t>(value >> (8 * i));
  }
}

/// A pack made by hand: `prefix` bytes, then a header sealed from `header_plain`, then its size.
Bytes handmade_pack(const AeadKey& key, const Bytes& prefix, const Bytes& header_plain) {
  Bytes pack = prefix;
  AeadNonce nonce{};
  nonce.fill(9);
  const std::size_t header_start = pack.size();
  pack.insert(pack.end(), {'M', 'B', 'K', 'H'});
  pack.insert(pack.end(), nonce.begin(), nonce.end());
  aes256gcm_seal_append(key, nonce, header_plain, as_bytes("MBKH"), pack);
  put_u32le(pack, static_cast<std::uint32_t>(pack.size() - header_start));
  return pack;
}

/// Plain header bytes: version, count, then the entries.
Bytes header_plain(std::uint8_t version, std::uint32_t count, const std::vector<PackEntry>& entries) {
  Bytes out{version};
  put_u32le(out, count);
  for (const PackEntry& entry : entries) {
    out.insert(out.end(), entry.id.begin(), entry.id.end());
    put_u32le(out, entry.offset);
    put_u32le(out, entry.length);
    put_u32le(out, entry.raw_length);
    out.push_back(entry.flags);
  }
  return out;
}

struct BuiltPack {
  FinishedPack pack;
  std::vector<Bytes> payloads;
};

BuiltPack build_pack(const AeadKey& key, std::size_t blobs) {
  BuiltPack built;
  PackBuilder builder(kDefaultPackTargetSize);
  for (std::size_t i = 0; i < blobs; ++i) {
    const Bytes payload = random_data(100 + 977 * i, static_cast<std::uint32_t>(i + 1));
    const std::uint8_t flags = (i % 2 == 0) ? kBlobCompressed : 0;
    builder.add(make_id(static_cast<std::uint8_t>(i)), sealed(key, make_id(static_cast<std::uint8_t>(i)), flags, payload),
                static_cast<std::uint32_t>(payload.size() * 2), flags);
    built.payloads.push_back(payload);
  }
  built.pack = builder.finish(key);
  return built;
}

// ---------------------------------------------------------------- blobs

TEST(Blob, seal_then_open_round_trip) {
  const AeadKey key = make_key(1);
  for (const std::uint8_t flags : {std::uint8_t{0}, kBlobCompressed}) {
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4096}}) {
      const Bytes payload = random_data(size, 5);
      const Bytes blob = sealed(key, make_id(3), flags, payload);
      ASSERT_EQ(blob.size(), payload.size() + kBlobOverhead);
      EXPECT_EQ(std::memcmp(blob.data(), "MBK1", 4), 0);
      EXPECT_EQ(blob[4], flags);
      std::uint8_t opened_flags = 0xff;
      EXPECT_EQ(open_blob(key, make_id(3), blob, opened_flags), payload);
      EXPECT_EQ(opened_flags, flags);
    }
  }
}

TEST(Blob, seal_appends_to_the_output) {
  const AeadKey key = make_key(1);
  Bytes out = to_bytes("prefix");
  const Bytes payload = to_bytes("payload");
  seal_blob(key, make_id(1), 0, payload, out);
  ASSERT_EQ(out.size(), 6 + payload.size() + kBlobOverhead);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 6), to_bytes("prefix"));
  std::uint8_t flags = 0;
  EXPECT_EQ(open_blob(key, make_id(1), ByteView(out).subspan(6), flags), payload);
}

TEST(Blob, a_blob_sealed_in_pieces_opens_like_one_sealed_whole) {
  const AeadKey key = make_key(1);
  const Bytes payload = random_data(300'000, 8);
  Bytes out = to_bytes("raw ");
  BlobSealer sealer(key, make_id(4), kBlobCompressed, out);
  for (std::size_t at = 0; at < payload.size(); at += 70'001) {
    sealer.update(ByteView(payload).subspan(at, std::min<std::size_t>(70'001, payload.size() - at)), out);
  }
  sealer.finish(out);
  ASSERT_EQ(out.size(), 4 + payload.size() + kBlobOverhead);
  std::uint8_t flags = 0;
  EXPECT_EQ(open_blob(key, make_id(4), ByteView(out).subspan(4), flags), payload);
  EXPECT_EQ(flags, kBlobCompressed);
  // Bound to its id and flags like any blob.
  EXPECT_EQ(error_kind([&] { open_blob(key, make_id(5), ByteView(out).subspan(4), flags); }), ErrorKind::corrupt);
  out[4 + 4] ^= 1;  // the flags byte
  EXPECT_EQ(error_kind([&] { open_blob(key, make_id(4), ByteView(out).subspan(4), flags); }), ErrorKind::corrupt);
}

TEST(Blob, a_blob_opened_in_pieces_gives_its_payload_and_authenticates_at_the_end) {
  const AeadKey key = make_key(1);
  const Bytes payload = random_data(200'000, 9);
  const Bytes blob = sealed(key, make_id(6), kBlobCompressed, payload);
  const auto open_in_pieces = [&](const Bytes& bytes, const ChunkId& id) {
    BlobOpener opener(key, id, ByteView(bytes).first(kBlobHeaderSize));
    EXPECT_EQ(opener.flags(), kBlobCompressed);
    Bytes out;
    const ByteView body = ByteView(bytes).subspan(kBlobHeaderSize, bytes.size() - kBlobHeaderSize - kAeadTagSize);
    for (std::size_t at = 0; at < body.size(); at += 65'537) {
      opener.update(body.subspan(at, std::min<std::size_t>(65'537, body.size() - at)), out);
    }
    opener.finish(ByteView(bytes).last(kAeadTagSize));
    return out;
  };
  EXPECT_EQ(open_in_pieces(blob, make_id(6)), payload);
  EXPECT_EQ(error_kind([&] { open_in_pieces(blob, make_id(7)); }), ErrorKind::corrupt);  // another id
  for (const std::size_t at : {kBlobHeaderSize + 100, blob.size() - 1}) {                 // payload, tag
    Bytes damaged = blob;
    damaged[at] ^= 1;
    EXPECT_EQ(error_kind([&] { open_in_pieces(damaged, make_id(6)); }), ErrorKind::corrupt) << at;
  }
  EXPECT_EQ(error_kind([&] { BlobOpener(key, make_id(6), to_bytes("XBK1")); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] {
              BlobOpener opener(key, make_id(6), ByteView(blob).first(kBlobHeaderSize));
              opener.finish(to_bytes("short tag"));
            }),
            ErrorKind::corrupt);
}

TEST(Blob, each_seal_uses_a_fresh_nonce) {
  const AeadKey key = make_key(1);
  const Bytes payload = to_bytes("same payload");
  EXPECT_NE(sealed(key, make_id(1), 0, payload), sealed(key, make_id(1), 0, payload));
}

TEST(Blob, tampering_with_any_byte_fails) {
  const AeadKey key = make_key(1);
  const Bytes payload = random_data(40, 2);
  const Bytes blob = sealed(key, make_id(7), kBlobCompressed, payload);
  for (std::size_t i = 0; i < blob.size(); ++i) {
    for (const std::uint8_t mask : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      Bytes damaged = blob;
      damaged[i] ^= mask;
      std::uint8_t flags = 0;
      const auto kind = error_kind([&] { open_blob(key, make_id(7), damaged, flags); });
      // The magic is checked first (corrupt); flags, nonce, ciphertext and tag fail authentication.
      EXPECT_EQ(kind, ErrorKind::corrupt) << "byte " << i << " mask " << int{mask};
    }
  }
}

TEST(Blob, truncated_or_extended_blob_fails) {
  const AeadKey key = make_key(1);
  const Bytes blob = sealed(key, make_id(7), 0, random_data(30, 2));
  std::uint8_t flags = 0;
  for (std::size_t length = 0; length < blob.size(); ++length) {
    const Bytes prefix(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(length));
    const auto kind = error_kind([&] { open_blob(key, make_id(7), prefix, flags); });
    EXPECT_EQ(kind, ErrorKind::corrupt) << "length " << length;
  }
  Bytes longer = blob;
  longer.push_back(0);
  EXPECT_EQ(error_kind([&] { open_blob(key, make_id(7), longer, flags); }), ErrorKind::corrupt);
}

TEST(Blob, opened_under_another_id_fails) {
  const AeadKey key = make_key(1);
  const Bytes blob = sealed(key, make_id(7), 0, to_bytes("chunk content"));
  ChunkId other = make_id(7);
  other[31] ^= 1;
  std::uint8_t flags = 0;
  EXPECT_EQ(error_kind([&] { open_blob(key, other, blob, flags); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { open_blob(key, make_id(8), blob, flags); }), ErrorKind::corrupt);
}

TEST(Blob, wrong_key_fails) {
  const Bytes blob = sealed(make_key(1), make_id(7), 0, to_bytes("chunk content"));
  std::uint8_t flags = 0;
  EXPECT_EQ(error_kind([&] { open_blob(make_key(2), make_id(7), blob, flags); }), ErrorKind::corrupt);
}

// ---------------------------------------------------------------- packs

TEST(Pack, builder_and_read_pack_header_round_trip) {
  const AeadKey key = make_key(1);
  const BuiltPack built = build_pack(key, 5);
  const FinishedPack& pack = built.pack;
  ASSERT_EQ(pack.entries.size(), 5U);

  std::uint32_t expected_offset = 0;
  for (std::size_t i = 0; i < pack.entries.size(); ++i) {
    const PackEntry& entry = pack.entries[i];
    EXPECT_EQ(entry.id, make_id(static_cast<std::uint8_t>(i)));
    EXPECT_EQ(entry.offset, expected_offset) << i;
    EXPECT_EQ(entry.length, built.payloads[i].size() + kBlobOverhead) << i;
    EXPECT_EQ(entry.raw_length, built.payloads[i].size() * 2) << i;
    EXPECT_EQ(entry.flags, (i % 2 == 0) ? kBlobCompressed : 0) << i;
    expected_offset += entry.length;
    // Every blob can be opened straight from its place in the pack.
    std::uint8_t flags = 0xff;
    const ByteView blob = ByteView(pack.bytes).subspan(entry.offset, entry.length);
    EXPECT_EQ(open_blob(key, entry.id, blob, flags), built.payloads[i]) << i;
    EXPECT_EQ(flags, entry.flags);
  }
  EXPECT_GT(pack.bytes.size(), expected_offset + 4 + kAeadNonceSize + kAeadTagSize);

  const std::vector<PackEntry> read = read_pack_header(key, pack.bytes);
  ASSERT_EQ(read.size(), pack.entries.size());
  for (std::size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].id, pack.entries[i].id);
    EXPECT_EQ(read[i].offset, pack.entries[i].offset);
    EXPECT_EQ(read[i].length, pack.entries[i].length);
    EXPECT_EQ(read[i].raw_length, pack.entries[i].raw_length);
    EXPECT_EQ(read[i].flags, pack.entries[i].flags);
  }
}

TEST(Pack, builder_is_empty_again_after_finish) {
  const AeadKey key = make_key(1);
  PackBuilder builder(kDefaultPackTargetSize);
  EXPECT_TRUE(builder.empty());
  EXPECT_EQ(builder.size(), 0U);
  const Bytes blob = sealed(key, make_id(1), 0, to_bytes("one"));
  builder.add(make_id(1), blob, 3, 0);
  EXPECT_FALSE(builder.empty());
  EXPECT_EQ(builder.size(), blob.size());
  const FinishedPack first = builder.finish(key);
  EXPECT_TRUE(builder.empty());
  EXPECT_EQ(builder.size(), 0U);

  builder.add(make_id(2), blob, 3, 0);
  const FinishedPack second = builder.finish(key);
  ASSERT_EQ(second.entries.size(), 1U);
  EXPECT_EQ(second.entries[0].offset, 0U);
  EXPECT_EQ(second.entries[0].id, make_id(2));
  EXPECT_EQ(read_pack_header(key, second.bytes).size(), 1U);
  EXPECT_NE(first.name, second.name);
}

TEST(Pack, a_pack_without_blobs_is_valid) {
  const AeadKey key = make_key(1);
  PackBuilder builder(kDefaultPackTargetSize);
  const FinishedPack pack = builder.finish(key);
  EXPECT_TRUE(pack.entries.empty());
  EXPECT_TRUE(read_pack_header(key, pack.bytes).empty());
}

TEST(Pack, name_is_the_hex_sha256_of_the_bytes) {
  const BuiltPack built = build_pack(make_key(1), 3);
  const FinishedPack& pack = built.pack;
  EXPECT_EQ(pack.name, to_hex(Sha256::hash(pack.bytes)));
  EXPECT_EQ(pack.name.size(), 64U);
  EXPECT_EQ(pack.name.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(Pack, truncated_pack_is_corrupt) {
  const AeadKey key = make_key(1);
  const FinishedPack pack = build_pack(key, 3).pack;
  for (std::size_t length = 0; length < pack.bytes.size(); ++length) {
    const ByteView prefix = ByteView(pack.bytes).first(length);
    EXPECT_EQ(error_kind([&] { read_pack_header(key, prefix); }), ErrorKind::corrupt) << "length " << length;
  }
  // The header removed entirely (only the blobs and a size left) is caught too.
  Bytes no_header(pack.bytes.begin(), pack.bytes.begin() + pack.entries.back().offset + pack.entries.back().length);
  put_u32le(no_header, 0);
  EXPECT_EQ(error_kind([&] { read_pack_header(key, no_header); }), ErrorKind::corrupt);
}

TEST(Pack, bad_header_size_is_corrupt) {
  const AeadKey key = make_key(1);
  const FinishedPack pack = build_pack(key, 2).pack;
  const std::uint32_t real_size = static_cast<std::uint32_t>(pack.bytes.size()) - 4 -
                                  (pack.entries.back().offset + pack.entries.back().length);
  const std::uint32_t too_small = 4 + kAeadNonceSize + kAeadTagSize - 1;
  for (const std::uint32_t size : {std::uint32_t{0}, too_small, real_size - 1, real_size + 1,
                                   static_cast<std::uint32_t>(pack.bytes.size() - 3), std::uint32_t{0xffffffff}}) {
    Bytes damaged = pack.bytes;
    set_trailing_u32le(damaged, size);
    EXPECT_EQ(error_kind([&] { read_pack_header(key, damaged); }), ErrorKind::corrupt) << "size " << size;
  }
  // The real size still works (the test above did damage what it meant to).
  Bytes same = pack.bytes;
  set_trailing_u32le(same, real_size);
  EXPECT_EQ(read_pack_header(key, same).size(), 2U);
}

TEST(Pack, wrong_key_is_corrupt) {
  const FinishedPack pack = build_pack(make_key(1), 2).pack;
  EXPECT_EQ(error_kind([&] { read_pack_header(make_key(2), pack.bytes); }), ErrorKind::corrupt);
}

TEST(Pack, damaged_header_is_corrupt) {
  const AeadKey key = make_key(1);
  const FinishedPack pack = build_pack(key, 2).pack;
  const std::size_t header_start = pack.entries.back().offset + pack.entries.back().length;
  // Every byte after the magic and before the trailing size: nonce, ciphertext, tag.
  for (std::size_t i = header_start + 4; i < pack.bytes.size() - 4; ++i) {
    Bytes damaged = pack.bytes;
    damaged[i] ^= 0x20;
    EXPECT_EQ(error_kind([&] { read_pack_header(key, damaged); }), ErrorKind::corrupt) << "byte " << i;
  }
  Bytes bad_magic = pack.bytes;
  bad_magic[header_start] ^= 0x20;
  EXPECT_EQ(error_kind([&] { read_pack_header(key, bad_magic); }), ErrorKind::corrupt);
}

TEST(Pack, header_entries_must_lie_before_the_header) {
  const AeadKey key = make_key(1);
  const Bytes blobs = sealed(key, make_id(1), 0, to_bytes("0123456789"));
  PackEntry entry;
  entry.id = make_id(1);
  entry.offset = 0;
  entry.length = static_cast<std::uint32_t>(blobs.size());
  entry.raw_length = 10;
  // Exactly fitting: accepted.
  EXPECT_EQ(read_pack_header(key, handmade_pack(key, blobs, header_plain(1, 1, {entry}))).size(), 1U);
  // One byte into the header: refused.
  entry.length += 1;
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, blobs, header_plain(1, 1, {entry}))); }),
            ErrorKind::corrupt);
  // An offset that overflows 32 bits when the length is added.
  entry.offset = 0xfffffff0;
  entry.length = 0x20;
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, blobs, header_plain(1, 1, {entry}))); }),
            ErrorKind::corrupt);
}

TEST(Pack, header_with_unknown_version_or_wrong_count_is_corrupt) {
  const AeadKey key = make_key(1);
  PackEntry entry;
  entry.id = make_id(1);
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, {}, header_plain(2, 0, {}))); }),
            ErrorKind::corrupt);
  // More entries announced than present.
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, {}, header_plain(1, 2, {entry}))); }),
            ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, {}, header_plain(1, 0xffffffff, {}))); }),
            ErrorKind::corrupt);
  // A header cut short inside the count.
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, {}, Bytes{1, 0})); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { read_pack_header(key, handmade_pack(key, {}, Bytes{})); }), ErrorKind::corrupt);
}

}  // namespace
}  // namespace mybackup
