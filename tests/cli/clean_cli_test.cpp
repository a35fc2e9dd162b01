// End-to-end tests of `mybackup clean`: the built binary, run as a user would (see cli_harness.hpp),
// must forget exactly the versions the retention policy no longer keeps, reclaim the space of the
// data nothing references any more (and say how much, truthfully), leave everything it keeps
// restorable byte for byte, change nothing on a dry run or a bad command line, and take its
// defaults from config.yaml (retention.*), including the automatic clean after a backup.
//
// There is no clock override in the CLI: age-based retention is exercised only through
// `--keep-days 36500` (everything is young, so everything stays); every other test uses
// `--keep-days 0`, where only the count applies.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

constexpr std::size_t kMiB = 1024 * 1024;

/// The figures of `clean --json` that a dry run must predict exactly (everything but the time,
/// the dry_run flag and the manifest).
const std::vector<std::string> kFigures = {
    "versions_removed", "paths_removed", "chunks_removed", "packs_deleted",  "packs_rewritten",
    "packs_written",    "orphan_packs",  "orphan_packs_kept", "bytes_deleted",  "bytes_written", "bytes_freed",
    "bytes_unreferenced_kept"};

class CleanCliTest : public CliTest {
 protected:
  void backup() {
    const Result result = run({"backup"});
    ASSERT_TRUE(succeeded(result));
  }

  /// `clean args... --json`, which must succeed with one JSON object; returns its stdout.
  std::string clean_json(std::vector<std::string> args) {
    args.insert(args.begin(), "clean");
    args.push_back("--json");
    const Result result = run(args);
    EXPECT_TRUE(succeeded(result));
    EXPECT_TRUE(is_one_json_object(result.out)) << result;
    EXPECT_EQ(result.err, "") << result;
    return result.out;
  }

  /// The version numbers `list PATH --json` shows, in order (empty if the command fails).
  std::vector<long long> versions_of(const std::string& path) {
    const Result result = run({"list", path, "--json"});
    if (result.code != 0) {
      return {};
    }
    EXPECT_TRUE(is_one_json_object(result.out)) << result;
    const nlohmann::json list = json_of(result.out);
    if (!list.is_object() || !list.contains("versions")) {
      ADD_FAILURE() << "no \"versions\"" << result;
      return {};
    }
    std::vector<long long> numbers;
    for (const nlohmann::json& version : list["versions"]) {
      numbers.push_back(version.value("version", -1LL));
    }
    return numbers;
  }

  /// Total size of the regular files under dest/data (the packs).
  std::uint64_t data_bytes() const {
    std::uint64_t total = 0;
    for (const std::string& relative : files_below(dest_ + "/data")) {
      total += fs::file_size(dest_ + "/data/" + relative);
    }
    return total;
  }

  /// Every pack under dest/data, as paths relative to dest/data.
  std::vector<std::string> packs() const {
    std::vector<std::string> found;
    for (const std::string& relative : files_below(dest_ + "/data")) {
      if (fs::path(relative).extension() == ".enc") {
        found.push_back(relative);
      }
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  /// Restores the whole source tree into a new directory and checks it is byte for byte the
  /// source as it is now.
  void expect_source_restores(const std::string& name) {
    const std::string out = root_ + "/" + name;
    const Result result = run({"restore", "--directory", src_, "--destination", out});
    ASSERT_TRUE(succeeded(result));
    EXPECT_EQ(listing(out), listing(src_)) << "the restored tree differs from the source" << result;
  }

  /// Copies an existing pack to a new, valid pack name (as a backup interrupted after writing a
  /// pack, before its manifest, would leave it). Returns its path.
  std::string plant_orphan_pack() {
    const std::vector<std::string> existing = packs();
    EXPECT_FALSE(existing.empty()) << listing(dest_);
    if (existing.empty()) {
      return "";
    }
    const std::string name = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const std::string directory = dest_ + "/data/" + name.substr(0, 2);
    std::error_code error;
    fs::create_directories(directory, error);
    EXPECT_FALSE(error) << directory << ": " << error.message();
    const std::string orphan = directory + "/" + name + ".enc";
    EXPECT_FALSE(exists(orphan)) << "the chosen name is already a pack";
    fs::copy_file(dest_ + "/data/" + existing.front(), orphan, error);
    EXPECT_FALSE(error) << orphan << ": " << error.message();
    return orphan;
  }
};

// ================================================================ the count

// Five versions of one file; keeping the newest two leaves exactly 4 and 5 (with their bytes),
// and version 1 is gone: asking for it fails and lists what exists.
TEST_F(CleanCliTest, KeepsTheNewestVersionsOfAFile) {
  ASSERT_NO_FATAL_FAILURE(configure());
  const std::string file = src_ + "/a.txt";
  std::vector<std::string> contents;
  for (int i = 1; i <= 5; ++i) {
    contents.push_back("a.txt, version " + std::to_string(i) + std::string(static_cast<std::size_t>(i), '!') + "\n");
    ASSERT_NO_FATAL_FAILURE(write_text(file, contents.back()));
    ASSERT_NO_FATAL_FAILURE(backup());
  }

  const std::string report = clean_json({"--keep-days", "0", "--keep-versions", "2"});
  EXPECT_EQ(json_of(report)["versions_removed"], 3) << report;
  EXPECT_EQ(json_of(report)["keep_days"], 0) << report;
  EXPECT_EQ(json_of(report)["keep_versions"], 2) << report;
  EXPECT_EQ(versions_of(file), (std::vector<long long>{4, 5}));

  const std::string v4 = root_ + "/v4.txt";
  ASSERT_TRUE(succeeded(run({"restore", "--file", file, "--version", "4", "--destination", v4})));
  EXPECT_EQ(read_text(v4), contents[3]);

  const std::string v1 = root_ + "/v1.txt";
  const Result gone = run({"restore", "--file", file, "--version", "1", "--destination", v1});
  EXPECT_TRUE(failed_with(gone, 1, {file, "version 1", "versions are 4 (", "5 ("}));
  EXPECT_FALSE(exists(v1));
}

// ================================================================ dry run

// A history with every kind of work (versions and a whole path to forget, a pack with no live
// chunk, a pack to rewrite, a pack below the threshold, an orphan pack): the dry run reports
// exactly the figures of the real run that follows it, and changes nothing on the destination
// nor in what `list` and `status` show.
TEST_F(CleanCliTest, DryRunPredictsTheRealRunAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(configure());  // src/a.txt, src/sub/b.txt, src/sub/c.bin
  for (int i = 0; i < 4; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/r" + std::to_string(i) + ".bin", kMiB, 10 + i));
  }
  ASSERT_NO_FATAL_FAILURE(backup());  // pack 1: everything
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/r0.bin", kMiB, 20));
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/r1.bin", kMiB, 21));
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, second\n"));
  ASSERT_EQ(::unlink((src_ + "/sub/b.txt").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(backup());  // pack 2: new r0, r1, a.txt v2 (half of pack 1 is dead now)
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, third\n"));
  ASSERT_NO_FATAL_FAILURE(backup());  // pack 3: a.txt v3
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, fourth\n"));
  ASSERT_NO_FATAL_FAILURE(backup());  // pack 4: a.txt v4 (pack 3 is all dead now)
  ASSERT_FALSE(plant_orphan_pack().empty());
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.orphan_grace_hours", "0"})));

  const std::string dest_before = listing(dest_);
  const Result list_before = run({"list", src_ + "/a.txt"});
  const std::string status_before = status_json();
  ASSERT_TRUE(succeeded(list_before));

  const std::string dry = clean_json({"--keep-days", "0", "--keep-versions", "1", "--dry-run"});
  EXPECT_EQ(json_of(dry)["dry_run"], true) << dry;
  EXPECT_EQ(json_of(dry)["manifest"], "") << dry;
  EXPECT_EQ(listing(dest_), dest_before) << "a dry run must not change the destination";
  const Result list_after = run({"list", src_ + "/a.txt"});
  EXPECT_EQ(list_after.out, list_before.out) << list_after;
  EXPECT_EQ(status_json(), status_before) << "a dry run must not record anything in the catalog";

  // The scenario really exercises every figure (else the comparison proves little).
  EXPECT_GT(json_of(dry).value("versions_removed", 0), 0) << dry;
  EXPECT_GT(json_of(dry).value("paths_removed", 0), 0) << dry;
  EXPECT_GT(json_of(dry).value("chunks_removed", 0), 0) << dry;
  EXPECT_GT(json_of(dry).value("packs_deleted", 0), 0) << dry;
  EXPECT_GT(json_of(dry).value("packs_rewritten", 0), 0) << dry;
  EXPECT_EQ(json_of(dry)["orphan_packs"], 1) << dry;
  EXPECT_GT(json_of(dry).value("bytes_freed", 0), 0) << dry;

  const std::uint64_t data_before = data_bytes();
  const std::string real = clean_json({"--keep-days", "0", "--keep-versions", "1"});
  EXPECT_EQ(json_of(real)["dry_run"], false) << real;
  for (const std::string& figure : kFigures) {
    const nlohmann::json predicted = json_of(dry)[figure];
    ASSERT_TRUE(predicted.is_number_integer()) << figure << " missing" << dry;
    EXPECT_EQ(json_of(real)[figure], predicted) << figure << "\n[dry run]\n" << dry << "\n[real run]\n" << real;
  }
  EXPECT_EQ(data_before - data_bytes(), static_cast<std::uint64_t>(json_of(real).value("bytes_freed", -1)))
      << "bytes_freed must be what the packs under data/ shrank by" << real;
  EXPECT_NE(listing(dest_), dest_before);
  ASSERT_NO_FATAL_FAILURE(expect_source_restores("restored"));
}

// ================================================================ deleted files

// A deleted file keeps its history while its deletion is young (--keep-days 36500), and leaves
// history entirely once it is not (--keep-days 0): gone from `restore --list`, `list` says there
// is no backup. A file that still exists keeps its newest version even with --keep-versions 1.
TEST_F(CleanCliTest, DeletedFileLeavesHistoryWhenItsDeletionExpires) {
  ASSERT_NO_FATAL_FAILURE(configure());  // src/a.txt, src/sub/b.txt, src/sub/c.bin
  const std::string deleted = src_ + "/sub/b.txt";
  const std::string kept = src_ + "/a.txt";
  ASSERT_NO_FATAL_FAILURE(backup());
  ASSERT_NO_FATAL_FAILURE(write_text(kept, "alpha, second\n"));
  ASSERT_NO_FATAL_FAILURE(backup());
  ASSERT_EQ(::unlink(deleted.c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(backup());

  const std::string young = clean_json({"--keep-days", "36500", "--keep-versions", "1"});
  EXPECT_EQ(json_of(young)["versions_removed"], 0) << young;
  EXPECT_EQ(versions_of(deleted), (std::vector<long long>{1, 2}))  // the content, then the deletion
      << "a young deletion keeps the file's history";

  const std::string report = clean_json({"--keep-days", "0", "--keep-versions", "1"});
  EXPECT_GE(json_of(report).value("paths_removed", 0), 1) << report;
  const Result restorable = run({"restore", "--list"});
  ASSERT_TRUE(succeeded(restorable));
  EXPECT_FALSE(contains(restorable.out, deleted)) << restorable;
  EXPECT_TRUE(contains(restorable.out, kept + "  (version 2, ")) << restorable;
  EXPECT_TRUE(contains(restorable.out, src_ + "/sub/c.bin  (version 1, ")) << "its only version stays" << restorable;
  EXPECT_TRUE(failed_with(run({"list", deleted}), 1, {deleted, "no backup"}));

  EXPECT_EQ(versions_of(kept), (std::vector<long long>{2}));
  ASSERT_NO_FATAL_FAILURE(expect_source_restores("restored"));
}

// ================================================================ space

// Six 1 MiB random files backed up, four of them overwritten and backed up again: keeping one
// version frees at least half of the 4 MiB of dead data, exactly what the report says, and the
// tree still restores byte for byte. A later backup of content whose chunks the clean removed
// stores it again (nothing refers to a chunk that no longer exists).
TEST_F(CleanCliTest, SpaceOfOverwrittenDataIsReclaimed) {
  ASSERT_NO_FATAL_FAILURE(init());
  for (int i = 0; i < 6; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/r" + std::to_string(i) + ".bin", kMiB, 10 + i));
  }
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_NO_FATAL_FAILURE(backup());
  const std::string old_r0 = read_text(src_ + "/r0.bin");
  for (int i = 0; i < 4; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/r" + std::to_string(i) + ".bin", kMiB, 20 + i));
  }
  ASSERT_NO_FATAL_FAILURE(backup());

  const std::uint64_t before = data_bytes();
  ASSERT_GE(before, 10 * kMiB) << listing(dest_);
  const std::string report = clean_json({"--keep-days", "0", "--keep-versions", "1"});
  const std::uint64_t after = data_bytes();
  ASSERT_LE(after, before) << report;
  const std::uint64_t freed = before - after;
  EXPECT_GE(freed, 2 * kMiB) << "at least half of the 4 MiB overwritten must be reclaimed" << report;
  EXPECT_LT(after, before - 2 * kMiB) << report;
  EXPECT_GT(json_of(report).value("bytes_freed", 0), 0) << report;
  EXPECT_EQ(json_of(report)["bytes_freed"], static_cast<long long>(freed)) << "the report must tell the truth" << report;
  EXPECT_EQ(json_of(report)["versions_removed"], 4) << report;
  EXPECT_GE(json_of(report).value("chunks_removed", 0), 4) << report;
  ASSERT_NO_FATAL_FAILURE(expect_source_restores("restored"));

  // The old content of r0 once more, under a new name: its chunks were removed, so it must be
  // stored again, and it must restore.
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/again.bin", old_r0));
  ASSERT_NO_FATAL_FAILURE(backup());
  const std::string again = root_ + "/again.bin";
  ASSERT_TRUE(succeeded(run({"restore", "--file", src_ + "/again.bin", "--destination", again})));
  EXPECT_TRUE(read_text(again) == old_r0) << "content backed up again after the clean must restore";
}

// ================================================================ bad input and early states

// Invalid values are usage errors (exit 2, one stderr line naming the option) and change nothing.
TEST_F(CleanCliTest, BadOptionsAreUsageErrorsAndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, second\n"));
  ASSERT_NO_FATAL_FAILURE(backup());
  const std::string dest_before = listing(dest_);

  EXPECT_TRUE(failed_with(run({"clean", "--keep-days", "0", "--keep-versions", "0"}), 2, {"--keep-versions", "0"}));
  EXPECT_TRUE(failed_with(run({"clean", "--keep-days", "-1", "--keep-versions", "1"}), 2, {"--keep-days", "-1"}));
  EXPECT_TRUE(failed_with(run({"clean", "--keep-days", "abc", "--keep-versions", "1"}), 2, {"--keep-days", "abc"}));
  EXPECT_EQ(listing(dest_), dest_before);
  EXPECT_EQ(versions_of(src_ + "/a.txt"), (std::vector<long long>{1, 2}));
}

// Before init: an error pointing at `mybackup init`. Without a destination: a usage error with the
// `config set destination` hint. Before the first backup: nothing to clean, success, and the
// destination is not created.
TEST_F(CleanCliTest, BeforeInitWithoutDestinationAndBeforeTheFirstBackup) {
  const Result uninitialized = run({"clean"});
  EXPECT_NE(uninitialized.code, 0) << uninitialized;
  EXPECT_EQ(uninitialized.out, "") << uninitialized;
  EXPECT_EQ(lines_of(uninitialized.err).size(), 1U) << uninitialized;
  EXPECT_TRUE(contains(uninitialized.err, "mybackup init")) << uninitialized;
  EXPECT_FALSE(exists(home_)) << "clean must not create the home";

  ASSERT_NO_FATAL_FAILURE(init());
  ASSERT_TRUE(succeeded(run({"add", src_})));
  EXPECT_TRUE(failed_with(run({"clean"}), 2, {"config set destination"}));

  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  const Result nothing = run({"clean", "--keep-days", "0", "--keep-versions", "1"});
  ASSERT_TRUE(succeeded(nothing));
  EXPECT_TRUE(contains(nothing.out, "Nothing to clean")) << nothing;
  EXPECT_FALSE(exists(dest_)) << "clean must not create the destination";
}

// ================================================================ config

// retention.keep_days / retention.keep_versions are the defaults of a plain `clean`: it then does
// exactly what the same values given as flags do.
TEST_F(CleanCliTest, PlainCleanUsesTheRetentionSettings) {
  ASSERT_NO_FATAL_FAILURE(configure());
  const std::string file = src_ + "/a.txt";
  for (int i = 1; i <= 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_text(file, "alpha " + std::to_string(i) + "\n"));
    ASSERT_NO_FATAL_FAILURE(backup());
  }
  // With the built-in defaults (30 days, 10 versions) nothing goes.
  const std::string defaults = clean_json({"--dry-run"});
  EXPECT_EQ(json_of(defaults)["versions_removed"], 0) << defaults;

  ASSERT_TRUE(succeeded(run({"config", "set", "retention.keep_versions", "1"})));
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.keep_days", "0"})));
  const std::string explicit_flags = clean_json({"--keep-days", "0", "--keep-versions", "1", "--dry-run"});

  const std::string plain = clean_json({});
  EXPECT_EQ(json_of(plain)["keep_days"], 0) << plain;
  EXPECT_EQ(json_of(plain)["keep_versions"], 1) << plain;
  EXPECT_EQ(json_of(plain)["versions_removed"], 2) << plain;
  for (const std::string& figure : kFigures) {
    EXPECT_EQ(json_of(plain)[figure], json_of(explicit_flags)[figure]) << figure << explicit_flags << plain;
  }
  EXPECT_EQ(versions_of(file), (std::vector<long long>{3}));
}

// retention.auto_clean: every successful backup is followed by a clean with the configured
// policy; the backup says so, `status` shows it, and `backup --json` still prints one object.
TEST_F(CleanCliTest, AutoCleanRunsAfterEveryBackup) {
  ASSERT_NO_FATAL_FAILURE(configure());
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.auto_clean", "true"})));
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.keep_days", "0"})));
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.keep_versions", "1"})));
  const std::string file = src_ + "/a.txt";
  Result last;
  for (int i = 1; i <= 2; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_text(file, "alpha " + std::to_string(i) + "\n"));
    last = run({"backup"});
    ASSERT_TRUE(succeeded(last));
    EXPECT_TRUE(contains(last.out, "Automatic clean")) << last;
  }
  EXPECT_TRUE(contains(last.out, "Automatic clean: 1 old version removed")) << last;

  const Result status = run({"status"});
  ASSERT_TRUE(succeeded(status));
  bool found = false;
  for (const std::string& line : lines_of(status.out)) {
    if (line.rfind("Last clean:", 0) == 0) {
      found = true;
      EXPECT_TRUE(contains(line, "1 version removed")) << status;
    }
  }
  EXPECT_TRUE(found) << "status must show the automatic clean" << status;

  ASSERT_NO_FATAL_FAILURE(write_text(file, "alpha 3\n"));
  const Result json = run({"backup", "--json"});
  ASSERT_TRUE(succeeded(json));
  EXPECT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(versions_of(file), (std::vector<long long>{3})) << "versions 1 and 2 must be gone";
}

// ================================================================ orphan packs

// A pack no run recorded (as an interrupted backup leaves) is deleted by any clean and reported;
// everything else stays and still restores.
TEST_F(CleanCliTest, OrphanPackIsDeleted) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, second\n"));
  ASSERT_NO_FATAL_FAILURE(backup());
  const std::vector<std::string> recorded = packs();
  const std::string orphan = plant_orphan_pack();
  ASSERT_FALSE(orphan.empty());
  const auto orphan_size = static_cast<long long>(fs::file_size(orphan));

  // Seen for the first time: kept for the grace period (24 hours by default).
  const std::string first = clean_json({"--keep-days", "36500", "--keep-versions", "10"});
  EXPECT_EQ(json_of(first)["orphan_packs"], 0) << first;
  EXPECT_EQ(json_of(first)["orphan_packs_kept"], 1) << first;
  EXPECT_TRUE(exists(orphan)) << first;
  const Result text = run({"clean", "--keep-days", "36500", "--keep-versions", "10"});
  EXPECT_NE(text.out.find("1 kept (first seen less than retention.orphan_grace_hours ago"), std::string::npos) << text;

  ASSERT_TRUE(succeeded(run({"config", "set", "retention.orphan_grace_hours", "0"})));
  const std::string report = clean_json({"--keep-days", "36500", "--keep-versions", "10"});
  EXPECT_EQ(json_of(report)["orphan_packs"], 1) << report;
  EXPECT_EQ(json_of(report)["versions_removed"], 0) << report;
  EXPECT_EQ(json_of(report)["bytes_freed"], orphan_size) << report;
  EXPECT_FALSE(exists(orphan)) << report;
  EXPECT_EQ(packs(), recorded) << "only the orphan may go";
  ASSERT_NO_FATAL_FAILURE(expect_source_restores("restored"));
  const std::string v1 = root_ + "/a-v1.txt";
  ASSERT_TRUE(succeeded(run({"restore", "--file", src_ + "/a.txt", "--version", "1", "--destination", v1})));
  EXPECT_EQ(read_text(v1), "alpha\n");
}

// ================================================================ status, and a second clean

// `status --json` has no last_clean before the first clean, then one with the versions it
// removed, while last_run still describes the last backup. A clean right after a clean has
// nothing to do: it removes and frees nothing, writes no manifest, and leaves the destination as
// it was.
TEST_F(CleanCliTest, StatusShowsTheLastCleanAndASecondCleanDoesNothing) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, second\n"));
  ASSERT_NO_FATAL_FAILURE(backup());
  const std::string before = status_json();
  EXPECT_EQ(json_of(before)["last_clean"], nullptr) << before;

  const std::string first = clean_json({"--keep-days", "0", "--keep-versions", "1"});
  ASSERT_EQ(json_of(first)["versions_removed"], 1) << first;
  const std::string manifest = json_of(first).value("manifest", "");
  ASSERT_FALSE(manifest.empty()) << "the first clean must write a manifest" << first;
  EXPECT_TRUE(exists(dest_ + "/" + manifest)) << first;

  const std::string after = status_json();
  nlohmann::json last_clean = json_of(after)["last_clean"];
  ASSERT_TRUE(last_clean.is_object()) << "last_clean must be an object" << after;
  EXPECT_EQ(last_clean["versions_removed"], 1) << after;
  EXPECT_EQ(last_clean["status"], "ok") << after;
  nlohmann::json last_run = json_of(after)["last_run"];
  ASSERT_TRUE(last_run.is_object()) << after;
  EXPECT_EQ(last_run["kind"], "backup") << "last_run is the last backup" << after;
  EXPECT_EQ(last_run["files_changed"], 1) << after;
  EXPECT_EQ(last_run["files_new"], 0) << after;

  const std::string dest_before = listing(dest_);
  const std::string second = clean_json({"--keep-days", "0", "--keep-versions", "1"});
  EXPECT_EQ(json_of(second)["versions_removed"], 0) << second;
  EXPECT_EQ(json_of(second)["bytes_freed"], 0) << second;
  EXPECT_EQ(json_of(second)["packs_deleted"], 0) << second;
  EXPECT_EQ(json_of(second)["packs_rewritten"], 0) << second;
  EXPECT_EQ(json_of(second)["manifest"], "") << second;
  EXPECT_EQ(listing(dest_), dest_before) << "a clean with nothing to do must not write";
}

}  // namespace
}  // namespace mybackup_cli_test
