#include "mybackup/catalog/replay.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "mybackup/repository/object_names.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::TempDir;

std::vector<std::string> keys_of(const std::vector<std::uint64_t>& numbers) {
  std::vector<std::string> keys;
  for (const std::uint64_t seq : numbers) {
    keys.push_back(object_names::manifest(seq, "0123456789abcdef"));
  }
  return keys;
}

TEST(ManifestSequence, GapsAndTheHighestNumberComeFromTheNames) {
  const std::vector<std::string> keys = keys_of({1, 2, 5, 6, 9});
  EXPECT_EQ(highest_seq(keys), 9U);
  EXPECT_EQ(sequence_gaps(keys), (std::vector<SequenceGap>{{3, 4}, {7, 8}}));
  EXPECT_TRUE(sequence_gaps(keys_of({1, 2, 3})).empty());
  EXPECT_EQ(highest_seq({}), 0U);
}

// Attack: a planted manifest numbered 9999999999 makes a gap of ten billion numbers. Checking it,
// and subtracting what the user accepted, must not take a step per number.
TEST(ManifestSequence, AHugeGapIsCheckedAndAcceptedAsRangesAtOnce) {
  const TempDir dir;
  Catalog catalog(dir / "backups.db");
  const std::vector<std::string> keys = keys_of({1, 2, 9'999'999'999ULL});
  const auto start = std::chrono::steady_clock::now();
  ManifestCheck check = check_manifest_sequence(catalog, "/dest", keys);
  EXPECT_EQ(check.missing, (std::vector<SequenceGap>{{3, 9'999'999'998ULL}}));
  EXPECT_EQ(check.missing_text(), "3-9999999998");

  catalog.accept_manifest_losses({accepted_gap({10, 20}), accepted_gap({100, 9'999'999'997ULL})});
  check = check_manifest_sequence(catalog, "/dest", keys);
  EXPECT_EQ(check.missing, (std::vector<SequenceGap>{{3, 9}, {21, 99}, {9'999'999'998ULL, 9'999'999'998ULL}}));

  catalog.accept_manifest_losses({accepted_gap({3, 9'999'999'998ULL})});
  EXPECT_TRUE(check_manifest_sequence(catalog, "/dest", keys).missing.empty());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

TEST(ManifestSequence, ARollbackIsMeasuredAgainstWhatThisHomeRemembers) {
  const TempDir dir;
  Catalog catalog(dir / "backups.db");
  catalog.remember_highest_seq("/dest", 5);
  catalog.remember_highest_seq("/dest", 3);  // never lowered
  const ManifestCheck check = check_manifest_sequence(catalog, "/dest", keys_of({1, 2, 3}));
  EXPECT_TRUE(check.rolled_back());
  EXPECT_FALSE(check.healthy());
  EXPECT_FALSE(check_manifest_sequence(catalog, "/other", keys_of({1, 2, 3})).rolled_back());
  catalog.accept_manifest_losses({accepted_rollback(5)});
  EXPECT_TRUE(check_manifest_sequence(catalog, "/dest", keys_of({1, 2, 3})).healthy());
}

}  // namespace
}  // namespace mybackup
