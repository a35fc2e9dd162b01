#include "mybackup/format/manifest.hpp"
#include "mybackup/format/manifest_decoder.hpp"
#include "mybackup/format/manifest_spool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::to_bytes;

Digest digest_of(const std::string& text) { return Sha256::hash(as_bytes(text)); }

Manifest sample_manifest() {
  Manifest manifest;
  manifest.kind = RunKind::backup;
  manifest.seq = 300;  // more than one varint byte
  manifest.run_id = "0123456789abcdef";
  manifest.host = "laptop.example";
  manifest.started_ns = 1'795'000'000'123'456'789;
  manifest.finished_ns = 1'795'000'060'000'000'000;
  manifest.sources = {"/home/ana/Documents", "/etc", "/srv/naïve name with spaces"};

  ManifestPack first;
  first.name = to_hex(digest_of("pack one"));
  first.size = 16 * 1024 * 1024 + 17;
  for (std::uint32_t i = 0; i < 3; ++i) {
    PackEntry blob;
    blob.id = digest_of("blob " + std::to_string(i));
    blob.offset = i * 70'000;
    blob.length = 69'999 + i;
    blob.raw_length = 200'000 + i;
    blob.flags = (i == 1) ? 0 : kBlobCompressed;
    first.blobs.push_back(blob);
  }
  ManifestPack empty_pack;
  empty_pack.name = to_hex(digest_of("pack two"));
  empty_pack.size = 36;
  manifest.packs = {first, empty_pack};

  ManifestVersion file;
  file.path = "/home/ana/Documents/report.odt";
  file.type = EntryType::file;
  file.number = 3;
  file.mode = 0644;
  file.mtime_ns = 1'700'000'000'999'999'999;
  file.size = 1'234'567;
  file.inode = 0xfedcba9876543210ULL;
  file.sha256 = digest_of("whole file");
  file.chunks = {digest_of("blob 0"), digest_of("blob 2"), digest_of("blob 0")};
  file.meta.recorded = true;
  file.meta.uid = 1000;
  file.meta.gid = 100;
  file.meta.owner = "ana";
  file.meta.group = "users";
  file.meta.ctime_ns = 1'700'000'001'000'000'000;
  file.meta.device = 0x803;
  file.meta.links = 2;
  file.meta.xattrs = {{"user.comment", "draft"}, {"user.empty", ""}};

  ManifestVersion empty_file;
  empty_file.path = "/home/ana/empty";
  empty_file.type = EntryType::file;
  empty_file.number = 1;
  empty_file.mode = 0600;
  empty_file.sha256 = digest_of("");

  ManifestVersion directory;
  directory.path = "/home/ana/Documents";
  directory.type = EntryType::directory;
  directory.number = 1;
  directory.mode = 0755;
  directory.mtime_ns = -1;  // just before 1970
  directory.inode = 42;

  ManifestVersion link;
  link.path = "/home/ana/latest";
  link.type = EntryType::symlink;
  link.number = 2;
  link.mode = 0777;
  link.mtime_ns = -1'000'000'000'000'000'000;  // 1938
  link.size = 26;
  link.link_target = "Documents/report.odt";

  ManifestVersion deleted;
  deleted.path = "/home/ana/old.txt";
  deleted.type = EntryType::deleted;
  deleted.number = 4;
  deleted.mtime_ns = std::numeric_limits<std::int64_t>::min();

  ManifestVersion fifo;
  fifo.path = "/home/ana/pipe";
  fifo.type = EntryType::fifo;
  fifo.number = 1;
  fifo.mode = 0600;
  fifo.meta.recorded = true;
  fifo.meta.uid = 4'294'967'294U;  // nobody's id on some systems: the full 32 bits
  fifo.meta.links = 1;

  ManifestVersion device;
  device.path = "/srv/dev/null";
  device.type = EntryType::char_device;
  device.number = 1;
  device.mode = 0666;
  device.meta.recorded = true;
  device.meta.rdev = 0x103;

  manifest.versions = {file, empty_file, directory, link, deleted, fifo, device};
  manifest.removed = {{"/home/ana/Documents/old.txt", 1}, {"/home/ana/Documents/old.txt", 300}, {"/é", 7}};
  manifest.deleted_packs = {to_hex(digest_of("old pack")), to_hex(digest_of("rewritten pack"))};
  manifest.config = "# mybackup configuration\nsources:\n  - path: '/home/ana/Documents'\n";
  return manifest;
}

void expect_same_entry(const PackEntry& actual, const PackEntry& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.offset, expected.offset);
  EXPECT_EQ(actual.length, expected.length);
  EXPECT_EQ(actual.raw_length, expected.raw_length);
  EXPECT_EQ(actual.flags, expected.flags);
}

void expect_same_manifest(const Manifest& actual, const Manifest& expected) {
  EXPECT_EQ(actual.kind, expected.kind);
  EXPECT_EQ(actual.seq, expected.seq);
  EXPECT_EQ(actual.run_id, expected.run_id);
  EXPECT_EQ(actual.host, expected.host);
  EXPECT_EQ(actual.started_ns, expected.started_ns);
  EXPECT_EQ(actual.finished_ns, expected.finished_ns);
  EXPECT_EQ(actual.sources, expected.sources);
  ASSERT_EQ(actual.packs.size(), expected.packs.size());
  for (std::size_t p = 0; p < expected.packs.size(); ++p) {
    EXPECT_EQ(actual.packs[p].name, expected.packs[p].name);
    EXPECT_EQ(actual.packs[p].size, expected.packs[p].size);
    ASSERT_EQ(actual.packs[p].blobs.size(), expected.packs[p].blobs.size());
    for (std::size_t b = 0; b < expected.packs[p].blobs.size(); ++b) {
      expect_same_entry(actual.packs[p].blobs[b], expected.packs[p].blobs[b]);
    }
  }
  ASSERT_EQ(actual.versions.size(), expected.versions.size());
  for (std::size_t v = 0; v < expected.versions.size(); ++v) {
    const ManifestVersion& a = actual.versions[v];
    const ManifestVersion& e = expected.versions[v];
    EXPECT_EQ(a.path, e.path);
    EXPECT_EQ(a.type, e.type) << e.path;
    EXPECT_EQ(a.number, e.number) << e.path;
    EXPECT_EQ(a.mode, e.mode) << e.path;
    EXPECT_EQ(a.mtime_ns, e.mtime_ns) << e.path;
    EXPECT_EQ(a.size, e.size) << e.path;
    EXPECT_EQ(a.inode, e.inode) << e.path;
    EXPECT_EQ(a.sha256, e.sha256) << e.path;
    EXPECT_EQ(a.link_target, e.link_target) << e.path;
    EXPECT_EQ(a.chunks, e.chunks) << e.path;
    EXPECT_EQ(a.meta, e.meta) << e.path;
  }
  ASSERT_EQ(actual.removed.size(), expected.removed.size());
  for (std::size_t r = 0; r < expected.removed.size(); ++r) {
    EXPECT_EQ(actual.removed[r].path, expected.removed[r].path);
    EXPECT_EQ(actual.removed[r].number, expected.removed[r].number);
  }
  EXPECT_EQ(actual.deleted_packs, expected.deleted_packs);
  EXPECT_EQ(actual.config, expected.config);
}

TEST(Manifest, encode_then_decode_round_trip) {
  const Manifest manifest = sample_manifest();
  const Bytes encoded = encode_manifest(manifest);
  expect_same_manifest(decode_manifest(encoded), manifest);
  // Deterministic: the same manifest encodes to the same bytes.
  EXPECT_EQ(encode_manifest(manifest), encoded);
  EXPECT_EQ(encode_manifest(decode_manifest(encoded)), encoded);
}

TEST(Manifest, empty_clean_manifest_round_trip) {
  Manifest manifest;
  manifest.kind = RunKind::clean;
  manifest.seq = 1;
  manifest.started_ns = -5;
  manifest.finished_ns = std::numeric_limits<std::int64_t>::max();
  const Manifest decoded = decode_manifest(encode_manifest(manifest));
  expect_same_manifest(decoded, manifest);
  EXPECT_EQ(decoded.kind, RunKind::clean);
}

TEST(Manifest, fields_that_do_not_belong_to_a_type_are_not_stored) {
  // A symlink has no sha256 or chunks; a directory has no target. Encoding drops them.
  Manifest manifest;
  manifest.seq = 1;
  ManifestVersion link;
  link.path = "/l";
  link.type = EntryType::symlink;
  link.link_target = "target";
  link.sha256 = digest_of("ignored");
  link.chunks = {digest_of("ignored")};
  ManifestVersion directory;
  directory.path = "/d";
  directory.type = EntryType::directory;
  directory.link_target = "ignored";
  manifest.versions = {link, directory};
  const Manifest decoded = decode_manifest(encode_manifest(manifest));
  ASSERT_EQ(decoded.versions.size(), 2U);
  EXPECT_EQ(decoded.versions[0].link_target, "target");
  EXPECT_EQ(decoded.versions[0].sha256, Digest{});
  EXPECT_TRUE(decoded.versions[0].chunks.empty());
  EXPECT_TRUE(decoded.versions[1].link_target.empty());
}

TEST(Manifest, every_truncation_is_corrupt) {
  const Bytes encoded = encode_manifest(sample_manifest());
  ASSERT_GT(encoded.size(), 200U);
  for (std::size_t length = 0; length < encoded.size(); ++length) {
    // A separate allocation of exactly `length` bytes, so ASan sees any read past the end.
    const Bytes prefix(encoded.begin(), encoded.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_EQ(error_kind([&] { decode_manifest(prefix); }), ErrorKind::corrupt) << "length " << length;
  }
}

TEST(Manifest, single_byte_damage_never_crashes) {
  // Any outcome but a crash or a non-mybackup exception is fine: a decoded manifest or corrupt.
  const Bytes encoded = encode_manifest(sample_manifest());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    for (const std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0x7f}, std::uint8_t{0x80}, std::uint8_t{0xff}}) {
      Bytes damaged = encoded;
      damaged[i] = value;
      const auto kind = error_kind([&] { decode_manifest(damaged); });
      EXPECT_TRUE(!kind.has_value() || *kind == ErrorKind::corrupt) << "byte " << i;
    }
  }
}

TEST(Manifest, bad_magic_is_corrupt) {
  Bytes encoded = encode_manifest(sample_manifest());
  encoded[0] = 'X';
  EXPECT_EQ(error_kind([&] { decode_manifest(encoded); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decode_manifest(to_bytes("MBK1")); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decode_manifest(Bytes{}); }), ErrorKind::corrupt);
}

TEST(Manifest, version_1_manifests_without_clean_sections_are_still_read) {
  Manifest manifest = sample_manifest();
  manifest.removed.clear();
  manifest.deleted_packs.clear();
  manifest.config.clear();
  manifest.versions.clear();  // the only part version 3 changed
  Bytes encoded = encode_manifest(manifest);
  ASSERT_EQ(encoded[4], 3);
  // Version 1 is version 2 without the three trailing sections (two zero counts, an empty string).
  encoded[4] = 1;
  ASSERT_EQ(encoded.back(), 0);
  encoded.resize(encoded.size() - 3);
  expect_same_manifest(decode_manifest(encoded), manifest);
}

TEST(Manifest, trailing_bytes_are_corrupt) {
  Bytes encoded = encode_manifest(sample_manifest());
  encoded.push_back(0);
  EXPECT_EQ(error_kind([&] { decode_manifest(encoded); }), ErrorKind::corrupt);
}

TEST(Manifest, unknown_version_is_rejected) {
  Bytes encoded = encode_manifest(sample_manifest());
  ASSERT_EQ(encoded[4], 3);
  encoded[4] = 4;
  EXPECT_EQ(error_kind([&] { decode_manifest(encoded); }), ErrorKind::corrupt);
  EXPECT_NE(testing::error_message([&] { decode_manifest(encoded); }).find("version"), std::string::npos);
  encoded[4] = 0;
  EXPECT_EQ(error_kind([&] { decode_manifest(encoded); }), ErrorKind::corrupt);
}

TEST(Manifest, unknown_run_kind_or_entry_type_is_corrupt) {
  Bytes encoded = encode_manifest(sample_manifest());
  encoded[5] = 3;  // kind
  EXPECT_EQ(error_kind([&] { decode_manifest(encoded); }), ErrorKind::corrupt);

  Manifest manifest;
  manifest.seq = 1;
  ManifestVersion version;
  version.path = "/x";
  version.type = EntryType::directory;
  manifest.versions = {version};
  Bytes one = encode_manifest(manifest);
  // The type byte follows the path string: ... count=1, len=2, '/', 'x', type, then number,
  // mode, mtime, size, inode and the "metadata recorded" flag (one zero byte each), then the
  // three empty version 2 sections (removed, deleted_packs, config): three zero bytes.
  const std::size_t type_at = one.size() - 10;
  ASSERT_EQ(one[type_at], static_cast<std::uint8_t>(EntryType::directory));
  for (const std::uint8_t bad : {std::uint8_t{0}, std::uint8_t{8}, std::uint8_t{0xff}}) {
    Bytes damaged = one;
    damaged[type_at] = bad;
    EXPECT_EQ(error_kind([&] { decode_manifest(damaged); }), ErrorKind::corrupt) << int{bad};
  }
  // The flag is 0 or 1.
  ASSERT_EQ(one[type_at + 6], 0);
  one[type_at + 6] = 2;
  EXPECT_EQ(error_kind([&] { decode_manifest(one); }), ErrorKind::corrupt);
}

TEST(Manifest, huge_counts_are_corrupt_not_allocated) {
  // A header followed by a count of 2^63 sources must fail fast, not try to allocate.
  Bytes data = to_bytes("MBKM");
  data.push_back(1);  // version
  data.push_back(1);  // kind
  data.push_back(1);  // seq
  data.push_back(0);  // run id ""
  data.push_back(0);  // host ""
  data.push_back(0);  // started
  data.push_back(0);  // finished
  for (int i = 0; i < 9; ++i) {
    data.push_back(0xff);
  }
  data.push_back(0x7f);
  EXPECT_EQ(error_kind([&] { decode_manifest(data); }), ErrorKind::corrupt);
  // A varint longer than 64 bits.
  data.resize(11);
  for (int i = 0; i < 12; ++i) {
    data.push_back(0x80);
  }
  data.push_back(0);
  EXPECT_EQ(error_kind([&] { decode_manifest(data); }), ErrorKind::corrupt);
}

// ---- spooled records (a backup of many files keeps them on disk)

TEST(ManifestSpool, records_read_back_as_added_and_encode_like_records_in_memory) {
  testing::TempDir dir("manifest_spool_");
  const Manifest in_memory = sample_manifest();
  auto spool = std::make_shared<ManifestSpool>(dir.path());
  for (const ManifestPack& pack : in_memory.packs) {
    spool->add(pack);
  }
  for (const ManifestVersion& version : in_memory.versions) {
    spool->add(version);
  }
  Manifest spooled = in_memory;
  spooled.packs.clear();
  spooled.versions.clear();
  spooled.spooled = spool;
  EXPECT_EQ(pack_count(spooled), in_memory.packs.size());
  EXPECT_EQ(version_count(spooled), in_memory.versions.size());
  EXPECT_EQ(spool->blob_count(), 3u);

  std::vector<ManifestVersion> read_back;
  for_each_version(spooled, [&](const ManifestVersion& version) { read_back.push_back(version); });
  EXPECT_EQ(read_back, in_memory.versions);
  EXPECT_EQ(encode_manifest(spooled), encode_manifest(in_memory));
  // Reading does not consume: a second pass sees the same records.
  std::size_t packs = 0;
  for_each_pack(spooled, [&](const ManifestPack&) { ++packs; });
  for_each_pack(spooled, [&](const ManifestPack&) { ++packs; });
  EXPECT_EQ(packs, 2 * in_memory.packs.size());
}

TEST(ManifestSpool, many_records_cross_the_write_buffer_and_the_encoding_comes_in_pieces) {
  testing::TempDir dir("manifest_spool_");
  auto spool = std::make_shared<ManifestSpool>(dir.path());
  Manifest manifest = sample_manifest();
  const ManifestVersion model = manifest.versions.front();
  constexpr int kCount = 30000;  // about 4 MiB of records: several buffers and pieces
  for (int i = 0; i < kCount; ++i) {
    ManifestVersion version = model;
    version.path = model.path + "/" + std::to_string(i);
    version.number = static_cast<std::uint32_t>(i + 1);
    spool->add(version);
  }
  manifest.versions.clear();
  manifest.spooled = spool;
  std::size_t pieces = 0;
  Bytes joined;
  encode_manifest(manifest, [&](ByteView piece) {
    ++pieces;
    joined.insert(joined.end(), piece.begin(), piece.end());
  });
  EXPECT_GT(pieces, 2u);
  const Manifest decoded = decode_manifest(joined);
  ASSERT_EQ(decoded.versions.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(decoded.versions[12345].path, model.path + "/12345");
  EXPECT_EQ(decoded.versions[12345].chunks, model.chunks);
}

TEST(ManifestSpool, a_directory_it_cannot_write_in_is_an_error_not_a_crash) {
  EXPECT_EQ(error_kind([] { ManifestSpool spool("/nonexistent/mybackup-spool"); }), ErrorKind::not_found);
}

// ---- decoding a manifest that comes in pieces (read from the destination in constant memory)

Manifest decode_in_pieces(const Bytes& encoded, std::size_t piece, const std::string& directory) {
  ManifestDecoder decoder(encoded.size(), directory);
  for (std::size_t at = 0; at < encoded.size(); at += piece) {
    decoder.add(ByteView(encoded).subspan(at, std::min(piece, encoded.size() - at)));
  }
  return decoder.finish();
}

TEST(ManifestDecoder, any_piece_size_decodes_like_the_whole_with_packs_and_versions_spooled) {
  testing::TempDir dir("manifest_decoder_");
  const Bytes encoded = encode_manifest(sample_manifest());
  for (const std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{100}, encoded.size()}) {
    const Manifest decoded = decode_in_pieces(encoded, piece, dir.path());
    EXPECT_TRUE(decoded.packs.empty() && decoded.versions.empty()) << "held in memory, piece " << piece;
    ASSERT_TRUE(decoded.spooled) << piece;
    EXPECT_EQ(encode_manifest(decoded), encoded) << "piece " << piece;
    EXPECT_EQ(decoded.removed.size(), sample_manifest().removed.size());
    EXPECT_EQ(decoded.config, sample_manifest().config);
  }
}

TEST(ManifestDecoder, a_record_larger_than_a_piece_and_many_records_are_decoded) {
  testing::TempDir dir("manifest_decoder_");
  Manifest manifest = sample_manifest();
  ManifestVersion large = manifest.versions.front();
  large.type = EntryType::file;
  large.chunks.assign(50000, digest_of("repeated"));  // 1.6 MB: one record across many pieces
  manifest.versions.push_back(large);
  for (int i = 0; i < 20000; ++i) {
    ManifestVersion version = manifest.versions.front();
    version.path += "/" + std::to_string(i);
    manifest.versions.push_back(version);
  }
  const Bytes encoded = encode_manifest(manifest);
  const Manifest decoded = decode_in_pieces(encoded, 64 * 1024, dir.path());
  EXPECT_EQ(version_count(decoded), manifest.versions.size());
  EXPECT_EQ(encode_manifest(decoded), encoded);
}

TEST(ManifestDecoder, truncated_extended_or_damaged_input_is_corrupt) {
  testing::TempDir dir("manifest_decoder_");
  const Bytes encoded = encode_manifest(sample_manifest());
  for (std::size_t length = 0; length < encoded.size(); ++length) {
    const Bytes prefix(encoded.begin(), encoded.begin() + static_cast<std::ptrdiff_t>(length));
    // Declared whole, given short; and declared at the length given.
    EXPECT_EQ(error_kind([&] {
                ManifestDecoder decoder(encoded.size(), dir.path());
                decoder.add(prefix);
                decoder.finish();
              }),
              ErrorKind::corrupt)
        << "length " << length;
    EXPECT_EQ(error_kind([&] { decode_in_pieces(prefix, 3, dir.path()); }), ErrorKind::corrupt) << "length " << length;
  }
  Bytes longer = encoded;
  longer.push_back(0);
  EXPECT_EQ(error_kind([&] { decode_in_pieces(longer, 5, dir.path()); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] {
              ManifestDecoder decoder(encoded.size(), dir.path());
              decoder.add(longer);  // more than declared
            }),
            ErrorKind::corrupt);
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    Bytes damaged = encoded;
    damaged[i] ^= 0xff;
    const auto kind = error_kind([&] { decode_in_pieces(damaged, 11, dir.path()); });
    EXPECT_TRUE(!kind.has_value() || *kind == ErrorKind::corrupt) << "byte " << i;
  }
}

TEST(ManifestDecoder, a_bad_entry_type_fails_at_once_not_at_the_end) {
  // Damage that no further byte can mend is reported by add(), without waiting for finish().
  testing::TempDir dir("manifest_decoder_");
  Bytes encoded = encode_manifest(sample_manifest());
  const Bytes path = to_bytes(sample_manifest().versions.front().path);
  const auto at = std::search(encoded.begin(), encoded.end(), path.begin(), path.end());
  ASSERT_NE(at, encoded.end());
  *(at + static_cast<std::ptrdiff_t>(path.size())) = 0x7f;  // the type byte after the path
  ManifestDecoder decoder(encoded.size() * 10, dir.path());
  EXPECT_EQ(error_kind([&] { decoder.add(encoded); }), ErrorKind::corrupt);
}

TEST(ManifestRecord, damaged_records_are_corrupt) {
  const Manifest manifest = sample_manifest();
  Bytes record;
  encode_version_record(manifest.versions.front(), record);
  EXPECT_EQ(decode_version_record(record), manifest.versions.front());
  record.push_back(0);
  EXPECT_EQ(error_kind([&] { decode_version_record(record); }), ErrorKind::corrupt);
  Bytes pack;
  encode_pack_record(manifest.packs.front(), pack);
  pack.resize(pack.size() - 1);
  EXPECT_EQ(error_kind([&] { decode_pack_record(pack); }), ErrorKind::corrupt);
}

}  // namespace
}  // namespace mybackup
