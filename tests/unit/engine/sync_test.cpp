#include "mybackup/engine/sync.hpp"

#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/repository/object_names.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>

#include "mybackup/engine/backup.hpp"
#include "mybackup/engine/clean.hpp"
#include "mybackup/util/error.hpp"
#include "fault_backend.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::raw_backend;
using testing::names_of;
using testing::kAnySize;

using testing::TempDir;

/// Every object with its bytes, locks aside (they are per-destination).
std::map<std::string, Bytes> objects_of(const Backend& backend) {
  std::map<std::string, Bytes> objects;
  for (const std::string& key : names_of(backend.list(""))) {
    if (key.rfind("locks/", 0) != 0) {
      objects[key] = backend.get(key, kAnySize);
    }
  }
  return objects;
}

class Sync : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
    primary_ = Repository::open(make_local_backend(primary_dir_), key_, CreateIfMissing::yes);
    secondary_ = make_local_backend(secondary_dir_);
    catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
  }

  void backup() {
    const BackupTarget target = BackupTarget::writing_to(*primary_);
    BackupOptions options;
    options.sources = {{src_, {}}};
    options.threads = 2;
    run_backup(*catalog_, target, options);
  }

  SyncReport sync() {
    const std::unique_ptr<Repository> copy = Repository::open_copy(make_local_backend(secondary_dir_), *primary_);
    return sync_repository(*primary_, *copy, catalog_->pack_names());
  }

  void write(const std::string& name, std::size_t size, std::uint32_t seed) {
    testing::write_text_file(src_ + "/" + name, std::string(as_text(testing::random_data(size, seed))));
  }

  /// Every chunk the catalog knows, read through `repository`.
  void expect_every_chunk_readable(const Repository& repository) {
    std::size_t read = 0;
    for (const PackUsage& pack : catalog_->pack_usage({})) {
      for (const PackEntry& entry : pack.live) {
        EXPECT_NO_THROW(repository.read_chunk(pack.name, entry)) << pack.name;
        ++read;
      }
    }
    EXPECT_GT(read, 0U);
  }

  std::string first_pack() const { return *catalog_->pack_names().begin(); }

  TempDir dir_{"sync_test_"};
  std::string src_ = dir_ / "src";
  std::string primary_dir_ = dir_ / "primary";
  std::string secondary_dir_ = dir_ / "secondary";
  MasterKey key_ = MasterKey::generate();
  std::unique_ptr<Repository> primary_;
  std::unique_ptr<Backend> secondary_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(Sync, AnEmptySecondaryBecomesAFullCopyAndASecondSyncCopiesNothing) {
  write("a.bin", 200'000, 1);
  backup();
  write("b.bin", 100'000, 2);
  backup();
  ScryptParams cheap;
  cheap.n = 16;
  const WrappedKey wrapped = wrap_master_key(key_, "passphrase", cheap, WrapDetails{"2026-12-01T00:00:00Z", "host", "test"});
  add_wrapped_key((*raw_backend(*primary_)), wrapped);
  // A file under keys/ whose content does not match its name is not a key: never copied.
  (*raw_backend(*primary_)).put("keys/0123456789abcdef.json", testing::to_bytes("{}"), Overwrite::no);

  const SyncReport first = sync();
  EXPECT_EQ(first.packs_copied, 2U);
  EXPECT_EQ(first.manifests_copied, 2U);
  EXPECT_EQ(first.keys_copied, 1U);
  EXPECT_FALSE(secondary_->size("keys/0123456789abcdef.json").has_value());
  (*raw_backend(*primary_)).remove("keys/0123456789abcdef.json");
  EXPECT_EQ(objects_of(*secondary_), objects_of((*raw_backend(*primary_))));
  const std::unique_ptr<Repository> copy = Repository::open(make_local_backend(secondary_dir_), key_, CreateIfMissing::no);
  EXPECT_EQ(copy->info().id, primary_->info().id);
  expect_every_chunk_readable(*copy);

  const SyncReport second = sync();
  EXPECT_EQ(second.packs_copied + second.manifests_copied + second.keys_copied + second.packs_deleted, 0U);

  (*raw_backend(*primary_)).remove(object_names::wrapped_key(wrapped.id));  // `key remove`: gone from the copy too
  EXPECT_EQ(sync().keys_removed, 1U);
  EXPECT_EQ(objects_of(*secondary_), objects_of((*raw_backend(*primary_))));
}

TEST_F(Sync, WhatCleanRemovedIsRemovedFromTheSecondary) {
  write("a.bin", 200'000, 1);
  backup();
  write("a.bin", 200'000, 2);
  backup();
  sync();
  CleanOptions options;
  options.policy.keep_days = 0;
  options.policy.keep_versions = 1;
  ASSERT_EQ(run_clean(*catalog_, *primary_, nullptr, options).packs_deleted, 1U);

  const SyncReport report = sync();
  EXPECT_EQ(report.packs_deleted, 1U);
  EXPECT_EQ(report.manifests_copied, 1U);
  EXPECT_EQ(objects_of(*secondary_), objects_of((*raw_backend(*primary_))));
}

TEST_F(Sync, APackMissingOrDamagedOnThePrimaryIsNeverDeletedOrCopiedOver) {
  write("a.bin", 200'000, 1);
  backup();
  sync();
  const std::string pack = first_pack();
  const std::string key = object_names::pack(pack);
  const Bytes good = secondary_->get(key, kAnySize);

  (*raw_backend(*primary_)).remove(key);  // lost on the primary: the secondary's copy is the last one
  SyncReport report = sync();
  EXPECT_EQ(report.only_on_secondary, std::vector<std::string>{pack});
  EXPECT_EQ(report.packs_deleted, 0U);
  EXPECT_EQ(secondary_->get(key, kAnySize), good);

  write("b.bin", 100'000, 2);
  backup();
  const std::string fresh = [&] {
    for (const std::string& name : catalog_->pack_names()) {
      if (name != pack) {
        return name;
      }
    }
    return std::string();
  }();
  Bytes damaged = (*raw_backend(*primary_)).get(object_names::pack(fresh), kAnySize);
  damaged[100] ^= 1;
  (*raw_backend(*primary_)).remove(object_names::pack(fresh));
  (*raw_backend(*primary_)).put(object_names::pack(fresh), damaged, Overwrite::no);
  report = sync();
  EXPECT_EQ(report.damaged_on_primary, std::vector<std::string>{fresh});
  EXPECT_FALSE(secondary_->size(object_names::pack(fresh)).has_value());
}

// Issue 12: to or from a remote destination, packs are copied several at once. The copy is the
// same, a damaged pack is still left out, and a failed write stops the sync with what was written
// complete, so that the next sync finishes the job.
TEST_F(Sync, SeveralPacksAtOnceMakeTheSameCopyAndAFailedWriteLeavesItResumable) {
  primary_ = Repository::open(make_local_backend(dir_ / "small-packs"), key_, CreateIfMissing::yes, testing::small_repository_options());
  write("a.bin", 1'500'000, 1);
  write("b.bin", 700'000, 2);
  backup();
  const std::unordered_set<std::string> names = catalog_->pack_names();
  std::vector<std::string> packs(names.begin(), names.end());
  std::sort(packs.begin(), packs.end());
  ASSERT_GE(packs.size(), 8U);
  Bytes damaged = (*raw_backend(*primary_)).get(object_names::pack(packs[3]), kAnySize);
  damaged[200] ^= 1;
  (*raw_backend(*primary_)).remove(object_names::pack(packs[3]));
  (*raw_backend(*primary_)).put(object_names::pack(packs[3]), damaged, Overwrite::no);

  auto faulty = std::make_unique<testing::FaultInjectingBackend>(make_local_backend(secondary_dir_));
  testing::FaultInjectingBackend& faults = *faulty;
  faults.set_key_filter("data/");
  faults.fail_put_number(5);
  const std::unique_ptr<Repository> copy = Repository::open_copy(std::move(faulty), *primary_);
  EXPECT_EQ(testing::error_kind([&] { sync_repository(*primary_, *copy, catalog_->pack_names(), 4); }), ErrorKind::no_space);
  EXPECT_TRUE(copy->manifest_keys().empty()) << "no manifest before every pack it lists";
  const std::size_t copied_before = faults.stored_keys().size();
  EXPECT_LT(copied_before, packs.size() - 1);
  for (const std::string& key : faults.stored_keys()) {
    EXPECT_EQ(secondary_->get(key, kAnySize), (*raw_backend(*primary_)).get(key, kAnySize)) << key;
  }

  faults.clear_faults();
  const SyncReport report = sync_repository(*primary_, *copy, catalog_->pack_names(), 4);
  EXPECT_EQ(report.damaged_on_primary, std::vector<std::string>{packs[3]});
  EXPECT_EQ(report.packs_copied, packs.size() - 1 - copied_before);
  EXPECT_EQ(report.manifests_copied, 1U);
  std::map<std::string, Bytes> expected = objects_of(*raw_backend(*primary_));
  expected.erase(object_names::pack(packs[3]));
  EXPECT_EQ(objects_of(*secondary_), expected);
}

TEST_F(Sync, ASecondaryHoldingSomethingElseIsRefused) {
  write("a.bin", 1000, 1);
  backup();
  const std::unique_ptr<Repository> other =
      Repository::open(make_local_backend(secondary_dir_), MasterKey::generate(), CreateIfMissing::yes);
  EXPECT_EQ(testing::error_kind([&] { sync(); }), ErrorKind::mismatch);

  TempDir plain("sync_plain_");
  testing::write_text_file(plain / "holiday.jpg", "not a repository");
  EXPECT_EQ(testing::error_kind([&] { Repository::open_copy(make_local_backend(plain.path()), *primary_); }),
            ErrorKind::mismatch);
  EXPECT_EQ(testing::files_under(plain.path()).size(), 1U);
}

TEST_F(Sync, ReadsFallBackToTheSecondaryAndSaySo) {
  write("a.bin", 200'000, 1);
  backup();
  sync();
  const PackUsage pack = catalog_->pack_usage({}).at(0);
  const PackEntry entry = pack.live.at(0);
  const Bytes expected = primary_->read_chunk(pack.name, entry);

  // Damaged on the primary: authentication fails there; the secondary's copy is used.
  const std::string key = object_names::pack(pack.name);
  Bytes damaged = (*raw_backend(*primary_)).get(key, kAnySize);
  damaged[entry.offset + 30] ^= 1;
  (*raw_backend(*primary_)).remove(key);
  (*raw_backend(*primary_)).put(key, damaged, Overwrite::no);
  EXPECT_TRUE(testing::error_kind([&] { primary_->read_chunk(pack.name, entry); }).has_value());
  primary_->set_fallback(Repository::open(make_local_backend(secondary_dir_), key_, CreateIfMissing::no));
  EXPECT_EQ(primary_->read_chunk(pack.name, entry), expected);

  // Missing on the primary.
  (*raw_backend(*primary_)).remove(key);
  EXPECT_EQ(primary_->read_chunk(pack.name, entry), expected);
  const std::vector<Repository::FallbackRead> reads = primary_->fallback_reads();
  ASSERT_EQ(reads.size(), 1U);
  EXPECT_EQ(reads[0].pack, pack.name);

  // Missing on both: the primary's error.
  secondary_->remove(key);
  EXPECT_EQ(testing::error_kind([&] { primary_->read_chunk(pack.name, entry); }), ErrorKind::not_found);
}

TEST_F(Sync, AFallbackMustBeTheSameRepository) {
  TempDir other_dir("sync_other_");
  EXPECT_EQ(testing::error_kind([&] {
              primary_->set_fallback(
                  Repository::open(make_local_backend(other_dir.path()), key_, CreateIfMissing::yes));
            }),
            ErrorKind::mismatch);
}

}  // namespace
}  // namespace mybackup
