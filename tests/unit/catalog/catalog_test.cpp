#include "mybackup/catalog/catalog.hpp"

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "test_util.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mybackup {
namespace {

using testing::TempDir;
using testing::expect_same_summary;
using testing::catch_error;

ChunkId chunk(std::uint8_t n) {
  ChunkId id{};
  for (std::size_t i = 0; i < id.size(); ++i) {
    id[i] = static_cast<std::uint8_t>(n * 31 + i);
  }
  return id;
}

std::string pack_name(const std::string& label) { return to_hex(Sha256::hash(as_bytes(label))); }

PackEntry blob(const ChunkId& id, std::uint32_t offset, std::uint32_t length, std::uint32_t raw_length) {
  PackEntry entry;
  entry.id = id;
  entry.offset = offset;
  entry.length = length;
  entry.raw_length = raw_length;
  entry.flags = kBlobCompressed;
  return entry;
}

ManifestVersion file_version(const std::string& path, std::uint32_t number, std::uint64_t size,
                             std::vector<ChunkId> chunks) {
  ManifestVersion version;
  version.path = path;
  version.type = EntryType::file;
  version.number = number;
  version.mode = 0644;
  version.mtime_ns = 1'700'000'000'000'000'000 + number;
  version.size = size;
  version.inode = 1000 + number;
  version.sha256 = Sha256::hash(as_bytes(path + std::to_string(number)));
  version.chunks = std::move(chunks);
  return version;
}

ManifestVersion directory_version(const std::string& path, std::uint32_t number) {
  ManifestVersion version;
  version.path = path;
  version.type = EntryType::directory;
  version.number = number;
  version.mode = 0755;
  version.mtime_ns = 1'600'000'000'000'000'000;
  version.inode = 77;
  return version;
}

ManifestVersion symlink_version(const std::string& path, std::uint32_t number, const std::string& target) {
  ManifestVersion version;
  version.path = path;
  version.type = EntryType::symlink;
  version.number = number;
  version.mode = 0777;
  version.mtime_ns = 1'650'000'000'000'000'000;
  version.size = target.size();
  version.inode = 88;
  version.link_target = target;
  return version;
}

ManifestVersion deletion_marker(const std::string& path, std::uint32_t number) {
  ManifestVersion version;
  version.path = path;
  version.type = EntryType::deleted;
  version.number = number;
  return version;
}

Manifest manifest_with_seq(std::uint64_t seq) {
  Manifest manifest;
  manifest.kind = RunKind::backup;
  manifest.seq = seq;
  manifest.run_id = "00112233445566" + std::to_string(10 + seq);
  manifest.host = "testhost";
  manifest.started_ns = 1'000 * static_cast<std::int64_t>(seq);
  manifest.finished_ns = 1'000 * static_cast<std::int64_t>(seq) + 500;
  manifest.sources = {"/r"};
  return manifest;
}

// Run 1: packs P1 {c1, c2} and P2 {c3}; /r (dir), /r/f1 (file, c1 c2), /r/f2 (file, c3),
// /r/d (dir), /r/l (symlink).
Manifest first_manifest() {
  Manifest manifest = manifest_with_seq(1);
  ManifestPack p1;
  p1.name = pack_name("pack one");
  p1.size = 1000;
  p1.blobs = {blob(chunk(1), 0, 110, 200), blob(chunk(2), 110, 120, 300)};
  ManifestPack p2;
  p2.name = pack_name("pack two");
  p2.size = 500;
  p2.blobs = {blob(chunk(3), 0, 130, 400)};
  manifest.packs = {p1, p2};
  manifest.versions = {directory_version("/r", 1), directory_version("/r/d", 1),
                       file_version("/r/f1", 1, 500, {chunk(1), chunk(2)}), file_version("/r/f2", 1, 400, {chunk(3)}),
                       symlink_version("/r/l", 1, "f1")};
  return manifest;
}

// Run 2: pack P3 {c4}; /r/f1 version 2 (c1 c2 c4, reusing chunks of run 1); /r/f2 deleted.
Manifest second_manifest() {
  Manifest manifest = manifest_with_seq(2);
  ManifestPack p3;
  p3.name = pack_name("pack three");
  p3.size = 300;
  p3.blobs = {blob(chunk(4), 0, 50, 100)};
  manifest.packs = {p3};
  manifest.versions = {file_version("/r/f1", 2, 600, {chunk(1), chunk(2), chunk(4)}), deletion_marker("/r/f2", 2)};
  return manifest;
}

RunStats stats_with(std::uint64_t base) {
  RunStats stats;
  stats.status = "ok";
  stats.files_new = base + 1;
  stats.files_changed = base + 2;
  stats.files_deleted = base + 3;
  stats.files_unchanged = base + 4;
  stats.files_skipped = base + 5;
  stats.bytes_scanned = base + 6;
  stats.bytes_read = base + 7;
  stats.bytes_new = base + 8;
  stats.bytes_stored = base + 9;
  return stats;
}

void record_both(Catalog& catalog) {
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
  catalog.record_run(second_manifest(), "snapshots/0000000002-x.enc", stats_with(100));
}

// Figures compared field by field, so a failure names the field.
std::vector<std::string> sorted_paths(const std::unordered_map<std::string, LatestVersion>& latest) {
  std::vector<std::string> paths;
  for (const auto& [path, version] : latest) {
    paths.push_back(path);
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Overwrites PRAGMA user_version in a closed SQLite file: a big-endian u32 at offset 60 of the header.
void patch_user_version(const std::string& path, std::uint32_t version) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekp(60);
  const char bytes[4] = {static_cast<char>(version >> 24), static_cast<char>(version >> 16),
                         static_cast<char>(version >> 8), static_cast<char>(version)};
  file.write(bytes, sizeof bytes);
  ASSERT_TRUE(file.good()) << path;
}

// Byte `offset` of a closed SQLite file's header.
std::uint8_t header_byte(const std::string& path, std::streamoff offset) {
  std::ifstream file(path, std::ios::binary);
  file.seekg(offset);
  char byte = 0;
  file.read(&byte, 1);
  EXPECT_TRUE(file.good()) << path;
  return static_cast<std::uint8_t>(byte);
}

void patch_header_byte(const std::string& path, std::streamoff offset, std::uint8_t value) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekp(offset);
  const char byte = static_cast<char>(value);
  file.write(&byte, 1);
  ASSERT_TRUE(file.good()) << path;
}

TEST(Catalog, FreshCatalogIsEmpty) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");

  EXPECT_EQ(catalog.repository_id(), "");
  EXPECT_TRUE(catalog.latest_under("/").empty());
  EXPECT_TRUE(catalog.known_chunks().empty());
  EXPECT_EQ(catalog.last_seq(), 0u);
  EXPECT_FALSE(catalog.last_run().has_value());
  EXPECT_EQ(catalog.file_count_under("/"), 0u);
  expect_same_summary(catalog.summary(), CatalogSummary{});
}

TEST(Catalog, ReopeningKeepsData) {
  TempDir dir("catalog_test_");
  CatalogSummary before;
  {
    Catalog catalog(dir / "backups.db");
    catalog.set_repository_id("0123456789abcdef0123456789abcdef");
    record_both(catalog);
    before = catalog.summary();
    ASSERT_EQ(before.runs, 2u);
  }
  Catalog reopened(dir / "backups.db");
  EXPECT_EQ(reopened.repository_id(), "0123456789abcdef0123456789abcdef");
  expect_same_summary(reopened.summary(), before);
  EXPECT_EQ(reopened.last_seq(), 2u);
  EXPECT_EQ(reopened.known_chunks().size(), 4u);
  const auto latest = reopened.latest_under("/r");
  ASSERT_EQ(latest.count("/r/f1"), 1u);
  EXPECT_EQ(latest.at("/r/f1").number, 2u);
}

// A catalog from before file metadata (schema 1) is migrated when opened: what it holds stays,
// its versions have no metadata (so the next backup records every path again, once), and new
// versions keep theirs.
TEST(Catalog, SchemaOneIsMigratedAndItsVersionsHaveNoMetadata) {
  TempDir dir("catalog_test_");
  const std::string path = dir / "backups.db";
  {
    Catalog catalog(path);
    record_both(catalog);
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  for (const char* column : {"uid", "gid", "owner", "grp", "ctime_ns", "device", "links", "rdev", "xattrs"}) {
    ASSERT_EQ(sqlite3_exec(raw, (std::string("ALTER TABLE versions DROP COLUMN ") + column).c_str(), nullptr, nullptr,
                           nullptr),
              SQLITE_OK)
        << column;
  }
  ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE folder_totals; DROP TABLE chunk_totals; PRAGMA user_version=1", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);

  Catalog migrated(path);
  EXPECT_EQ(migrated.summary().files, 1u);  // its totals are counted too (schema 3)
  EXPECT_EQ(migrated.last_seq(), 2u);
  const auto latest = migrated.latest_under("/r");
  ASSERT_EQ(latest.count("/r/f1"), 1u);
  EXPECT_FALSE(latest.at("/r/f1").meta_recorded);
  ASSERT_FALSE(migrated.versions_of("/r/f1").empty());
  EXPECT_FALSE(migrated.versions_of("/r/f1").back().meta.recorded);

  Manifest third = manifest_with_seq(3);
  ManifestVersion version = file_version("/r/f1", 3, 10, {chunk(1)});
  version.meta.recorded = true;
  version.meta.uid = 1000;
  version.meta.owner = "alice";
  version.meta.xattrs = {{"user.a", "1"}, {"user.b", std::string("\0\xff", 2)}};
  third.versions = {version};
  migrated.record_run(third, "snapshots/3", RunStats{});
  const VersionRecord recorded = migrated.versions_of("/r/f1").back();
  EXPECT_EQ(recorded.meta, version.meta);
  EXPECT_TRUE(migrated.latest_under("/r").at("/r/f1").meta_recorded);
}

TEST(Catalog, SqliteFailuresBecomeTypedErrorsNamingTheCatalog) {
  TempDir dir("catalog_test_");
  const std::string path = dir / "backups.db";
  Catalog catalog(path);
  // Break the schema underneath the open catalog, as a damaged file would.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE version_chunks; DROP TABLE versions; DROP TABLE runs", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);

  for (const auto& query : std::vector<std::function<void()>>{
           [&] { catalog.last_run(); }, [&] { catalog.summary(); }, [&] { catalog.latest_under("/"); },
           [&] { catalog.versions_of("/a"); }, [&] { catalog.state_at("/", 0); }, [&] { catalog.last_seq(); }}) {
    try {
      query();
      ADD_FAILURE() << "a query on a broken catalog must fail";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::io);
      EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    } catch (const std::exception& error) {
      ADD_FAILURE() << "not a mybackup::Error: " << error.what();
    }
  }
}

TEST(Catalog, FileThatIsNotSqliteIsAConfigError) {
  TempDir dir("catalog_test_");
  const std::string path = dir / "backups.db";
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 200; ++i) {
      out << "this is a text file, not a database\n";
    }
  }
  const Error error = catch_error([&] { Catalog catalog(path); });
  EXPECT_EQ(error.kind(), ErrorKind::config);
  EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("catalog"), std::string::npos) << error.what();
}

TEST(Catalog, OtherSchemaVersionIsAConfigError) {
  TempDir dir("catalog_test_");
  const std::string path = dir / "backups.db";
  { Catalog catalog(path); }
  patch_user_version(path, kCatalogSchemaVersion + 1);

  const Error error = catch_error([&] { Catalog catalog(path); });
  EXPECT_EQ(error.kind(), ErrorKind::config);
  const std::string message = error.what();
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("schema version " + std::to_string(kCatalogSchemaVersion + 1)), std::string::npos) << message;
  EXPECT_NE(message.find("matching mybackup"), std::string::npos) << message;
}

TEST(Catalog, SqliteFileOfAnotherProgramIsAConfigError) {
  TempDir dir("catalog_test_");
  const std::string path = dir / "backups.db";
  { Catalog catalog(path); }
  patch_user_version(path, 0);  // tables but no catalog version: some other program's database

  // Header bytes 18 and 19 are the file format write/read versions: 1 = rollback journal, 2 = WAL.
  ASSERT_EQ(header_byte(path, 18), 2u);
  patch_header_byte(path, 18, 1);  // as another program's database would typically be
  patch_header_byte(path, 19, 1);

  const Error error = catch_error([&] { Catalog catalog(path); });
  EXPECT_EQ(error.kind(), ErrorKind::config);
  EXPECT_NE(std::string(error.what()).find("is not a mybackup catalog"), std::string::npos) << error.what();
  // Refusing the file must not change it: in particular not switch it to WAL mode.
  EXPECT_EQ(header_byte(path, 18), 1u);
  EXPECT_EQ(header_byte(path, 19), 1u);
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
}

TEST(Catalog, TwoProcessesOpeningANewCatalogAtOnceBothGetIt) {
  // A backup and `status` opening a home's catalog for the first time at the same moment: the
  // one that does not create it must see either no catalog or a whole one, never tables without
  // a version (which reads as another program's database). Two threads, each with its own
  // connection: SQLite locks them as it locks two processes.
  TempDir dir("catalog_test_");
  for (int round = 0; round < 30; ++round) {
    const std::string path = dir / ("backups-" + std::to_string(round) + ".db");
    std::atomic<int> ready{0};
    std::array<std::string, 2> failures;
    const auto open = [&](int which) {
      ++ready;
      while (ready.load() < 2) {
      }
      try {
        Catalog catalog(path);
        EXPECT_EQ(catalog.last_seq(), 0u);
      } catch (const Error& error) {
        failures[static_cast<std::size_t>(which)] = error.what();
      }
    };
    std::thread first(open, 0);
    std::thread second(open, 1);
    first.join();
    second.join();
    EXPECT_EQ(failures[0], "") << "round " << round;
    EXPECT_EQ(failures[1], "") << "round " << round;
  }
}

TEST(Catalog, LatestUnderReturnsTheLatestVersionOfEveryPath) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  record_both(catalog);

  const auto latest = catalog.latest_under("/r");
  const std::vector<std::string> expected = {"/r", "/r/d", "/r/f1", "/r/f2", "/r/l"};
  EXPECT_EQ(sorted_paths(latest), expected);

  const LatestVersion& f1 = latest.at("/r/f1");
  const ManifestVersion want = file_version("/r/f1", 2, 600, {});
  EXPECT_EQ(f1.number, 2u);
  EXPECT_EQ(f1.type, EntryType::file);
  EXPECT_EQ(f1.size, 600u);
  EXPECT_EQ(f1.mtime_ns, want.mtime_ns);
  EXPECT_EQ(f1.mode, 0644u);
  EXPECT_EQ(f1.inode, want.inode);
  EXPECT_EQ(f1.link_target, "");

  const LatestVersion& f2 = latest.at("/r/f2");  // the deletion marker is the latest version
  EXPECT_EQ(f2.number, 2u);
  EXPECT_EQ(f2.type, EntryType::deleted);

  const LatestVersion& d = latest.at("/r/d");
  EXPECT_EQ(d.number, 1u);
  EXPECT_EQ(d.type, EntryType::directory);
  EXPECT_EQ(d.mode, 0755u);

  const LatestVersion& l = latest.at("/r/l");
  EXPECT_EQ(l.type, EntryType::symlink);
  EXPECT_EQ(l.link_target, "f1");
  EXPECT_EQ(l.size, 2u);
}

TEST(Catalog, LatestUnderRespectsTheRootBoundary) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  Manifest manifest = manifest_with_seq(1);
  // '.' sorts before '/', '0' right after it, 'c' and '~' later: all around the boundary of "/a/b".
  for (const char* path : {"/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b.txt", "/a/b0", "/a/bc", "/a/bc/d", "/a/b-x",
                           "/a/b/~z", "/z"}) {
    manifest.versions.push_back(directory_version(path, 1));
  }
  catalog.record_run(manifest, "snapshots/0000000001-x.enc", RunStats{});

  const std::vector<std::string> under_ab = {"/a/b", "/a/b/c", "/a/b/c/d", "/a/b/~z"};
  EXPECT_EQ(sorted_paths(catalog.latest_under("/a/b")), under_ab);
  const std::vector<std::string> under_abc = {"/a/bc", "/a/bc/d"};
  EXPECT_EQ(sorted_paths(catalog.latest_under("/a/bc")), under_abc);
  const std::vector<std::string> under_leaf = {"/a/b/c/d"};
  EXPECT_EQ(sorted_paths(catalog.latest_under("/a/b/c/d")), under_leaf);
  EXPECT_TRUE(catalog.latest_under("/a/b/c/d/e").empty());
  EXPECT_TRUE(catalog.latest_under("/q").empty());
  EXPECT_EQ(catalog.latest_under("/").size(), manifest.versions.size());
  EXPECT_EQ(catalog.latest_under("/a").size(), manifest.versions.size() - 1);  // all but /z
}

TEST(Catalog, KnownChunksHoldsEveryRecordedChunk) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  EXPECT_EQ(catalog.known_chunks(), (ChunkIdSet{chunk(1), chunk(2), chunk(3)}));

  catalog.record_run(second_manifest(), "snapshots/0000000002-x.enc", RunStats{});
  const ChunkIdSet known = catalog.known_chunks();
  EXPECT_EQ(known, (ChunkIdSet{chunk(1), chunk(2), chunk(3), chunk(4)}));
  EXPECT_EQ(known.count(chunk(5)), 0u);
}

TEST(Catalog, SummaryFigures) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  record_both(catalog);

  const CatalogSummary summary = catalog.summary();
  EXPECT_EQ(summary.files, 1u);                          // /r/f1 (f2 is deleted)
  EXPECT_EQ(summary.versions, 3u);                       // f1 v1, f2 v1, f1 v2
  EXPECT_EQ(summary.original_bytes, 500u + 400u + 600u);
  EXPECT_EQ(summary.current_bytes, 600u);
  EXPECT_EQ(summary.unique_bytes, 200u + 300u + 400u + 100u);
  EXPECT_EQ(summary.compressed_bytes, 110u + 120u + 130u + 50u);
  EXPECT_EQ(summary.stored_bytes, 1000u + 500u + 300u);
  EXPECT_EQ(summary.chunks, 4u);
  EXPECT_EQ(summary.packs, 3u);
  EXPECT_EQ(summary.runs, 2u);
}

TEST(Catalog, FileCountUnderCountsLatestRegularFiles) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  EXPECT_EQ(catalog.file_count_under("/r"), 2u);  // f1, f2 (not the directory or the symlink)
  EXPECT_EQ(catalog.file_count_under("/"), 2u);
  EXPECT_EQ(catalog.file_count_under("/r/f1"), 1u);
  EXPECT_EQ(catalog.file_count_under("/r/d"), 0u);
  EXPECT_EQ(catalog.file_count_under("/rr"), 0u);

  catalog.record_run(second_manifest(), "snapshots/0000000002-x.enc", RunStats{});
  EXPECT_EQ(catalog.file_count_under("/r"), 1u);  // f2 is now deleted
  EXPECT_EQ(catalog.file_count_under("/r/f2"), 0u);
}

// The figures status shows, counted from scratch the slow way (what the kept totals replace).
std::uint64_t count_in(const std::string& catalog, const std::string& sql) {
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open_v2(catalog.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(raw, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sql;
  EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW) << sql;
  const auto value = static_cast<std::uint64_t>(sqlite3_column_int64(statement, 0));
  sqlite3_finalize(statement);
  sqlite3_close(raw);
  return value;
}

void expect_totals_match_a_count(const Catalog& catalog, const std::string& path, const std::string& step) {
  SCOPED_TRACE(step);
  const std::string file = std::to_string(static_cast<int>(EntryType::file));
  const std::string latest =
      "(SELECT v.* FROM versions v JOIN (SELECT file_id, max(number) AS number FROM versions GROUP BY file_id) m "
      "ON v.file_id = m.file_id AND v.number = m.number WHERE v.type = " + file + ")";
  CatalogSummary counted;
  counted.files = count_in(path, "SELECT count(*) FROM " + latest);
  counted.current_bytes = count_in(path, "SELECT coalesce(sum(size), 0) FROM " + latest);
  counted.versions = count_in(path, "SELECT count(*) FROM versions WHERE type = " + file);
  counted.original_bytes = count_in(path, "SELECT coalesce(sum(size), 0) FROM versions WHERE type = " + file);
  counted.unique_bytes = count_in(path, "SELECT coalesce(sum(raw_length), 0) FROM chunks");
  counted.compressed_bytes = count_in(path, "SELECT coalesce(sum(length), 0) FROM chunks");
  counted.stored_bytes = count_in(path, "SELECT coalesce(sum(size), 0) FROM packs");
  counted.chunks = count_in(path, "SELECT count(*) FROM chunks");
  counted.packs = count_in(path, "SELECT count(*) FROM packs");
  counted.runs = count_in(path, "SELECT count(*) FROM runs WHERE status != 'failed'");
  expect_same_summary(catalog.summary(), counted);
  for (const std::string root : {"/", "/r", "/r/d", "/r/f1", "/r/f2", "/rr"}) {
    const std::string below = root == "/" ? "/" : root + "/";
    const std::string end = root == "/" ? "0" : root + "0";
    EXPECT_EQ(catalog.file_count_under(root),
              count_in(path, "SELECT count(*) FROM files f JOIN " + latest + " l ON l.file_id = f.id WHERE f.path = '" +
                                 root + "' OR (f.path >= '" + below + "' AND f.path < '" + end + "')"))
        << root;
  }
}

// Runs that add, change, delete, renumber and remove versions and move and delete chunks: the
// totals status reads stay what counting every version and chunk gives; an older catalog
// (schema 2) gets the same totals when it is opened.
TEST(Catalog, KeptTotalsMatchACountAfterEveryKindOfRun) {
  TempDir dir("catalog_test_");
  const std::string path = dir / "backups.db";
  CatalogSummary before_migration;
  {
    Catalog catalog(path);
    expect_totals_match_a_count(catalog, path, "empty");
    record_both(catalog);
    expect_totals_match_a_count(catalog, path, "added, changed, deleted");

    Manifest other_writer = manifest_with_seq(3);  // moves /r/f1 up to 3, /r/f2 comes back as 3
    ManifestVersion below = file_version("/r/d/g", 5, 70, {chunk(4)});
    other_writer.versions = {file_version("/r/f1", 2, 700, {chunk(3)}), file_version("/r/f2", 2, 100, {chunk(1)}), below,
                             file_version("/r/d/g", 3, 30, {chunk(4)})};  // a free number below the latest
    catalog.record_run(other_writer, "snapshots/0000000003-x.enc", RunStats{});
    expect_totals_match_a_count(catalog, path, "renumbered");

    Manifest clean = manifest_with_seq(4);
    clean.kind = RunKind::clean;
    ManifestPack moved;
    moved.name = pack_name("pack four");
    moved.size = 200;
    moved.blobs = {blob(chunk(3), 0, 140, 400)};  // chunk 3 leaves pack two, longer than it was
    clean.packs = {moved};
    clean.deleted_packs = {pack_name("pack two")};
    clean.removed = {{"/r/f1", 1}, {"/r/f2", 3}, {"/r/f2", 1}, {"/r/f2", 2}, {"/r/d/g", 5}};
    catalog.record_run(clean, "snapshots/0000000004-x.enc", RunStats{});
    expect_totals_match_a_count(catalog, path, "cleaned");
    EXPECT_TRUE(catalog.versions_of("/r/f2").empty());
    before_migration = catalog.summary();
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE folder_totals; DROP TABLE chunk_totals; PRAGMA user_version=2", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  Catalog migrated(path);
  expect_totals_match_a_count(migrated, path, "migrated");
  expect_same_summary(migrated.summary(), before_migration);
}

TEST(Catalog, LastSeqAndLastRun) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
  EXPECT_EQ(catalog.last_seq(), 1u);

  Manifest second = second_manifest();
  second.seq = 7;  // sequence numbers need not be contiguous
  RunStats stats = stats_with(100);
  stats.status = "partial";
  catalog.record_run(second, "snapshots/0000000007-x.enc", stats);
  EXPECT_EQ(catalog.last_seq(), 7u);

  const std::optional<RunRecord> run = catalog.last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->seq, 7u);
  EXPECT_EQ(run->kind, "backup");
  EXPECT_EQ(run->started_ns, second.started_ns);
  EXPECT_EQ(run->finished_ns, second.finished_ns);
  EXPECT_EQ(run->stats.status, "partial");
  EXPECT_EQ(run->stats.error, "");
  EXPECT_EQ(run->stats.files_new, 101u);
  EXPECT_EQ(run->stats.files_changed, 102u);
  EXPECT_EQ(run->stats.files_deleted, 103u);
  EXPECT_EQ(run->stats.files_unchanged, 104u);
  EXPECT_EQ(run->stats.files_skipped, 105u);
  EXPECT_EQ(run->stats.bytes_scanned, 106u);
  EXPECT_EQ(run->stats.bytes_read, 107u);
  EXPECT_EQ(run->stats.bytes_new, 108u);
  EXPECT_EQ(run->stats.bytes_stored, 109u);
}

TEST(Catalog, FailedRunShowsInLastRun) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
  const CatalogSummary before = catalog.summary();

  catalog.record_failed_run(RunKind::backup, 5000, 6000, "destination full: no space left on device");

  const std::optional<RunRecord> run = catalog.last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->stats.status, "failed");
  EXPECT_EQ(run->stats.error, "destination full: no space left on device");
  EXPECT_EQ(run->kind, "backup");
  EXPECT_EQ(run->seq, 0u);
  EXPECT_EQ(run->started_ns, 5000);
  EXPECT_EQ(run->finished_ns, 6000);
  EXPECT_EQ(run->stats.files_new, 0u);
  EXPECT_EQ(catalog.last_seq(), 1u);
  expect_same_summary(catalog.summary(), before);  // failed runs are not counted as runs

  catalog.record_failed_run(RunKind::clean, 7000, 8000, "locked");
  EXPECT_EQ(catalog.last_run()->kind, "clean");
}

TEST(Catalog, RecordRunWithAnUnknownChunkChangesNothing) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
  const CatalogSummary summary_before = catalog.summary();
  const auto latest_before = catalog.latest_under("/");
  const std::optional<RunRecord> run_before = catalog.last_run();
  ASSERT_TRUE(run_before.has_value());

  // A new pack, a new path and a new version of f1, then a version naming a chunk nobody stored:
  // everything before the bad version must be rolled back too.
  Manifest bad = second_manifest();
  bad.versions.insert(bad.versions.begin(), file_version("/r/new", 1, 100, {chunk(4)}));
  bad.versions.push_back(file_version("/r/zz", 1, 100, {chunk(1), chunk(99)}));
  const Error error = catch_error([&] { catalog.record_run(bad, "snapshots/0000000002-x.enc", stats_with(100)); });
  EXPECT_EQ(error.kind(), ErrorKind::corrupt);
  EXPECT_NE(std::string(error.what()).find(to_hex(chunk(99))), std::string::npos) << error.what();

  expect_same_summary(catalog.summary(), summary_before);
  EXPECT_EQ(catalog.known_chunks(), (ChunkIdSet{chunk(1), chunk(2), chunk(3)}));
  EXPECT_EQ(catalog.last_seq(), 1u);
  EXPECT_EQ(catalog.last_run()->id, run_before->id);
  const auto latest_after = catalog.latest_under("/");
  EXPECT_EQ(sorted_paths(latest_after), sorted_paths(latest_before));
  EXPECT_EQ(latest_after.at("/r/f1").number, 1u);

  // The catalog is still usable: the good manifest goes in afterwards.
  catalog.record_run(second_manifest(), "snapshots/0000000002-x.enc", stats_with(100));
  EXPECT_EQ(catalog.last_seq(), 2u);
  EXPECT_EQ(catalog.summary().runs, 2u);
}

TEST(Catalog, VersionMayReferenceAChunkOfAnEarlierRun) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  Manifest copy = manifest_with_seq(2);  // no packs: every chunk is already stored
  copy.versions = {file_version("/r/copy", 1, 400, {chunk(3)})};
  catalog.record_run(copy, "snapshots/0000000002-x.enc", RunStats{});

  EXPECT_EQ(catalog.file_count_under("/r"), 3u);
  const CatalogSummary summary = catalog.summary();
  EXPECT_EQ(summary.chunks, 3u);
  EXPECT_EQ(summary.unique_bytes, 200u + 300u + 400u);
  EXPECT_EQ(summary.original_bytes, 500u + 400u + 400u);
}

TEST(Catalog, TwoRunsWithoutManifestCanBothBeRecorded) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));

  RunStats unchanged;
  unchanged.files_unchanged = 4;
  Manifest nothing = manifest_with_seq(0);  // a run that changed nothing: no packs, no versions
  catalog.record_run(nothing, "", unchanged);
  catalog.record_run(nothing, "", unchanged);

  EXPECT_EQ(catalog.summary().runs, 3u);
  EXPECT_EQ(catalog.last_seq(), 1u);
  const std::optional<RunRecord> run = catalog.last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->seq, 0u);
  EXPECT_EQ(run->stats.files_unchanged, 4u);
  EXPECT_EQ(run->stats.status, "ok");
}

TEST(Catalog, RepositoryIdCanBeSetAndReplaced) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  EXPECT_EQ(catalog.repository_id(), "");
  catalog.set_repository_id("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(catalog.repository_id(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  catalog.set_repository_id("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  EXPECT_EQ(catalog.repository_id(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
}

// ---- versions_of, state_at, chunks_of

std::vector<std::string> paths_of(const std::vector<VersionRecord>& versions) {
  std::vector<std::string> paths;
  for (const VersionRecord& version : versions) {
    paths.push_back(version.path);
  }
  return paths;
}

const VersionRecord* find_path(const std::vector<VersionRecord>& versions, const std::string& path) {
  for (const VersionRecord& version : versions) {
    if (version.path == path) {
      return &version;
    }
  }
  return nullptr;
}

TEST(Catalog, VersionsOfListsEveryVersionOldestFirst) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  record_both(catalog);
  const std::int64_t first_finished = manifest_with_seq(1).finished_ns;
  const std::int64_t second_finished = manifest_with_seq(2).finished_ns;

  const std::vector<VersionRecord> f1 = catalog.versions_of("/r/f1");
  ASSERT_EQ(f1.size(), 2u);
  const ManifestVersion want1 = file_version("/r/f1", 1, 500, {});
  const ManifestVersion want2 = file_version("/r/f1", 2, 600, {});
  EXPECT_EQ(f1[0].path, "/r/f1");
  EXPECT_EQ(f1[0].number, 1u);
  EXPECT_EQ(f1[0].type, EntryType::file);
  EXPECT_EQ(f1[0].size, 500u);
  EXPECT_EQ(f1[0].stored_size, 110u + 120u);
  EXPECT_EQ(f1[0].mtime_ns, want1.mtime_ns);
  EXPECT_EQ(f1[0].mode, 0644u);
  EXPECT_EQ(f1[0].sha256, want1.sha256);
  EXPECT_EQ(f1[0].link_target, "");
  EXPECT_EQ(f1[0].run_finished_ns, first_finished);
  EXPECT_EQ(f1[1].path, "/r/f1");
  EXPECT_EQ(f1[1].number, 2u);
  EXPECT_EQ(f1[1].size, 600u);
  EXPECT_EQ(f1[1].stored_size, 110u + 120u + 50u);  // shared chunks counted fully
  EXPECT_EQ(f1[1].mtime_ns, want2.mtime_ns);
  EXPECT_EQ(f1[1].sha256, want2.sha256);
  EXPECT_EQ(f1[1].run_finished_ns, second_finished);
  EXPECT_NE(f1[0].id, f1[1].id);

  const std::vector<VersionRecord> f2 = catalog.versions_of("/r/f2");  // the deletion marker too
  ASSERT_EQ(f2.size(), 2u);
  EXPECT_EQ(f2[0].type, EntryType::file);
  EXPECT_EQ(f2[0].number, 1u);
  EXPECT_EQ(f2[1].type, EntryType::deleted);
  EXPECT_EQ(f2[1].number, 2u);
  EXPECT_EQ(f2[1].sha256, Digest{});
  EXPECT_EQ(f2[1].run_finished_ns, second_finished);

  const std::vector<VersionRecord> link = catalog.versions_of("/r/l");
  ASSERT_EQ(link.size(), 1u);
  EXPECT_EQ(link[0].type, EntryType::symlink);
  EXPECT_EQ(link[0].link_target, "f1");
  EXPECT_EQ(link[0].size, 2u);
  EXPECT_EQ(link[0].mode, 0777u);
  EXPECT_EQ(link[0].sha256, Digest{});

  const std::vector<VersionRecord> d = catalog.versions_of("/r/d");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].type, EntryType::directory);
  EXPECT_EQ(d[0].mode, 0755u);
  EXPECT_EQ(d[0].mtime_ns, directory_version("/r/d", 1).mtime_ns);
  EXPECT_EQ(d[0].stored_size, 0u);

  EXPECT_TRUE(catalog.versions_of("/r/f").empty());   // not a prefix match
  EXPECT_TRUE(catalog.versions_of("/r/f1/").empty());
  EXPECT_TRUE(catalog.versions_of("/nowhere").empty());
}

TEST(Catalog, ForEachHistoryGivesOnePathAtATimeInByteOrder) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  record_both(catalog);
  Manifest third = manifest_with_seq(3);  // names that sort around "/r/f1" ("-" and "." before "/")
  third.versions = {file_version("/r/f1-b", 1, 400, {chunk(3)}), directory_version("/r/f1.d", 1),
                    file_version("/r/f2", 3, 400, {chunk(3)})};
  catalog.record_run(third, "snapshots/0000000003-x.enc", RunStats{});

  std::vector<std::string> paths;
  std::vector<std::vector<std::uint32_t>> numbers;
  catalog.for_each_history([&](const std::vector<VersionRecord>& history) {
    paths.push_back(history.front().path);
    numbers.emplace_back();
    for (const VersionRecord& version : history) {
      EXPECT_EQ(version.path, history.front().path);
      numbers.back().push_back(version.number);
    }
  });
  EXPECT_EQ(paths, (std::vector<std::string>{"/r", "/r/d", "/r/f1", "/r/f1-b", "/r/f1.d", "/r/f2", "/r/l"}));
  EXPECT_EQ(numbers, (std::vector<std::vector<std::uint32_t>>{{1}, {1}, {1, 2}, {1}, {1}, {1, 2, 3}, {1}}));
  EXPECT_EQ(catalog.all_versions().size(), 10U);
}

TEST(Catalog, VersionsOfOrdersByNumberNotByInsertion) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  Manifest later = manifest_with_seq(2);
  later.versions = {file_version("/r/f2", 3, 400, {chunk(3)}), deletion_marker("/r/f2", 2)};  // same run
  catalog.record_run(later, "snapshots/0000000002-x.enc", RunStats{});

  const std::vector<VersionRecord> f2 = catalog.versions_of("/r/f2");
  ASSERT_EQ(f2.size(), 3u);
  EXPECT_EQ(f2[0].number, 1u);
  EXPECT_EQ(f2[1].number, 2u);
  EXPECT_EQ(f2[1].type, EntryType::deleted);
  EXPECT_EQ(f2[2].number, 3u);
  EXPECT_EQ(f2[2].type, EntryType::file);
}

// Issue 11, item 7: two writers at once (clocks apart, a resume from suspend) each recorded
// version 2 of /r/f1, in manifests 2 and 3. Replaying them must not fail on the catalog's
// UNIQUE(file_id, number): the later manifest's version becomes 3, the same on every rebuild.
TEST(Catalog, AVersionNumberRecordedTwiceMovesTheLaterOneUp) {
  TempDir dir("catalog_test_");
  Manifest other_writer = manifest_with_seq(3);
  other_writer.versions = {file_version("/r/f1", 2, 700, {chunk(3)}), file_version("/r/f2", 2, 100, {chunk(1)})};
  for (const char* name : {"backups.db", "rebuilt.db"}) {
    Catalog catalog(dir / name);
    record_both(catalog);  // /r/f1 versions 1 and 2, /r/f2 version 1 and its deletion (2)
    EXPECT_NO_THROW(catalog.record_run(other_writer, "snapshots/0000000003-x.enc", RunStats{}));
    EXPECT_EQ(catalog.last_seq(), 3u);

    const std::vector<VersionRecord> f1 = catalog.versions_of("/r/f1");
    ASSERT_EQ(f1.size(), 3u) << name;
    EXPECT_EQ(f1[1].number, 2u);
    EXPECT_EQ(f1[1].size, 600u);  // the first writer's version 2 keeps its number
    EXPECT_EQ(f1[2].number, 3u);
    EXPECT_EQ(f1[2].size, 700u);  // the second writer's, moved up
    EXPECT_EQ(f1[2].sha256, file_version("/r/f1", 2, 700, {}).sha256);
    EXPECT_EQ(f1[2].stored_size, 130u);
    EXPECT_EQ(catalog.latest_under("/r").at("/r/f1").number, 3u);

    const std::vector<VersionRecord> f2 = catalog.versions_of("/r/f2");
    ASSERT_EQ(f2.size(), 3u) << name;
    EXPECT_EQ(f2[1].type, EntryType::deleted);
    EXPECT_EQ(f2[2].number, 3u);
    EXPECT_EQ(f2[2].type, EntryType::file);
  }
  // A version whose number is free keeps it, even below the path's highest (as before).
  Catalog catalog(dir / "free.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  Manifest later = manifest_with_seq(2);
  later.versions = {file_version("/r/f1", 5, 400, {chunk(3)}), file_version("/r/f1", 3, 400, {chunk(3)})};
  catalog.record_run(later, "snapshots/0000000002-x.enc", RunStats{});
  std::vector<std::uint32_t> numbers;
  for (const VersionRecord& version : catalog.versions_of("/r/f1")) {
    numbers.push_back(version.number);
  }
  EXPECT_EQ(numbers, (std::vector<std::uint32_t>{1, 3, 5}));
}

// Two first backups of one tree at once (two machines, clocks apart): both recorded version 1 of
// every path. The later manifest's versions become 2, and the path has one row.
TEST(Catalog, AFirstVersionRecordedTwiceMovesTheLaterOneUp) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  Manifest again = manifest_with_seq(2);
  again.versions = {file_version("/r/f1", 1, 900, {chunk(3)}), file_version("/r/new", 1, 400, {chunk(3)})};
  catalog.record_run(again, "snapshots/0000000002-x.enc", RunStats{});
  const std::vector<VersionRecord> f1 = catalog.versions_of("/r/f1");
  ASSERT_EQ(f1.size(), 2u);
  EXPECT_EQ(f1[0].size, 500u);
  EXPECT_EQ(f1[1].number, 2u);
  EXPECT_EQ(f1[1].size, 900u);
  EXPECT_EQ(catalog.latest_under("/r").at("/r/f1").number, 2u);
  EXPECT_EQ(catalog.latest_under("/r").at("/r/new").number, 1u);
  EXPECT_EQ(catalog.versions_of("/r/new").size(), 1u);
}

TEST(Catalog, StateAtBeforeBetweenAndAfterRuns) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  record_both(catalog);
  const std::int64_t first_finished = manifest_with_seq(1).finished_ns;    // 1500
  const std::int64_t second_finished = manifest_with_seq(2).finished_ns;  // 2500
  const std::vector<std::string> all = {"/r", "/r/d", "/r/f1", "/r/f2", "/r/l"};

  // Before the first run finished (even after it started): nothing.
  EXPECT_TRUE(catalog.state_at("/r", 0).empty());
  EXPECT_TRUE(catalog.state_at("/r", manifest_with_seq(1).started_ns).empty());
  EXPECT_TRUE(catalog.state_at("/r", first_finished - 1).empty());
  EXPECT_TRUE(catalog.state_at("/r", std::numeric_limits<std::int64_t>::min()).empty());

  // At the first run's finish and until the second's: the first state.
  for (const std::int64_t at : {first_finished, first_finished + 1, second_finished - 1}) {
    const std::vector<VersionRecord> state = catalog.state_at("/r", at);
    EXPECT_EQ(paths_of(state), all) << at;  // sorted by path
    for (const VersionRecord& version : state) {
      EXPECT_EQ(version.number, 1u) << version.path;
      EXPECT_EQ(version.run_finished_ns, first_finished) << version.path;
    }
    const VersionRecord* f1 = find_path(state, "/r/f1");
    ASSERT_NE(f1, nullptr);
    EXPECT_EQ(f1->size, 500u);
    EXPECT_EQ(f1->sha256, file_version("/r/f1", 1, 500, {}).sha256);
    const VersionRecord* f2 = find_path(state, "/r/f2");
    ASSERT_NE(f2, nullptr);
    EXPECT_EQ(f2->type, EntryType::file);
  }

  // From the second run's finish on: f1 v2, and f2's deletion marker (returned, not dropped).
  for (const std::int64_t at : {second_finished, second_finished + 1'000'000, std::numeric_limits<std::int64_t>::max()}) {
    const std::vector<VersionRecord> state = catalog.state_at("/r", at);
    EXPECT_EQ(paths_of(state), all) << at;
    const VersionRecord* f1 = find_path(state, "/r/f1");
    ASSERT_NE(f1, nullptr);
    EXPECT_EQ(f1->number, 2u);
    EXPECT_EQ(f1->size, 600u);
    EXPECT_EQ(f1->run_finished_ns, second_finished);
    const VersionRecord* f2 = find_path(state, "/r/f2");
    ASSERT_NE(f2, nullptr);
    EXPECT_EQ(f2->type, EntryType::deleted);
    EXPECT_EQ(f2->number, 2u);
    const VersionRecord* d = find_path(state, "/r/d");  // unchanged paths keep their old version
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->number, 1u);
    EXPECT_EQ(d->run_finished_ns, first_finished);
  }

  // The ids agree with versions_of.
  const std::vector<VersionRecord> versions = catalog.versions_of("/r/f1");
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(find_path(catalog.state_at("/r", first_finished), "/r/f1")->id, versions[0].id);
  EXPECT_EQ(find_path(catalog.state_at("/r", second_finished), "/r/f1")->id, versions[1].id);

  // A single path as the root; a failed run recorded later changes nothing.
  catalog.record_failed_run(RunKind::backup, 3000, 4000, "failed");
  EXPECT_EQ(paths_of(catalog.state_at("/r/f1", second_finished)), std::vector<std::string>{"/r/f1"});
  EXPECT_EQ(catalog.state_at("/r", 5000).size(), all.size());
}

TEST(Catalog, StateAtRespectsTheRootBoundary) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  Manifest manifest = manifest_with_seq(1);
  for (const char* path : {"/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b.txt", "/a/b0", "/a/bc", "/a/bc/d", "/a/b-x",
                           "/a/b/~z", "/z"}) {
    manifest.versions.push_back(directory_version(path, 1));
  }
  catalog.record_run(manifest, "snapshots/0000000001-x.enc", RunStats{});
  const std::int64_t at = std::numeric_limits<std::int64_t>::max();

  const std::vector<std::string> under_ab = {"/a/b", "/a/b/c", "/a/b/c/d", "/a/b/~z"};
  EXPECT_EQ(paths_of(catalog.state_at("/a/b", at)), under_ab);
  const std::vector<std::string> under_abc = {"/a/bc", "/a/bc/d"};
  EXPECT_EQ(paths_of(catalog.state_at("/a/bc", at)), under_abc);
  EXPECT_EQ(paths_of(catalog.state_at("/a/b/c/d", at)), std::vector<std::string>{"/a/b/c/d"});
  EXPECT_TRUE(catalog.state_at("/a/b/c/d/e", at).empty());
  EXPECT_TRUE(catalog.state_at("/q", at).empty());
  EXPECT_EQ(catalog.state_at("/", at).size(), manifest.versions.size());
  EXPECT_EQ(catalog.state_at("/a", at).size(), manifest.versions.size() - 1);  // all but /z
  const std::vector<VersionRecord> everything = catalog.state_at("/", at);
  EXPECT_TRUE(std::is_sorted(everything.begin(), everything.end(),
                             [](const VersionRecord& x, const VersionRecord& y) { return x.path < y.path; }));
}

TEST(Catalog, ChunksOfReturnsChunksInFileOrderWithTheirPacks) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  record_both(catalog);
  const std::vector<VersionRecord> f1 = catalog.versions_of("/r/f1");
  ASSERT_EQ(f1.size(), 2u);

  // Version 2 reuses the chunks of run 1 and adds one from run 2's pack.
  const std::vector<ChunkLocation> chunks = catalog.chunks_of(f1[1].id);
  ASSERT_EQ(chunks.size(), 3u);
  const std::vector<ChunkId> ids = {chunk(1), chunk(2), chunk(4)};
  const std::vector<std::string> packs = {pack_name("pack one"), pack_name("pack one"), pack_name("pack three")};
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].entry.id, ids[i]) << i;
    EXPECT_EQ(chunks[i].pack, packs[i]) << i;
    EXPECT_EQ(chunks[i].entry.flags, kBlobCompressed) << i;
  }
  EXPECT_EQ(chunks[0].entry.offset, 0u);
  EXPECT_EQ(chunks[0].entry.length, 110u);
  EXPECT_EQ(chunks[0].entry.raw_length, 200u);
  EXPECT_EQ(chunks[1].entry.offset, 110u);
  EXPECT_EQ(chunks[1].entry.length, 120u);
  EXPECT_EQ(chunks[1].entry.raw_length, 300u);
  EXPECT_EQ(chunks[2].entry.offset, 0u);
  EXPECT_EQ(chunks[2].entry.length, 50u);
  EXPECT_EQ(chunks[2].entry.raw_length, 100u);

  const std::vector<ChunkLocation> first = catalog.chunks_of(f1[0].id);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].entry.id, chunk(1));
  EXPECT_EQ(first[1].entry.id, chunk(2));

  const std::vector<VersionRecord> f2 = catalog.versions_of("/r/f2");
  ASSERT_EQ(f2.size(), 2u);
  const std::vector<ChunkLocation> f2_chunks = catalog.chunks_of(f2[0].id);
  ASSERT_EQ(f2_chunks.size(), 1u);
  EXPECT_EQ(f2_chunks[0].entry.id, chunk(3));
  EXPECT_EQ(f2_chunks[0].pack, pack_name("pack two"));
  EXPECT_TRUE(catalog.chunks_of(f2[1].id).empty());  // the deletion marker
  EXPECT_TRUE(catalog.chunks_of(catalog.versions_of("/r/d")[0].id).empty());
  EXPECT_TRUE(catalog.chunks_of(catalog.versions_of("/r/l")[0].id).empty());
  EXPECT_TRUE(catalog.chunks_of(987654321).empty());  // unknown version id
}

TEST(Catalog, ChunksOfKeepsRepeatedChunksInOrder) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", RunStats{});
  Manifest repeat = manifest_with_seq(2);  // a file whose content repeats: c2 c1 c2 c2
  repeat.versions = {file_version("/r/rep", 1, 1100, {chunk(2), chunk(1), chunk(2), chunk(2)})};
  catalog.record_run(repeat, "snapshots/0000000002-x.enc", RunStats{});

  const std::vector<VersionRecord> versions = catalog.versions_of("/r/rep");
  ASSERT_EQ(versions.size(), 1u);
  const std::vector<ChunkLocation> chunks = catalog.chunks_of(versions[0].id);
  ASSERT_EQ(chunks.size(), 4u);
  const std::vector<ChunkId> ids = {chunk(2), chunk(1), chunk(2), chunk(2)};
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].entry.id, ids[i]) << i;
    EXPECT_EQ(chunks[i].pack, pack_name("pack one")) << i;
  }
}

}  // namespace
}  // namespace mybackup

namespace mybackup {
namespace {

TEST(Catalog, CountsTheEncryptionsOfTheRepositoryKey) {
  testing::TempDir dir("catalog_encryptions_");
  Catalog catalog(dir / "backups.db");
  EXPECT_EQ(catalog.encryptions(), 0U);
  Manifest backup;
  backup.seq = 1;
  backup.packs = {{pack_name("p1"), 100, {blob(chunk(1), 0, 10, 10), blob(chunk(2), 10, 10, 10)}},
                  {pack_name("p2"), 100, {blob(chunk(3), 0, 10, 10)}}};
  catalog.record_run(backup, "snapshots/1", RunStats{});
  EXPECT_EQ(catalog.encryptions(), 1U + 2 + 3);  // the manifest, two pack headers, three blobs

  Manifest nothing;  // a run that wrote no manifest encrypted nothing
  catalog.record_run(nothing, "", RunStats{});
  EXPECT_EQ(catalog.encryptions(), 6U);

  Manifest clean;  // copies blobs as they are: only its pack header and itself are new
  clean.kind = RunKind::clean;
  clean.seq = 2;
  clean.packs = {{pack_name("p3"), 100, {blob(chunk(1), 0, 10, 10), blob(chunk(2), 10, 10, 10)}}};
  clean.deleted_packs = {pack_name("p1")};
  catalog.record_run(clean, "snapshots/2", RunStats{});
  EXPECT_EQ(catalog.encryptions(), 8U);
}


// ---------------------------------------------------------------- RunRecorder

/// The second run recorded as a backup records it while it goes: chunks placed in a pack that
/// is stored later, versions offered as they are read (one before its chunk is placed).
void record_second_as_it_goes(Catalog& catalog, const RunStats& stats) {
  RunRecorder recorder(catalog);
  const Manifest second = second_manifest();
  const ManifestVersion& new_f1 = second.versions[0];  // lists c4, not placed yet
  EXPECT_FALSE(recorder.add_version(new_f1));
  EXPECT_EQ(recorder.missing_chunk(), chunk(4));
  EXPECT_TRUE(recorder.add_version(second.versions[1]));  // the deletion lists no chunk
  const std::int64_t pack = recorder.pack_started();
  recorder.chunk_placed(pack, second.packs[0].blobs[0]);
  EXPECT_TRUE(recorder.add_version(new_f1));
  recorder.pack_stored(pack, second.packs[0].name, second.packs[0].size);
  recorder.finish(second, "snapshots/0000000002-x.enc", stats);
}

/// The second run half done: its pack's chunk placed (the pack not stored) and /r/f1's new
/// version recorded.
void start_second_run(RunRecorder& recorder) {
  const Manifest second = second_manifest();
  recorder.chunk_placed(recorder.pack_started(), second.packs[0].blobs[0]);
  EXPECT_TRUE(recorder.add_version(second.versions[0]));
}

TEST(RunRecorder, RecordsWhatRecordRunRecordsFromTheSameManifest) {
  TempDir dir("catalog_test_");
  Catalog whole(dir / "whole.db");
  Catalog live(dir / "live.db");
  for (Catalog* catalog : {&whole, &live}) {
    catalog->record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
  }
  whole.record_run(second_manifest(), "snapshots/0000000002-x.enc", stats_with(100));
  record_second_as_it_goes(live, stats_with(100));

  expect_same_summary(live.summary(), whole.summary());
  EXPECT_EQ(live.known_chunks(), whole.known_chunks());
  EXPECT_EQ(live.packs_in_use(), whole.packs_in_use());
  EXPECT_EQ(live.encryptions(), whole.encryptions());
  EXPECT_EQ(live.last_seq(), 2u);
  const std::optional<RunRecord> run = live.last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->seq, 2u);
  EXPECT_EQ(run->kind, "backup");
  EXPECT_EQ(run->started_ns, whole.last_run()->started_ns);
  EXPECT_EQ(run->finished_ns, whole.last_run()->finished_ns);
  EXPECT_EQ(run->stats.files_new, 101u);
  EXPECT_EQ(run->stats.bytes_stored, 109u);
  for (const std::string path : {"/r", "/r/d", "/r/f1", "/r/f2", "/r/l"}) {
    const std::vector<VersionRecord> a = live.versions_of(path);
    const std::vector<VersionRecord> b = whole.versions_of(path);
    ASSERT_EQ(a.size(), b.size()) << path;
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].number, b[i].number) << path;
      EXPECT_EQ(a[i].type, b[i].type) << path;
      EXPECT_EQ(a[i].size, b[i].size) << path;
      EXPECT_EQ(a[i].stored_size, b[i].stored_size) << path;
      EXPECT_EQ(a[i].sha256, b[i].sha256) << path;
      EXPECT_EQ(a[i].run_finished_ns, b[i].run_finished_ns) << path;
      std::vector<ChunkId> chunks_a;
      std::vector<ChunkId> chunks_b;
      for (const ChunkLocation& chunk : live.chunks_of(a[i].id)) {
        chunks_a.push_back(chunk.entry.id);
      }
      for (const ChunkLocation& chunk : whole.chunks_of(b[i].id)) {
        chunks_b.push_back(chunk.entry.id);
      }
      EXPECT_EQ(chunks_a, chunks_b) << path;
    }
  }
}

/// A catalog holding the first run, and its summary then.
class RunRecorderAfterFirstRun : public ::testing::Test {
 protected:
  RunRecorderAfterFirstRun() {
    catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
    before = catalog.summary();
  }
  TempDir dir{"catalog_test_"};
  Catalog catalog{dir / "backups.db"};
  CatalogSummary before;
};

TEST_F(RunRecorderAfterFirstRun, NothingShowsBeforeFinishAndAnAbandonedRunLeavesNoTrace) {
  {
    RunRecorder recorder(catalog);
    start_second_run(recorder);
    EXPECT_TRUE(recorder.add_version(file_version("/r/brand-new", 1, 100, {chunk(1)})));
    // Another connection (status, a restore) sees the catalog as it was.
    Catalog reader(dir / "backups.db");
    EXPECT_EQ(reader.versions_of("/r/f1").size(), 1u);
    EXPECT_TRUE(reader.versions_of("/r/brand-new").empty());
    expect_same_summary(reader.summary(), before);
  }  // a failed or interrupted run: rolled back
  expect_same_summary(catalog.summary(), before);
  EXPECT_EQ(catalog.known_chunks(), (ChunkIdSet{chunk(1), chunk(2), chunk(3)}));
  EXPECT_TRUE(catalog.versions_of("/r/brand-new").empty());
  EXPECT_EQ(catalog.last_seq(), 1u);
  // The write lock went with it: the next run records.
  record_second_as_it_goes(catalog, stats_with(100));
  EXPECT_EQ(catalog.versions_of("/r/f1").size(), 2u);
  EXPECT_EQ(catalog.summary().runs, 2u);
}

TEST_F(RunRecorderAfterFirstRun, APackNeverStoredFailsTheRunAndRecordsNothing) {
  {
    RunRecorder recorder(catalog);
    start_second_run(recorder);
    EXPECT_EQ(catch_error([&] { recorder.finish(second_manifest(), "snapshots/0000000002-x.enc", stats_with(100)); }).kind(),
              ErrorKind::corrupt);
  }
  expect_same_summary(catalog.summary(), before);
  EXPECT_EQ(catalog.last_seq(), 1u);
  EXPECT_EQ(catalog.versions_of("/r/f1").size(), 1u);
}

TEST(RunRecorder, ARunThatChangedNothingIsRecordedWithoutAManifest) {
  TempDir dir("catalog_test_");
  Catalog catalog(dir / "backups.db");
  catalog.record_run(first_manifest(), "snapshots/0000000001-x.enc", stats_with(0));
  RunRecorder recorder(catalog);
  Manifest nothing = manifest_with_seq(0);
  recorder.finish(nothing, "", stats_with(7));
  EXPECT_EQ(catalog.summary().runs, 2u);
  EXPECT_EQ(catalog.last_seq(), 1u);
  EXPECT_EQ(catalog.last_run()->stats.files_unchanged, 11u);
  EXPECT_EQ(catch_error([&] { recorder.finish(nothing, "", stats_with(7)); }).kind(), ErrorKind::usage);
}

TEST(CatalogJson, SummarySavingsNeverGoNegative) {
  CatalogSummary summary;
  summary.original_bytes = 1000;
  summary.unique_bytes = 400;
  summary.compressed_bytes = 100;
  nlohmann::ordered_json json = summary;
  EXPECT_EQ(json.at("saved_by_dedup_bytes"), 600);
  EXPECT_EQ(json.at("saved_by_compression_bytes"), 300);
  EXPECT_FALSE(json.contains("compressed_bytes"));
  // Incompressible data grows a little when encrypted: compression saved nothing, not -16.
  summary.compressed_bytes = 416;
  json = summary;
  EXPECT_EQ(json.at("saved_by_compression_bytes"), 0);
}

TEST(CatalogJson, RunRecordShowsTheCountsOfItsKind) {
  RunRecord run;
  run.kind = "backup";
  run.started_ns = 1'700'000'000'000'000'000;
  run.finished_ns = run.started_ns + 1'500'000'000;
  run.stats.files_new = 3;
  run.stats.files_deleted = 2;
  const nlohmann::ordered_json backup = run;
  EXPECT_EQ(backup.at("kind"), "backup");
  EXPECT_EQ(backup.at("started"), "2023-11-14T22:13:20Z");
  EXPECT_EQ(backup.at("seconds"), 1.5);
  EXPECT_EQ(backup.at("files_new"), 3);
  EXPECT_EQ(backup.at("files_deleted"), 2);
  EXPECT_FALSE(backup.contains("versions_removed"));

  run.kind = "clean";  // a clean records the versions it removed as files_deleted
  const nlohmann::ordered_json clean = run;
  EXPECT_EQ(clean.at("versions_removed"), 2);
  EXPECT_FALSE(clean.contains("files_new"));
  EXPECT_FALSE(clean.contains("files_deleted"));
}

TEST(CatalogJson, VersionRecordNamesItsTypeAndOnlyItsOwnDetail) {
  VersionRecord file;
  file.number = 4;
  file.type = EntryType::file;
  file.sha256[0] = 0xab;
  const nlohmann::ordered_json file_json = file;
  EXPECT_EQ(file_json.at("type"), "file");
  EXPECT_EQ(file_json.at("sha256").get<std::string>().substr(0, 4), "ab00");
  EXPECT_FALSE(file_json.contains("target"));
  EXPECT_FALSE(file_json.contains("path")) << "the listing names the path once";

  VersionRecord link;
  link.type = EntryType::symlink;
  link.link_target = "../elsewhere";
  const nlohmann::ordered_json link_json = link;
  EXPECT_EQ(link_json.at("type"), "symlink");
  EXPECT_EQ(link_json.at("target"), "../elsewhere");
  EXPECT_FALSE(link_json.contains("sha256"));
}

}  // namespace
}  // namespace mybackup
