// Restore planning: the version each path gets, for "now", a moment and a version number.

#include "mybackup/engine/restore_plan.hpp"

#include <gtest/gtest.h>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::TempDir;

ManifestVersion version_of(const std::string& path, EntryType type, std::uint32_t number) {
  ManifestVersion version;
  version.path = path;
  version.type = type;
  version.number = number;
  version.mode = type == EntryType::directory ? 0755 : 0644;
  version.sha256 = Sha256::hash(as_bytes(""));  // empty files: no chunks
  return version;
}

/// Runs at t = 1000, 2000, 3000 (finished 500 ns later):
///   run 1: /r, /r/a (v1), /r/b (v1)
///   run 2: /r/a (v2), /r/b deleted (v2)
///   run 3: /r/b (v3) back, /r/a deleted (v3)
class RestorePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    record(1, {version_of("/r", EntryType::directory, 1), version_of("/r/a", EntryType::file, 1),
               version_of("/r/b", EntryType::file, 1)});
    record(2, {version_of("/r/a", EntryType::file, 2), version_of("/r/b", EntryType::deleted, 2)});
    record(3, {version_of("/r/b", EntryType::file, 3), version_of("/r/a", EntryType::deleted, 3)});
  }

  void record(std::uint64_t seq, std::vector<ManifestVersion> versions) {
    Manifest manifest;
    manifest.seq = seq;
    manifest.run_id = "00000000000000" + std::to_string(10 + seq);
    manifest.started_ns = static_cast<std::int64_t>(1000 * seq);
    manifest.finished_ns = manifest.started_ns + 500;
    manifest.sources = {"/r"};
    manifest.versions = std::move(versions);
    catalog_.record_run(manifest, "snapshots/000000000" + std::to_string(seq) + "-x.enc", RunStats{});
  }

  static RestorePoint at(std::int64_t ns) { return RestorePoint{0, ns, "then"}; }
  static RestorePoint number(std::uint32_t n) { return RestorePoint{n, std::nullopt, ""}; }

  TempDir dir_;
  Catalog catalog_{dir_ / "backups.db"};
};

TEST_F(RestorePlanTest, NowIsTheNewestVersionThatIsNotADeletion) {
  const RestorePlan a = plan_file_restore(catalog_, "/r/a", "", RestorePoint{});
  ASSERT_EQ(a.items.size(), 1U);
  EXPECT_EQ(a.root, "/r");
  EXPECT_EQ(a.items[0].relative, "a");
  EXPECT_EQ(a.items[0].version.number, 2U);  // deleted in run 3: the last content comes back
  EXPECT_EQ(plan_file_restore(catalog_, "/r/b", "", RestorePoint{}).items[0].version.number, 3U);
}

TEST_F(RestorePlanTest, AMomentSelectsTheStateOfThatMoment) {
  EXPECT_EQ(plan_file_restore(catalog_, "/r/a", "", at(1500)).items[0].version.number, 1U);
  EXPECT_EQ(plan_file_restore(catalog_, "/r/a", "", at(2500)).items[0].version.number, 2U);
  EXPECT_EQ(plan_file_restore(catalog_, "/r/a", "", at(2499)).items[0].version.number, 1U);  // run 2 not finished
  EXPECT_EQ(testing::error_kind([&] { plan_file_restore(catalog_, "/r/a", "", at(3500)); }), ErrorKind::not_found);
  EXPECT_EQ(testing::error_kind([&] { plan_file_restore(catalog_, "/r/b", "", at(2500)); }), ErrorKind::not_found);
  EXPECT_EQ(testing::error_kind([&] { plan_file_restore(catalog_, "/r/a", "", at(100)); }), ErrorKind::not_found);

  const RestorePlan then = plan_directory_restore(catalog_, "/r", "/out", at(2500));
  EXPECT_EQ(then.root, "/out");
  const std::vector<RestoreItem> then_items = items_of(then);
  ASSERT_EQ(then_items.size(), 2U);  // /r itself and a; b was deleted then
  EXPECT_EQ(then_items[0].relative, "");
  EXPECT_EQ(then_items[1].relative, "a");
  EXPECT_EQ(items_of(then).size(), 2U);  // a plan is read afresh each time
  const std::vector<RestoreItem> now = items_of(plan_directory_restore(catalog_, "/r", "", RestorePoint{}));
  ASSERT_EQ(now.size(), 2U);  // /r and b; a is deleted now
  EXPECT_EQ(now[1].relative, "b");
}

TEST_F(RestorePlanTest, AVersionNumberNamesOneVersionOfOneFile) {
  EXPECT_EQ(plan_file_restore(catalog_, "/r/b", "", number(1)).items[0].version.number, 1U);
  try {
    plan_file_restore(catalog_, "/r/b", "", number(2));  // the deletion marker is not restorable
    ADD_FAILURE() << "a deletion marker was planned";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::not_found);
    EXPECT_NE(std::string(error.what()).find("its versions are 1 ("), std::string::npos) << error.what();
  }
  EXPECT_EQ(testing::error_kind([&] { plan_directory_restore(catalog_, "/r", "", number(1)); }), ErrorKind::usage);
}

TEST_F(RestorePlanTest, FileAndDirectoryMixUpsAndUnknownPathsAreClearErrors) {
  EXPECT_EQ(testing::error_kind([&] { plan_file_restore(catalog_, "/r", "", RestorePoint{}); }), ErrorKind::usage);
  EXPECT_EQ(testing::error_kind([&] { plan_directory_restore(catalog_, "/r/b", "", RestorePoint{}); }), ErrorKind::usage);
  EXPECT_EQ(testing::error_kind([&] { plan_file_restore(catalog_, "/nowhere", "", RestorePoint{}); }), ErrorKind::not_found);
  EXPECT_EQ(testing::error_kind([&] { plan_directory_restore(catalog_, "/nowhere", "", RestorePoint{}); }),
            ErrorKind::not_found);
}

TEST_F(RestorePlanTest, AFileGoesIntoAnExistingDirectoryOrToTheGivenPath) {
  TempDir out;
  const RestorePlan into = plan_file_restore(catalog_, "/r/b", out.path(), RestorePoint{});
  EXPECT_EQ(into.root, out.path());
  EXPECT_EQ(into.items[0].relative, "b");
  const RestorePlan renamed = plan_file_restore(catalog_, "/r/b", out / "copy-of-b", RestorePoint{});
  EXPECT_EQ(renamed.root, out.path());
  EXPECT_EQ(renamed.items[0].relative, "copy-of-b");
}

}  // namespace
}  // namespace mybackup
