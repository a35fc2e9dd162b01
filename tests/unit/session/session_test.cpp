// The library session: the order of a writer's workflow (lock, catch-up, run, failure record,
// auto-clean, secondary update), reading with a fallback, and recovery of a home.

#include "mybackup/session/session.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/storage/registry.hpp"

namespace mybackup {
namespace {

using namespace mybackup::testing;

/// Every line a session recorded, with its level.
class RecordedEvents : public SessionEvents {
 public:
  void record(Level level, const std::string& line) override { lines.push_back({level, line}); }
  /// The index of the first line containing `text`, or -1.
  int find(const std::string& text) const {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].second.find(text) != std::string::npos) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  std::vector<std::pair<Level, std::string>> lines;
};

/// A home with one source holding two files, a primary and optionally a secondary destination.
class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir / "source/sub");
    write_text_file(dir / "source/a.txt", "alpha");
    write_text_file(dir / "source/sub/b.txt", "bravo");
    home.initialize(false, "2026-12-01T00:00:00Z");
    configure([&](Config& config) {
      config.sources.push_back(SourceConfig{dir / "source", {}, ""});
      config.destination_primary = dir / "primary";
    });
  }

  template <typename Change>
  void configure(Change change) {
    Config config = load_config(home.config_path());
    change(config);
    save_config(home.config_path(), config);
  }

  Session session() { return Session(home, events); }

  TempDir dir;
  Home home{dir / "home"};
  RecordedEvents events;
};

TEST_F(SessionTest, ABackupRunsUnderTheLockAndUpdatesTheSecondary) {
  configure([&](Config& config) { config.destination_secondary = dir / "secondary"; });
  Session s = session();
  const BackupOutcome outcome = s.backup({});
  EXPECT_EQ(outcome.report.stats.files_new, 2U);
  EXPECT_EQ(outcome.destination, dir / "primary");
  EXPECT_FALSE(outcome.auto_clean.has_value());
  ASSERT_TRUE(outcome.secondary.configured);
  ASSERT_TRUE(outcome.secondary.done.has_value()) << outcome.secondary.failure;
  EXPECT_EQ(outcome.secondary.done->manifests_copied, 1U);
  EXPECT_EQ(s.catalog().last_run("backup")->seq, outcome.report.seq);

  // The record reads in workflow order, and no lock is left behind on either side.
  const int start = events.find("backup: start");
  const int done = events.find("backup: ok in");
  const int sync = events.find("sync: done");
  ASSERT_GE(start, 0);
  EXPECT_LT(start, done);
  EXPECT_LT(done, sync);
  EXPECT_TRUE(files_under(dir / "primary/locks").empty());
  EXPECT_TRUE(files_under(dir / "secondary/locks").empty());
  EXPECT_FALSE(files_under(dir / "secondary/snapshots").empty());
}

TEST_F(SessionTest, ADryRunCreatesNothingAndRecordsNothing) {
  Session s = session();
  const BackupOutcome outcome = s.backup(BackupRequest{"", true, {}});
  EXPECT_EQ(outcome.report.stats.files_new, 2U);
  EXPECT_FALSE(std::filesystem::exists(dir / "primary"));
  EXPECT_FALSE(s.catalog().last_run().has_value());
  EXPECT_FALSE(outcome.secondary.configured);
}

TEST_F(SessionTest, AHeldLockFailsTheBackupAndTheFailureIsRecorded) {
  session().backup({});
  const std::unique_ptr<Repository> other =
      Repository::open(open_backend(dir / "primary"), load_key_file(home.key_path(Config{})), CreateIfMissing::no);
  const std::unique_ptr<RepositoryLock> held = other->lock("another writer");
  write_text_file(dir / "source/a.txt", "alpha, changed");

  Session s = session();
  EXPECT_EQ(error_kind([&] { s.backup({}); }), ErrorKind::locked);
  const std::optional<RunRecord> last = s.catalog().last_run("backup");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->stats.status, "failed");
  EXPECT_NE(last->stats.error.find("another writer"), std::string::npos) << last->stats.error;
}

TEST_F(SessionTest, AnUnreachableSecondaryIsReportedAndTheBackupStands) {
  write_text_file(dir / "not-a-directory", "x");
  configure([&](Config& config) { config.destination_secondary = dir / "not-a-directory/secondary"; });
  Session s = session();
  const BackupOutcome outcome = s.backup({});
  EXPECT_TRUE(outcome.secondary.configured);
  EXPECT_FALSE(outcome.secondary.done.has_value());
  EXPECT_FALSE(outcome.secondary.failure.empty());
  EXPECT_EQ(s.catalog().last_run("backup")->stats.status, "ok");
  EXPECT_GE(events.find("not updated"), 0);
}

TEST_F(SessionTest, AutoCleanFollowsEveryBackupAndItsReportIsReturned) {
  configure([&](Config& config) {
    config.retention_auto_clean = true;
    config.retention_keep_days = 0;
    config.retention_keep_versions = 1;
  });
  session().backup({});
  write_text_file(dir / "source/a.txt", "alpha, second version");
  const BackupOutcome outcome = session().backup({});
  ASSERT_TRUE(outcome.auto_clean.has_value());
  EXPECT_FALSE(outcome.auto_clean_error.has_value());
  EXPECT_EQ(outcome.auto_clean->versions_removed, 1U);
}

TEST_F(SessionTest, ABackupCatchesUpWithRunsTheCatalogMissed) {
  session().backup({});
  // A second home on the same destination and key (another machine) backs up a change.
  const Home other(dir / "other-home");
  recover_home(other, dir / "primary", [&](const Backend&) { return load_key_file(home.key_path(Config{})); }, false);
  write_text_file(dir / "source/a.txt", "alpha, from the other machine");
  RecordedEvents other_events;
  Session(other, other_events).backup({});

  write_text_file(dir / "source/sub/b.txt", "bravo, changed here");
  Session s = session();
  const BackupOutcome outcome = s.backup({});
  EXPECT_GE(events.find("the catalog was behind the destination; recorded 1 run(s)"), 0);
  EXPECT_EQ(outcome.report.stats.files_changed, 1U);  // a.txt was already recorded by the catch-up
  EXPECT_EQ(outcome.report.seq, 3U);
}

TEST_F(SessionTest, CleanAndSyncBeforeTheFirstBackupDoNothing) {
  configure([&](Config& config) { config.destination_secondary = dir / "secondary"; });
  Session s = session();
  EXPECT_TRUE(s.clean(s.retention_policy(), false).nothing_backed_up);
  EXPECT_TRUE(s.sync().nothing_backed_up);
  EXPECT_FALSE(std::filesystem::exists(dir / "primary"));
  EXPECT_FALSE(std::filesystem::exists(dir / "secondary"));
}

TEST_F(SessionTest, SyncNeedsASecondaryThatIsNotThePrimary) {
  Session plain = session();
  EXPECT_EQ(error_kind([&] { plain.sync(); }), ErrorKind::usage);
  configure([&](Config& config) { config.destination_secondary = "file://" + dir / "primary"; });
  Session same = session();
  same.backup({});
  EXPECT_EQ(error_kind([&] { same.sync(); }), ErrorKind::usage);
}

TEST_F(SessionTest, ABadRetentionPolicyIsRefusedBeforeAnythingIsOpened) {
  Session s = session();
  RetentionPolicy policy = s.retention_policy();
  policy.keep_versions = 0;
  EXPECT_EQ(error_kind([&] { s.clean(policy, false); }), ErrorKind::usage);
  EXPECT_FALSE(s.catalog().last_run().has_value());
}

TEST_F(SessionTest, ReadingFallsBackToTheSecondaryWhenThePrimaryIsGone) {
  configure([&](Config& config) { config.destination_secondary = dir / "secondary"; });
  session().backup({});
  std::filesystem::rename(dir / "primary", dir / "primary-away");

  Session s = session();
  const ReadingRepository reading = s.open_for_reading();
  ASSERT_NE(reading.repository, nullptr);
  EXPECT_FALSE(reading.primary_problem.empty());
  EXPECT_NE(reading.repository->location().find("secondary"), std::string::npos);
}

TEST_F(SessionTest, ReadingBeforeTheFirstBackupIsNotFound) {
  Session s = session();
  EXPECT_EQ(error_kind([&] { s.open_for_reading(); }), ErrorKind::not_found);
}

TEST_F(SessionTest, TheHomeAndDestinationsInsideASourceAreNeverBackedUp) {
  configure([&](Config& config) {
    config.sources.clear();
    config.sources.push_back(SourceConfig{dir.path(), {}, ""});
    config.destination_secondary = "file://" + dir / "secondary";
  });
  const std::vector<BackupSource> sources = session().backup_sources();
  ASSERT_EQ(sources.size(), 1U);
  EXPECT_EQ(sources[0].exclude, (std::vector<std::string>{"/primary/", "/secondary/", "/home/"}));
  EXPECT_EQ(error_kind([&] { session().backup_sources(dir / "elsewhere"); }), ErrorKind::usage);
}

TEST_F(SessionTest, AnUninitializedHomeIsNotFound) {
  const Home empty(dir / "empty-home");
  EXPECT_EQ(error_kind([&] { Session(empty, events); }), ErrorKind::not_found);
}

TEST_F(SessionTest, RecoveryRebuildsTheSettingsAndTheCatalog) {
  session().backup({});
  const Home other(dir / "other-home");
  const RecoveryReport report = recover_home(
      other, "file://" + dir / "primary", [&](const Backend&) { return load_key_file(home.key_path(Config{})); }, false);
  EXPECT_EQ(report.destination, "file://" + dir / "primary");  // the spelling given is kept
  EXPECT_EQ(report.runs, 1U);
  EXPECT_EQ(report.summary.files, 2U);
  EXPECT_TRUE(report.settings_recorded);
  ASSERT_EQ(report.config.sources.size(), 1U);
  EXPECT_EQ(report.config.sources[0].path, dir / "source");
  EXPECT_TRUE(other.initialized());
  EXPECT_EQ(load_config(other.config_path()).destination_primary, "file://" + dir / "primary");
}

TEST_F(SessionTest, RecoveryRefusesAnInitializedHomeAndAnEmptyDestination) {
  session().backup({});
  const auto key_source = [&](const Backend&) { return load_key_file(home.key_path(Config{})); };
  EXPECT_EQ(error_kind([&] { recover_home(home, dir / "primary", key_source, false); }), ErrorKind::exists);
  std::filesystem::create_directories(dir / "empty");
  const Home other(dir / "other-home");
  EXPECT_EQ(error_kind([&] { recover_home(other, dir / "empty", key_source, false); }), ErrorKind::not_found);
  EXPECT_FALSE(other.initialized());
}

}  // namespace
}  // namespace mybackup
