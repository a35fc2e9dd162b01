#include "mybackup/engine/retention.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::error_message;

constexpr std::int64_t kDay = 86'400LL * 1'000'000'000LL;
// A fixed "now" (September 2026); the function under test reads no clock.
constexpr std::int64_t kNow = 1'790'000'000LL * 1'000'000'000LL;

constexpr std::int64_t days(std::int64_t count) { return count * kDay; }

/// One version of a history: how long before kNow its run finished, and what it recorded.
struct Aged {
  std::int64_t age_ns;
  EntryType type;
};

// Ages in days, plus `plus_ns` nanoseconds for the boundary cases; negative ages are in the future.
constexpr Aged file_aged(std::int64_t age_days, std::int64_t plus_ns = 0) {
  return {days(age_days) + plus_ns, EntryType::file};
}
constexpr Aged dir_aged(std::int64_t age_days) { return {days(age_days), EntryType::directory}; }
constexpr Aged link_aged(std::int64_t age_days) { return {days(age_days), EntryType::symlink}; }
constexpr Aged marker_aged(std::int64_t age_days, std::int64_t plus_ns = 0) {
  return {days(age_days) + plus_ns, EntryType::deleted};
}

/// The versions of one path, oldest first, as Catalog::versions_of returns them.
std::vector<VersionRecord> history(const std::vector<Aged>& aged) {
  std::vector<VersionRecord> versions;
  std::uint32_t number = 0;
  for (const Aged& one : aged) {
    VersionRecord version;
    version.id = static_cast<std::int64_t>(number) + 1;
    version.path = "/data/report.txt";
    version.number = ++number;
    version.type = one.type;
    version.run_finished_ns = kNow - one.age_ns;
    versions.push_back(version);
  }
  return versions;
}

/// A keep mask as text, oldest first: 'k' kept, '.' removed. Failures then read at a glance.
std::string mask(const std::vector<bool>& keep) {
  std::string text;
  for (const bool kept : keep) {
    text += kept ? 'k' : '.';
  }
  return text;
}

std::string keep_mask(const std::vector<VersionRecord>& versions, int keep_days, int keep_versions) {
  return mask(versions_to_keep(versions, kNow, RetentionPolicy{keep_days, keep_versions}));
}

struct Case {
  const char* name;
  std::vector<Aged> versions;  // oldest first
  int keep_days;
  int keep_versions;
  const char* expected;  // 'k' kept, '.' removed, oldest first
};

void PrintTo(const Case& c, std::ostream* out) { *out << c.name; }

const Case kCases[] = {
    {"empty", {}, 30, 10, ""},
    {"all_young", {file_aged(20), file_aged(10), file_aged(1)}, 30, 1, "kkk"},
    {"all_old_keep_versions_1", {file_aged(100), file_aged(90), file_aged(80), file_aged(70)}, 30, 1, "...k"},
    {"all_old_keep_versions_3", {file_aged(100), file_aged(90), file_aged(80), file_aged(70)}, 30, 3, ".kkk"},
    {"all_old_keep_versions_10_more_than_there_are",
     {file_aged(100), file_aged(90), file_aged(80), file_aged(70)}, 30, 10, "kkkk"},
    {"mix_young_and_old", {file_aged(100), file_aged(60), file_aged(29), file_aged(1)}, 30, 1, "..kk"},
    {"mix_count_reaches_past_the_young",
     {file_aged(100), file_aged(60), file_aged(50), file_aged(29), file_aged(1)}, 30, 3, "..kkk"},
    {"mix_age_reaches_past_the_count",
     {file_aged(100), file_aged(20), file_aged(10), file_aged(5), file_aged(1)}, 30, 2, ".kkkk"},
    // "Younger than keep_days" is strict: exactly keep_days old is old.
    {"boundary_exactly_keep_days_is_old", {file_aged(30), file_aged(1)}, 30, 1, ".k"},
    {"boundary_one_ns_younger_is_young", {file_aged(30, -1), file_aged(1)}, 30, 1, "kk"},
    {"boundary_one_ns_older_is_old", {file_aged(30, 1), file_aged(1)}, 30, 1, ".k"},
    {"boundary_one_day", {file_aged(1), file_aged(1, -1), file_aged(0)}, 1, 1, ".kk"},
    // keep_days 0: nothing is young, not even a run finished this very nanosecond.
    {"keep_days_0_only_the_count_applies",
     {file_aged(5), file_aged(3), file_aged(1), file_aged(0)}, 0, 2, "..kk"},
    {"keep_days_0_keep_versions_1", {file_aged(2), file_aged(0, 1), file_aged(0)}, 0, 1, "..k"},
    {"keep_days_0_run_from_the_future", {file_aged(-1), file_aged(-2)}, 0, 1, ".k"},
    // A run finished after now (clock stepped back) counts as finishing now.
    {"run_from_the_future_is_young", {file_aged(100), file_aged(-1), file_aged(-2)}, 30, 1, ".kk"},
    {"newest_kept_even_if_very_old", {file_aged(4000)}, 30, 1, "k"},
    {"newest_kept_even_if_old_two_versions", {file_aged(400), file_aged(300)}, 30, 1, ".k"},
    {"newest_kept_even_if_old_keep_days_0", {file_aged(400), file_aged(300)}, 0, 1, ".k"},
    {"directories_like_files", {dir_aged(100), dir_aged(50), dir_aged(1)}, 30, 1, "..k"},
    {"directory_newest_kept_if_old", {dir_aged(100), dir_aged(50)}, 30, 1, ".k"},
    {"symlinks_like_files", {link_aged(100), link_aged(50), link_aged(1)}, 30, 2, ".kk"},
    {"type_changes_file_directory_symlink", {file_aged(100), dir_aged(90), link_aged(80)}, 30, 1, "..k"},
    // Deleted paths (newest version is a marker).
    {"deleted_marker_old_versions_old_all_removed",
     {file_aged(100), file_aged(90), marker_aged(80)}, 30, 1, "..."},
    {"deleted_marker_old_count_does_not_save_it",
     {file_aged(100), file_aged(90), marker_aged(80)}, 30, 10, "..."},
    {"deleted_marker_exactly_keep_days_old_all_removed", {file_aged(40), marker_aged(30)}, 30, 10, ".."},
    {"deleted_marker_one_ns_young_kept", {file_aged(40), marker_aged(30, -1)}, 30, 1, ".k"},
    {"deleted_marker_only_old", {marker_aged(50)}, 30, 10, "."},
    {"deleted_marker_only_young", {marker_aged(5)}, 30, 1, "k"},
    {"deleted_marker_young_older_versions_by_age",
     {file_aged(100), file_aged(20), file_aged(10), marker_aged(5)}, 30, 1, ".kkk"},
    {"deleted_marker_young_older_versions_by_count",
     {file_aged(100), file_aged(90), file_aged(80), marker_aged(5)}, 30, 3, ".kkk"},
    {"deleted_marker_young_marker_counts_among_newest",
     {file_aged(100), file_aged(90), file_aged(80), marker_aged(5)}, 30, 1, "...k"},
    {"deleted_keep_days_0_always_removed", {file_aged(2), marker_aged(0)}, 0, 10, ".."},
    {"deleted_directory", {dir_aged(100), marker_aged(80)}, 30, 5, ".."},
    // Deleted, then re-created: the marker is an ordinary version in the middle of the history.
    {"recreated_all_old_keep_1", {file_aged(100), marker_aged(90), file_aged(80)}, 30, 1, "..k"},
    {"recreated_marker_old_but_among_newest_kept",
     {file_aged(100), marker_aged(90), file_aged(80)}, 30, 2, ".kk"},
    {"recreated_marker_old_all_among_newest", {file_aged(100), marker_aged(90), file_aged(80)}, 30, 3, "kkk"},
    {"recreated_marker_young", {file_aged(100), marker_aged(20), file_aged(10)}, 30, 1, ".kk"},
    {"recreated_then_deleted_again_young",
     {file_aged(100), marker_aged(90), file_aged(80), marker_aged(1)}, 30, 2, "..kk"},
    {"recreated_then_deleted_again_old",
     {file_aged(100), marker_aged(90), file_aged(80), marker_aged(70)}, 30, 10, "...."},
    // The clock stepped back between runs: a newer version finished "earlier" than an older one.
    // The older version's time carries forward, so the marker after it is kept as well.
    {"clock_stepped_back_marker_kept_with_older_version",
     {file_aged(1), marker_aged(50), file_aged(60)}, 30, 1, "kkk"},
    {"clock_stepped_back_deleted_path_kept_while_anything_young",
     {file_aged(100), file_aged(1), marker_aged(50)}, 30, 1, ".kk"},
};

class RetentionRule : public ::testing::TestWithParam<Case> {};

TEST_P(RetentionRule, KeepsTheExpectedVersions) {
  const Case& c = GetParam();
  const std::vector<VersionRecord> versions = history(c.versions);
  EXPECT_EQ(keep_mask(versions, c.keep_days, c.keep_versions), c.expected)
      << "keep_days " << c.keep_days << ", keep_versions " << c.keep_versions;
}

INSTANTIATE_TEST_SUITE_P(Retention, RetentionRule, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(RetentionRuleExtremes, HugeKeepDaysDoesNotOverflow) {
  const std::vector<VersionRecord> versions =
      history({file_aged(100'000), file_aged(50'000), marker_aged(1)});
  EXPECT_EQ(keep_mask(versions, INT_MAX, 1), "kkk");
  EXPECT_EQ(keep_mask(versions, 106'752, 1), "kkk");  // just past what int64 nanoseconds can hold
}

TEST(RetentionRuleExtremes, ExtremeTimes) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::vector<VersionRecord> versions = history({file_aged(0), marker_aged(0)});
  versions[0].run_finished_ns = kMin;
  versions[1].run_finished_ns = kMin;
  // now - keep_days would fall below the earliest representable time: everything is young.
  EXPECT_EQ(mask(versions_to_keep(versions, kMin + kDay - 1, RetentionPolicy{1, 1})), "kk");
  EXPECT_EQ(mask(versions_to_keep(versions, kMin + kDay, RetentionPolicy{1, 1})), "..");
  EXPECT_EQ(mask(versions_to_keep(versions, kMax, RetentionPolicy{INT_MAX, 1})), "..");
  EXPECT_EQ(mask(versions_to_keep(versions, kMax, RetentionPolicy{0, 10})), "..");
  versions[1].run_finished_ns = kMax;  // from the future: young, the older one is not
  EXPECT_EQ(mask(versions_to_keep(versions, kMin + kDay, RetentionPolicy{1, 1})), ".k");
}

/// The rule, written directly, for histories whose times never go backwards.
std::vector<bool> reference_keep(const std::vector<Aged>& aged, int keep_days, int keep_versions) {
  const std::size_t count = aged.size();
  std::vector<bool> keep(count, false);
  if (count == 0) {
    return keep;
  }
  const auto young = [&](const Aged& one) { return one.age_ns < days(keep_days); };
  const bool path_deleted = aged.back().type == EntryType::deleted;
  if (path_deleted && !young(aged.back())) {
    return keep;
  }
  for (std::size_t i = 0; i < count; ++i) {
    const bool among_newest = static_cast<std::int64_t>(count - i) <= keep_versions;
    keep[i] = young(aged[i]) || among_newest || (i + 1 == count && !path_deleted);
  }
  return keep;
}

TEST(RetentionInvariant, RandomHistoriesNeverResurrectDeletedFiles) {
  std::mt19937_64 random(20'261'121);
  const auto below = [&](std::int64_t bound) {
    return std::uniform_int_distribution<std::int64_t>(0, bound - 1)(random);
  };
  constexpr EntryType kTypes[] = {EntryType::file, EntryType::directory, EntryType::symlink};
  int deleted_paths_removed = 0;
  int markers_seen = 0;
  for (int round = 0; round < 2'000; ++round) {
    const int keep_days = static_cast<int>(below(61));
    const int keep_versions = 1 + static_cast<int>(below(6));
    const bool clock_steps_back = below(10) == 0;
    std::vector<Aged> aged(static_cast<std::size_t>(below(13)));
    // Build newest first, ages growing going back in time; whole days half the time so the
    // keep_days boundary is hit exactly.
    std::int64_t age_ns = below(2) == 0 ? days(below(60)) : below(days(60));
    for (std::size_t i = aged.size(); i-- > 0;) {
      aged[i].age_ns = age_ns;
      aged[i].type = below(4) == 0 ? EntryType::deleted : kTypes[below(3)];
      age_ns += below(2) == 0 ? days(below(15)) : below(days(15));
      if (clock_steps_back && below(4) == 0) {
        aged[i].age_ns = below(days(80)) - days(5);
      }
    }
    const std::vector<bool> keep =
        versions_to_keep(history(aged), kNow, RetentionPolicy{keep_days, keep_versions});
    SCOPED_TRACE("round " + std::to_string(round) + ": keep_days " + std::to_string(keep_days) +
                 ", keep_versions " + std::to_string(keep_versions) + ", got " + mask(keep));
    ASSERT_EQ(keep.size(), aged.size());
    if (!clock_steps_back) {
      EXPECT_EQ(mask(keep), mask(reference_keep(aged, keep_days, keep_versions)));
    }
    // If a marker is removed, no version before it is kept.
    for (std::size_t m = 0; m < aged.size(); ++m) {
      if (aged[m].type != EntryType::deleted) {
        continue;
      }
      ++markers_seen;
      if (keep[m]) {
        continue;
      }
      for (std::size_t i = 0; i < m; ++i) {
        EXPECT_FALSE(keep[i]) << "version " << i << " kept but the newer marker " << m << " removed";
      }
    }
    // Stronger: the kept versions are a suffix.
    for (std::size_t i = 1; i < keep.size(); ++i) {
      EXPECT_TRUE(!keep[i - 1] || keep[i])
          << "version " << i - 1 << " kept but the newer version " << i << " removed";
    }
    if (!aged.empty()) {
      if (aged.back().type != EntryType::deleted) {
        EXPECT_TRUE(keep.back()) << "the current content of an existing path was removed";
      } else if (!keep.back()) {
        ++deleted_paths_removed;
      }
    }
  }
  // The generator really exercised the interesting cases.
  EXPECT_GT(markers_seen, 1'000);
  EXPECT_GT(deleted_paths_removed, 50);
}

TEST(RetentionPolicy, DefaultsAreValid) {
  const RetentionPolicy policy;
  EXPECT_EQ(policy.keep_days, 30);
  EXPECT_EQ(policy.keep_versions, 10);
  EXPECT_FALSE(error_kind([&] { policy.validate(); }));
  EXPECT_FALSE(error_kind([] { RetentionPolicy{0, 1}.validate(); }));
  EXPECT_FALSE(error_kind([] { RetentionPolicy{INT_MAX, INT_MAX}.validate(); }));
}

TEST(RetentionPolicy, NegativeKeepDaysIsAUsageError) {
  EXPECT_EQ(error_kind([] { RetentionPolicy{-1, 10}.validate(); }), ErrorKind::usage);
  const std::string message = error_message([] { RetentionPolicy{-7, 10}.validate(); });
  EXPECT_NE(message.find("--keep-days"), std::string::npos) << message;
  EXPECT_NE(message.find("-7"), std::string::npos) << message;
  EXPECT_EQ(message.find("--keep-versions"), std::string::npos) << message;
}

TEST(RetentionPolicy, KeepVersionsBelowOneIsAUsageError) {
  EXPECT_EQ(error_kind([] { RetentionPolicy{30, 0}.validate(); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { RetentionPolicy{30, INT_MIN}.validate(); }), ErrorKind::usage);
  const std::string message = error_message([] { RetentionPolicy{30, -3}.validate(); });
  EXPECT_NE(message.find("--keep-versions"), std::string::npos) << message;
  EXPECT_NE(message.find("-3"), std::string::npos) << message;
  EXPECT_EQ(message.find("--keep-days"), std::string::npos) << message;
}

TEST(RetentionPolicy, VersionsToKeepValidatesThePolicy) {
  const std::vector<VersionRecord> versions = history({file_aged(1)});
  EXPECT_EQ(error_kind([&] { versions_to_keep(versions, kNow, RetentionPolicy{30, 0}); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { versions_to_keep({}, kNow, RetentionPolicy{-1, 10}); }), ErrorKind::usage);
}

}  // namespace
}  // namespace mybackup
