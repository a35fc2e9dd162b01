#include "mybackup/engine/backup.hpp"

#include "mybackup/storage/backend.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/catalog/replay.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/repository.hpp"

#include <gtest/gtest.h>

#include "fault_backend.hpp"
#include "fault_env.hpp"
#include "test_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mybackup {
namespace {

using testing::FaultEnv;
using testing::FaultInjectingBackend;
using testing::expect_same_summary;
using testing::TempDir;

// The fixture's repository cuts chunks of 128 KiB .. 2 MiB (256 KiB on average: most chunks of a
// large file go through the compressor threads, small files are sealed inline by the readers)
// and closes packs at 1 MiB. The engine must use the repository's parameters, so "several
// chunks" takes a file above max_size, and a few MiB make several packs.
constexpr std::size_t kBigSize = 3 * 1024 * 1024 + 12345;

RepositoryOptions fixture_options() {
  RepositoryOptions options;
  options.chunker = RepositoryOptions::chunker_for(256 * 1024);
  options.pack_target_size = 1024 * 1024;
  return options;
}

// ---- files

void make_dir(const std::string& path) { ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path; }

void make_symlink(const std::string& target, const std::string& path) {
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path;
}

void write_bytes(const std::string& path, const Bytes& data) {
  testing::write_text_file(path, std::string(as_text(data)));
}

void write_random(const std::string& path, std::size_t size, std::uint32_t seed) {
  write_bytes(path, testing::random_data(size, seed));
}

Bytes read_bytes(const std::string& path) { return testing::to_bytes(testing::read_text_file(path)); }

std::int64_t mtime_ns_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

/// Sets the modification time to `seconds` after the epoch (plus a few nanoseconds).
void set_mtime(const std::string& path, std::int64_t seconds) {
  const timespec times[2] = {{seconds, 0}, {seconds, 123}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

/// Every entry below `directory`, relative, with its size ("dir/" for directories), for
/// "nothing was written" comparisons.
std::map<std::string, std::uintmax_t> listing(const std::string& directory) {
  std::map<std::string, std::uintmax_t> entries;
  std::error_code error;
  if (!std::filesystem::exists(directory, error)) {
    return entries;
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    const std::string relative = std::filesystem::relative(entry.path(), directory).string();
    if (entry.is_directory()) {
      entries[relative + "/"] = 0;
    } else {
      entries[relative] = entry.file_size();
    }
  }
  return entries;
}

std::uint64_t total_size_under(const std::string& directory) {
  std::uint64_t total = 0;
  for (const auto& [path, size] : listing(directory)) {
    total += size;
  }
  return total;
}

// ---- catalog and destination views

void expect_same_latest(const std::unordered_map<std::string, LatestVersion>& a,
                        const std::unordered_map<std::string, LatestVersion>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [path, version] : a) {
    const auto other = b.find(path);
    ASSERT_NE(other, b.end()) << path;
    EXPECT_EQ(version.number, other->second.number) << path;
    EXPECT_EQ(version.type, other->second.type) << path;
    EXPECT_EQ(version.size, other->second.size) << path;
    EXPECT_EQ(version.mtime_ns, other->second.mtime_ns) << path;
    EXPECT_EQ(version.mode, other->second.mode) << path;
    EXPECT_EQ(version.inode, other->second.inode) << path;
    EXPECT_EQ(version.link_target, other->second.link_target) << path;
  }
}

void expect_same_counts(const RunStats& a, const RunStats& b) {
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.files_new, b.files_new);
  EXPECT_EQ(a.files_changed, b.files_changed);
  EXPECT_EQ(a.files_deleted, b.files_deleted);
  EXPECT_EQ(a.files_unchanged, b.files_unchanged);
  EXPECT_EQ(a.files_skipped, b.files_skipped);
  EXPECT_EQ(a.bytes_scanned, b.bytes_scanned);
  EXPECT_EQ(a.bytes_read, b.bytes_read);
  EXPECT_EQ(a.bytes_new, b.bytes_new);
  EXPECT_EQ(a.bytes_stored, b.bytes_stored);
}

/// The latest version of every path according to the manifests on the destination (replayed in order).
std::map<std::string, ManifestVersion> versions_on_destination(const Repository& repo) {
  std::map<std::string, ManifestVersion> latest;
  for (const std::string& key : repo.manifest_keys()) {
    for (ManifestVersion& version : repo.read_manifest(key).versions) {
      latest[version.path] = std::move(version);
    }
  }
  return latest;
}

/// Where every chunk is, according to the manifests on the destination.
std::map<ChunkId, ChunkLocation> chunks_on_destination(const Repository& repo) {
  std::map<ChunkId, ChunkLocation> where;
  for (const std::string& key : repo.manifest_keys()) {
    for (const ManifestPack& pack : repo.read_manifest(key).packs) {
      for (const PackEntry& entry : pack.blobs) {
        where.emplace(entry.id, ChunkLocation{pack.name, entry});
      }
    }
  }
  return where;
}

/// Reassembles every regular file below `root` from the destination alone (manifests, packs) and
/// compares it with the file on disk, byte for byte and by SHA-256; also checks that the catalog
/// agrees with the manifests. Returns the number of files checked.
std::size_t expect_restorable(const Repository& repo, const Catalog& catalog, const std::string& root) {
  const std::map<std::string, ManifestVersion> versions = versions_on_destination(repo);
  const std::map<ChunkId, ChunkLocation> where = chunks_on_destination(repo);
  const auto latest = catalog.latest_under(root);
  const ChunkIdSet known = catalog.known_chunks();
  std::size_t checked = 0;
  for (const auto& [path, version] : versions) {
    if (path != root && path.rfind(root + "/", 0) != 0) {
      continue;
    }
    const auto in_catalog = latest.find(path);
    EXPECT_NE(in_catalog, latest.end()) << path;
    if (in_catalog != latest.end()) {
      EXPECT_EQ(in_catalog->second.number, version.number) << path;
      EXPECT_EQ(in_catalog->second.type, version.type) << path;
    }
    if (version.type != EntryType::file) {
      continue;
    }
    Bytes restored;
    for (const ChunkId& id : version.chunks) {
      EXPECT_EQ(known.count(id), 1u) << path << ": chunk unknown to the catalog";
      const auto found = where.find(id);
      if (found == where.end()) {
        ADD_FAILURE() << path << ": chunk " << to_hex(id) << " is in no pack of any manifest";
        return checked;
      }
      const Bytes chunk = repo.read_chunk(found->second.pack, found->second.entry);
      restored.insert(restored.end(), chunk.begin(), chunk.end());
    }
    const Bytes original = read_bytes(path);
    EXPECT_EQ(restored.size(), original.size()) << path;
    EXPECT_TRUE(restored == original) << path << ": restored bytes differ";
    EXPECT_EQ(Sha256::hash(restored), Sha256::hash(original)) << path;
    EXPECT_EQ(version.sha256, Sha256::hash(original)) << path << ": recorded SHA-256 is wrong";
    EXPECT_EQ(version.size, original.size()) << path;
    ++checked;
  }
  return checked;
}

std::set<std::string> paths_of(const std::unordered_map<std::string, LatestVersion>& latest) {
  std::set<std::string> paths;
  for (const auto& [path, version] : latest) {
    paths.insert(path);
  }
  return paths;
}

// ---- the fixture: a source tree, a repository on a (fault-injecting) local backend, a catalog

class Backup : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dir(src_);
    open_repository();
    catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
  }

  void open_repository() {
    auto owned = std::make_unique<FaultInjectingBackend>(make_local_backend(dest_));
    faults_ = owned.get();
    repo_ = Repository::open(std::move(owned), key_, CreateIfMissing::yes, fixture_options());
  }

  BackupTarget target() const { return BackupTarget::writing_to(*repo_); }

  BackupOptions options(std::vector<BackupSource> sources = {}) const {
    BackupOptions options;
    options.sources = sources.empty() ? std::vector<BackupSource>{{src_, {}}} : std::move(sources);
    options.compression_level = 3;
    options.threads = 2;
    return options;
  }

  BackupReport backup() { return run_backup(*catalog_, target(), options()); }

  /// A backup that reads the sources through env_ (the faults the test set up).
  BackupReport faulty_backup() {
    BackupOptions faulty = options();
    faulty.env = &env_;
    return run_backup(*catalog_, target(), faulty);
  }

  std::string src(const std::string& relative) const { return src_ + "/" + relative; }

  /// src/{empty.txt, small.txt, medium.bin, sub/, sub/nested.txt, emptydir/, link -> small.txt}
  /// plus big.bin (> 3 MiB) when `with_big`.
  void make_tree(bool with_big) {
    testing::write_text_file(src("empty.txt"), "");
    testing::write_text_file(src("small.txt"), "hello, backup");
    write_random(src("medium.bin"), 100 * 1024 + 7, 2);
    make_dir(src("sub"));
    testing::write_text_file(src("sub/nested.txt"), "nested file content\n");
    make_dir(src("emptydir"));
    make_symlink("small.txt", src("link"));
    if (with_big) {
      write_random(src("big.bin"), kBigSize, 3);
    }
  }

  std::uint64_t tree_bytes(bool with_big) const {
    return 13 + (100 * 1024 + 7) + 20 + (with_big ? kBigSize : 0);
  }

  FaultEnv env_;
  TempDir dir_{"backup_test_"};
  std::string src_ = dir_ / "src";
  std::string dest_ = dir_ / "dest";
  MasterKey key_ = MasterKey::generate();
  FaultInjectingBackend* faults_ = nullptr;  // owned by repo_
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(Backup, FirstBackupStoresEveryEntryAndReadsBack) {
  make_tree(true);
  const BackupReport report = backup();

  EXPECT_TRUE(report.problems.empty());
  EXPECT_EQ(report.stats.status, "ok");
  EXPECT_EQ(report.stats.files_new, 6u);  // 5 files and the symlink; directories are not counted
  EXPECT_EQ(report.stats.files_changed, 0u);
  EXPECT_EQ(report.stats.files_deleted, 0u);
  EXPECT_EQ(report.stats.files_unchanged, 0u);
  EXPECT_EQ(report.stats.files_skipped, 0u);
  EXPECT_EQ(report.stats.bytes_scanned, tree_bytes(true));
  EXPECT_EQ(report.stats.bytes_read, tree_bytes(true));
  EXPECT_EQ(report.stats.bytes_new, tree_bytes(true));  // nothing in the tree repeats
  EXPECT_EQ(report.seq, 1u);
  ASSERT_FALSE(report.manifest_key.empty());
  EXPECT_EQ(repo_->manifest_keys(), std::vector<std::string>{report.manifest_key});
  EXPECT_GE(report.packs_written, 1u);
  EXPECT_EQ(testing::files_under(dest_ + "/data").size(), report.packs_written);
  EXPECT_EQ(report.stats.bytes_stored, total_size_under(dest_ + "/data"));

  const auto latest = catalog_->latest_under(src_);
  const std::set<std::string> expected = {src_,          src("big.bin"), src("empty.txt"), src("emptydir"), src("link"),
                                          src("medium.bin"), src("small.txt"), src("sub"),  src("sub/nested.txt")};
  EXPECT_EQ(paths_of(latest), expected);
  for (const auto& [path, version] : latest) {
    EXPECT_EQ(version.number, 1u) << path;
  }
  EXPECT_EQ(latest.at(src_).type, EntryType::directory);
  EXPECT_EQ(latest.at(src("emptydir")).type, EntryType::directory);
  EXPECT_EQ(latest.at(src("empty.txt")).type, EntryType::file);
  EXPECT_EQ(latest.at(src("empty.txt")).size, 0u);
  EXPECT_EQ(latest.at(src("big.bin")).size, kBigSize);
  EXPECT_EQ(latest.at(src("small.txt")).mtime_ns, mtime_ns_of(src("small.txt")));
  EXPECT_EQ(latest.at(src("link")).type, EntryType::symlink);
  EXPECT_EQ(latest.at(src("link")).link_target, "small.txt");

  const std::map<std::string, ManifestVersion> versions = versions_on_destination(*repo_);
  EXPECT_EQ(versions.size(), expected.size());
  EXPECT_GE(versions.at(src("big.bin")).chunks.size(), 2u);
  EXPECT_TRUE(versions.at(src("empty.txt")).chunks.empty());

  const CatalogSummary summary = catalog_->summary();
  EXPECT_EQ(summary.files, 5u);
  EXPECT_EQ(summary.versions, 5u);
  EXPECT_EQ(summary.runs, 1u);
  EXPECT_EQ(summary.packs, report.packs_written);
  EXPECT_EQ(summary.unique_bytes, tree_bytes(true));
  EXPECT_EQ(summary.stored_bytes, total_size_under(dest_ + "/data"));
  EXPECT_EQ(catalog_->file_count_under(src_), 5u);
  EXPECT_EQ(catalog_->last_seq(), 1u);
  const std::optional<RunRecord> run = catalog_->last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->seq, 1u);
  EXPECT_EQ(run->stats.files_new, 6u);

  // Every stored chunk reads back (decrypted, decompressed, id checked) and the chunks of each
  // file, in manifest order, reassemble into the source file: also through a repository opened
  // afresh on the same destination, as a restore on another machine would.
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 5u);
  const auto reopened = Repository::open(make_local_backend(dest_), key_, CreateIfMissing::no);
  EXPECT_EQ(expect_restorable(*reopened, *catalog_, src_), 5u);
}

TEST_F(Backup, SecondRunWithoutChangesStoresNothing) {
  make_tree(false);
  backup();
  const auto destination_before = listing(dest_);
  const CatalogSummary summary_before = catalog_->summary();
  const auto latest_before = catalog_->latest_under(src_);

  const BackupReport report = backup();

  EXPECT_EQ(report.stats.files_unchanged, 5u);  // 4 files and the symlink
  EXPECT_EQ(report.stats.files_new, 0u);
  EXPECT_EQ(report.stats.files_changed, 0u);
  EXPECT_EQ(report.stats.files_deleted, 0u);
  EXPECT_EQ(report.stats.bytes_read, 0u);
  EXPECT_EQ(report.stats.bytes_new, 0u);
  EXPECT_EQ(report.stats.bytes_stored, 0u);
  EXPECT_EQ(report.packs_written, 0u);
  EXPECT_TRUE(report.manifest_key.empty());
  EXPECT_EQ(report.seq, 0u);
  EXPECT_EQ(listing(dest_), destination_before);  // no pack, no manifest

  CatalogSummary expected = summary_before;
  expected.runs += 1;  // the run itself is recorded
  expect_same_summary(catalog_->summary(), expected);
  expect_same_latest(catalog_->latest_under(src_), latest_before);
  EXPECT_EQ(catalog_->last_seq(), 1u);
  ASSERT_TRUE(catalog_->last_run().has_value());
  EXPECT_EQ(catalog_->last_run()->seq, 0u);
  EXPECT_EQ(catalog_->last_run()->stats.files_unchanged, 5u);

  // A third unchanged run can be recorded too.
  EXPECT_TRUE(backup().manifest_key.empty());
  EXPECT_EQ(catalog_->summary().runs, 3u);
}

TEST_F(Backup, SymlinkWithTheSameTargetButANewTimeIsANewVersion) {
  make_tree(false);
  backup();
  // Re-created with the same target: only its time differs, and restore sets a link's time.
  ASSERT_EQ(::unlink(src("link").c_str()), 0);
  make_symlink("small.txt", src("link"));
  set_mtime(src("link"), 1'600'000'000);

  const BackupReport report = backup();

  EXPECT_EQ(report.stats.files_changed, 1u);
  EXPECT_EQ(report.stats.files_unchanged, 4u);
  const auto latest = catalog_->latest_under(src_);
  EXPECT_EQ(latest.at(src("link")).number, 2u);
  EXPECT_EQ(latest.at(src("link")).mtime_ns, mtime_ns_of(src("link")));
  EXPECT_EQ(latest.at(src("link")).link_target, "small.txt");
  EXPECT_EQ(backup().stats.files_unchanged, 5u);  // and unchanged again after that
}

TEST_F(Backup, DetectsChangedDeletedAndNewFiles) {
  make_tree(false);
  backup();
  const std::int64_t old_mtime = mtime_ns_of(src("small.txt")) / 1'000'000'000;

  testing::write_text_file(src("small.txt"), "hello, backup -- edited");
  set_mtime(src("small.txt"), old_mtime + 60);
  ASSERT_EQ(::unlink(src("medium.bin").c_str()), 0);
  testing::write_text_file(src("sub/added.txt"), "a new file");

  std::mutex mutex;
  std::set<std::pair<FileAction, std::string>> actions;
  BackupOptions second = options();
  second.on_file = [&](FileAction action, EntryType type, const std::string& path, std::uint64_t, const std::string&) {
    if (type != EntryType::directory) {
      const std::lock_guard<std::mutex> guard(mutex);
      actions.emplace(action, path);
    }
  };
  const BackupReport report = run_backup(*catalog_, target(), second);

  EXPECT_EQ(report.stats.files_changed, 1u);
  EXPECT_EQ(report.stats.files_deleted, 1u);
  EXPECT_EQ(report.stats.files_new, 1u);
  EXPECT_EQ(report.stats.files_unchanged, 3u);  // empty.txt, sub/nested.txt, link
  EXPECT_EQ(report.stats.bytes_read, 23u + 10u);  // unchanged files are not read again
  EXPECT_EQ(report.stats.bytes_new, 23u + 10u);
  EXPECT_EQ(report.seq, 2u);
  EXPECT_FALSE(report.manifest_key.empty());
  EXPECT_EQ(actions.count({FileAction::changed, src("small.txt")}), 1u);
  EXPECT_EQ(actions.count({FileAction::deleted, src("medium.bin")}), 1u);
  EXPECT_EQ(actions.count({FileAction::added, src("sub/added.txt")}), 1u);
  EXPECT_EQ(actions.count({FileAction::changed, src("sub/nested.txt")}), 0u);
  EXPECT_EQ(actions.size(), 3u);

  const auto latest = catalog_->latest_under(src_);
  EXPECT_EQ(latest.at(src("small.txt")).number, 2u);
  EXPECT_EQ(latest.at(src("small.txt")).size, 23u);
  EXPECT_EQ(latest.at(src("small.txt")).mtime_ns, (old_mtime + 60) * 1'000'000'000 + 123);
  EXPECT_EQ(latest.at(src("medium.bin")).type, EntryType::deleted);  // the deletion marker
  EXPECT_EQ(latest.at(src("medium.bin")).number, 2u);
  EXPECT_EQ(latest.at(src("sub/added.txt")).number, 1u);
  EXPECT_EQ(latest.at(src("sub/nested.txt")).number, 1u);
  EXPECT_EQ(latest.at(src("empty.txt")).number, 1u);
  EXPECT_EQ(catalog_->file_count_under(src_), 4u);  // empty, small, nested, added
  EXPECT_EQ(catalog_->summary().versions, 4u + 2u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 4u);

  // The deleted file coming back is a new file again, version 3.
  write_random(src("medium.bin"), 1000, 9);
  const BackupReport third = backup();
  EXPECT_EQ(third.stats.files_new, 1u);
  EXPECT_EQ(third.stats.files_deleted, 0u);
  EXPECT_EQ(catalog_->latest_under(src("medium.bin")).at(src("medium.bin")).number, 3u);
  EXPECT_EQ(catalog_->latest_under(src("medium.bin")).at(src("medium.bin")).type, EntryType::file);
}

TEST_F(Backup, IdenticalContentIsStoredOnce) {
  const std::string second_source = dir_ / "src2";
  make_dir(second_source);
  const Bytes shared = testing::random_data(200 * 1024, 7);
  write_bytes(src("a.bin"), shared);
  write_bytes(src("b.bin"), shared);
  write_bytes(second_source + "/c.bin", shared);
  write_random(second_source + "/d.bin", 50 * 1024, 8);

  const BackupReport report =
      run_backup(*catalog_, target(), options({{src_, {}}, {second_source, {}}}));

  EXPECT_EQ(report.stats.files_new, 4u);
  EXPECT_EQ(report.stats.bytes_read, 3u * 200 * 1024 + 50 * 1024);
  EXPECT_EQ(report.stats.bytes_new, 200u * 1024 + 50 * 1024);  // the shared content counted once
  const std::uint64_t stored = total_size_under(dest_ + "/data");
  EXPECT_EQ(report.stats.bytes_stored, stored);
  EXPECT_LT(stored, 2u * 200 * 1024);  // one copy (random data does not compress)
  EXPECT_GE(stored, 250u * 1024);
  const CatalogSummary summary = catalog_->summary();
  EXPECT_EQ(summary.unique_bytes, 250u * 1024);
  EXPECT_EQ(summary.original_bytes, 650u * 1024);
  EXPECT_EQ(summary.stored_bytes, stored);

  const auto versions = versions_on_destination(*repo_);
  const ManifestVersion& a = versions.at(src("a.bin"));
  EXPECT_EQ(versions.at(src("b.bin")).chunks, a.chunks);
  EXPECT_EQ(versions.at(second_source + "/c.bin").chunks, a.chunks);
  EXPECT_EQ(versions.at(second_source + "/c.bin").sha256, a.sha256);
  EXPECT_NE(versions.at(second_source + "/d.bin").chunks, a.chunks);
  EXPECT_EQ(summary.chunks, a.chunks.size() + versions.at(second_source + "/d.bin").chunks.size());
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 2u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, second_source), 2u);

  // A later copy of content already stored costs no new data: a manifest, but no pack.
  write_bytes(second_source + "/e.bin", shared);
  const auto packs_before = testing::files_under(dest_ + "/data");
  const BackupReport later = run_backup(*catalog_, target(), options({{src_, {}}, {second_source, {}}}));
  EXPECT_EQ(later.stats.files_new, 1u);
  EXPECT_EQ(later.stats.bytes_read, 200u * 1024);
  EXPECT_EQ(later.stats.bytes_new, 0u);
  EXPECT_EQ(later.packs_written, 0u);
  EXPECT_FALSE(later.manifest_key.empty());
  EXPECT_EQ(testing::files_under(dest_ + "/data"), packs_before);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, second_source), 3u);
}

TEST_F(Backup, DryRunWritesNothingButReportsTheSameCounts) {
  make_tree(false);
  backup();
  testing::write_text_file(src("small.txt"), "changed content for the dry run");
  set_mtime(src("small.txt"), 1'700'000'000);
  ASSERT_EQ(::unlink(src("sub/nested.txt").c_str()), 0);
  write_random(src("new.bin"), 64 * 1024, 11);
  testing::write_text_file(src("copy.txt"), "hello, backup");  // same content as small.txt had

  const auto destination_before = listing(dest_);
  const auto state_before = listing(dir_.path());
  const CatalogSummary summary_before = catalog_->summary();
  const auto latest_before = catalog_->latest_under(src_);
  const std::optional<RunRecord> run_before = catalog_->last_run();
  ASSERT_TRUE(run_before.has_value());

  BackupOptions dry = options();
  dry.dry_run = true;
  const BackupReport preview = run_backup(*catalog_, target(), dry);

  EXPECT_EQ(listing(dest_), destination_before);
  EXPECT_EQ(listing(dir_.path()), state_before);  // the source tree and the catalog's files too
  expect_same_summary(catalog_->summary(), summary_before);
  expect_same_latest(catalog_->latest_under(src_), latest_before);
  EXPECT_EQ(catalog_->last_run()->id, run_before->id);
  EXPECT_EQ(repo_->manifest_keys().size(), 1u);
  EXPECT_TRUE(preview.manifest_key.empty());
  EXPECT_EQ(preview.seq, 0u);

  EXPECT_EQ(preview.stats.files_new, 2u);
  EXPECT_EQ(preview.stats.files_changed, 1u);
  EXPECT_EQ(preview.stats.files_deleted, 1u);

  // A dry run without a repository at all works too.
  BackupTarget no_repository = target();
  no_repository.repository = nullptr;
  const BackupReport preview_without_repository = run_backup(*catalog_, no_repository, dry);
  expect_same_counts(preview_without_repository.stats, preview.stats);
  EXPECT_EQ(listing(dest_), destination_before);

  const BackupReport real = backup();
  expect_same_counts(real.stats, preview.stats);
  EXPECT_EQ(real.packs_written, preview.packs_written);
  EXPECT_EQ(real.problems.size(), preview.problems.size());
}

TEST_F(Backup, ExcludedPatternsAreNotBackedUp) {
  testing::write_text_file(src("keep.txt"), "keep");
  testing::write_text_file(src("scratch.tmp"), "temporary");
  make_dir(src("build"));
  testing::write_text_file(src("build/out.o"), "object");
  make_dir(src("docs"));
  testing::write_text_file(src("docs/manual.pdf"), "pdf");
  testing::write_text_file(src("docs/notes.txt"), "notes");
  make_dir(src("other"));
  testing::write_text_file(src("other/manual.pdf"), "not under docs/");

  const BackupReport report =
      run_backup(*catalog_, target(), options({{src_, {"*.tmp", "build/", "docs/*.pdf"}}}));

  EXPECT_EQ(report.stats.files_new, 3u);
  EXPECT_EQ(report.stats.bytes_scanned, 4u + 5u + 15u);
  const std::set<std::string> expected = {src_,       src("docs"),  src("docs/notes.txt"), src("keep.txt"),
                                          src("other"), src("other/manual.pdf")};
  EXPECT_EQ(paths_of(catalog_->latest_under(src_)), expected);
  const auto versions = versions_on_destination(*repo_);
  EXPECT_EQ(versions.count(src("scratch.tmp")), 0u);
  EXPECT_EQ(versions.count(src("build/out.o")), 0u);

  // Unchanged on the next run: excluded files are neither new nor deleted.
  const BackupReport again = run_backup(*catalog_, target(), options({{src_, {"*.tmp", "build/", "docs/*.pdf"}}}));
  EXPECT_EQ(again.stats.files_new, 0u);
  EXPECT_EQ(again.stats.files_deleted, 0u);
  EXPECT_EQ(again.stats.files_unchanged, 3u);
}

TEST_F(Backup, UnreadableFileIsAProblemAndNotMarkedDeleted) {
  testing::write_text_file(src("readable.txt"), "fine");
  testing::write_text_file(src("secret.txt"), "version one");
  make_dir(src("locked_dir"));
  testing::write_text_file(src("locked_dir/inner.txt"), "inside");
  testing::write_text_file(src("locked_from_start.txt"), "never readable");
  env_.deny(src("locked_from_start.txt"));  // EACCES even for root, as a mode 000 file for others

  const BackupReport first = faulty_backup();
  ASSERT_EQ(first.problems.size(), 1u);
  EXPECT_EQ(first.problems[0].path, src("locked_from_start.txt"));
  EXPECT_EQ(first.problems[0].reason, "cannot open: Permission denied");
  EXPECT_EQ(first.stats.files_new, 3u);
  EXPECT_EQ(first.stats.files_skipped, 1u);
  EXPECT_EQ(first.stats.status, "partial");
  EXPECT_EQ(catalog_->latest_under(src_).count(src("locked_from_start.txt")), 0u);
  EXPECT_EQ(catalog_->last_run()->stats.status, "partial");

  // secret.txt changes and becomes unreadable, and a directory becomes unreadable: their last
  // versions stay the latest ones (their fate is unknown, they are not deleted).
  testing::write_text_file(src("secret.txt"), "version two, longer");
  env_.deny(src("secret.txt"));
  env_.deny(src("locked_dir"));
  const BackupReport second = faulty_backup();

  std::map<std::string, std::string> problems;
  for (const ScanProblem& problem : second.problems) {
    problems[problem.path] = problem.reason;
  }
  const std::map<std::string, std::string> expected_problems = {
      {src("locked_dir"), "cannot open directory: Permission denied"},
      {src("locked_from_start.txt"), "cannot open: Permission denied"},
      {src("secret.txt"), "cannot open: Permission denied"}};
  EXPECT_EQ(problems, expected_problems);
  EXPECT_EQ(second.stats.files_skipped, 3u);
  EXPECT_EQ(second.stats.files_deleted, 0u);
  EXPECT_EQ(second.stats.files_changed, 0u);
  EXPECT_EQ(second.stats.files_new, 0u);
  const auto latest = catalog_->latest_under(src_);
  ASSERT_EQ(latest.count(src("secret.txt")), 1u);
  EXPECT_EQ(latest.at(src("secret.txt")).type, EntryType::file);
  EXPECT_EQ(latest.at(src("secret.txt")).number, 1u);
  EXPECT_EQ(latest.at(src("secret.txt")).size, 11u);
  ASSERT_EQ(latest.count(src("locked_dir/inner.txt")), 1u);
  EXPECT_EQ(latest.at(src("locked_dir/inner.txt")).type, EntryType::file);
  EXPECT_EQ(latest.at(src("locked_dir/inner.txt")).number, 1u);

  // Readable again (the real Env): secret.txt is backed up as a change, inner.txt is unchanged.
  const BackupReport third = backup();
  EXPECT_TRUE(third.problems.empty());
  EXPECT_EQ(third.stats.files_changed, 1u);
  EXPECT_EQ(third.stats.files_new, 1u);
  EXPECT_EQ(third.stats.files_unchanged, 2u);
  EXPECT_EQ(third.stats.files_deleted, 0u);
  EXPECT_EQ(catalog_->latest_under(src_).at(src("secret.txt")).number, 2u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 4u);
}

TEST_F(Backup, ReadErrorInTheMiddleOfAFileSkipsThatFileOnly) {
  make_tree(false);
  write_random(src("failing.bin"), 3 * 1024 * 1024 + 5, 31);  // three 1 MiB reads and a bit
  env_.fail(FaultEnv::Op::read, "*/failing.bin", 2, EIO);

  const BackupReport report = faulty_backup();

  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].path, src("failing.bin"));
  EXPECT_EQ(report.problems[0].reason, "cannot read: Input/output error");
  EXPECT_EQ(env_.calls(FaultEnv::Op::read, "*/failing.bin"), 2);  // abandoned there, not retried
  EXPECT_EQ(report.stats.status, "partial");
  EXPECT_EQ(report.stats.files_skipped, 1u);
  EXPECT_EQ(report.stats.bytes_read, tree_bytes(false));
  EXPECT_EQ(catalog_->latest_under(src_).count(src("failing.bin")), 0u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 4u);  // the rest of the tree

  // The disk recovers: the next run stores it as new.
  const BackupReport next = faulty_backup();
  EXPECT_TRUE(next.problems.empty());
  EXPECT_EQ(next.stats.files_new, 1u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 5u);
}

TEST_F(Backup, ShortReadsGiveTheSameChunks) {
  write_random(src("big.bin"), kBigSize, 3);
  testing::write_text_file(src("small.txt"), "hello");
  constexpr std::size_t kPiece = 64 * 1024 - 3;  // an odd size, so no read ends on a boundary
  env_.short_reads("*", kPiece);

  const BackupReport report = faulty_backup();

  EXPECT_TRUE(report.problems.empty());
  EXPECT_EQ(report.stats.bytes_read, kBigSize + 5);
  EXPECT_GE(env_.calls(FaultEnv::Op::read, "*/big.bin"), static_cast<int>(kBigSize / kPiece));
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 2u);

  // Chunk boundaries depend on the content only: the same as with whole reads.
  auto other_repo =
      Repository::open(make_local_backend(dir_ / "dest_whole_reads"), key_, CreateIfMissing::yes, fixture_options());
  Catalog other_catalog(dir_ / "whole_reads.db");
  run_backup(other_catalog, BackupTarget::writing_to(*other_repo), options());
  const auto short_versions = versions_on_destination(*repo_);
  const auto whole_versions = versions_on_destination(*other_repo);
  ASSERT_EQ(short_versions.count(src("big.bin")), 1u);
  ASSERT_EQ(whole_versions.count(src("big.bin")), 1u);
  EXPECT_GT(whole_versions.at(src("big.bin")).chunks.size(), 1u);
  EXPECT_EQ(short_versions.at(src("big.bin")).chunks, whole_versions.at(src("big.bin")).chunks);
}

TEST_F(Backup, AFileThatChangesWhileReadIsReadAgain) {
  write_random(src("busy.bin"), 3 * 1024 * 1024 + 1, 41);
  testing::write_text_file(src("quiet.txt"), "quiet");
  env_.change_while_read("*/busy.bin", 2);  // the third attempt reads it undisturbed

  const BackupReport report = faulty_backup();

  EXPECT_TRUE(report.problems.empty()) << report.problems.front().reason;
  EXPECT_EQ(env_.calls(FaultEnv::Op::open, "*/busy.bin"), 3);
  EXPECT_EQ(report.stats.files_new, 2u);
  EXPECT_EQ(report.stats.status, "ok");
  // What was stored is the file as it is, not the bytes that changed under the first readers.
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 2u);
}

TEST_F(Backup, AFileThatKeepsChangingIsSkippedAfterThreeAttempts) {
  write_random(src("busy.bin"), 3 * 1024 * 1024 + 1, 41);
  testing::write_text_file(src("quiet.txt"), "quiet");
  env_.change_while_read("*/busy.bin", 1000);

  const BackupReport report = faulty_backup();

  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].path, src("busy.bin"));
  EXPECT_EQ(report.problems[0].reason, "changed while being read");
  EXPECT_EQ(env_.calls(FaultEnv::Op::open, "*/busy.bin"), 3);
  EXPECT_EQ(report.stats.files_new, 1u);
  EXPECT_EQ(report.stats.files_skipped, 1u);
  EXPECT_EQ(report.stats.status, "partial");
  EXPECT_EQ(catalog_->latest_under(src_).count(src("busy.bin")), 0u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 1u);
}

TEST_F(Backup, LosingTheLockStopsTheRunAndRecordsNothing) {
  for (int i = 0; i < 6; ++i) {
    write_random(src("f" + std::to_string(i) + ".bin"), 200 * 1024, static_cast<std::uint32_t>(80 + i));
  }
  LockOptions fast;
  fast.refresh_interval = std::chrono::milliseconds(5);
  const std::unique_ptr<RepositoryLock> held = repo_->lock("backup", fast);
  RepositoryLock& lock = *held;
  BackupTarget locked = target();
  locked.lock = &lock;
  // While the first file is opened, another writer judges the lock stale and removes it (as
  // after a long suspend); the refresher notices within a few milliseconds.
  std::atomic<bool> taken_over{false};
  env_.on(FaultEnv::Op::open, "*/f*.bin", [&](const std::string&) {
    if (taken_over.exchange(true)) {
      return;
    }
    testing::raw_backend(*repo_)->remove(lock.key());
    for (int waited_ms = 0; !lock.lost() && waited_ms < 10'000; ++waited_ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  BackupOptions one_reader = options();
  one_reader.env = &env_;
  one_reader.threads = 1;

  const testing::ErrorOutcome outcome = testing::error_kind([&] { run_backup(*catalog_, locked, one_reader); });

  EXPECT_EQ(outcome, ErrorKind::locked) << outcome;
  EXPECT_TRUE(lock.lost());
  EXPECT_EQ(env_.calls(FaultEnv::Op::open, "*/f*.bin"), 1);  // stopped before the next file
  EXPECT_FALSE(faults_->size(lock.key()).has_value());     // never recreated
  EXPECT_TRUE(repo_->manifest_keys().empty());
  expect_same_summary(catalog_->summary(), CatalogSummary{});
  EXPECT_FALSE(catalog_->last_run().has_value());
  EXPECT_EQ(catalog_->last_seq(), 0u);
}

TEST_F(Backup, NoSpaceWhileStoringAPackChangesNothing) {
  make_tree(false);
  backup();
  testing::write_text_file(src("small.txt"), "edited before the disk filled up");
  set_mtime(src("small.txt"), 1'700'000'000);
  write_random(src("sub/new.bin"), 300 * 1024, 21);

  const CatalogSummary summary_before = catalog_->summary();
  const auto latest_before = catalog_->latest_under("/");
  const ChunkIdSet chunks_before = catalog_->known_chunks();
  const std::optional<RunRecord> run_before = catalog_->last_run();
  const std::vector<std::string> manifests_before = repo_->manifest_keys();
  const auto snapshots_before = listing(dest_ + "/snapshots");

  faults_->set_key_filter("data/");
  faults_->reset_counts();
  faults_->fail_puts_after(0, ErrorKind::no_space);
  const std::optional<ErrorKind> kind = testing::error_kind([&] { backup(); });
  ASSERT_TRUE(kind.has_value());
  EXPECT_EQ(*kind, ErrorKind::no_space);
  EXPECT_GE(faults_->failed_puts(), 1);

  expect_same_summary(catalog_->summary(), summary_before);
  expect_same_latest(catalog_->latest_under("/"), latest_before);
  EXPECT_EQ(catalog_->known_chunks(), chunks_before);
  EXPECT_EQ(catalog_->last_run()->id, run_before->id);
  EXPECT_EQ(repo_->manifest_keys(), manifests_before);
  EXPECT_EQ(listing(dest_ + "/snapshots"), snapshots_before);

  // The disk has room again: the retry stores everything, and it reads back.
  faults_->clear_faults();
  const BackupReport retry = backup();
  EXPECT_EQ(retry.stats.files_changed, 1u);
  EXPECT_EQ(retry.stats.files_new, 1u);
  EXPECT_EQ(retry.seq, 2u);
  EXPECT_EQ(catalog_->latest_under(src_).at(src("small.txt")).number, 2u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 5u);
}

TEST_F(Backup, NoSpaceForAPackInTheMiddleOfARunChangesNothing) {
  // More than one pack's worth (1 MiB) of incompressible data, less than two: the first pack's
  // store fails.
  write_random(src("a.bin"), 576 * 1024, 41);
  write_random(src("b.bin"), 512 * 1024, 42);
  faults_->set_key_filter("data/");
  faults_->reset_counts();
  faults_->fail_put_number(1, ErrorKind::no_space);

  const std::string message = testing::error_message([&] { backup(); });
  EXPECT_TRUE(message.find("injected fault") != std::string::npos) << message;
  EXPECT_EQ(faults_->failed_puts(), 1);
  expect_same_summary(catalog_->summary(), CatalogSummary{});
  EXPECT_TRUE(catalog_->latest_under("/").empty());
  EXPECT_FALSE(catalog_->last_run().has_value());
  EXPECT_TRUE(repo_->manifest_keys().empty());
  EXPECT_TRUE(testing::files_under(dest_ + "/snapshots").empty());
  EXPECT_TRUE(testing::temporaries_under(dest_).empty());

  const BackupReport retry = backup();  // put #2 onwards succeed
  EXPECT_EQ(retry.stats.files_new, 2u);
  EXPECT_EQ(retry.packs_written, 2u);
  EXPECT_EQ(retry.seq, 1u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 2u);
}

TEST_F(Backup, FailureToStoreTheManifestChangesNothing) {
  make_tree(false);
  backup();
  write_random(src("another.bin"), 10 * 1024, 31);
  const CatalogSummary summary_before = catalog_->summary();
  const auto latest_before = catalog_->latest_under("/");
  const std::vector<std::string> manifests_before = repo_->manifest_keys();

  faults_->set_key_filter("snapshots/");
  faults_->reset_counts();
  faults_->fail_put_number(1, ErrorKind::io);
  EXPECT_EQ(testing::error_kind([&] { backup(); }), ErrorKind::io);
  EXPECT_EQ(faults_->failed_puts(), 1);
  expect_same_summary(catalog_->summary(), summary_before);
  expect_same_latest(catalog_->latest_under("/"), latest_before);
  EXPECT_EQ(repo_->manifest_keys(), manifests_before);

  // The next put succeeds again (only put #1 was made to fail).
  const BackupReport retry = backup();
  EXPECT_EQ(retry.stats.files_new, 1u);
  EXPECT_FALSE(retry.manifest_key.empty());
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 5u);
}

// The catalog records a backup while it runs (RunRecorder): a pack that cannot be stored half
// way through fails the run, and the catalog is as it was, though it had recorded earlier packs
// and versions of that run.
TEST_F(Backup, FailureToStoreAPackHalfWayChangesNothing) {
  make_tree(false);
  backup();
  for (int i = 0; i < 6; ++i) {
    write_random(src("more" + std::to_string(i) + ".bin"), 900 * 1024, static_cast<std::uint32_t>(80 + i));
  }
  const CatalogSummary summary_before = catalog_->summary();
  const auto latest_before = catalog_->latest_under("/");
  faults_->set_key_filter("data/");
  faults_->reset_counts();
  faults_->fail_put_number(3, ErrorKind::io);
  EXPECT_EQ(testing::error_kind([&] { backup(); }), ErrorKind::io);
  EXPECT_EQ(faults_->failed_puts(), 1);
  expect_same_summary(catalog_->summary(), summary_before);
  expect_same_latest(catalog_->latest_under("/"), latest_before);
  EXPECT_EQ(catalog_->last_seq(), 1u);

  const BackupReport retry = backup();
  EXPECT_EQ(retry.stats.files_new, 6u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 10u);
}

// What the catalog recorded as the run went (versions often before their chunks were placed:
// small files sealed by the readers, large ones compressed by other threads, duplicates, several
// packs) is what the destination's manifests rebuild.
TEST_F(Backup, TheCatalogRecordedDuringTheRunIsWhatItsManifestsRebuild) {
  make_tree(false);
  make_dir(src("many"));
  for (int i = 0; i < 300; ++i) {
    testing::write_text_file(src("many/f" + std::to_string(i) + ".txt"), "small file " + std::to_string(i % 40));
  }
  for (int i = 0; i < 3; ++i) {
    write_random(src("big" + std::to_string(i) + ".bin"), kBigSize, static_cast<std::uint32_t>(90 + i));
  }
  write_random(src("many/copy-of-big0.bin"), kBigSize, 90);
  backup();
  write_random(src("big1.bin"), kBigSize, 99);
  ASSERT_EQ(::unlink(src("many/f7.txt").c_str()), 0);
  backup();

  Catalog rebuilt(dir_ / "rebuilt.db");
  EXPECT_EQ(replay_new_manifests(rebuilt, *repo_).replayed, 2u);
  expect_same_latest(rebuilt.latest_under("/"), catalog_->latest_under("/"));
  expect_same_summary(rebuilt.summary(), catalog_->summary());
  EXPECT_EQ(rebuilt.known_chunks(), catalog_->known_chunks());
  EXPECT_EQ(rebuilt.packs_in_use(), catalog_->packs_in_use());
  EXPECT_EQ(rebuilt.encryptions(), catalog_->encryptions());
  for (const std::string& path : {src("big1.bin"), src("many/f7.txt"), src("many/copy-of-big0.bin")}) {
    const std::vector<VersionRecord> live = catalog_->versions_of(path);
    const std::vector<VersionRecord> replayed = rebuilt.versions_of(path);
    ASSERT_EQ(live.size(), replayed.size()) << path;
    for (std::size_t i = 0; i < live.size(); ++i) {
      EXPECT_EQ(live[i].number, replayed[i].number) << path;
      EXPECT_EQ(live[i].stored_size, replayed[i].stored_size) << path;
      EXPECT_EQ(catalog_->chunks_of(live[i].id).size(), rebuilt.chunks_of(replayed[i].id).size()) << path;
    }
  }
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 307u);
}

// A crash (or a failed catalog commit) after put_manifest() and before record_run() leaves a
// manifest on the destination that the catalog does not know. Before planning, the caller (the
// CLI's backup, after taking the lock) replays the manifests newer than catalog.last_seq(), so the
// next run plans against the destination's state and never reuses a version number; the
// destination alone still rebuilds the same catalog.
TEST_F(Backup, CatalogBehindTheDestinationDoesNotReuseVersionNumbers) {
  make_tree(false);
  backup();
  catalog_.reset();  // closed: the WAL is checkpointed into backups.db
  std::filesystem::copy_file(dir_ / "backups.db", dir_ / "stale.db");
  catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");

  testing::write_text_file(src("small.txt"), "second version");
  set_mtime(src("small.txt"), 1'700'000'000);
  const BackupReport second = backup();
  ASSERT_EQ(second.seq, 2u);

  // The same run as seen by a catalog whose commit of run 2 was lost: what the CLI does.
  Catalog stale(dir_ / "stale.db");
  ASSERT_EQ(stale.last_seq(), 1u);
  EXPECT_EQ(replay_new_manifests(stale, *repo_).replayed, 1u);
  EXPECT_EQ(stale.last_seq(), 2u);
  expect_same_latest(stale.latest_under(src_), catalog_->latest_under(src_));
  EXPECT_EQ(stale.known_chunks(), catalog_->known_chunks());
  ASSERT_EQ(stale.latest_under(src_).at(src("small.txt")).number, 2u);

  // Nothing changed since run 2: the caught-up catalog sees that, and writes nothing.
  const BackupReport unchanged = run_backup(stale, target(), options());
  EXPECT_EQ(unchanged.seq, 0u);
  EXPECT_EQ(unchanged.stats.files_changed, 0u);
  EXPECT_EQ(unchanged.stats.files_new, 0u);
  EXPECT_EQ(unchanged.stats.files_unchanged, 5u);
  EXPECT_EQ(repo_->manifest_keys().size(), 2u);

  // A real change is numbered after the replayed version.
  testing::write_text_file(src("small.txt"), "third version, longer");
  set_mtime(src("small.txt"), 1'700'000'100);
  const BackupReport third = run_backup(stale, target(), options());
  EXPECT_EQ(third.seq, 3u);
  EXPECT_EQ(third.stats.files_changed, 1u);
  EXPECT_EQ(stale.latest_under(src_).at(src("small.txt")).number, 3u);
  EXPECT_EQ(stale.last_seq(), 3u);
  EXPECT_EQ(expect_restorable(*repo_, stale, src_), 4u);

  // Every path's version numbers increase from one manifest to the next.
  std::map<std::string, std::uint32_t> last_number;
  for (const std::string& key : repo_->manifest_keys()) {
    for (const ManifestVersion& version : repo_->read_manifest(key).versions) {
      const auto found = last_number.find(version.path);
      if (found != last_number.end()) {
        EXPECT_GT(version.number, found->second) << version.path << " in " << key;
      }
      last_number[version.path] = version.number;
    }
  }

  // And the destination alone rebuilds the same catalog (no UNIQUE failure on the way).
  Catalog rebuilt(dir_ / "rebuilt.db");
  std::size_t replayed = 0;
  EXPECT_NO_THROW(replayed = replay_new_manifests(rebuilt, *repo_).replayed);
  EXPECT_EQ(replayed, 3u);
  EXPECT_EQ(rebuilt.last_seq(), 3u);
  expect_same_latest(rebuilt.latest_under(src_), stale.latest_under(src_));
  expect_same_latest(rebuilt.latest_under("/"), stale.latest_under("/"));
  EXPECT_EQ(rebuilt.known_chunks(), stale.known_chunks());
  CatalogSummary expected = stale.summary();
  expected.runs -= 1;  // the unchanged run wrote no manifest, so only the live catalog knows it
  expect_same_summary(rebuilt.summary(), expected);

  // The catalog that missed nothing catches up on run 3 too.
  EXPECT_EQ(replay_new_manifests(*catalog_, *repo_).replayed, 1u);
  expect_same_latest(catalog_->latest_under(src_), stale.latest_under(src_));
}

// Issue 11, item 7: two writers at once (clocks apart, two containers sharing a host name, a
// resume from suspend) each recorded version 2 of small.txt, in manifests 2 and 3. A catalog
// rebuilt from the destination alone (what `init --from` does) takes both, the later as version 3,
// and every rebuild agrees.
TEST_F(Backup, TwoWritersAtOnceStillRebuildFromTheDestination) {
  make_tree(false);
  backup();
  catalog_.reset();  // closed: the WAL is checkpointed into backups.db
  std::filesystem::copy_file(dir_ / "backups.db", dir_ / "other.db");
  catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
  Catalog other(dir_ / "other.db");

  testing::write_text_file(src("small.txt"), "the first writer's version");
  set_mtime(src("small.txt"), 1'700'000'000);
  ASSERT_EQ(backup().seq, 2u);
  const std::string second_text = "the second writer's version, planned before the first one committed";
  testing::write_text_file(src("small.txt"), second_text);
  set_mtime(src("small.txt"), 1'700'000'100);
  ASSERT_EQ(run_backup(other, target(), options()).seq, 3u);  // it never saw manifest 2
  const std::vector<std::string> keys = repo_->manifest_keys();
  ASSERT_EQ(keys.size(), 3u);
  for (const std::string& key : {keys[1], keys[2]}) {
    const Manifest manifest = repo_->read_manifest(key);
    ASSERT_EQ(manifest.versions.size(), 1u) << key;
    EXPECT_EQ(manifest.versions[0].path, src("small.txt"));
    EXPECT_EQ(manifest.versions[0].number, 2u) << key;
  }

  Catalog rebuilt(dir_ / "rebuilt.db");
  ReplayReport report;
  EXPECT_NO_THROW(report = replay_new_manifests(rebuilt, *repo_));
  EXPECT_EQ(report.replayed, 3u);
  EXPECT_TRUE(report.check.healthy()) << ::testing::PrintToString(report.check.problems());
  const std::vector<VersionRecord> versions = rebuilt.versions_of(src("small.txt"));
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[1].number, 2u);
  EXPECT_EQ(versions[1].size, std::string("the first writer's version").size());
  EXPECT_EQ(versions[2].number, 3u);
  EXPECT_EQ(versions[2].size, second_text.size());
  EXPECT_EQ(rebuilt.latest_under(src_).at(src("small.txt")).number, 3u);
  Bytes restored;
  for (const ChunkLocation& location : rebuilt.chunks_of(versions[2].id)) {
    const Bytes chunk = repo_->read_chunk(location.pack, location.entry);
    restored.insert(restored.end(), chunk.begin(), chunk.end());
  }
  EXPECT_EQ(std::string(as_text(restored)), second_text);

  Catalog again(dir_ / "again.db");
  EXPECT_EQ(replay_new_manifests(again, *repo_).replayed, 3u);
  expect_same_latest(again.latest_under("/"), rebuilt.latest_under("/"));
  expect_same_summary(again.summary(), rebuilt.summary());
}

TEST_F(Backup, ReplayIsIdempotent) {
  make_tree(false);
  backup();
  testing::write_text_file(src("small.txt"), "second version");
  set_mtime(src("small.txt"), 1'700'000'000);
  backup();

  // An up-to-date catalog has nothing to replay.
  const CatalogSummary summary_before = catalog_->summary();
  const std::optional<RunRecord> run_before = catalog_->last_run();
  EXPECT_EQ(replay_new_manifests(*catalog_, *repo_).replayed, 0u);
  expect_same_summary(catalog_->summary(), summary_before);
  EXPECT_EQ(catalog_->last_run()->id, run_before->id);

  // An empty catalog replays everything once, then nothing.
  Catalog fresh(dir_ / "fresh.db");
  EXPECT_EQ(replay_new_manifests(fresh, *repo_).replayed, 2u);
  const CatalogSummary after_first = fresh.summary();
  const auto latest_after_first = fresh.latest_under("/");
  EXPECT_EQ(replay_new_manifests(fresh, *repo_).replayed, 0u);
  EXPECT_EQ(replay_new_manifests(fresh, *repo_).replayed, 0u);
  expect_same_summary(fresh.summary(), after_first);
  expect_same_latest(fresh.latest_under("/"), latest_after_first);
  expect_same_latest(fresh.latest_under(src_), catalog_->latest_under(src_));
  EXPECT_EQ(fresh.last_seq(), 2u);
  EXPECT_EQ(after_first.runs, 2u);

  // An empty destination: nothing to replay.
  const std::string empty_dest = dir_ / "empty_dest";
  const auto empty_repo = Repository::open(make_local_backend(empty_dest), key_, CreateIfMissing::yes);
  Catalog empty(dir_ / "empty.db");
  EXPECT_EQ(replay_new_manifests(empty, *empty_repo).replayed, 0u);
  EXPECT_EQ(empty.last_seq(), 0u);
}

TEST_F(Backup, CancelledBeforeTheRunStartsRecordsNothing) {
  make_tree(false);
  backup();
  testing::write_text_file(src("small.txt"), "changed, but the run is cancelled");
  set_mtime(src("small.txt"), 1'700'000'000);
  write_random(src("new.bin"), 300 * 1024, 51);

  const CatalogSummary summary_before = catalog_->summary();
  const auto latest_before = catalog_->latest_under("/");
  const std::optional<RunRecord> run_before = catalog_->last_run();
  const std::vector<std::string> manifests_before = repo_->manifest_keys();
  const auto snapshots_before = listing(dest_ + "/snapshots");

  std::atomic<bool> cancel{true};
  BackupOptions cancelled = options();
  cancelled.cancel = &cancel;
  const testing::ErrorOutcome outcome = testing::error_kind([&] { run_backup(*catalog_, target(), cancelled); });
  EXPECT_EQ(outcome, ErrorKind::interrupted) << outcome;
  EXPECT_NE(outcome.message().find("interrupted"), std::string::npos) << outcome;

  EXPECT_EQ(repo_->manifest_keys(), manifests_before);
  EXPECT_EQ(listing(dest_ + "/snapshots"), snapshots_before);
  expect_same_summary(catalog_->summary(), summary_before);
  expect_same_latest(catalog_->latest_under("/"), latest_before);
  EXPECT_EQ(catalog_->last_run()->id, run_before->id);
  EXPECT_EQ(catalog_->last_seq(), 1u);
  EXPECT_TRUE(testing::temporaries_under(dest_).empty());

  // Not cancelled: the next run stores it all.
  cancel = false;
  const BackupReport retry = run_backup(*catalog_, target(), cancelled);
  EXPECT_EQ(retry.seq, 2u);
  EXPECT_EQ(retry.stats.files_changed, 1u);
  EXPECT_EQ(retry.stats.files_new, 1u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 5u);
}

TEST_F(Backup, CancelledDuringTheRunRecordsNothing) {
  // Several files, one above a pack's worth: the first file is reported long before the end.
  for (int i = 0; i < 8; ++i) {
    write_random(src("f" + std::to_string(i) + ".bin"), 256 * 1024, static_cast<std::uint32_t>(60 + i));
  }
  write_random(src("big.bin"), 2 * 1024 * 1024 + 1, 70);

  std::atomic<bool> cancel{false};
  std::atomic<int> reported{0};
  BackupOptions cancelled = options();
  cancelled.cancel = &cancel;
  cancelled.on_file = [&](FileAction, EntryType type, const std::string&, std::uint64_t, const std::string&) {
    if (type == EntryType::file && ++reported == 1) {
      cancel = true;  // as a Ctrl-C handler would, after the first file
    }
  };
  const testing::ErrorOutcome outcome = testing::error_kind([&] { run_backup(*catalog_, target(), cancelled); });
  EXPECT_EQ(outcome, ErrorKind::interrupted) << outcome;
  EXPECT_GE(reported.load(), 1);

  EXPECT_TRUE(repo_->manifest_keys().empty());
  EXPECT_TRUE(testing::files_under(dest_ + "/snapshots").empty());
  expect_same_summary(catalog_->summary(), CatalogSummary{});
  EXPECT_TRUE(catalog_->latest_under("/").empty());
  EXPECT_FALSE(catalog_->last_run().has_value());
  EXPECT_EQ(catalog_->last_seq(), 0u);
  EXPECT_TRUE(testing::temporaries_under(dest_).empty());

  // The next run, not cancelled, stores everything (packs of the cancelled run are orphans).
  cancel = false;
  cancelled.on_file = nullptr;
  const BackupReport retry = run_backup(*catalog_, target(), cancelled);
  EXPECT_EQ(retry.seq, 1u);
  EXPECT_EQ(retry.stats.files_new, 9u);
  EXPECT_EQ(expect_restorable(*repo_, *catalog_, src_), 9u);
}

// A repository created with tiny chunks (4 KiB on average) and packs (64 KiB): the engine cuts and
// packs by the repository's options, so half a MiB makes dozens of chunks and several packs, none
// much above the target, and everything restores byte for byte.
TEST_F(Backup, TinyChunksAndPacksWriteSeveralPacksAndRestoreExactly) {
  write_random(src("random.bin"), 300 * 1024 + 1, 90);
  write_bytes(src("text.bin"), testing::random_data(200 * 1024, 91, testing::Compressibility::compressible));
  testing::write_text_file(src("small.txt"), "small");
  const RepositoryOptions tiny = testing::small_repository_options();
  auto tiny_repo = Repository::open(make_local_backend(dir_ / "tiny"), key_, CreateIfMissing::yes, tiny);
  Catalog tiny_catalog(dir_ / "tiny.db");

  const BackupReport report = run_backup(tiny_catalog, BackupTarget::writing_to(*tiny_repo), options());

  EXPECT_TRUE(report.problems.empty());
  EXPECT_EQ(report.stats.files_new, 3u);
  EXPECT_GE(report.packs_written, 5u);
  const std::vector<std::string> packs = testing::files_under(dir_ / "tiny/data");
  EXPECT_EQ(packs.size(), report.packs_written);
  for (const std::string& pack : packs) {
    // A pack closes before a blob would take it past 64 KiB; only its header comes on top.
    EXPECT_LE(std::filesystem::file_size(dir_ / "tiny/data/" + pack), tiny.pack_target_size + 4096u) << pack;
  }
  const auto versions = versions_on_destination(*tiny_repo);
  EXPECT_GE(versions.at(src("random.bin")).chunks.size(), 10u);
  EXPECT_GE(versions.at(src("text.bin")).chunks.size(), 5u);
  EXPECT_LT(report.stats.bytes_stored, report.stats.bytes_read) << "the compressible file must shrink";
  EXPECT_EQ(expect_restorable(*tiny_repo, tiny_catalog, src_), 3u);
}

TEST_F(Backup, ThreadCountDoesNotChangeTheVersions) {
  make_tree(true);
  for (int i = 0; i < 12; ++i) {
    write_random(src("sub/f" + std::to_string(i)), static_cast<std::size_t>(1000 + i * 5000),
                 static_cast<std::uint32_t>(100 + i));
  }

  // A second repository with the same key, so chunk boundaries and ids are comparable.
  const std::string other_dest = dir_ / "dest4";
  auto other_repo = Repository::open(make_local_backend(other_dest), key_, CreateIfMissing::yes, fixture_options());
  Catalog other_catalog(dir_ / "backups4.db");

  BackupOptions one = options();
  one.threads = 1;
  const BackupReport single = run_backup(*catalog_, target(), one);

  const BackupTarget other_target = BackupTarget::writing_to(*other_repo);
  BackupOptions four = options();
  four.threads = 4;
  const BackupReport multi = run_backup(other_catalog, other_target, four);

  EXPECT_EQ(single.stats.files_new, 18u);
  EXPECT_EQ(multi.stats.files_new, single.stats.files_new);
  EXPECT_EQ(multi.stats.bytes_read, single.stats.bytes_read);
  EXPECT_EQ(multi.stats.bytes_new, single.stats.bytes_new);

  const auto a = versions_on_destination(*repo_);
  const auto b = versions_on_destination(*other_repo);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [path, version] : a) {
    const auto other = b.find(path);
    ASSERT_NE(other, b.end()) << path;
    EXPECT_EQ(version.type, other->second.type) << path;
    EXPECT_EQ(version.size, other->second.size) << path;
    EXPECT_EQ(version.number, other->second.number) << path;
    EXPECT_EQ(version.sha256, other->second.sha256) << path;
    EXPECT_EQ(version.chunks, other->second.chunks) << path;
  }
  EXPECT_EQ(catalog_->known_chunks(), other_catalog.known_chunks());
  EXPECT_EQ(expect_restorable(*other_repo, other_catalog, src_), 17u);
}

}  // namespace
}  // namespace mybackup
