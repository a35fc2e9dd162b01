#include "mybackup/repository/object_names.hpp"
#include "mybackup/engine/clean.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fault_backend.hpp"
#include "mybackup/engine/backup.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/catalog/replay.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::raw_backend;
using testing::names_of;

using testing::FaultInjectingBackend;
using testing::TempDir;

constexpr std::int64_t kDay = 24LL * 3600 * 1'000'000'000;
constexpr std::int64_t kStart = 1'790'000'000LL * 1'000'000'000;  // 2026-09

/// The real filesystem with a hand-set time: a Clock for clean, an Env for backup.
class ManualClock : public EnvWrapper {
 public:
  ManualClock() : EnvWrapper(Env::default_env()) {}
  std::int64_t now_ns() const override { return now; }
  std::int64_t now = kStart;
};

/// Fails remove() once `removals_left` reaches zero: a clean killed while deleting old packs.
class FailingRemoveBackend : public FaultInjectingBackend {
 public:
  using FaultInjectingBackend::FaultInjectingBackend;
  void remove(const std::string& key) override {
    if (removals_left == 0) {
      throw Error(ErrorKind::io, "injected fault: remove " + key);
    }
    if (removals_left > 0) {
      --removals_left;
    }
    FaultInjectingBackend::remove(key);
  }
  void put(const std::string& key, ByteView data, Overwrite overwrite) override {
    FaultInjectingBackend::put(key, data, overwrite);
    if (after_put) {
      after_put(key);
    }
  }
  int removals_left = -1;  // -1: never fail
  std::function<void(const std::string&)> after_put;  // called after each stored object
};

/// Every object on the destination with its size.
std::map<std::string, std::uint64_t> destination_objects(const Backend& backend) {
  std::map<std::string, std::uint64_t> objects;
  for (const std::string& key : names_of(backend.list(""))) {
    objects[key] = backend.size(key).value_or(0);
  }
  return objects;
}

std::set<std::string> pack_names_of(const std::vector<PackUsage>& usage) {
  std::set<std::string> names;
  for (const PackUsage& pack : usage) {
    names.insert(pack.name);
  }
  return names;
}

std::vector<std::uint32_t> numbers_of(const std::vector<VersionRecord>& versions) {
  std::vector<std::uint32_t> numbers;
  for (const VersionRecord& version : versions) {
    numbers.push_back(version.number);
  }
  return numbers;
}

class Clean : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
    auto owned = std::make_unique<FailingRemoveBackend>(make_local_backend(dest_));
    faults_ = owned.get();
    repo_ = Repository::open(std::move(owned), key_, CreateIfMissing::yes);
    catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
  }

  std::string src(const std::string& name) const { return src_ + "/" + name; }

  /// Writes `data` to src/name and remembers it as that path's next version.
  void write(const std::string& name, const Bytes& data) {
    testing::write_text_file(src(name), std::string(as_text(data)));
    contents_[src(name)].push_back(data);
  }

  /// One backup run finishing at clock_.now, then a day passes.
  void backup() {
    const BackupTarget target = BackupTarget::writing_to(*repo_);
    BackupOptions options;
    options.sources = {{src_, {}}};
    options.threads = 2;
    options.env = &clock_;
    run_backup(*catalog_, target, options);
    clock_.now += kDay;
  }

  /// A recorded backup of kept.txt, then one of lost.bin whose pack is stored but whose manifest
  /// fails: that pack is an orphan.
  void leave_an_orphan_pack() {
    write("kept.txt", testing::to_bytes("recorded"));
    backup();
    write("lost.bin", testing::random_data(100'000, 3));
    faults_->set_key_filter("snapshots/");
    faults_->reset_counts();
    faults_->fail_put_number(1, ErrorKind::io);  // the pack is stored, the manifest is not
    EXPECT_THROW(backup(), Error);
    faults_->clear_faults();
    contents_.erase(src("lost.bin"));
    ASSERT_EQ(repo_->pack_names().size(), 2U);
  }

  CleanReport clean(int keep_days, int keep_versions, bool dry_run = false, Catalog* catalog = nullptr) {
    CleanOptions options;
    options.policy.keep_days = keep_days;
    options.policy.keep_versions = keep_versions;
    options.dry_run = dry_run;
    options.clock = &clock_;
    options.cancel = &cancel_;
    options.orphan_grace_ns = orphan_grace_ns_;
    Catalog& target = catalog != nullptr ? *catalog : *catalog_;
    if (!dry_run) {
      replay_new_manifests(target, *repo_);
    }
    return run_clean(target, *repo_, nullptr, options);
  }

  /// The content of a version, read from the destination through the catalog.
  Bytes restore(const VersionRecord& version, const Catalog& catalog) const {
    Bytes data;
    for (const ChunkLocation& chunk : catalog.chunks_of(version.id)) {
      const Bytes part = repo_->read_chunk(chunk.pack, chunk.entry);
      data.insert(data.end(), part.begin(), part.end());
    }
    return data;
  }

  enum class Orphans { none, allowed };

  /// Every file version still in `catalog` restores to what was written for it, the catalog's
  /// packs are exactly the destination's (or a subset, when an interrupted run may have left
  /// orphans), and a catalog rebuilt from the manifests alone agrees.
  void expect_consistent(const Catalog& catalog, Orphans orphans = Orphans::none) {
    std::size_t checked = 0;
    for (const VersionRecord& version : catalog.all_versions()) {
      if (version.type != EntryType::file) {
        continue;
      }
      const std::vector<Bytes>& written = contents_.at(version.path);
      ASSERT_LE(version.number, written.size()) << version.path;
      EXPECT_TRUE(restore(version, catalog) == written[version.number - 1]) << version.path << " v" << version.number;
      ++checked;
    }
    EXPECT_GT(checked, 0U);
    const std::vector<std::string> stored_list = repo_->pack_names();
    const std::set<std::string> stored(stored_list.begin(), stored_list.end());
    const std::set<std::string> indexed = pack_names_of(catalog.pack_usage({}));
    if (orphans == Orphans::none) {
      EXPECT_EQ(indexed, stored);
    } else {
      EXPECT_TRUE(std::includes(stored.begin(), stored.end(), indexed.begin(), indexed.end()));
    }

    TempDir fresh_dir("clean_replay_");
    Catalog fresh(fresh_dir / "backups.db");
    replay_new_manifests(fresh, *repo_);
    // Runs that changed nothing wrote no manifest: only the run count may differ.
    CatalogSummary rebuilt = fresh.summary();
    rebuilt.runs = catalog.summary().runs;
    testing::expect_same_summary(rebuilt, catalog.summary());
    EXPECT_EQ(fresh.encryptions(), catalog.encryptions());
    const std::vector<VersionRecord> a = fresh.all_versions();
    const std::vector<VersionRecord> b = catalog.all_versions();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].path, b[i].path);
      EXPECT_EQ(a[i].number, b[i].number);
    }
  }

  /// Four 200 KiB files in one run (one pack), then three of them overwritten: after a clean
  /// keeping one version, the first pack is three quarters dead.
  void make_sparse_pack() {
    for (std::uint32_t i = 0; i < 4; ++i) {
      write("f" + std::to_string(i), testing::random_data(200 * 1024, 10 + i));
    }
    backup();
    for (std::uint32_t i = 0; i < 3; ++i) {
      write("f" + std::to_string(i), testing::random_data(200 * 1024, 20 + i));
    }
    backup();
  }

  TempDir dir_{"clean_test_"};
  std::string src_ = dir_ / "src";
  std::string dest_ = dir_ / "dest";
  MasterKey key_ = MasterKey::generate();
  FailingRemoveBackend* faults_ = nullptr;  // owned by repo_
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Catalog> catalog_;
  ManualClock clock_;
  std::int64_t orphan_grace_ns_ = 0;  // orphans go at once, unless a test sets a grace period
  std::atomic<bool> cancel_{false};
  std::map<std::string, std::vector<Bytes>> contents_;  // every version written, per path
};

TEST_F(Clean, KeepsTheNewestVersionsAndEverythingLeftRestores) {
  for (std::uint32_t run = 0; run < 5; ++run) {
    write("edited.txt", testing::random_data(50'000 + run, run));
    backup();
  }
  const CleanReport report = clean(0, 2);
  EXPECT_EQ(numbers_of(catalog_->versions_of(src("edited.txt"))), (std::vector<std::uint32_t>{4, 5}));
  EXPECT_GE(report.versions_removed, 3U);
  EXPECT_FALSE(report.manifest_key.empty());
  EXPECT_EQ(catalog_->last_run()->kind, "clean");
  EXPECT_EQ(catalog_->last_run("backup")->kind, "backup");
  expect_consistent(*catalog_);
}

TEST_F(Clean, YoungVersionsAreKeptWhateverTheirNumber) {
  for (std::uint32_t run = 0; run < 6; ++run) {  // one run a day
    write("daily.txt", testing::random_data(10'000, run));
    backup();
  }
  // Now is one day after the last run: runs finished 1..6 days ago; keep 3 days → 2 are young.
  clean(3, 1);
  EXPECT_EQ(numbers_of(catalog_->versions_of(src("daily.txt"))), (std::vector<std::uint32_t>{5, 6}));
  expect_consistent(*catalog_);
}

TEST_F(Clean, ADeletedFileLeavesHistoryOnceItsDeletionExpires) {
  write("gone.txt", testing::to_bytes("soon deleted"));
  write("kept.txt", testing::to_bytes("stays"));
  backup();
  ASSERT_EQ(::unlink(src("gone.txt").c_str()), 0);
  backup();
  clean(30, 1);  // the deletion is young: the path keeps its history
  EXPECT_FALSE(catalog_->versions_of(src("gone.txt")).empty());

  clock_.now += 40 * kDay;
  const CleanReport report = clean(30, 1);
  EXPECT_TRUE(catalog_->versions_of(src("gone.txt")).empty());
  EXPECT_GE(report.paths_removed, 1U);
  EXPECT_EQ(numbers_of(catalog_->versions_of(src("kept.txt"))), (std::vector<std::uint32_t>{1}));

  // The path can come back; it starts a new history.
  contents_.erase(src("gone.txt"));
  write("gone.txt", testing::to_bytes("back again"));
  backup();
  EXPECT_EQ(numbers_of(catalog_->versions_of(src("gone.txt"))), (std::vector<std::uint32_t>{1}));
  expect_consistent(*catalog_);
}

TEST_F(Clean, DeadPacksAreDeletedAndSparsePacksRewritten) {
  write("a.bin", testing::random_data(300'000, 1));
  backup();
  write("a.bin", testing::random_data(300'000, 2));  // run 1's pack becomes all dead
  backup();
  make_sparse_pack();
  const std::uint64_t before = catalog_->summary().stored_bytes;

  const CleanReport report = clean(0, 1);
  EXPECT_EQ(report.packs_deleted, 1U);    // a.bin v1's pack
  EXPECT_EQ(report.packs_rewritten, 1U);  // the sparse pack: f3 still lives there
  EXPECT_EQ(report.packs_written, 1U);
  EXPECT_EQ(report.orphan_packs, 0U);
  EXPECT_GT(report.bytes_freed(), 3U * 200 * 1024);
  EXPECT_EQ(catalog_->summary().stored_bytes, before - report.bytes_freed());
  EXPECT_TRUE(report.damaged_packs.empty());
  expect_consistent(*catalog_);
}

TEST_F(Clean, DryRunPredictsTheFiguresAndChangesNothing) {
  make_sparse_pack();
  write("f3", testing::random_data(1000, 99));
  backup();
  const auto objects = destination_objects((*raw_backend(*repo_)));
  const CatalogSummary summary = catalog_->summary();
  const std::uint64_t last_seq = catalog_->last_seq();

  const CleanReport dry = clean(0, 1, true);
  EXPECT_EQ(destination_objects((*raw_backend(*repo_))), objects);
  testing::expect_same_summary(catalog_->summary(), summary);
  EXPECT_EQ(catalog_->last_seq(), last_seq);
  EXPECT_TRUE(dry.manifest_key.empty());

  const CleanReport real = clean(0, 1);
  EXPECT_GT(real.versions_removed, 0U);
  EXPECT_EQ(dry.versions_removed, real.versions_removed);
  EXPECT_EQ(dry.paths_removed, real.paths_removed);
  EXPECT_EQ(dry.chunks_removed, real.chunks_removed);
  EXPECT_EQ(dry.packs_deleted, real.packs_deleted);
  EXPECT_EQ(dry.packs_rewritten, real.packs_rewritten);
  EXPECT_EQ(dry.packs_written, real.packs_written);
  EXPECT_EQ(dry.bytes_written, real.bytes_written);
  EXPECT_EQ(dry.bytes_freed(), real.bytes_freed());
  expect_consistent(*catalog_);
}

TEST_F(Clean, NothingToDoWritesNoManifest) {
  write("one.txt", testing::to_bytes("only version"));
  backup();
  const std::size_t manifests = repo_->manifest_keys().size();
  const CleanReport report = clean(0, 1);
  EXPECT_EQ(report.versions_removed, 0U);
  EXPECT_EQ(report.bytes_freed(), 0U);
  EXPECT_TRUE(report.manifest_key.empty());
  EXPECT_EQ(repo_->manifest_keys().size(), manifests);
  EXPECT_EQ(catalog_->last_run()->kind, "clean");
}

TEST_F(Clean, ChunksSharedWithAKeptVersionStay) {
  const Bytes shared = testing::random_data(150'000, 7);
  write("copy1.bin", shared);
  backup();
  write("copy1.bin", testing::random_data(150'000, 8));
  write("copy2.bin", shared);  // same content as copy1's first version: deduplicated
  backup();
  clean(0, 1);
  EXPECT_EQ(numbers_of(catalog_->versions_of(src("copy1.bin"))), (std::vector<std::uint32_t>{2}));
  expect_consistent(*catalog_);
}

TEST(CleanCatalog, AChunkListedTwiceByOneVersionIsReleasedTwice) {
  // A file whose content repeats can list one chunk several times; each listing is a reference.
  TempDir dir("clean_catalog_");
  Catalog catalog(dir / "backups.db");
  const ChunkId repeated = Sha256::hash(testing::to_bytes("repeated chunk"));
  const ChunkId other = Sha256::hash(testing::to_bytes("other chunk"));
  const std::string pack = to_hex(Sha256::hash(testing::to_bytes("pack")));
  Manifest backup;
  backup.seq = 1;
  backup.packs = {{pack, 1000, {{repeated, 0, 100, 90, 0}, {other, 100, 100, 90, 0}}}};
  ManifestVersion twice;
  twice.path = "/f";
  twice.number = 1;
  twice.chunks = {repeated, other, repeated};
  ManifestVersion once = twice;
  once.path = "/g";
  once.chunks = {other};
  backup.versions = {twice, once};
  catalog.record_run(backup, "m1", RunStats{});

  const std::int64_t twice_id = catalog.versions_of("/f").at(0).id;
  const std::vector<PackUsage> usage = catalog.pack_usage({twice_id});
  ASSERT_EQ(usage.size(), 1U);
  ASSERT_EQ(usage[0].live.size(), 1U);  // `other` is still used by /g
  EXPECT_EQ(usage[0].live[0].id, other);
  EXPECT_EQ(usage[0].dead_chunks, 1U);
  EXPECT_EQ(usage[0].dead_bytes, 100U);
  EXPECT_EQ(catalog.pack_usage({})[0].live.size(), 2U);  // nothing removed: both live

  // Counts always; the live chunks only of the packs asked for, still in pack order.
  const std::vector<PackUsage> counted = catalog.pack_usage({}, [](const PackUsage&) { return false; });
  ASSERT_EQ(counted.size(), 1U);
  EXPECT_TRUE(counted[0].live.empty());
  EXPECT_EQ(counted[0].live_chunks, 2U);
  EXPECT_EQ(counted[0].live_bytes, 200U);
  const std::vector<PackUsage> listed = catalog.pack_usage({}, [](const PackUsage& p) { return p.live_chunks == 2; });
  ASSERT_EQ(listed[0].live.size(), 2U);
  EXPECT_EQ(listed[0].live[0].id, repeated);
  EXPECT_EQ(listed[0].live[1].id, other);

  Manifest clean;
  clean.kind = RunKind::clean;
  clean.seq = 2;
  clean.removed = {{"/f", 1}, {"/g", 1}};
  clean.deleted_packs = {pack, to_hex(Sha256::hash(testing::to_bytes("an orphan")))};
  catalog.record_run(clean, "m2", RunStats{});  // would be refused if a reference were left
  EXPECT_TRUE(catalog.versions_of("/f").empty());
  EXPECT_TRUE(catalog.pack_usage({}).empty());
  EXPECT_EQ(catalog.summary().chunks, 0U);
}

TEST_F(Clean, OrphanPacksOfAnInterruptedBackupAreDeleted) {
  ASSERT_NO_FATAL_FAILURE(leave_an_orphan_pack());

  const CleanReport report = clean(30, 10);
  EXPECT_EQ(report.orphan_packs, 1U);
  EXPECT_EQ(report.versions_removed, 0U);
  EXPECT_GT(report.bytes_freed(), 100'000U);
  EXPECT_EQ(repo_->pack_names().size(), 1U);
  ASSERT_EQ(::unlink(src("lost.bin").c_str()), 0);
  expect_consistent(*catalog_);
}

// A pack nobody recorded may belong to a backup still running on another computer (its manifest
// comes last): it is deleted only once this home has seen it unrecorded for the grace period, and
// a dry run does not start that clock.
TEST_F(Clean, AnOrphanPackIsKeptForTheGracePeriodAfterItIsFirstSeen) {
  ASSERT_NO_FATAL_FAILURE(leave_an_orphan_pack());
  orphan_grace_ns_ = kDefaultOrphanGraceNs;

  clock_.now += 2 * kDefaultOrphanGraceNs;
  const CleanReport dry = clean(30, 10, true);
  EXPECT_EQ(dry.orphan_packs, 0U);
  EXPECT_EQ(dry.orphan_packs_kept, 1U);
  clock_.now += 2 * kDefaultOrphanGraceNs;  // a dry run started no clock: still new
  CleanReport report = clean(30, 10);
  EXPECT_EQ(report.orphan_packs, 0U);
  EXPECT_EQ(report.orphan_packs_kept, 1U);
  EXPECT_EQ(repo_->pack_names().size(), 2U);
  clock_.now += kDefaultOrphanGraceNs - 1;
  report = clean(30, 10);
  EXPECT_EQ(report.orphan_packs_kept, 1U);
  EXPECT_EQ(repo_->pack_names().size(), 2U);
  clock_.now += 1;
  report = clean(30, 10);
  EXPECT_EQ(report.orphan_packs, 1U);
  EXPECT_EQ(report.orphan_packs_kept, 0U);
  EXPECT_EQ(repo_->pack_names().size(), 1U);
  ASSERT_EQ(::unlink(src("lost.bin").c_str()), 0);
  expect_consistent(*catalog_);
}

TEST_F(Clean, InterruptedBeforeItsManifestRecordsNothingAndARerunFinishes) {
  make_sparse_pack();
  // Each failure point before the manifest: the rewritten pack's put, the manifest's put, a
  // stop request.
  const auto objects = destination_objects((*raw_backend(*repo_)));
  const CatalogSummary summary = catalog_->summary();
  for (int point = 0; point < 3; ++point) {
    if (point == 0) {
      faults_->set_key_filter("data/");
      faults_->reset_counts();
      faults_->fail_put_number(1, ErrorKind::no_space);
    } else if (point == 1) {
      faults_->set_key_filter("snapshots/");
      faults_->reset_counts();
      faults_->fail_put_number(1, ErrorKind::io);
    } else {
      cancel_ = true;
    }
    EXPECT_THROW(clean(0, 1), Error) << "point " << point;
    faults_->clear_faults();
    cancel_ = false;
    testing::expect_same_summary(catalog_->summary(), summary);
    // Every object that was there still is (a rewritten pack may be left over as an orphan).
    for (const auto& [key, size] : objects) {
      EXPECT_EQ((*raw_backend(*repo_)).size(key), size) << key << " at point " << point;
    }
    expect_consistent(*catalog_, Orphans::allowed);
  }
  const CleanReport report = clean(0, 1);
  EXPECT_EQ(report.packs_rewritten, 1U);
  EXPECT_LE(report.orphan_packs, 1U);  // the new pack of point 1, if its name differs
  expect_consistent(*catalog_);
  EXPECT_EQ(clean(0, 1).bytes_freed(), 0U);
}

TEST_F(Clean, KilledAfterItsManifestIsFinishedByTheNextRun) {
  make_sparse_pack();
  // A catalog that never saw the clean commit: the state of a crash right after the manifest.
  TempDir other_dir("clean_crash_");
  Catalog behind(other_dir / "backups.db");
  replay_new_manifests(behind, *repo_);

  faults_->removals_left = 0;  // the manifest and the commit happen, no old pack is deleted
  EXPECT_THROW(clean(0, 1), Error);
  faults_->removals_left = -1;

  const CleanReport rerun = clean(0, 1, false, &behind);  // replays the clean manifest first
  EXPECT_EQ(rerun.versions_removed, 0U);
  EXPECT_GE(rerun.orphan_packs, 1U);  // the rewritten and dead packs nobody deleted
  expect_consistent(behind);
  replay_new_manifests(*catalog_, *repo_);  // the rerun's own manifest (the orphans it deleted)
  expect_consistent(*catalog_);
}

TEST_F(Clean, KilledWhileDeletingIsFinishedByTheNextRun) {
  write("a.bin", testing::random_data(300'000, 1));
  backup();
  write("a.bin", testing::random_data(300'000, 2));
  backup();
  make_sparse_pack();
  faults_->removals_left = 1;  // one old pack deleted, then the process dies
  EXPECT_THROW(clean(0, 1), Error);
  faults_->removals_left = -1;
  const CleanReport rerun = clean(0, 1);
  EXPECT_GE(rerun.orphan_packs, 1U);
  EXPECT_EQ(rerun.versions_removed, 0U);
  expect_consistent(*catalog_);
}

// Issue 11, item 7: a writer who judged this clean stale (clocks apart, a resume from suspend)
// removes its lock right after the manifest is stored. The packs that manifest deletes must stay
// until the lock is checked again: none is deleted, and the next clean finishes the job.
TEST_F(Clean, ALockTakenOverAfterTheManifestDeletesNoPack) {
  write("a.bin", testing::random_data(300'000, 1));
  backup();
  write("a.bin", testing::random_data(300'000, 2));  // run 1's pack becomes all dead
  backup();
  replay_new_manifests(*catalog_, *repo_);
  LockOptions slow;
  slow.refresh_interval = std::chrono::hours(1);  // only still_held() can notice
  const std::unique_ptr<RepositoryLock> lock = repo_->lock("clean", slow);
  faults_->after_put = [&](const std::string& key) {
    if (key.rfind("snapshots/", 0) == 0) {
      raw_backend(*repo_)->remove(lock->key());
    }
  };
  const std::map<std::string, std::uint64_t> before = destination_objects(faults_->inner());
  CleanOptions options;
  options.policy.keep_days = 0;
  options.policy.keep_versions = 1;
  options.clock = &clock_;
  options.orphan_grace_ns = 0;
  const Error error = testing::catch_error([&] { run_clean(*catalog_, *repo_, lock.get(), options); });
  faults_->after_put = nullptr;
  EXPECT_EQ(error.kind(), ErrorKind::locked) << error.what();
  const std::string message = error.what();
  EXPECT_NE(message.find("after this clean was recorded"), std::string::npos) << message;
  EXPECT_NE(message.find("no pack was deleted"), std::string::npos) << message;
  EXPECT_TRUE(lock->lost());
  // Every pack is still there; only the clean's manifest was added (and the lock file removed).
  for (const auto& [key, size] : before) {
    if (key.rfind("data/", 0) == 0) {
      EXPECT_EQ(faults_->inner().size(key), size) << key;
    }
  }
  EXPECT_EQ(catalog_->last_run()->kind, "clean");  // recorded

  const CleanReport rerun = clean(0, 1);
  EXPECT_GE(rerun.orphan_packs, 1U);  // the dead pack nobody deleted
  expect_consistent(*catalog_);
}

TEST_F(Clean, ADamagedPackIsLeftAloneNotCopied) {
  make_sparse_pack();
  // Damage f3's blob (the one live chunk of the sparse pack).
  const std::vector<ChunkLocation> chunks = catalog_->chunks_of(catalog_->versions_of(src("f3")).at(0).id);
  ASSERT_EQ(chunks.size(), 1U);
  const std::string sparse = chunks[0].pack;
  const PackEntry live = chunks[0].entry;
  const std::string path = dest_ + "/" + object_names::pack(sparse);
  std::string bytes = testing::read_text_file(path);
  bytes[live.offset + 40] = static_cast<char>(bytes[live.offset + 40] ^ 1);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  testing::write_text_file(path, bytes);

  const CleanReport report = clean(0, 1);
  EXPECT_EQ(report.damaged_packs, std::vector<std::string>{sparse});
  EXPECT_EQ(report.packs_rewritten, 0U);
  EXPECT_EQ(report.packs_written, 0U);
  EXPECT_TRUE((*raw_backend(*repo_)).size(object_names::pack(sparse)).has_value());
  EXPECT_GT(report.versions_removed, 0U);
}

TEST_F(Clean, ACatalogRefusesAManifestDeletingAPackInUse) {
  write("live.txt", testing::to_bytes("in use"));
  backup();
  Manifest bad;
  bad.kind = RunKind::clean;
  bad.seq = catalog_->last_seq() + 1;
  bad.deleted_packs = {repo_->pack_names().at(0)};
  const CatalogSummary summary = catalog_->summary();
  EXPECT_EQ(testing::error_kind([&] { catalog_->record_run(bad, "snapshots/bad", RunStats{}); }), ErrorKind::corrupt);
  testing::expect_same_summary(catalog_->summary(), summary);

  Manifest unknown_version;
  unknown_version.kind = RunKind::clean;
  unknown_version.seq = catalog_->last_seq() + 1;
  unknown_version.removed = {{src("live.txt"), 7}};
  EXPECT_EQ(testing::error_kind([&] { catalog_->record_run(unknown_version, "snapshots/bad", RunStats{}); }),
            ErrorKind::corrupt);
  testing::expect_same_summary(catalog_->summary(), summary);
}

TEST_F(Clean, InvalidPolicyOrThresholdIsAUsageError) {
  write("x.txt", testing::to_bytes("x"));
  backup();
  EXPECT_EQ(testing::error_kind([&] { clean(-1, 1); }), ErrorKind::usage);
  EXPECT_EQ(testing::error_kind([&] { clean(1, 0); }), ErrorKind::usage);
  CleanOptions options;
  options.rewrite_threshold = 0;
  EXPECT_EQ(testing::error_kind([&] { run_clean(*catalog_, *repo_, nullptr, options); }), ErrorKind::usage);
}


TEST(CleanReportJson, BytesFreedIsWhatDeletingSavedNetOfWhatRewritingWrote) {
  CleanReport report;
  report.bytes_deleted = 1000;
  report.bytes_written = 300;
  report.bytes_dead_kept = 42;
  report.damaged_packs = {"aa", "bb"};
  report.started_ns = 1'000'000'000;
  report.finished_ns = 3'500'000'000;
  const nlohmann::ordered_json json = report;
  EXPECT_EQ(json.at("bytes_freed"), 700);
  EXPECT_EQ(json.at("bytes_unreferenced_kept"), 42);
  EXPECT_EQ(json.at("seconds"), 2.5);
  EXPECT_EQ(json.at("damaged_packs"), nlohmann::ordered_json({"aa", "bb"}));
  EXPECT_EQ(json.at("manifest"), "");

  // A rewrite that wrote more than it deleted frees nothing (never a negative or wrapped number).
  report.bytes_written = 1200;
  EXPECT_EQ(nlohmann::ordered_json(report).at("bytes_freed"), 0);
}

}  // namespace
}  // namespace mybackup
