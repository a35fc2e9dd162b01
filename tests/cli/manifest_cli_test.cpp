// Attack tests (issue 11, items 4 and 5): someone who can write to the destination deletes
// manifests (to roll the repository back, hide newer versions of files and have `clean` delete
// their packs as orphans) or plants a junk one (to block every later backup and recovery). Each
// test reproduces the attack with the built binary and checks it is detected and harmless.

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

constexpr int kPartial = 3;

class ManifestCliTest : public CliTest {
 protected:
  /// The manifest files on the destination, in sequence order (relative to dest/).
  std::vector<std::string> manifests() const {
    std::vector<std::string> keys;
    for (const std::string& name : files_below(dest_ + "/snapshots")) {
      keys.push_back("snapshots/" + name);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  std::vector<std::string> packs() const {
    std::vector<std::string> names;
    for (const std::string& name : files_below(dest_ + "/data")) {
      names.push_back(name);
    }
    return names;
  }

  /// Three backups: a.txt "alpha" then "alpha, second"; hidden.txt only in run 2's data (it
  /// still exists); run 3 changes sub/b.txt.
  void three_runs() {
    ASSERT_NO_FATAL_FAILURE(first_backup());
    write_text(src_ + "/a.txt", "alpha, second\n");
    ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/hidden.bin", 50 * 1024, 5));
    ASSERT_TRUE(succeeded(run({"backup"})));
    write_text(src_ + "/sub/b.txt", "bravo, third\n");
    ASSERT_TRUE(succeeded(run({"backup"})));
    ASSERT_EQ(manifests().size(), 3U) << listing(dest_);
    ASSERT_TRUE(succeeded(run({"config", "set", "retention.orphan_grace_hours", "0"})));
  }
};

// Deleting a middle manifest: every command that looks at the manifests says which number is
// missing; clean deletes nothing (the hidden version's pack would otherwise go as an "orphan"),
// on this computer and on a new one recovered from the destination.
TEST_F(ManifestCliTest, AMissingMiddleManifestIsReportedAndCleanDeletesNothing) {
  ASSERT_NO_FATAL_FAILURE(three_runs());
  const std::string saved_key = root_ + "/saved-key";
  fs::copy_file(key_path(), saved_key);
  ASSERT_EQ(::unlink((dest_ + "/" + manifests()[1]).c_str()), 0);
  const std::vector<std::string> packs_before = packs();

  const Result backup = run({"backup"});
  EXPECT_EQ(backup.code, kPartial) << backup;
  EXPECT_TRUE(contains(backup.err, "manifest number(s) 2 missing")) << backup;

  const Result clean = run({"clean", "--keep-days", "36500"});
  EXPECT_EQ(clean.code, 1) << clean;
  EXPECT_TRUE(contains(clean.err, "clean refused, nothing was deleted")) << clean;
  EXPECT_EQ(packs(), packs_before);

  const Result verify = run({"verify", "--json"});
  EXPECT_EQ(verify.code, 1) << verify;
  EXPECT_EQ(json_of(verify.out)["problems_by_kind"]["manifest_gap"], 1) << verify;

  // A new computer, from the destination and the key alone.
  home_ = root_ + "/new-home";
  const Result recovered = run({"init", "--from", dest_, "--key-file", saved_key});
  EXPECT_EQ(recovered.code, kPartial) << recovered;
  EXPECT_TRUE(contains(recovered.err, "manifest number(s) 2 missing")) << recovered;
  const Result verify_there = run({"verify", "--read-data"});
  EXPECT_EQ(verify_there.code, 1) << verify_there;
  EXPECT_TRUE(contains(verify_there.out + verify_there.err, "manifest number 2 missing")) << verify_there;
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.orphan_grace_hours", "0"})));
  const Result clean_there = run({"clean", "--keep-days", "36500"});
  EXPECT_EQ(clean_there.code, 1) << clean_there;
  EXPECT_EQ(packs(), packs_before) << "the pack of the hidden version must stay";

  // Once the user accepts the loss, clean works again and the gap is no longer reported.
  const Result repair = run({"verify", "--repair"});
  EXPECT_TRUE(contains(repair.out, "1 manifest loss accepted")) << repair;
  EXPECT_TRUE(succeeded(run({"clean", "--keep-days", "36500"})));
  EXPECT_TRUE(succeeded(run({"verify"})));
}

// Deleting the newest manifest leaves no gap, but the home that saw it notices.
TEST_F(ManifestCliTest, ARolledBackDestinationIsNoticedByTheHomeThatSawMore) {
  ASSERT_NO_FATAL_FAILURE(three_runs());
  ASSERT_EQ(::unlink((dest_ + "/" + manifests()[2]).c_str()), 0);
  const std::vector<std::string> packs_before = packs();

  const Result backup = run({"backup"});
  EXPECT_EQ(backup.code, kPartial) << backup;
  EXPECT_TRUE(contains(backup.err, "the newest manifest there is number 2, but this computer has seen number 3"))
      << backup;
  const Result clean = run({"clean", "--keep-days", "36500"});
  EXPECT_EQ(clean.code, 1) << clean;
  EXPECT_EQ(packs(), packs_before);
  const Result verify = run({"verify", "--json"});
  EXPECT_EQ(verify.code, 1) << verify;
  EXPECT_EQ(json_of(verify.out)["problems_by_kind"]["rolled_back"], 1) << verify;
}

// A junk manifest and a bit-flipped one: backups and `init --from` go on (exit 3), naming the
// files; nothing of them is applied; verify reports them.
TEST_F(ManifestCliTest, AJunkOrDamagedManifestNeverBlocksBackupOrRecovery) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  const std::string saved_key = root_ + "/saved-key";
  fs::copy_file(key_path(), saved_key);
  const std::string junk = "snapshots/0000000002-0123456789abcdef.enc";
  ASSERT_NO_FATAL_FAILURE(write_random_file(dest_ + "/" + junk, 3000, 9));

  write_text(src_ + "/a.txt", "alpha, after the junk\n");
  const Result backup = run({"backup"});
  EXPECT_EQ(backup.code, kPartial) << backup;
  EXPECT_TRUE(contains(backup.err, dest_ + "/" + junk)) << backup;
  EXPECT_TRUE(contains(backup.err, "not applied")) << backup;
  ASSERT_EQ(manifests().size(), 3U) << "the backup is stored after the junk" << listing(dest_);

  // Flip one bit in the middle of the genuine newest manifest.
  const std::string newest = dest_ + "/" + manifests()[2];
  std::string bytes = read_text(newest);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
  write_text(newest, bytes);

  home_ = root_ + "/new-home";
  const Result recovered = run({"init", "--from", dest_, "--key-file", saved_key});
  EXPECT_EQ(recovered.code, kPartial) << recovered;
  EXPECT_TRUE(contains(recovered.err, junk)) << recovered;
  EXPECT_TRUE(contains(recovered.err, manifests()[2])) << recovered;
  EXPECT_TRUE(contains(recovered.out, "1 run")) << recovered;
  // What the intact manifest recorded restores.
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", root_ + "/out/r"})));
  EXPECT_EQ(read_text(root_ + "/out/r/sub/b.txt"), "bravo bravo bravo\n");
  EXPECT_EQ(read_text(root_ + "/out/r/a.txt"), "alpha\n");

  const Result verify = run({"verify", "--json"});
  EXPECT_EQ(verify.code, 1) << verify;
  EXPECT_EQ(json_of(verify.out)["problems_by_kind"]["damaged_manifest"], 2) << verify;
  const Result again = run({"backup"});
  EXPECT_EQ(again.code, kPartial) << again;
  EXPECT_TRUE(contains(again.err, junk)) << again;
}

// A junk manifest planted with the last number the format allows made every later backup fail
// (the next number, 10000000000, has no name). The numbers go on from the last authentic manifest,
// and this home never comes to expect the planted number: once the junk is gone, nothing is
// reported as rolled back.
TEST_F(ManifestCliTest, AJunkManifestWithTheLastNumberNeverStopsTheSequence) {
  ASSERT_NO_FATAL_FAILURE(first_backup());
  const std::string junk = "snapshots/9999999999-0123456789abcdef.enc";
  ASSERT_NO_FATAL_FAILURE(write_random_file(dest_ + "/" + junk, 3000, 10));

  write_text(src_ + "/a.txt", "alpha, after the junk\n");
  const Result backup = run({"backup"});
  EXPECT_EQ(backup.code, kPartial) << backup;
  EXPECT_TRUE(contains(backup.err, dest_ + "/" + junk)) << backup;
  write_text(src_ + "/a.txt", "alpha, once more\n");
  EXPECT_EQ(run({"backup"}).code, kPartial);
  std::vector<std::string> numbers;
  for (const std::string& key : manifests()) {
    numbers.push_back(key.substr(std::string("snapshots/").size(), 10));
  }
  EXPECT_EQ(numbers, (std::vector<std::string>{"0000000001", "0000000002", "0000000003", "9999999999"}));

  ASSERT_EQ(::unlink((dest_ + "/" + junk).c_str()), 0);
  const Result clean_run = run({"backup"});
  EXPECT_EQ(clean_run.code, 0) << clean_run;
  EXPECT_TRUE(succeeded(run({"verify"})));
  const std::string out = root_ + "/out/r";
  ASSERT_TRUE(succeeded(run({"restore", "--file", src_ + "/a.txt", "--destination", out})));
  EXPECT_EQ(read_text(out), "alpha, once more\n");
}

// Item 6: after a pack is deleted, a backup must not deduplicate against it: a copy of a file it
// held is stored again (not "0 bytes stored"), the file itself is read again, and both restore.
TEST_F(ManifestCliTest, ABackupNeverDeduplicatesAgainstAMissingPack) {
  ASSERT_NO_FATAL_FAILURE(configure());
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/photo.bin", 200 * 1024, 11));
  ASSERT_TRUE(succeeded(run({"backup"})));
  for (const std::string& pack : packs()) {
    ASSERT_EQ(::unlink((dest_ + "/data/" + pack).c_str()), 0);
  }
  fs::copy_file(src_ + "/photo.bin", src_ + "/copy.bin");

  const Result backup = run({"backup", "--json"});
  EXPECT_EQ(backup.code, kPartial) << backup;
  EXPECT_TRUE(contains(backup.err, "missing from the destination")) << backup;
  EXPECT_GE(json_of(backup.out)["bytes_stored"].get<long long>(), 200 * 1024) << backup;
  EXPECT_EQ(json_of(backup.out)["untrusted_packs"].size(), 1U) << backup;
  const std::string out = root_ + "/out/healed";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  EXPECT_TRUE(read_text(out + "/photo.bin") == read_text(src_ + "/photo.bin"));
  EXPECT_TRUE(read_text(out + "/copy.bin") == read_text(src_ + "/photo.bin"));
  EXPECT_EQ(read_text(out + "/a.txt"), "alpha\n");
  // Healed: the next backup has nothing to say.
  EXPECT_TRUE(succeeded(run({"backup"})));
}

// Item 6: `verify --repair` after damage found by `verify --read-data` (same size, so the cheap
// check cannot see it): the next backup stores the files again, and a catalog rebuilt from the
// destination agrees with the live one.
TEST_F(ManifestCliTest, VerifyRepairMakesTheNextBackupHealDamagedData) {
  ASSERT_NO_FATAL_FAILURE(configure());
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/photo.bin", 200 * 1024, 12));
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_EQ(packs().size(), 1U);
  const std::string pack = dest_ + "/data/" + packs()[0];
  std::string bytes = read_text(pack);
  bytes[bytes.size() / 3] = static_cast<char>(bytes[bytes.size() / 3] ^ 1);
  write_text(pack, bytes);
  const std::string saved_key = root_ + "/saved-key";
  fs::copy_file(key_path(), saved_key);

  EXPECT_EQ(run({"backup"}).code, 0) << "same size: only reading the data shows the damage";
  const Result repair = run({"verify", "--read-data", "--repair"});
  EXPECT_EQ(repair.code, 1) << repair;
  EXPECT_TRUE(contains(repair.out, "will not be trusted again")) << repair;
  EXPECT_TRUE(contains(repair.out, "lost from the primary: " + src_ + "/photo.bin version 1")) << repair;

  const Result healing = run({"backup", "--json"});
  EXPECT_EQ(healing.code, 0) << healing;
  EXPECT_GE(json_of(healing.out)["bytes_stored"].get<long long>(), 200 * 1024) << healing;
  const std::string out = root_ + "/out/healed";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  EXPECT_TRUE(read_text(out + "/photo.bin") == read_text(src_ + "/photo.bin"));

  home_ = root_ + "/new-home";
  ASSERT_TRUE(succeeded(run({"init", "--from", dest_, "--key-file", saved_key})));
  const std::string again = root_ + "/out/rebuilt";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", again})));
  EXPECT_TRUE(read_text(again + "/photo.bin") == read_text(src_ + "/photo.bin"));
}

}  // namespace
}  // namespace mybackup_cli_test
