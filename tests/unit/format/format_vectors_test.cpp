// The test vectors of docs/format.md ("Test vectors" and "Chunking"), recomputed with the library.
//
// Every hex string below is copied from docs/format.md and must stay identical to it: a change
// here is a change of the format (or a mistake), and the document changes with it.
//
// Each vector is checked both ways: the library, given the documented inputs (and, for what is
// encrypted, the documented nonce), produces exactly the documented bytes; and the documented
// bytes read back to the inputs through the library's ordinary read paths.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <initializer_list>
#include <memory>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mybackup/repository/object_names.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/format/chunker.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/format/manifest.hpp"
#include "mybackup/format/pack.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/storage/backend.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::TempDir;
using testing::write_text_file;

// ---- inputs (docs/format.md, "Test vectors: inputs")

constexpr const char* kMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char* kRepositoryId = "00112233445566778899aabbccddeeff";
constexpr const char* kChunkA = "mybackup format test vector";  // 27 bytes, stored raw
const std::string kChunkB(64, 'a');                             // compressed
constexpr const char* kNonceA = "a0a1a2a3a4a5a6a7a8a9aaab";
constexpr const char* kNonceB = "b0b1b2b3b4b5b6b7b8b9babb";
constexpr const char* kNonceHeader = "c0c1c2c3c4c5c6c7c8c9cacb";
constexpr const char* kNonceManifest = "d0d1d2d3d4d5d6d7d8d9dadb";
constexpr const char* kManifestKey = "snapshots/0000000002-0123456789abcdef.enc";

// ---- expected values (docs/format.md, "Test vectors")

constexpr const char* kEncKey = "eb7bba621c430d3f1eb391603cc63bc54614bfebe4dbe4a0266a19f68082efd9";
constexpr const char* kIdKey = "737c225e120ea3ba961753b07c688dc83915f32a0d0f64f08f899c18d67aac37";
constexpr const char* kGearSeed = "9b76a5b2a04504c8373d43020814dc97d66d12e68ac83122b0d46d94ae93c81e";
constexpr const char* kCheckKey = "2a894398f271de7b278f250064cf0467f229a9a6060f3b77354bcc88606860c1";
constexpr const char* kKeyFileChecksum = "630dcd29";
constexpr const char* kKeyCheck = "bbec7e9672fbf6af3775ace15fa3aff7a08b94fde8c92a050f45d7b515690077";
// parameters_mac of that marker with 2 KiB chunks (1024 / 2048 / 16384) and 8 KiB packs.
constexpr const char* kParametersMac = "4c1c0221b40984ef86d17ce959bdc5059e9a49647fb824f8d2caeb59bbb023ad";
constexpr std::uint64_t kGear0 = 0xe82bf0914e1e6424;
constexpr std::uint64_t kGear1 = 0xcf5da68fda37f45d;
constexpr std::uint64_t kGear255 = 0x5cb180b35a1f34b7;
constexpr const char* kChunkAId = "cd5f847152752f8de196c3cf1c95c5fa4b065a151254c2efc725bb14e518c630";
constexpr const char* kChunkBId = "b2adeb3a362cee643f5e1d9cbe1854b6656f7a69e5447f3516e3759c12c52e2c";
constexpr const char* kChunkBFrame = "28b52ffd20404500001061610100930016";
constexpr const char* kBlobA = 
    "4d424b3100a0a1a2a3a4a5a6a7a8a9aaabc2eabd7ba343076b4adff2663bab22"
    "9eff051944210429e6382a2a9e4545bac81b72eb98c1db500475bb31";
constexpr const char* kBlobB = 
    "4d424b3101b0b1b2b3b4b5b6b7b8b9babb7aa09272563740457a35e79eec45df"
    "164697e54a34e47ef6b58f8ecaed25f974cd";
constexpr const char* kPackHeader = 
    "0102000000cd5f847152752f8de196c3cf1c95c5fa4b065a151254c2efc725bb"
    "14e518c630000000003c0000001b00000000b2adeb3a362cee643f5e1d9cbe18"
    "54b6656f7a69e5447f3516e3759c12c52e2c3c000000320000004000000001";
constexpr const char* kPackTrailer = 
    "4d424b48c0c1c2c3c4c5c6c7c8c9cacb2f0f3cfbcdee51c4e4bb12d9e2b3774d"
    "2afc752ed185735644211f4760afc6a5a675315dff7f2cf817c200a6e16d8c81"
    "efdd61a3f100eef7ea6191266f2af461116fd225eec6be1761f4033e9509b377"
    "cbff9556248f508e3513a4748d2a42acc49e8b50cea045b6124d831518c2627f"
    "000000";
constexpr const char* kPackName = "d4c4ae85191c3f402d54533821503a6375dc56b1ee2bc17577d44f992272d855";
constexpr const char* kManifestPlain = 
    "4d424b4d030102103031323334353637383961626364656606766563746f7280"
    "809cbdabbf8fe93180e4b38dbebf8fe93101022f6401d4c4ae85191c3f402d54"
    "533821503a6375dc56b1ee2bc17577d44f992272d855f10102cd5f847152752f"
    "8de196c3cf1c95c5fa4b065a151254c2efc725bb14e518c630003c1b00b2adeb"
    "3a362cee643f5e1d9cbe1854b6656f7a69e5447f3516e3759c12c52e2c3c3240"
    "0105022f640202ed0380f0bcfce0be8fe931000201e807e80705616c69636505"
    "616c69636580f0bcfce0be8fe93181100200042f642f610101a403aa94bcb197"
    "be8fe9311b0b01e807e80705616c69636505616c696365aa94bcb197be8fe931"
    "8110010a0106757365722e6b0176ba1cc93d6f243a9b61e8a46188d4f0fb75b1"
    "cb103c64d547be37eb84071e3b0801cd5f847152752f8de196c3cf1c95c5fa4b"
    "065a151254c2efc725bb14e518c630042f642f6201018003aa94bcb197be8fe9"
    "31400c01e807e80705616c69636505616c696365aa94bcb197be8fe931811001"
    "00ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668"
    "eb01b2adeb3a362cee643f5e1d9cbe1854b6656f7a69e5447f3516e3759c12c5"
    "2e2c042f642f6c0301ff0380d0fefacbbd8fe931010d01e807e80705616c6963"
    "6505616c69636580d0fefacbbd8fe931811001000161042f642f780402000000"
    "00000000";

// The same manifest in format version 2 (no metadata), as mybackup wrote it before version 3.
constexpr const char* kManifestPlainVersion2 = 
    "4d424b4d020102103031323334353637383961626364656606766563746f7280"
    "809cbdabbf8fe93180e4b38dbebf8fe93101022f6401d4c4ae85191c3f402d54"
    "533821503a6375dc56b1ee2bc17577d44f992272d855f10102cd5f847152752f"
    "8de196c3cf1c95c5fa4b065a151254c2efc725bb14e518c630003c1b00b2adeb"
    "3a362cee643f5e1d9cbe1854b6656f7a69e5447f3516e3759c12c52e2c3c3240"
    "0105022f640202ed0380f0bcfce0be8fe9310002042f642f610101a403aa94bc"
    "b197be8fe9311b0bba1cc93d6f243a9b61e8a46188d4f0fb75b1cb103c64d547"
    "be37eb84071e3b0801cd5f847152752f8de196c3cf1c95c5fa4b065a151254c2"
    "efc725bb14e518c630042f642f6201018003aa94bcb197be8fe931400cffe054"
    "fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb01b2ad"
    "eb3a362cee643f5e1d9cbe1854b6656f7a69e5447f3516e3759c12c52e2c042f"
    "642f6c0301ff0380d0fefacbbd8fe931010d0161042f642f7804020000000000"
    "0000";
constexpr const char* kManifestFrame = 
    "28b52ffd600401650b0024144d424b4d03010210303132333435363738396162"
    "6364656606766563746f7280809cbdabbf8fe93180e4b38dbe01022f6401d4c4"
    "ae85191c3f402d54533821503a6375dc56b1ee2bc17577d44f992272d855f101"
    "02cd5f847152752f8de196c3cf1c95c5fa4b065a151254c2efc725bb14e518c6"
    "30003c1b00b2adeb3a362cee643f5e1d9cbe1854b6656f7a69e5447f3516e375"
    "9c12c52e2c3c32400105022f640202ed0380f0bcfce0be8fe931000201e807e8"
    "0705616c69636581100200042f642f610101a403aa94bcb1971b0b8110010a01"
    "06757365722e6b0176ba1cc93d6f243a9b61e8a46188d4f0fb75b1cb103c64d5"
    "47be37eb84071e3b080162010180400c00ffe054fe7ae0cb6dc65c3af9b61d52"
    "09f439851db43d0ba5997337df154668eb016c0301ff0380d0fefacbbd8fe931"
    "010d0161780402000000000000001000570582103f0b0066ed60815016fec0c5"
    "000430163c6b7001cd82c1aa62f1535b47cac8322865";
constexpr const char* kManifestObject = 
    "040200004d424b3101d0d1d2d3d4d5d6d7d8d9dadb12c7388ee4ff79432ebd71"
    "a932f3d16333a864a34ff05e7390ed451a3872fcf2f397de39f4741b84f5a8c9"
    "dc656175f14206e206891847b0e49a51ef4c5f0d9448ed5bcb90c96fc41bbe3f"
    "b2da63dc152735074f9a63cc0fe7c2577f09854e238432a7544b5e2fdd71c61c"
    "44c477eaf03a6463b48c421f7c17bdf3a492c39f8792700a1fd50c9537eb9054"
    "76e7f771598968143e300a197ca10ed1e29a455fc8c2955c8be085271ee4bd10"
    "e3600182c7f905c257c864abd526391dacaf2faacca9e18d6a229f548e1a0388"
    "971c71f4d8ba39ac71927b1b7f421df394d7d488096e37196229e7a0d7164236"
    "6a20f29b176fed48e399d111eed5903f3695d876afc4691589a249e885f04715"
    "dcf519742e25f963d3a86a87e0ac18fe881694287bf3b2b4ebfb9b3f1fbe757e"
    "6316f4ecabac54c78ef5f6b6546faf88af8a8f08a9d68a4a85ca31100fd8bca5"
    "d691fa66c362493afa0d8211fdfe1681a5c9b8be6b4aa78f5ed25bc2dace23f6"
    "03b730d956644b130bc6fa5022dd5ff1e5ed1701f43dc78f4d23e0";

// ---- the chunker vector (docs/format.md, "Chunking: test vector")

constexpr std::uint32_t kVectorMin = 256;
constexpr std::uint32_t kVectorAvg = 1024;
constexpr std::uint32_t kVectorMax = 4096;
constexpr std::size_t kVectorInputSize = 16384;
constexpr const char* kVectorInputStart = "141a9a66628f145b7b72a25d0c18e932";
constexpr std::uint64_t kVectorMaskSmall = 0x8888888888880000;
constexpr std::uint64_t kVectorMaskLarge = 0x8808808808800000;
constexpr std::uint64_t kDefaultMaskSmall = 0xaaa554aaa5540000;
constexpr std::uint64_t kDefaultMaskLarge = 0xaa8550aa85500000;
const std::vector<std::size_t> kVectorChunkLengths = {1053, 401, 1092, 1109, 1145, 1145, 572, 464, 1056, 1181, 1281, 1065, 1371, 1130, 933, 749, 637};

template <std::size_t N>
std::array<std::uint8_t, N> array_from_hex(const std::string& hex) {
  const Bytes bytes = from_hex(hex);
  std::array<std::uint8_t, N> out{};
  EXPECT_EQ(bytes.size(), N) << hex;
  std::memcpy(out.data(), bytes.data(), std::min(N, bytes.size()));
  return out;
}

MasterKey master_key() {
  MasterKey key;
  key.bytes = array_from_hex<32>(kMasterKey);
  return key;
}

Bytes concat(std::initializer_list<ByteView> parts) {
  Bytes out;
  for (const ByteView part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

Bytes u32le(std::uint32_t value) {
  return {static_cast<std::uint8_t>(value), static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value >> 16),
          static_cast<std::uint8_t>(value >> 24)};
}

/// The two blobs of the vector pack, in pack order.
std::vector<PackEntry> vector_entries() {
  const Bytes blob_a = from_hex(kBlobA);
  const Bytes blob_b = from_hex(kBlobB);
  PackEntry a;
  a.id = array_from_hex<32>(kChunkAId);
  a.offset = 0;
  a.length = static_cast<std::uint32_t>(blob_a.size());
  a.raw_length = 27;
  a.flags = 0;
  PackEntry b;
  b.id = array_from_hex<32>(kChunkBId);
  b.offset = a.length;
  b.length = static_cast<std::uint32_t>(blob_b.size());
  b.raw_length = 64;
  b.flags = kBlobCompressed;
  return {a, b};
}

/// The manifest of the vector: the second run of a repository whose first run saved /d and /d/x.
Manifest vector_manifest() {
  Manifest manifest;
  manifest.kind = RunKind::backup;
  manifest.seq = 2;
  manifest.run_id = "0123456789abcdef";
  manifest.host = "vector";
  manifest.started_ns = 1'795'000'000'000'000'000;
  manifest.finished_ns = 1'795'000'002'500'000'000;
  manifest.sources = {"/d"};
  const Bytes pack = concat({from_hex(kBlobA), from_hex(kBlobB), from_hex(kPackTrailer)});
  manifest.packs = {{kPackName, pack.size(), vector_entries()}};

  FileMetadata alice;
  alice.recorded = true;
  alice.uid = 1000;
  alice.gid = 1000;
  alice.owner = "alice";
  alice.group = "alice";
  alice.device = 2049;

  ManifestVersion directory;
  directory.path = "/d";
  directory.type = EntryType::directory;
  directory.number = 2;
  directory.mode = 0755;
  directory.mtime_ns = 1'794'999'990'000'000'000;
  directory.inode = 2;
  directory.meta = alice;
  directory.meta.ctime_ns = directory.mtime_ns;
  directory.meta.links = 2;
  ManifestVersion a;
  a.path = "/d/a";
  a.type = EntryType::file;
  a.number = 1;
  a.mode = 0644;
  a.mtime_ns = 1'794'999'980'123'456'789;
  a.size = 27;
  a.inode = 11;
  a.sha256 = Sha256::hash(as_bytes(kChunkA));
  a.chunks = {array_from_hex<32>(kChunkAId)};
  a.meta = alice;
  a.meta.ctime_ns = a.mtime_ns;
  a.meta.xattrs = {{"user.k", "v"}};
  ManifestVersion b = a;
  b.meta.xattrs.clear();
  b.path = "/d/b";
  b.mode = 0600;
  b.size = 64;
  b.inode = 12;
  b.sha256 = Sha256::hash(as_bytes(kChunkB));
  b.chunks = {array_from_hex<32>(kChunkBId)};
  ManifestVersion link;
  link.path = "/d/l";
  link.type = EntryType::symlink;
  link.number = 1;
  link.mode = 0777;
  link.mtime_ns = 1'794'999'970'000'000'000;
  link.size = 1;
  link.inode = 13;
  link.link_target = "a";
  link.meta = alice;
  link.meta.ctime_ns = link.mtime_ns;
  ManifestVersion gone;
  gone.path = "/d/x";
  gone.type = EntryType::deleted;
  gone.number = 2;
  manifest.versions = {directory, a, b, link, gone};
  return manifest;
}

std::unique_ptr<Repository> temporary_repository(const TempDir& dir) {
  return Repository::open(make_local_backend(dir.path()), master_key(), CreateIfMissing::yes);
}

TEST(FormatVectors, subkeys_of_the_master_key) {
  const KeySet keys = KeySet::derive(master_key());
  EXPECT_EQ(to_hex(keys.enc_key), kEncKey);
  EXPECT_EQ(to_hex(keys.id_key), kIdKey);
  EXPECT_EQ(to_hex(keys.gear_seed), kGearSeed);
  EXPECT_EQ(to_hex(keys.check_key), kCheckKey);
}

TEST(FormatVectors, key_file) {
  const TempDir dir;
  save_key_file(dir / "key", master_key());
  const std::string text = testing::read_text_file(dir / "key");
  EXPECT_NE(text.find(std::string("\nmybackup-key-v1\n") + kMasterKey + "\n" + kKeyFileChecksum + "\n"), std::string::npos)
      << text;
  write_text_file(dir / "documented", std::string("mybackup-key-v1\n") + kMasterKey + "\n" + kKeyFileChecksum + "\n");
  EXPECT_EQ(load_key_file(dir / "documented").bytes, master_key().bytes);
}

/// The marker of docs/format.md with the vector's id and key check, its chunker and pack sizes, and
/// the parameters_mac line if one is given.
std::string vector_marker(const std::string& sizes, const std::string& pack_size, const std::string& mac) {
  return std::string("{\n  \"format\": \"mybackup\",\n  \"version\": 1,\n  \"id\": \"") + kRepositoryId +
         "\",\n  \"created\": \"2026-11-21T12:00:00Z\",\n"
         "  \"chunker\": {\"algorithm\": \"fastcdc\", \"normalization\": 2, " +
         sizes + ", \"gear\": \"hkdf-sha256(master, \\\"mybackup gear\\\")\"},\n"
                 "  \"pack_target_size\": " +
         pack_size + ",\n  \"key_check\": \"" + kKeyCheck + "\"" +
         (mac.empty() ? std::string() : ",\n  \"parameters_mac\": \"" + mac + "\"") + "\n}\n";
}

TEST(FormatVectors, marker_key_check) {
  const TempDir dir;
  const std::string default_sizes = "\"min_size\": 524288,\n              \"avg_size\": 1048576, \"max_size\": 8388608";
  // Without parameters_mac (as written before it existed): accepted with the default sizes only.
  write_text_file(dir / "mybackup-repo.json", vector_marker(default_sizes, "16777216", ""));
  const auto repository = Repository::open(make_local_backend(dir.path()), master_key(), CreateIfMissing::no);
  EXPECT_EQ(repository->info().id, kRepositoryId);
  EXPECT_EQ(repository->info().chunker.avg_size, 1048576U);
  EXPECT_EQ(repository->info().pack_target_size, 16777216U);
  MasterKey other = master_key();
  other.bytes[31] ^= 1;
  EXPECT_EQ(error_kind([&] { Repository::open(make_local_backend(dir.path()), other, CreateIfMissing::no); }),
            ErrorKind::wrong_key);
}

TEST(FormatVectors, marker_parameters_mac) {
  const TempDir dir;
  const std::string small_sizes = "\"min_size\": 1024, \"avg_size\": 2048, \"max_size\": 16384";
  write_text_file(dir / "mybackup-repo.json", vector_marker(small_sizes, "8192", kParametersMac));
  const auto repository = Repository::open(make_local_backend(dir.path()), master_key(), CreateIfMissing::no);
  EXPECT_EQ(repository->info().chunker, (ChunkerParams{1024, 2048, 16384}));
  EXPECT_EQ(repository->info().pack_target_size, 8192U);
  write_text_file(dir / "mybackup-repo.json", vector_marker(small_sizes, "8192", ""));
  EXPECT_EQ(error_kind([&] { Repository::open(make_local_backend(dir.path()), master_key(), CreateIfMissing::no); }),
            ErrorKind::corrupt);
  write_text_file(dir / "mybackup-repo.json", vector_marker(small_sizes, "16384", kParametersMac));
  EXPECT_EQ(error_kind([&] { Repository::open(make_local_backend(dir.path()), master_key(), CreateIfMissing::no); }),
            ErrorKind::corrupt);
}

TEST(FormatVectors, gear_table) {
  const GearTable gear = make_gear_table(KeySet::derive(master_key()).gear_seed);
  EXPECT_EQ(gear[0], kGear0);
  EXPECT_EQ(gear[1], kGear1);
  EXPECT_EQ(gear[255], kGear255);
}

TEST(FormatVectors, chunk_ids) {
  const TempDir dir;
  const auto repository = temporary_repository(dir);
  EXPECT_EQ(to_hex(repository->chunk_id(as_bytes(kChunkA))), kChunkAId);
  EXPECT_EQ(to_hex(repository->chunk_id(as_bytes(kChunkB))), kChunkBId);
}

TEST(FormatVectors, blobs_seal_and_open) {
  const KeySet keys = KeySet::derive(master_key());
  const ChunkId id_a = array_from_hex<32>(kChunkAId);
  const ChunkId id_b = array_from_hex<32>(kChunkBId);

  Bytes blob_a;
  seal_blob_with_nonce(keys.enc_key, id_a, 0, array_from_hex<12>(kNonceA), as_bytes(kChunkA), blob_a);
  EXPECT_EQ(to_hex(blob_a), kBlobA);
  // Any zstd frame of the chunk is valid; this one is part of the vector, not required of writers.
  const Bytes frame = from_hex(kChunkBFrame);
  EXPECT_EQ(decompress(frame, kChunkB.size()), Bytes(kChunkB.begin(), kChunkB.end()));
  Bytes blob_b;
  seal_blob_with_nonce(keys.enc_key, id_b, kBlobCompressed, array_from_hex<12>(kNonceB), frame, blob_b);
  EXPECT_EQ(to_hex(blob_b), kBlobB);

  std::uint8_t flags = 0xff;
  EXPECT_EQ(open_blob(keys.enc_key, id_a, from_hex(kBlobA), flags), Bytes(as_bytes(kChunkA).begin(), as_bytes(kChunkA).end()));
  EXPECT_EQ(flags, 0);
  EXPECT_EQ(open_blob(keys.enc_key, id_b, from_hex(kBlobB), flags), frame);
  EXPECT_EQ(flags, kBlobCompressed);
  // The associated data binds the id: the same blob under the other id does not open.
  EXPECT_EQ(error_kind([&] { open_blob(keys.enc_key, id_b, from_hex(kBlobA), flags); }), ErrorKind::corrupt);
}

TEST(FormatVectors, pack_of_two_blobs) {
  const KeySet keys = KeySet::derive(master_key());
  const std::vector<PackEntry> entries = vector_entries();
  PackBuilder builder(kDefaultPackTargetSize);
  builder.add(entries[0].id, from_hex(kBlobA), entries[0].raw_length, entries[0].flags);
  builder.add(entries[1].id, from_hex(kBlobB), entries[1].raw_length, entries[1].flags);
  const FinishedPack pack = builder.finish_with_nonce(keys.enc_key, array_from_hex<12>(kNonceHeader));
  const Bytes expected = concat({from_hex(kBlobA), from_hex(kBlobB), from_hex(kPackTrailer)});
  EXPECT_EQ(to_hex(pack.bytes), to_hex(expected));
  EXPECT_EQ(pack.name, kPackName);
  EXPECT_EQ(to_hex(Sha256::hash(expected)), kPackName);
  EXPECT_EQ(pack.entries, entries);
  EXPECT_EQ(from_hex(kPackTrailer).size(), pack_trailer_size(2));

  // The trailer: "MBKH" nonce sealed-header tag, then the header blob's length.
  const Bytes trailer = from_hex(kPackTrailer);
  const ByteView header_blob = ByteView(trailer).first(trailer.size() - 4);
  EXPECT_EQ(Bytes(trailer.end() - 4, trailer.end()), u32le(static_cast<std::uint32_t>(header_blob.size())));
  const Bytes header = aes256gcm_open(keys.enc_key, array_from_hex<12>(kNonceHeader), header_blob.subspan(4 + 12),
                                      as_bytes("MBKH"));
  EXPECT_EQ(to_hex(header), kPackHeader);

  // Read back: the header lists both blobs, and each reads back to its chunk.
  EXPECT_EQ(read_pack_header(keys.enc_key, expected), entries);
  const TempDir dir;
  const auto repository = temporary_repository(dir);
  testing::raw_backend(*repository)->put(object_names::pack(kPackName), expected, Overwrite::no);
  EXPECT_EQ(as_text(repository->read_chunk(kPackName, entries[0])), kChunkA);
  EXPECT_EQ(as_text(repository->read_chunk(kPackName, entries[1])), kChunkB);
}

TEST(FormatVectors, manifest_encoding_and_sealed_object) {
  const KeySet keys = KeySet::derive(master_key());
  const Manifest manifest = vector_manifest();
  const Bytes plain = encode_manifest(manifest);
  EXPECT_EQ(to_hex(plain), kManifestPlain);
  // Encodings are canonical, so equal encodings mean equal manifests.
  EXPECT_EQ(to_hex(encode_manifest(decode_manifest(from_hex(kManifestPlain)))), kManifestPlain);
  EXPECT_EQ(object_names::manifest(manifest.seq, manifest.run_id), kManifestKey);

  // The object: raw_size, then the blob of the zstd frame under id SHA-256("manifest " + file name).
  const Bytes frame = from_hex(kManifestFrame);
  EXPECT_EQ(decompress(frame, plain.size()), plain);
  const ChunkId id = Sha256::hash(as_bytes("manifest 0000000002-0123456789abcdef.enc"));
  Bytes object = u32le(static_cast<std::uint32_t>(plain.size()));
  seal_blob_with_nonce(keys.enc_key, id, kBlobCompressed, array_from_hex<12>(kNonceManifest), frame, object);
  EXPECT_EQ(to_hex(object), kManifestObject);

  const TempDir dir;
  const auto repository = temporary_repository(dir);
  testing::raw_backend(*repository)->put(kManifestKey, from_hex(kManifestObject), Overwrite::no);
  EXPECT_EQ(to_hex(encode_manifest(repository->read_manifest(kManifestKey))), kManifestPlain);
}

// Manifests written before format 3 are still read: the same versions, their metadata unknown.
TEST(FormatVectors, manifest_version_2_is_still_read) {
  Manifest expected = vector_manifest();
  for (ManifestVersion& version : expected.versions) {
    version.meta = FileMetadata{};
  }
  const Manifest read = decode_manifest(from_hex(kManifestPlainVersion2));
  EXPECT_EQ(read.versions, expected.versions);
  EXPECT_EQ(read.packs.size(), 1U);
  EXPECT_FALSE(read.versions[1].meta.recorded);
}

TEST(FormatVectors, manifest_writer_follows_the_documented_framing) {
  // put_manifest draws a random nonce, so its bytes differ from the vector's; their framing may not.
  const TempDir dir;
  const auto repository = temporary_repository(dir);
  const Manifest manifest = vector_manifest();
  const std::string key = repository->put_manifest(manifest);
  ASSERT_EQ(key, kManifestKey);
  const Bytes object = testing::raw_backend(*repository)->get(key, testing::kAnySize);
  const Bytes plain = encode_manifest(manifest);
  ASSERT_GT(object.size(), 4U);
  EXPECT_EQ(Bytes(object.begin(), object.begin() + 4), u32le(static_cast<std::uint32_t>(plain.size())));
  std::uint8_t flags = 0;
  const Bytes payload = open_blob(repository->keys().enc_key, Sha256::hash(as_bytes("manifest 0000000002-0123456789abcdef.enc")),
                                  ByteView(object).subspan(4), flags);
  EXPECT_EQ(flags, kBlobCompressed);
  EXPECT_EQ(decompress(payload, plain.size()), plain);
}

// ---- the chunker

/// The vector's input: x = x * 6364136223846793005 + 1442695040888963407 (mod 2^64) from x = 0,
/// each byte the top 8 bits of the new x.
Bytes lcg_bytes(std::size_t size) {
  Bytes out(size);
  std::uint64_t x = 0;
  for (std::uint8_t& byte : out) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    byte = static_cast<std::uint8_t>(x >> 56);
  }
  return out;
}

/// The masks as docs/format.md constructs them (written from the document, not from chunker.cpp).
struct DocumentedMasks {
  std::uint64_t small = 0;
  std::uint64_t large = 0;
};

DocumentedMasks documented_masks(std::uint32_t avg_size) {
  const unsigned bits = static_cast<unsigned>(std::countr_zero(avg_size));
  DocumentedMasks masks;
  for (unsigned i = 0; i < bits + 2; ++i) {
    masks.small |= std::uint64_t{1} << (63 - i * 48 / (bits + 2));
  }
  std::vector<unsigned> positions;  // of the small mask's one-bits, highest first
  for (int bit = 63; bit >= 0; --bit) {
    if (((masks.small >> bit) & 1U) != 0) {
      positions.push_back(static_cast<unsigned>(bit));
    }
  }
  for (unsigned i = 0; i < bits - 2; ++i) {
    masks.large |= std::uint64_t{1} << positions[i * positions.size() / (bits - 2)];
  }
  return masks;
}

/// Chunk lengths of `data` by the document's rule (an independent second implementation).
std::vector<std::size_t> documented_cuts(ByteView data, const ChunkerParams& params, const GearTable& gear) {
  const DocumentedMasks masks = documented_masks(params.avg_size);
  std::vector<std::size_t> lengths;
  for (std::size_t start = 0; start < data.size();) {
    const std::size_t limit = std::min<std::size_t>(data.size() - start, params.max_size);
    std::size_t length = limit;
    std::uint64_t hash = 0;
    for (std::size_t i = params.min_size - 64; i < limit; ++i) {
      hash = (hash << 1) + gear[data[start + i]];
      const std::uint64_t mask = i + 1 < params.avg_size ? masks.small : masks.large;
      if (i + 1 >= params.min_size && (hash & mask) == 0) {
        length = i + 1;
        break;
      }
    }
    lengths.push_back(length);
    start += length;
  }
  return lengths;
}

/// Chunk lengths of `data` by the library, fed as a backup feeds it (the whole rest of the file).
std::vector<std::size_t> library_cuts(ByteView data, const ChunkerParams& params, const GearTable& gear) {
  const Chunker chunker(params, gear);
  std::vector<std::size_t> lengths;
  for (std::size_t start = 0; start < data.size();) {
    const std::size_t cut = chunker.next_cut(data.subspan(start), true);
    lengths.push_back(cut);
    start += cut;
  }
  return lengths;
}

TEST(FormatVectors, chunker_masks) {
  const DocumentedMasks vector = documented_masks(kVectorAvg);
  EXPECT_EQ(vector.small, kVectorMaskSmall);
  EXPECT_EQ(vector.large, kVectorMaskLarge);
  const DocumentedMasks defaults = documented_masks(ChunkerParams{}.avg_size);
  EXPECT_EQ(defaults.small, kDefaultMaskSmall);
  EXPECT_EQ(defaults.large, kDefaultMaskLarge);
  EXPECT_EQ(std::popcount(defaults.small), 22);
  EXPECT_EQ(defaults.large & ~defaults.small, 0U);
}

TEST(FormatVectors, chunker_cut_points) {
  const ChunkerParams params{kVectorMin, kVectorAvg, kVectorMax};
  const GearTable gear = make_gear_table(KeySet::derive(master_key()).gear_seed);
  const Bytes input = lcg_bytes(kVectorInputSize);
  EXPECT_EQ(to_hex(ByteView(input).first(16)), kVectorInputStart);
  EXPECT_EQ(library_cuts(input, params, gear), kVectorChunkLengths);
  EXPECT_EQ(documented_cuts(input, params, gear), kVectorChunkLengths);
}

TEST(FormatVectors, chunker_document_matches_the_library_with_default_parameters) {
  // Enough data for a few dozen 1 MiB chunks: a wrong mask bit or boundary rule would move cuts.
  const ChunkerParams params;
  const GearTable gear = make_gear_table(KeySet::derive(master_key()).gear_seed);
  const Bytes input = lcg_bytes(40 * 1024 * 1024);
  const std::vector<std::size_t> cuts = library_cuts(input, params, gear);
  EXPECT_GT(cuts.size(), 20U);
  EXPECT_EQ(documented_cuts(input, params, gear), cuts);
}

}  // namespace
}  // namespace mybackup
