#include "mybackup/engine/commit.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fault_backend.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::FaultInjectingBackend;
using testing::TempDir;

/// Records, at the moment a manifest is stored, whether the catalog already knew the run.
class WatchingBackend : public FaultInjectingBackend {
 public:
  using FaultInjectingBackend::FaultInjectingBackend;
  void put(const std::string& key, ByteView data, Overwrite overwrite) override {
    if (key.rfind("snapshots/", 0) == 0 && catalog != nullptr) {
      runs_in_catalog_at_put.push_back(catalog->summary().runs);
    }
    FaultInjectingBackend::put(key, data, overwrite);
  }
  const Catalog* catalog = nullptr;
  std::vector<std::uint64_t> runs_in_catalog_at_put;
};

class Commit : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = open_repository(dest_, &backend_);
    catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
    backend_->catalog = catalog_.get();
  }

  std::unique_ptr<Repository> open_repository(const std::string& where, WatchingBackend** backend) {
    auto owned = std::make_unique<WatchingBackend>(make_local_backend(where));
    *backend = owned.get();
    return Repository::open(std::move(owned), key_, CreateIfMissing::yes);
  }

  /// A backup run that recorded one directory.
  static Manifest backup_manifest(const std::string& path = "/r") {
    Manifest manifest;
    manifest.kind = RunKind::backup;
    manifest.started_ns = 1'700'000'000'000'000'000;
    manifest.finished_ns = manifest.started_ns + 5'000'000'000;
    manifest.sources = {path};
    ManifestVersion version;
    version.path = path;
    version.type = EntryType::directory;
    version.number = 1;
    version.mode = 0755;
    version.mtime_ns = 1234;
    manifest.versions.push_back(version);
    return manifest;
  }

  static RunStats run_stats() {
    RunStats stats;
    stats.files_new = 3;
    stats.files_unchanged = 4;
    return stats;
  }

  /// Takes the writer lock, then has another writer remove its file; waits until the holder notices.
  std::unique_ptr<RepositoryLock> lost_lock() {
    LockOptions fast;
    fast.refresh_interval = std::chrono::milliseconds(5);
    std::unique_ptr<RepositoryLock> lock = repo_->lock("backup", fast);
    testing::raw_backend(*repo_)->remove(lock->key());
    for (int waited_ms = 0; !lock->lost() && waited_ms < 10'000; ++waited_ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(lock->lost());
    return lock;
  }

  void expect_nothing_committed() {
    EXPECT_TRUE(repo_->manifest_keys().empty());
    EXPECT_FALSE(catalog_->last_run().has_value());
    EXPECT_EQ(catalog_->last_seq(), 0U);
    EXPECT_TRUE(catalog_->latest_under("/").empty());
  }

  TempDir dir_{"commit_test_"};
  std::string dest_ = dir_ / "dest";
  MasterKey key_ = MasterKey::generate();
  WatchingBackend* backend_ = nullptr;  // owned by repo_
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(Commit, TheManifestIsStoredBeforeTheCatalogRecordsTheRun) {
  Manifest manifest = backup_manifest();
  const CommittedRun committed = commit_run(*catalog_, *repo_, nullptr, manifest, run_stats());

  EXPECT_EQ(backend_->runs_in_catalog_at_put, std::vector<std::uint64_t>{0});  // stored while unrecorded
  EXPECT_EQ(committed.seq, 1U);
  EXPECT_EQ(repo_->manifest_keys(), std::vector<std::string>{committed.manifest_key});
  const std::vector<RecordedManifest> recorded = catalog_->recorded_manifests();
  ASSERT_EQ(recorded.size(), 1U);
  EXPECT_EQ(recorded[0].seq, 1U);
  EXPECT_EQ(recorded[0].key, committed.manifest_key);
  const std::optional<RunRecord> run = catalog_->last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->kind, "backup");
  EXPECT_EQ(run->stats.files_new, 3U);
  EXPECT_EQ(run->stats.files_unchanged, 4U);
  EXPECT_EQ(catalog_->latest_under("/r").at("/r").type, EntryType::directory);

  // What was stored is the manifest as given, stamped with host, run id and sequence number.
  const Manifest stored = repo_->read_manifest(committed.manifest_key);
  EXPECT_EQ(stored.host, host_name());
  EXPECT_EQ(stored.run_id.size(), 16U);
  EXPECT_EQ(stored.run_id, manifest.run_id);
  EXPECT_EQ(stored.seq, 1U);
  EXPECT_EQ(stored.started_ns, manifest.started_ns);
  EXPECT_EQ(stored.finished_ns, manifest.finished_ns);
  EXPECT_EQ(stored.versions, manifest.versions);
}

// Issue 11, item 7: the lock taken over moments before the commit, before any refresh noticed
// (clocks apart, a resume from suspend): the commit checks the destination itself.
TEST_F(Commit, ALockTakenOverJustBeforeTheCommitCommitsNothing) {
  LockOptions slow;
  slow.refresh_interval = std::chrono::hours(1);
  const std::unique_ptr<RepositoryLock> lock = repo_->lock("backup", slow);
  testing::raw_backend(*repo_)->remove(lock->key());
  ASSERT_FALSE(lock->lost());
  Manifest backup = backup_manifest();
  EXPECT_EQ(testing::error_kind([&] { commit_run(*catalog_, *repo_, lock.get(), backup, run_stats()); }), ErrorKind::locked);
  expect_nothing_committed();
}

TEST_F(Commit, ALostLockCommitsNothing) {
  const std::unique_ptr<RepositoryLock> lock = lost_lock();

  Manifest backup = backup_manifest();
  const testing::ErrorOutcome after_backup =
      testing::error_kind([&] { commit_run(*catalog_, *repo_, lock.get(), backup, run_stats()); });
  EXPECT_EQ(after_backup, ErrorKind::locked) << after_backup;
  EXPECT_NE(after_backup.message().find("during this run"), std::string::npos) << after_backup;
  EXPECT_NE(after_backup.message().find("run the backup again"), std::string::npos) << after_backup;

  Manifest clean;
  clean.kind = RunKind::clean;
  clean.deleted_packs = {std::string(64, 'a')};
  const testing::ErrorOutcome after_clean =
      testing::error_kind([&] { commit_run(*catalog_, *repo_, lock.get(), clean, {}); });
  EXPECT_EQ(after_clean, ErrorKind::locked) << after_clean;
  EXPECT_NE(after_clean.message().find("run `mybackup clean` again"), std::string::npos) << after_clean;

  EXPECT_TRUE(backend_->runs_in_catalog_at_put.empty());
  expect_nothing_committed();
}

TEST_F(Commit, AFailingManifestWriteLeavesTheCatalogUnchanged) {
  backend_->set_key_filter("snapshots/");
  backend_->reset_counts();
  backend_->fail_put_number(1, ErrorKind::no_space);
  Manifest manifest = backup_manifest();
  EXPECT_EQ(testing::error_kind([&] { commit_run(*catalog_, *repo_, nullptr, manifest, run_stats()); }),
            ErrorKind::no_space);
  EXPECT_EQ(backend_->failed_puts(), 1);
  expect_nothing_committed();

  // Once there is room again the same run commits, with the first sequence number.
  Manifest again = backup_manifest();
  EXPECT_EQ(commit_run(*catalog_, *repo_, nullptr, again, run_stats()).seq, 1U);
  EXPECT_EQ(catalog_->last_seq(), 1U);
}

TEST_F(Commit, AFailingCatalogLeavesTheManifestForTheNextRunToReplay) {
  Manifest manifest = backup_manifest();
  ManifestVersion file;
  file.path = "/r/f";
  file.number = 1;
  file.size = 10;
  file.chunks = {ChunkId{}};  // in no pack: the catalog refuses the run
  manifest.versions.push_back(file);

  EXPECT_EQ(testing::error_kind([&] { commit_run(*catalog_, *repo_, nullptr, manifest, run_stats()); }), ErrorKind::corrupt);
  EXPECT_EQ(repo_->manifest_keys().size(), 1U);
  EXPECT_FALSE(catalog_->last_run().has_value());
}

TEST_F(Commit, ARunThatChangedNothingWritesNoManifestButIsRecorded) {
  Manifest manifest;
  manifest.kind = RunKind::backup;
  manifest.started_ns = 10;
  manifest.finished_ns = 20;
  manifest.sources = {"/r"};
  const CommittedRun committed = commit_run(*catalog_, *repo_, nullptr, manifest, run_stats());

  EXPECT_EQ(committed.seq, 0U);
  EXPECT_EQ(committed.manifest_key, "");
  EXPECT_TRUE(repo_->manifest_keys().empty());
  const std::optional<RunRecord> run = catalog_->last_run();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->seq, 0U);
  EXPECT_EQ(run->stats.files_unchanged, 4U);
  EXPECT_EQ(catalog_->last_seq(), 0U);
}

TEST_F(Commit, EveryKindOfChangeWritesAManifest) {
  Manifest deletes_a_pack;  // a clean that only deletes an orphan pack
  deletes_a_pack.kind = RunKind::clean;
  deletes_a_pack.deleted_packs = {std::string(64, 'b')};
  EXPECT_EQ(commit_run(*catalog_, *repo_, nullptr, deletes_a_pack, {}).seq, 1U);

  Manifest writes_a_pack;
  writes_a_pack.kind = RunKind::backup;
  writes_a_pack.packs.push_back({std::string(64, 'c'), 100, {}});
  EXPECT_EQ(commit_run(*catalog_, *repo_, nullptr, writes_a_pack, {}).seq, 2U);

  Manifest removes_a_version;
  removes_a_version.kind = RunKind::clean;
  Manifest recorded = backup_manifest("/old");
  commit_run(*catalog_, *repo_, nullptr, recorded, {});
  removes_a_version.removed = {{"/old", 1}};
  EXPECT_EQ(commit_run(*catalog_, *repo_, nullptr, removes_a_version, {}).seq, 4U);
  EXPECT_TRUE(catalog_->versions_of("/old").empty());
  EXPECT_EQ(repo_->manifest_keys().size(), 4U);
}

TEST_F(Commit, SequenceNumbersFollowTheCatalogOrTheDestinationWhicheverIsAhead) {
  Manifest first = backup_manifest("/a");
  Manifest second = backup_manifest("/b");
  EXPECT_EQ(commit_run(*catalog_, *repo_, nullptr, first, {}).seq, 1U);
  EXPECT_EQ(commit_run(*catalog_, *repo_, nullptr, second, {}).seq, 2U);

  // The catalog ahead of an empty destination.
  WatchingBackend* other_backend = nullptr;
  const std::unique_ptr<Repository> other = open_repository(dir_ / "other", &other_backend);
  Manifest third = backup_manifest("/c");
  EXPECT_EQ(commit_run(*catalog_, *other, nullptr, third, {}).seq, 3U);

  // The destination ahead of a new catalog.
  Catalog fresh(dir_ / "fresh.db");
  Manifest fourth = backup_manifest("/d");
  EXPECT_EQ(commit_run(fresh, *repo_, nullptr, fourth, {}).seq, 3U);
}

}  // namespace
}  // namespace mybackup
