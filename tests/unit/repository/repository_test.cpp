#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/format/pack.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::raw_backend;
using testing::kAnySize;

using testing::error_kind;
using testing::files_under;
using testing::parse_json_object;
using testing::random_data;
using testing::read_text_file;
using testing::TempDir;
using testing::to_bytes;
using testing::write_text_file;

constexpr const char* kMarker = "mybackup-repo.json";

std::unique_ptr<Repository> open_repo(const std::string& root, const MasterKey& key,
                                      CreateIfMissing create = CreateIfMissing::yes) {
  return Repository::open(make_local_backend(root), key, create);
}

bool is_lower_hex(const std::string& text, std::size_t size) {
  return text.size() == size && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

/// Text that compresses well (so the blob is stored compressed).
Bytes compressible(std::size_t size) {
  Bytes out;
  while (out.size() < size) {
    const std::string line = "line " + std::to_string(out.size() % 97) + " of a very repetitive file\n";
    out.insert(out.end(), line.begin(), line.end());
  }
  out.resize(size);
  return out;
}

/// Seals `chunks` the way the backup engine does and assembles them into one pack.
FinishedPack make_pack(const Repository& repo, const std::vector<Bytes>& chunks) {
  Compressor compressor(3);
  PackBuilder builder(kDefaultPackTargetSize);
  for (const Bytes& chunk : chunks) {
    const ChunkId id = repo.chunk_id(chunk);
    Bytes compressed;
    const bool shrunk = compressor.compress(chunk, compressed);
    Bytes blob;
    seal_blob(repo.keys().enc_key, id, shrunk ? kBlobCompressed : 0, shrunk ? compressed : chunk, blob);
    builder.add(id, blob, static_cast<std::uint32_t>(chunk.size()), shrunk ? kBlobCompressed : 0);
  }
  return builder.finish(repo.keys().enc_key);
}

Manifest make_manifest(std::uint64_t seq, const std::string& run_id, std::size_t versions) {
  Manifest manifest;
  manifest.seq = seq;
  manifest.run_id = run_id;
  manifest.host = "test-host";
  manifest.started_ns = 1'000;
  manifest.finished_ns = 2'000;
  manifest.sources = {"/src"};
  for (std::size_t i = 0; i < versions; ++i) {
    ManifestVersion version;
    version.path = "/src/file-" + std::to_string(i);
    version.type = EntryType::file;
    version.number = 1;
    version.mode = 0644;
    version.size = i;
    version.chunks = {Sha256::hash(as_bytes(version.path))};
    manifest.versions.push_back(version);
  }
  return manifest;
}

// ---------------------------------------------------------------- open

TEST(Repository, create_on_an_empty_directory_writes_a_json_marker_without_key_material) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  const auto repo = open_repo(dir / "repo", key);
  EXPECT_TRUE(is_lower_hex(repo->info().id, 32)) << repo->info().id;
  EXPECT_EQ(repo->info().version, kRepositoryFormatVersion);
  EXPECT_EQ(repo->location(), dir / "repo");
  EXPECT_EQ(files_under(dir / "repo"), std::vector<std::string>{kMarker});

  const auto members = parse_json_object(read_text_file(dir / "repo" + "/" + kMarker));
  ASSERT_EQ(members.count("format"), 1U);
  EXPECT_EQ(members.at("format"), "mybackup");
  ASSERT_EQ(members.count("version"), 1U);
  EXPECT_TRUE(members.at("version").is_number_integer());
  EXPECT_EQ(members.at("version"), kRepositoryFormatVersion);
  ASSERT_EQ(members.count("id"), 1U);
  EXPECT_EQ(members.at("id"), repo->info().id);
  ASSERT_EQ(members.count("chunker"), 1U);
  const nlohmann::json& chunker = members.at("chunker");
  ASSERT_TRUE(chunker.is_object());
  EXPECT_EQ(chunker.at("min_size"), repo->info().chunker.min_size);
  EXPECT_EQ(chunker.at("avg_size"), repo->info().chunker.avg_size);
  EXPECT_EQ(chunker.at("max_size"), repo->info().chunker.max_size);
  ASSERT_EQ(members.count("key_check"), 1U);
  ASSERT_TRUE(members.at("key_check").is_string());
  EXPECT_TRUE(is_lower_hex(members.at("key_check").get<std::string>(), 64));

  // No key material anywhere on the destination, in either case.
  const KeySet keys = KeySet::derive(key);
  const std::string marker = read_text_file(dir / "repo" + "/" + kMarker);
  for (const ByteView secret : {ByteView(key.bytes), ByteView(keys.enc_key), ByteView(keys.id_key),
                                ByteView(keys.gear_seed), ByteView(keys.check_key)}) {
    EXPECT_EQ(marker.find(to_hex(secret)), std::string::npos);
    std::string upper = to_hex(secret);
    for (char& c : upper) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_EQ(marker.find(upper), std::string::npos);
    EXPECT_EQ(marker.find(std::string(as_text(secret))), std::string::npos);
  }
}

TEST(Repository, no_file_written_contains_the_master_key) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  {
    const auto repo = open_repo(dir.path(), key);
    repo->put_pack(make_pack(*repo, {compressible(10'000), random_data(5'000)}));
    repo->put_manifest(make_manifest(1, "0123456789abcdef", 50));
  }
  const std::string key_hex = to_hex(key.bytes);
  const std::vector<std::string> files = files_under(dir.path());
  ASSERT_EQ(files.size(), 3U);
  for (const std::string& file : files) {
    const std::string content = read_text_file(dir / file);
    EXPECT_EQ(content.find(key_hex), std::string::npos) << file;
    EXPECT_EQ(content.find(std::string(as_text(key.bytes))), std::string::npos) << file;
  }
}

TEST(Repository, reopening_with_the_same_key_gives_the_same_repository) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  std::string id;
  {
    const auto created = open_repo(dir.path(), key);
    id = created->info().id;
  }
  const std::string marker_before = read_text_file(dir / kMarker);
  const auto again = open_repo(dir.path(), key, CreateIfMissing::no);
  EXPECT_EQ(again->info().id, id);
  EXPECT_EQ(again->info().chunker.min_size, ChunkerParams{}.min_size);
  EXPECT_EQ(again->info().chunker.avg_size, ChunkerParams{}.avg_size);
  EXPECT_EQ(again->info().chunker.max_size, ChunkerParams{}.max_size);
  const auto and_again = open_repo(dir.path(), key, CreateIfMissing::yes);
  EXPECT_EQ(and_again->info().id, id);
  EXPECT_EQ(read_text_file(dir / kMarker), marker_before);
  // Same key, same derived keys.
  EXPECT_EQ(again->keys().enc_key, KeySet::derive(key).enc_key);
}

TEST(Repository, two_repositories_get_different_ids) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  EXPECT_NE(open_repo(dir / "a", key)->info().id, open_repo(dir / "b", key)->info().id);
}

TEST(Repository, a_different_key_is_the_wrong_key) {
  TempDir dir;
  open_repo(dir.path(), MasterKey::generate());
  const std::string marker_before = read_text_file(dir / kMarker);
  const MasterKey other = MasterKey::generate();
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), other, CreateIfMissing::no); }), ErrorKind::wrong_key);
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), other, CreateIfMissing::yes); }), ErrorKind::wrong_key);
  EXPECT_EQ(read_text_file(dir / kMarker), marker_before);
}

TEST(Repository, a_non_empty_directory_without_marker_is_a_mismatch) {
  TempDir dir;
  write_text_file(dir / "holiday.jpg", "not a repository");
  const MasterKey key = MasterKey::generate();
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::yes); }), ErrorKind::mismatch);
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::mismatch);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"holiday.jpg"});
}

TEST(Repository, create_if_missing_no_on_an_empty_location_is_not_found) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::not_found);
  EXPECT_TRUE(files_under(dir.path()).empty());
  EXPECT_EQ(error_kind([&] { open_repo(dir / "absent", key, CreateIfMissing::no); }), ErrorKind::not_found);
  EXPECT_FALSE(std::filesystem::exists(dir / "absent"));
}

TEST(Repository, marker_of_an_unknown_version_is_corrupt) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  open_repo(dir.path(), key);
  std::string marker = read_text_file(dir / kMarker);
  const std::string version_one = "\"version\": 1";
  const auto at = marker.find(version_one);
  ASSERT_NE(at, std::string::npos) << marker;
  marker.replace(at, version_one.size(), "\"version\": 2");
  write_text_file(dir / kMarker, marker);
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::corrupt);
}

TEST(Repository, damaged_marker_is_corrupt_mismatch_or_wrong_key) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  open_repo(dir.path(), key);
  const std::string original = read_text_file(dir / kMarker);

  write_text_file(dir / kMarker, "{\"format\": \"mybackup\", \"version\": 1");  // cut short
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::corrupt);
  write_text_file(dir / kMarker, "{\"format\": \"mybackup\", \"version\": 1}");  // fields missing
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::corrupt);
  write_text_file(dir / kMarker, "{\"format\": \"something-else\"}");
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::mismatch);

  // Impossible chunker parameters are a damaged marker, not a usage error.
  std::string bad_chunker = original;
  const std::string min_size = "\"min_size\": ";
  const auto at = bad_chunker.find(min_size);
  ASSERT_NE(at, std::string::npos) << original;
  const auto value_end = bad_chunker.find_first_not_of("0123456789", at + min_size.size());
  bad_chunker.replace(at + min_size.size(), value_end - (at + min_size.size()), "1");  // below 64
  write_text_file(dir / kMarker, bad_chunker);
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::corrupt);

  // A changed id no longer matches the key check (which cannot tell a changed id from a wrong key).
  write_text_file(dir / kMarker, original);
  const std::string id = open_repo(dir.path(), key, CreateIfMissing::no)->info().id;
  std::string other_id = original;
  const auto id_at = other_id.find(id);
  ASSERT_NE(id_at, std::string::npos);
  other_id.replace(id_at, 1, id[0] == '0' ? "1" : "0");
  write_text_file(dir / kMarker, other_id);
  EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::wrong_key);
}


// ---------------------------------------------------------------- options

/// The marker's text with the number after `"name": ` replaced by `value` (any JSON text).
std::string with_marker_field(std::string marker, const std::string& name, const std::string& value) {
  const std::string field = "\"" + name + "\": ";
  const auto at = marker.find(field);
  EXPECT_NE(at, std::string::npos) << name << " not in " << marker;
  if (at == std::string::npos) {
    return marker;
  }
  const auto start = at + field.size();
  marker.replace(start, marker.find_first_of(",\n}", start) - start, value);
  return marker;
}

// Found by fuzz/marker_fuzz.cpp: a version that is not a small whole number was converted with
// get<int>() (undefined for 1e300, a wrap to 1 for 2^32 + 1).
TEST(Repository, marker_version_must_be_the_whole_number_one) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  open_repo(dir.path(), key);
  const std::string original = read_text_file(dir / kMarker);
  for (const std::string version : {"1e300", "1.0", "4294967297", "-1", "\"1\"", "18446744073709551617"}) {
    SCOPED_TRACE(version);
    write_text_file(dir / kMarker, with_marker_field(original, "version", version));
    EXPECT_EQ(error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); }), ErrorKind::corrupt);
  }
  write_text_file(dir / kMarker, with_marker_field(original, "version", "1"));
  EXPECT_NO_THROW(open_repo(dir.path(), key, CreateIfMissing::no));
}

TEST(RepositoryOptions, DefaultsAreTheFormerFixedValues) {
  const RepositoryOptions options;
  EXPECT_EQ(options.chunker, ChunkerParams{});
  EXPECT_EQ(options.chunker.avg_size, 1024U * 1024U);
  EXPECT_EQ(options.pack_target_size, 16U * 1024U * 1024U);
  EXPECT_NO_THROW(options.validate());
  EXPECT_EQ(RepositoryOptions::chunker_for(1024 * 1024), ChunkerParams{});
}

TEST(RepositoryOptions, BoundsAreCheckedWithAOneLineUsageMessage) {
  EXPECT_NO_THROW(RepositoryOptions::chunker_for(1024));
  EXPECT_NO_THROW(RepositoryOptions::chunker_for(4 * 1024 * 1024));
  for (const std::uint64_t bad : {std::uint64_t{0}, std::uint64_t{512}, std::uint64_t{3000},
                                  std::uint64_t{8} * 1024 * 1024, std::uint64_t{1} << 40}) {
    const testing::ErrorOutcome outcome = error_kind([&] { RepositoryOptions::chunker_for(bad); });
    EXPECT_EQ(outcome, ErrorKind::usage) << bad;
    EXPECT_NE(outcome.message().find("power of two from 1 KiB to 4 MiB"), std::string::npos) << outcome;
    EXPECT_EQ(outcome.message().find('\n'), std::string::npos) << outcome;
  }
  RepositoryOptions options;
  for (const std::uint32_t good : {4U * 1024, 64U * 1024 * 1024, 100'000U}) {
    options.pack_target_size = good;
    EXPECT_NO_THROW(options.validate()) << good;
  }
  for (const std::uint32_t bad : {0U, 4095U, 64U * 1024 * 1024 + 1}) {
    options.pack_target_size = bad;
    const testing::ErrorOutcome outcome = error_kind([&] { options.validate(); });
    EXPECT_EQ(outcome, ErrorKind::usage) << bad;
    EXPECT_NE(outcome.message().find("from 4 KiB to 64 MiB"), std::string::npos) << outcome;
  }
  options = RepositoryOptions{};
  options.chunker = {64, 128, 256};  // a valid chunker, but below the repository's bound
  EXPECT_EQ(error_kind([&] { options.validate(); }), ErrorKind::usage);
  options.chunker = {1024 * 1024, 4 * 1024 * 1024, 48 * 1024 * 1024};  // max_size above 32 MiB
  EXPECT_EQ(error_kind([&] { options.validate(); }), ErrorKind::usage);
}

TEST(RepositoryOptions, ChosenAtCreationRecordedInTheMarkerAndReadBack) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  RepositoryOptions options;
  options.chunker = RepositoryOptions::chunker_for(2048);
  options.pack_target_size = 8192;
  const auto created = Repository::open(make_local_backend(dir.path()), key, CreateIfMissing::yes, options);
  EXPECT_EQ(created->info().options(), options);

  const auto marker = parse_json_object(read_text_file(dir / kMarker));
  EXPECT_EQ(marker.at("chunker").at("min_size"), 1024);
  EXPECT_EQ(marker.at("chunker").at("avg_size"), 2048);
  EXPECT_EQ(marker.at("chunker").at("max_size"), 16384);
  EXPECT_EQ(marker.at("pack_target_size"), 8192);

  // Read back, whatever options the opener passes: the repository keeps its own.
  const std::string text = read_text_file(dir / kMarker);
  EXPECT_EQ(open_repo(dir.path(), key, CreateIfMissing::no)->info().options(), options);
  const auto reopened = Repository::open(make_local_backend(dir.path()), key, CreateIfMissing::yes, RepositoryOptions{});
  EXPECT_EQ(reopened->info().options(), options);
  EXPECT_EQ(read_text_file(dir / kMarker), text);
}

/// The marker's text without the line of one top-level field.
std::string without_marker_line(std::string marker, const std::string& field) {
  const auto at = marker.find("  \"" + field + "\"");
  EXPECT_NE(at, std::string::npos) << marker;
  if (at != std::string::npos) {
    marker.erase(at, marker.find('\n', at) + 1 - at);
  }
  // The field before may now end with a comma before the closing brace.
  const auto comma = marker.rfind(",\n}");
  if (comma != std::string::npos && comma + 3 == marker.size() - 1) {
    marker.erase(comma, 1);
  }
  return marker;
}

TEST(RepositoryOptions, AnOldMarkerWithoutPackTargetSizeOrMacMeansTheDefaults) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  open_repo(dir.path(), key, CreateIfMissing::yes);
  // As a marker written before pack sizes could be chosen and parameters were authenticated.
  write_text_file(dir / kMarker, without_marker_line(without_marker_line(read_text_file(dir / kMarker), "parameters_mac"),
                                                     "pack_target_size"));
  const auto repo = open_repo(dir.path(), key, CreateIfMissing::no);
  EXPECT_EQ(repo->info().pack_target_size, kDefaultPackTargetSize);
  EXPECT_EQ(repo->info().chunker, ChunkerParams{});
}

// Attack (issue 11, item 3): someone who can write to the destination but has no key edits the
// chunker or pack sizes in the marker (tiny chunks grow storage and leak chunk sizes, huge ones
// multiply memory). Every edit, and removing the authentication code, is refused as damage.
TEST(RepositoryOptions, EditedParametersInAMarkerAreRefusedAsDamaged) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  RepositoryOptions options;
  options.chunker = RepositoryOptions::chunker_for(2048);
  options.pack_target_size = 8192;
  Repository::open(make_local_backend(dir / "small"), key, CreateIfMissing::yes, options);
  open_repo(dir / "default", key, CreateIfMissing::yes);
  const std::string small = read_text_file(dir / "small" + "/" + kMarker);
  const std::string defaults = read_text_file(dir / "default" + "/" + kMarker);
  const std::vector<std::pair<std::string, std::string>> edits = {
      {small, with_marker_field(small, "avg_size", "1024")},
      {small, with_marker_field(with_marker_field(small, "min_size", "2048"), "avg_size", "4096")},
      {small, with_marker_field(small, "pack_target_size", "65536")},
      {small, without_marker_line(small, "pack_target_size")},  // back to the default 16 MiB
      {small, without_marker_line(small, "parameters_mac")},
      {defaults, with_marker_field(with_marker_field(defaults, "min_size", "512"), "avg_size", "1024")},
      {defaults, with_marker_field(without_marker_line(defaults, "parameters_mac"), "max_size", "33554432")},
      {defaults, with_marker_field(defaults, "pack_target_size", "4096")},
  };
  for (const auto& [original, edited] : edits) {
    ASSERT_NE(original, edited);
    const std::string root = original == small ? dir / "small" : dir / "default";
    write_text_file(root + "/" + kMarker, edited);
    const testing::ErrorOutcome outcome = error_kind([&] { open_repo(root, key, CreateIfMissing::no); });
    EXPECT_EQ(outcome, ErrorKind::corrupt) << edited;
    EXPECT_NE(outcome.message().find("damaged"), std::string::npos) << outcome;
    EXPECT_NE(outcome.message().find(kMarker), std::string::npos) << outcome;
    write_text_file(root + "/" + kMarker, original);
    EXPECT_NO_THROW(open_repo(root, key, CreateIfMissing::no));
  }
  // A wrong key is still told apart from an edit.
  write_text_file(dir / "small" + "/" + kMarker, with_marker_field(small, "pack_target_size", "65536"));
  EXPECT_EQ(error_kind([&] { open_repo(dir / "small", MasterKey::generate(), CreateIfMissing::no); }), ErrorKind::wrong_key);
}

TEST(RepositoryOptions, BadOptionsAreRefusedBeforeAnythingIsWritten) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  RepositoryOptions options;
  options.pack_target_size = 1000;
  const testing::ErrorOutcome outcome =
      error_kind([&] { Repository::open(make_local_backend(dir / "repo"), key, CreateIfMissing::yes, options); });
  EXPECT_EQ(outcome, ErrorKind::usage);
  EXPECT_NE(outcome.message().find("pack target size must be from 4 KiB to 64 MiB"), std::string::npos) << outcome;
  EXPECT_TRUE(files_under(dir / "repo").empty());
  // Opening without creating does not judge options it would not use.
  open_repo(dir / "other", key, CreateIfMissing::yes);
  EXPECT_NO_THROW(Repository::open(make_local_backend(dir / "other"), key, CreateIfMissing::no, options));
}

TEST(RepositoryOptions, OutOfRangeValuesInAMarkerAreCorrupt) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  open_repo(dir.path(), key);
  const std::string original = read_text_file(dir / kMarker);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"pack_target_size", "1000"},             // below 4 KiB
      {"pack_target_size", "134217728"},        // 128 MiB
      {"pack_target_size", "4294975488"},       // 4 GiB + 8 KiB: must not wrap to 8 KiB
      {"pack_target_size", "-16777216"},
      {"pack_target_size", "\"16777216\""},
      {"avg_size", "512"},                      // a valid chunker, below the repository's bound
      {"max_size", "67108864"},                 // 64 MiB: above 32 MiB
      {"min_size", "4295491584"},               // 4 GiB + 512 KiB
  };
  for (const auto& [field, value] : cases) {
    write_text_file(dir / kMarker, with_marker_field(original, field, value));
    const testing::ErrorOutcome outcome = error_kind([&] { open_repo(dir.path(), key, CreateIfMissing::no); });
    EXPECT_EQ(outcome, ErrorKind::corrupt) << field << " = " << value;
    EXPECT_NE(outcome.message().find("damaged"), std::string::npos) << outcome;
  }
  write_text_file(dir / kMarker, original);
  EXPECT_NO_THROW(open_repo(dir.path(), key, CreateIfMissing::no));
}


// ---------------------------------------------------------------- packs and chunks

TEST(Repository, put_pack_then_read_chunk_round_trip) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  const std::vector<Bytes> chunks = {compressible(100'000), random_data(30'000, 4), Bytes{}, to_bytes("x")};
  const FinishedPack pack = make_pack(*repo, chunks);
  ASSERT_EQ(pack.entries.size(), chunks.size());
  EXPECT_EQ(pack.entries[0].flags, kBlobCompressed);
  EXPECT_EQ(pack.entries[1].flags, 0);

  repo->put_pack(pack);
  EXPECT_EQ((*raw_backend(*repo)).size(object_names::pack(pack.name)), std::optional<std::uint64_t>(pack.bytes.size()));
  EXPECT_EQ((*raw_backend(*repo)).get(object_names::pack(pack.name), kAnySize), pack.bytes);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(repo->read_chunk(pack.name, pack.entries[i]), chunks[i]) << i;
  }
  // The pack's header agrees with what the builder reported.
  EXPECT_EQ(read_pack_header(repo->keys().enc_key, (*raw_backend(*repo)).get(object_names::pack(pack.name), kAnySize)).size(),
            chunks.size());
  // Storing the same pack again is fine (same name, same bytes).
  EXPECT_NO_THROW(repo->put_pack(pack));
}

TEST(Repository, chunk_id_is_keyed) {
  TempDir dir;
  const auto a = open_repo(dir / "a", MasterKey::generate());
  const auto b = open_repo(dir / "b", MasterKey::generate());
  const Bytes data = to_bytes("the same content");
  EXPECT_EQ(a->chunk_id(data), a->chunk_id(data));
  EXPECT_EQ(a->chunk_id(data), HmacSha256::mac(a->keys().id_key, data));
  EXPECT_NE(a->chunk_id(data), b->chunk_id(data));
  EXPECT_NE(a->chunk_id(data), Sha256::hash(data));
}

TEST(Repository, read_chunk_of_a_damaged_blob_fails) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  const FinishedPack pack = make_pack(*repo, {compressible(5'000), random_data(2'000, 9)});
  repo->put_pack(pack);
  const std::string key = object_names::pack(pack.name);
  for (std::size_t which = 0; which < pack.entries.size(); ++which) {
    const PackEntry& entry = pack.entries[which];
    // First byte (magic), flags, a nonce byte, the middle, and the last byte of the tag.
    for (const std::size_t at : {std::size_t{0}, std::size_t{4}, std::size_t{7}, std::size_t{entry.length / 2},
                                 std::size_t{entry.length - 1}}) {
      Bytes damaged = pack.bytes;
      damaged[entry.offset + at] ^= 0x01;
      (*raw_backend(*repo)).put(key, damaged, Overwrite::yes);
      const auto kind = error_kind([&] { repo->read_chunk(pack.name, entry); });
      EXPECT_EQ(kind, ErrorKind::corrupt)
          << "blob " << which << " byte " << at << ": " << (kind ? to_string(*kind) : "no error");
    }
  }
  // Undamaged again: readable again (so the failures above came from the damage).
  (*raw_backend(*repo)).put(key, pack.bytes, Overwrite::yes);
  EXPECT_EQ(repo->read_chunk(pack.name, pack.entries[0]), compressible(5'000));
}

TEST(Repository, read_chunk_with_a_wrong_entry_fails) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  const FinishedPack pack = make_pack(*repo, {compressible(5'000), random_data(2'000, 9)});
  repo->put_pack(pack);

  PackEntry wrong_id = pack.entries[0];
  wrong_id.id = pack.entries[1].id;
  EXPECT_EQ(error_kind([&] { repo->read_chunk(pack.name, wrong_id); }), ErrorKind::corrupt);

  PackEntry wrong_size = pack.entries[0];
  wrong_size.raw_length += 1;
  EXPECT_EQ(error_kind([&] { repo->read_chunk(pack.name, wrong_size); }), ErrorKind::corrupt);
  PackEntry wrong_raw_size = pack.entries[1];  // stored raw
  wrong_raw_size.raw_length -= 1;
  EXPECT_EQ(error_kind([&] { repo->read_chunk(pack.name, wrong_raw_size); }), ErrorKind::corrupt);

  PackEntry past_the_end = pack.entries[1];
  past_the_end.length = static_cast<std::uint32_t>(pack.bytes.size());
  EXPECT_EQ(error_kind([&] { repo->read_chunk(pack.name, past_the_end); }), ErrorKind::corrupt);

  // A blob sealed under the right id but whose content hashes elsewhere: corrupt.
  const Bytes content = to_bytes("real content");
  const ChunkId claimed = repo->chunk_id(to_bytes("other content"));
  Bytes blob;
  seal_blob(repo->keys().enc_key, claimed, 0, content, blob);
  PackBuilder builder(kDefaultPackTargetSize);
  builder.add(claimed, blob, static_cast<std::uint32_t>(content.size()), 0);
  const FinishedPack lying = builder.finish(repo->keys().enc_key);
  repo->put_pack(lying);
  EXPECT_EQ(error_kind([&] { repo->read_chunk(lying.name, lying.entries[0]); }), ErrorKind::corrupt);
}

TEST(Repository, read_chunk_of_a_missing_pack_is_not_found) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  const FinishedPack pack = make_pack(*repo, {to_bytes("never stored")});
  EXPECT_EQ(error_kind([&] { repo->read_chunk(pack.name, pack.entries[0]); }), ErrorKind::not_found);
}

// ---------------------------------------------------------------- manifests

TEST(Repository, manifests_round_trip_in_sequence_order) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  EXPECT_TRUE(repo->manifest_keys().empty());
  EXPECT_EQ(repo->next_manifest_seq(0), 1U);

  const Manifest big = make_manifest(1, "00000000000000aa", 200);  // compresses
  const Manifest small = make_manifest(2, "00000000000000bb", 0);  // too small to compress
  const Manifest tenth = make_manifest(10, "00000000000000cc", 3);
  EXPECT_EQ(repo->put_manifest(tenth), object_names::manifest(10, "00000000000000cc"));
  EXPECT_EQ(repo->put_manifest(big), object_names::manifest(1, "00000000000000aa"));
  EXPECT_EQ(repo->put_manifest(small), object_names::manifest(2, "00000000000000bb"));

  const std::vector<std::string> expected = {object_names::manifest(1, "00000000000000aa"),
                                             object_names::manifest(2, "00000000000000bb"),
                                             object_names::manifest(10, "00000000000000cc")};
  EXPECT_EQ(repo->manifest_keys(), expected);
  EXPECT_EQ(repo->next_manifest_seq(0), 11U);
  EXPECT_EQ(repo->next_manifest_seq(20), 21U) << "at least one past what the caller has applied";

  const Manifest read_big = repo->read_manifest(expected[0]);
  EXPECT_EQ(read_big.seq, 1U);
  EXPECT_EQ(read_big.run_id, big.run_id);
  EXPECT_EQ(read_big.host, "test-host");
  ASSERT_EQ(read_big.versions.size(), 200U);
  EXPECT_EQ(read_big.versions[199].path, "/src/file-199");
  EXPECT_EQ(read_big.versions[199].chunks, big.versions[199].chunks);
  EXPECT_EQ(encode_manifest(read_big), encode_manifest(big));
  EXPECT_EQ(encode_manifest(repo->read_manifest(expected[1])), encode_manifest(small));
  EXPECT_EQ(encode_manifest(repo->read_manifest(expected[2])), encode_manifest(tenth));
  // The big one really was compressed: smaller on the destination than its encoding.
  EXPECT_LT(*(*raw_backend(*repo)).size(expected[0]), encode_manifest(big).size());

  // Read in constant memory through temporary files: the same manifests, records spooled.
  TempDir spool;
  for (const auto& [key, manifest] : {std::pair{expected[0], &big}, std::pair{expected[1], &small}, std::pair{expected[2], &tenth}}) {
    const Manifest streamed = repo->read_manifest(key, spool.path());
    EXPECT_TRUE(streamed.versions.empty() && streamed.packs.empty()) << key;
    EXPECT_EQ(encode_manifest(streamed), encode_manifest(*manifest)) << key;
  }
  EXPECT_TRUE(std::filesystem::is_empty(spool.path())) << "the temporary files have no name";
}

TEST(Repository, manifest_keys_ignore_other_files) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  repo->put_manifest(make_manifest(3, "00000000000000aa", 1));
  write_text_file(dir / "snapshots/README", "not a manifest");
  write_text_file(dir / "snapshots/.tmp-0123456789abcdef", "partial");
  std::filesystem::create_directories(dir / "snapshots/sub");
  write_text_file(dir / "snapshots/sub/0000000099-00000000000000aa.enc", "nested");
  write_text_file(dir / "snapshots/0000000000-00000000000000aa.enc", "sequence zero");
  EXPECT_EQ(repo->manifest_keys(), std::vector<std::string>{object_names::manifest(3, "00000000000000aa")});
  EXPECT_EQ(repo->next_manifest_seq(0), 4U);
}

// A planted name that does not authenticate never steers the numbering: not the last number the
// format allows (every later backup failed), not one right above the highest (no shared number).
TEST(Repository, next_manifest_seq_passes_over_names_that_do_not_authenticate) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  repo->put_manifest(make_manifest(3, "00000000000000aa", 1));
  write_text_file(dir / "snapshots/0000000004-00000000000000bb.enc", "junk");
  write_text_file(dir / "snapshots/9999999999-00000000000000cc.enc", "junk");
  EXPECT_EQ(repo->next_manifest_seq(0), 5U);
  EXPECT_EQ(repo->next_manifest_seq(3), 5U);
  EXPECT_EQ(repo->next_manifest_seq(7), 8U);
}

TEST(Repository, put_manifest_refuses_a_taken_key) {
  TempDir dir;
  const auto repo = open_repo(dir.path(), MasterKey::generate());
  const Manifest first = make_manifest(1, "00000000000000aa", 1);
  const std::string key = repo->put_manifest(first);
  const Bytes stored = (*raw_backend(*repo)).get(key, kAnySize);
  EXPECT_EQ(error_kind([&] { repo->put_manifest(make_manifest(1, "00000000000000aa", 5)); }), ErrorKind::exists);
  EXPECT_EQ((*raw_backend(*repo)).get(key, kAnySize), stored);
  // Same sequence number, another run id: a different key (two writers racing are both kept).
  EXPECT_NO_THROW(repo->put_manifest(make_manifest(1, "00000000000000bb", 1)));
  EXPECT_EQ(repo->manifest_keys().size(), 2U);
}

TEST(Repository, damaged_or_moved_manifest_fails) {
  for (const bool streamed : {false, true}) {
    SCOPED_TRACE(streamed ? "streamed" : "whole");
    TempDir dir;
    TempDir spool;
    const std::string through = streamed ? spool.path() : std::string();
    const MasterKey key = MasterKey::generate();
    const auto repo = open_repo(dir.path(), key);
    const std::string name = repo->put_manifest(make_manifest(1, "00000000000000aa", 20));
    const Bytes stored = (*raw_backend(*repo)).get(name, kAnySize);

    Bytes damaged = stored;
    damaged[damaged.size() / 2] ^= 0x01;
    (*raw_backend(*repo)).put(name, damaged, Overwrite::yes);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(name, through); }), ErrorKind::corrupt);

    // The blob id binds the file name: a manifest copied under another name does not open.
    const std::string moved = object_names::manifest(2, "00000000000000aa");
    (*raw_backend(*repo)).put(moved, stored, Overwrite::no);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(moved, through); }), ErrorKind::corrupt);

    (*raw_backend(*repo)).put(name, Bytes(stored.begin(), stored.begin() + 3), Overwrite::yes);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(name, through); }), ErrorKind::corrupt);
    (*raw_backend(*repo)).put(name, Bytes(stored.begin(), stored.begin() + 20), Overwrite::yes);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(name, through); }), ErrorKind::corrupt);
    (*raw_backend(*repo)).put(name, Bytes(stored.begin(), stored.end() - 1), Overwrite::yes);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(name, through); }), ErrorKind::corrupt);

    EXPECT_EQ(error_kind([&] { repo->read_manifest(object_names::manifest(7, "00000000000000aa"), through); }),
              ErrorKind::not_found);

    // Another repository's key cannot read it.
    TempDir other_dir;
    const auto other = open_repo(other_dir.path(), MasterKey::generate());
    (*raw_backend(*other)).put(name, stored, Overwrite::no);
    EXPECT_EQ(error_kind([&] { other->read_manifest(name, through); }), ErrorKind::corrupt);

    // Cut inside the payload, and the tag's last byte: the streamed read authenticates too.
    (*raw_backend(*repo)).put(name, Bytes(stored.begin(), stored.begin() + 40), Overwrite::yes);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(name, through); }), ErrorKind::corrupt);
    Bytes bad_tag = stored;
    bad_tag.back() ^= 0x80;
    (*raw_backend(*repo)).put(name, bad_tag, Overwrite::yes);
    EXPECT_EQ(error_kind([&] { repo->read_manifest(name, through); }), ErrorKind::corrupt);
  }
}

}  // namespace
}  // namespace mybackup
