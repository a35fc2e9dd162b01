// End-to-end tests of the `mybackup` command line: every test runs the built binary exactly as a
// user would (fork + exec, its own MYBACKUP_HOME under a fresh temporary directory) and checks the
// exit code, what it printed, and what it changed on disk -- or, for bad input, that it changed
// nothing at all. The harness (and the layout of each test's temporary directory) is in
// cli_harness.hpp.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {


// ================================================================ happy path

TEST_F(CliTest, InitCreatesConfigKeyAndCatalog) {
  const Result result = run({"init"});
  ASSERT_TRUE(succeeded(result));
  EXPECT_TRUE(contains(result.out, "Initialized mybackup in " + home_)) << result;
  EXPECT_TRUE(contains(result.out, "mybackup add")) << "init should say what to do next" << result;
  EXPECT_EQ(result.err, "");
  EXPECT_TRUE(exists(config_path()));
  EXPECT_TRUE(exists(home_ + "/backups.db"));
  ASSERT_TRUE(exists(key_path()));
  EXPECT_EQ(file_mode(key_path()), 0600U);
  EXPECT_EQ(file_mode(home_), 0700U);
  EXPECT_EQ(key_hex(key_path()).size(), 64U);
  EXPECT_TRUE(contains(read_text(key_path()), "mybackup-key-v1"));
}

// Attack (issue 11, item 13): under umask 000 the log was 0666, readable by every local user.
TEST_F(CliTest, TheHomeCatalogAndLogsArePrivateWhateverTheUmask) {
  const mode_t saved = ::umask(0);
  configure();
  const Result backed_up = run({"backup"});
  ::umask(saved);
  ASSERT_TRUE(succeeded(backed_up));
  EXPECT_EQ(file_mode(home_), 0700U);
  EXPECT_EQ(file_mode(home_ + "/backups.db"), 0600U);
  EXPECT_EQ(file_mode(home_ + "/key"), 0600U);
  EXPECT_EQ(file_mode(log_path()), 0600U);
  for (const std::string side : {"-wal", "-shm"}) {
    if (exists(home_ + "/backups.db" + side)) {
      EXPECT_EQ(file_mode(home_ + "/backups.db" + side), 0600U) << side;
    }
  }

  // A home opened up by hand is tightened by nobody but the user: each command says how.
  ASSERT_EQ(::chmod(home_.c_str(), 0755), 0);
  const Result status = run({"status"});
  ASSERT_TRUE(succeeded(status));
  EXPECT_TRUE(contains(status.err, "can be read by other users (mode 0755)")) << status;
  EXPECT_TRUE(contains(status.err, "chmod 700 " + home_)) << status;
  ASSERT_EQ(::chmod(home_.c_str(), 0700), 0);
  EXPECT_FALSE(contains(run({"status"}).err, "other users"));
}

TEST_F(CliTest, BackupThenStatusShowsFilesAndSource) {
  configure();
  const Result backup = run({"backup"});
  ASSERT_TRUE(succeeded(backup));
  EXPECT_TRUE(contains(backup.out, "Backup finished in ")) << backup;
  EXPECT_TRUE(contains(backup.out, "3 new, 0 changed, 0 deleted, 0 unchanged")) << backup;
  EXPECT_TRUE(contains(backup.out, dest_)) << backup;
  EXPECT_EQ(backup.err, "");
  EXPECT_TRUE(exists(dest_ + "/mybackup-repo.json"));
  EXPECT_TRUE(exists(dest_ + "/snapshots"));
  EXPECT_TRUE(exists(dest_ + "/data"));
  EXPECT_EQ(lock_files(), std::vector<std::string>{}) << "the lock must be released after the run";

  const Result status = run({"status"});
  ASSERT_TRUE(succeeded(status));
  EXPECT_TRUE(contains(status.out, "Destination:  " + dest_)) << status;
  EXPECT_TRUE(contains(status.out, "Files:        3 files (")) << status;
  EXPECT_TRUE(contains(status.out, "3 versions in history")) << status;
  EXPECT_TRUE(contains(status.out, "Last backup:  ")) << status;
  EXPECT_FALSE(contains(status.out, "Last clean:")) << status;
  EXPECT_TRUE(contains(status.out, "ok (3 new, 0 changed, 0 deleted)")) << status;
  EXPECT_TRUE(contains(status.out, "  " + src_ + "  3 files")) << status;
}

TEST_F(CliTest, SecondBackupFindsNothingNewAndWritesNothing) {
  first_backup();
  const std::string dest_before = listing(dest_);
  const Result second = run({"backup"});
  ASSERT_TRUE(succeeded(second));
  EXPECT_TRUE(contains(second.out, "0 new, 0 changed, 0 deleted, 3 unchanged")) << second;
  EXPECT_EQ(listing(dest_), dest_before) << "an unchanged tree must not add anything to the destination";
}

TEST_F(CliTest, EditDeleteAndAddAreCounted) {
  first_backup();
  write_text(src_ + "/a.txt", "alpha, edited and longer\n");
  ASSERT_EQ(::unlink((src_ + "/sub/b.txt").c_str()), 0);
  write_text(src_ + "/d.txt", "delta\n");
  const Result result = run({"backup", "--verbose"});
  ASSERT_TRUE(succeeded(result));
  EXPECT_TRUE(contains(result.out, "1 new, 1 changed, 1 deleted, 1 unchanged")) << result;
  EXPECT_TRUE(contains(result.out, "added    " + src_ + "/d.txt")) << result;
  EXPECT_TRUE(contains(result.out, "changed  " + src_ + "/a.txt")) << result;
  EXPECT_TRUE(contains(result.out, "deleted  " + src_ + "/sub/b.txt")) << result;
  EXPECT_FALSE(contains(result.out, "c.bin")) << "unchanged files are not listed" << result;

  const std::string status = status_json();
  EXPECT_EQ(json_of(status)["files"], 3) << status;     // a.txt, c.bin, d.txt
  EXPECT_EQ(json_of(status)["versions"], 5) << status;  // 3 + a.txt v2 + d.txt
}

TEST_F(CliTest, BackupJsonIsOneObjectWithCounts) {
  first_backup();
  write_text(src_ + "/new.txt", "new\n");
  const Result result = run({"backup", "--json", "--verbose"});
  ASSERT_TRUE(succeeded(result));
  ASSERT_TRUE(is_one_json_object(result.out)) << result;
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(json_of(result.out)["dry_run"], false) << result;
  EXPECT_EQ(json_of(result.out)["status"], "ok") << result;
  EXPECT_EQ(json_of(result.out)["destination"], dest_) << result;
  EXPECT_EQ(json_of(result.out)["files_new"], 1) << result;
  EXPECT_EQ(json_of(result.out)["files_changed"], 0) << result;
  EXPECT_EQ(json_of(result.out)["files_deleted"], 0) << result;
  EXPECT_EQ(json_of(result.out)["files_unchanged"], 3) << result;
  EXPECT_EQ(json_of(result.out)["files_skipped"], 0) << result;
  EXPECT_EQ(json_of(result.out)["bytes_read"], 4) << result;
  EXPECT_TRUE(json_of(result.out).value("manifest", "").rfind("snapshots/", 0) == 0) << result;
  EXPECT_TRUE(contains(result.out, "\"skipped\": []")) << result;
  EXPECT_FALSE(contains(result.out, "added    ")) << "--verbose lines must not break --json" << result;
}

TEST_F(CliTest, StatusJsonReportsCatalogAndSources) {
  init();
  const std::string empty = status_json();
  EXPECT_EQ(json_of(empty)["files"], 0) << empty;
  EXPECT_EQ(json_of(empty)["last_run"], nullptr) << empty;
  EXPECT_EQ(json_of(empty)["destinations"]["primary"], nullptr) << empty;

  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_, "--exclude", "*.bin"})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::string status = status_json();
  EXPECT_EQ(json_of(status)["home"], home_) << status;
  EXPECT_EQ(json_of(status)["destinations"]["primary"], dest_) << status;
  EXPECT_EQ(json_of(status).value("repository_id", "").size(), 32U) << status;
  EXPECT_EQ(json_of(status)["files"], 2) << status;  // c.bin excluded
  EXPECT_EQ(json_of(status)["runs"], 1) << status;
  EXPECT_EQ(json_of(status)["last_run"]["kind"], "backup") << status;
  EXPECT_EQ(json_of(status)["last_run"]["status"], "ok") << status;
  EXPECT_EQ(source_files(status, src_), 2) << status;
  EXPECT_TRUE(contains(status, "\"*.bin\"")) << status;
}

TEST_F(CliTest, DryRunListsFilesAndWritesNothing) {
  configure();
  const std::string catalog_before = status_json();
  const Result first = run({"backup", "--dry-run", "--verbose"});
  ASSERT_TRUE(succeeded(first));
  EXPECT_TRUE(contains(first.out, "would be added    " + src_ + "/a.txt")) << first;
  EXPECT_TRUE(contains(first.out, "would be added    " + src_ + "/sub/b.txt")) << first;
  EXPECT_TRUE(contains(first.out, "would be added    " + src_ + "/sub/")) << first;
  EXPECT_TRUE(contains(first.out, "Dry run (nothing written)")) << first;
  EXPECT_TRUE(contains(first.out, "3 new, 0 changed, 0 deleted, 0 unchanged")) << first;
  EXPECT_FALSE(exists(dest_)) << "a dry run must not create the destination";
  EXPECT_EQ(status_json(), catalog_before) << "a dry run must not touch the catalog";

  ASSERT_TRUE(succeeded(run({"backup"})));
  write_text(src_ + "/a.txt", "alpha, but changed\n");
  const std::string dest_before = listing(dest_);
  const std::string catalog_after_backup = status_json();
  const Result second = run({"backup", "-n", "-v"});
  ASSERT_TRUE(succeeded(second));
  EXPECT_TRUE(contains(second.out, "would be changed  " + src_ + "/a.txt")) << second;
  EXPECT_TRUE(contains(second.out, "0 new, 1 changed, 0 deleted, 2 unchanged")) << second;
  EXPECT_EQ(listing(dest_), dest_before) << "a dry run must not write to the destination";
  EXPECT_EQ(status_json(), catalog_after_backup) << "a dry run must not touch the catalog";

  const Result json = run({"backup", "--dry-run", "--json"});
  ASSERT_TRUE(succeeded(json));
  ASSERT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["dry_run"], true) << json;
  EXPECT_EQ(json_of(json.out)["files_changed"], 1) << json;
  EXPECT_EQ(listing(dest_), dest_before);
}

TEST_F(CliTest, SourceOptionBacksUpOnlyThatSource) {
  configure();
  const std::string src2 = root_ + "/src2";
  ASSERT_EQ(::mkdir(src2.c_str(), 0755), 0);
  write_text(src2 + "/only.txt", "only\n");
  ASSERT_TRUE(succeeded(run({"add", src2})));

  const Result one = run({"backup", "--source", src2 + "/"});  // a trailing slash, as tab completion adds
  ASSERT_TRUE(succeeded(one));
  EXPECT_TRUE(contains(one.out, "1 new, 0 changed, 0 deleted, 0 unchanged")) << one;
  std::string status = status_json();
  EXPECT_EQ(source_files(status, src2), 1) << status;
  EXPECT_EQ(source_files(status, src_), 0) << status;

  const Result all = run({"backup"});
  ASSERT_TRUE(succeeded(all));
  EXPECT_TRUE(contains(all.out, "3 new, 0 changed, 0 deleted, 1 unchanged")) << all;
  status = status_json();
  EXPECT_EQ(source_files(status, src_), 3) << status;
  EXPECT_EQ(source_files(status, src2), 1) << status;

  const std::string dest_before = listing(dest_);
  const Result other = run({"backup", "--source", root_ + "/elsewhere"});
  EXPECT_TRUE(failed_with(other, 2, {root_ + "/elsewhere", "is not a source", "mybackup add"}));
  EXPECT_EQ(listing(dest_), dest_before);
}

TEST_F(CliTest, RemoveKeepsHistoryAndBackupThenHasNoSource) {
  first_backup();
  const Result removed = run({"remove", src_});
  ASSERT_TRUE(succeeded(removed));
  EXPECT_TRUE(contains(removed.out, "Removed source " + src_)) << removed;
  EXPECT_FALSE(contains(read_text(config_path()), src_));

  const std::string status = status_json();
  EXPECT_EQ(json_of(status)["versions"], 3) << "history stays after remove" << status;
  EXPECT_EQ(json_of(status)["files"], 3) << status;
  EXPECT_TRUE(contains(status, "\"sources\": []")) << status;

  const std::string dest_before = listing(dest_);
  const Result backup = run({"backup"});
  EXPECT_TRUE(failed_with(backup, 2, {"no source", "mybackup add"}));
  EXPECT_EQ(listing(dest_), dest_before);

  const std::string config_before = read_text(config_path());
  const Result again = run({"remove", src_});
  EXPECT_TRUE(failed_with(again, 1, {src_, "is not a source"}));
  EXPECT_EQ(read_text(config_path()), config_before);
}

TEST_F(CliTest, EveryCommandHelpHasAnExample) {
  const std::vector<std::vector<std::string>> commands = {
      {"--help"},          {"init", "--help"},           {"add", "--help"},           {"remove", "--help"},
      {"config", "--help"}, {"config", "set", "--help"}, {"config", "show", "--help"}, {"backup", "--help"},
      {"status", "--help"}};
  for (const std::vector<std::string>& command : commands) {
    const Result result = run(command);
    EXPECT_TRUE(succeeded(result));
    EXPECT_TRUE(contains(result.out, "Example:\n  mybackup ")) << result;
    EXPECT_TRUE(contains(result.out, "Usage")) << result;
  }
  EXPECT_FALSE(exists(home_)) << "--help must not create the home";
}

TEST_F(CliTest, VersionPrintsNameAndSemver) {
  const Result result = run({"--version"});
  ASSERT_TRUE(succeeded(result));
  const std::vector<std::string> lines = lines_of(result.out);
  ASSERT_EQ(lines.size(), 1U) << result;
  const std::string& line = lines[0];
  ASSERT_EQ(line.rfind("mybackup ", 0), 0U) << result;
  const std::string version = line.substr(9);
  EXPECT_EQ(count_of(version, "."), 2U) << result;
  EXPECT_TRUE(std::all_of(version.begin(), version.end(),
                          [](char c) { return c == '.' || std::isdigit(static_cast<unsigned char>(c)) != 0; }))
      << result;
  EXPECT_EQ(result.err, "");
}

TEST_F(CliTest, HomeOptionOverridesEnvironmentAndDefaultIsUnderHOME) {
  const std::string other = root_ + "/other";
  const RunOptions env_other{{{"MYBACKUP_HOME", other}}, ""};
  const Result result = run({"--home", home_, "init"}, env_other);
  ASSERT_TRUE(succeeded(result));
  EXPECT_TRUE(exists(config_path()));
  EXPECT_FALSE(exists(other)) << "--home must win over MYBACKUP_HOME";
  const Result status = run({"--home", home_, "status", "--json"}, env_other);
  ASSERT_TRUE(succeeded(status));
  EXPECT_EQ(json_of(status.out)["home"], home_) << status;

  // Without --home and MYBACKUP_HOME: ~/.mybackup.
  const RunOptions no_env{{{"MYBACKUP_HOME", std::nullopt}}, ""};
  ASSERT_TRUE(succeeded(run({"init"}, no_env)));
  EXPECT_TRUE(exists(root_ + "/user/.mybackup/config.yaml"));

  // A relative --home is taken against the current directory.
  ASSERT_TRUE(succeeded(run({"--home", "rel-home", "init"}, RunOptions{{}, root_})));
  EXPECT_TRUE(exists(root_ + "/rel-home/config.yaml"));
}

TEST_F(CliTest, RelativeSourcePathIsMadeAbsolute) {
  init();
  make_tree();
  const Result added = run({"add", "."}, RunOptions{{}, src_});
  ASSERT_TRUE(succeeded(added));
  EXPECT_TRUE(contains(added.out, "Added source " + src_ + "\n")) << added;
  EXPECT_TRUE(contains(read_text(config_path()), "'" + src_ + "'"));
}

TEST_F(CliTest, QuietPrintsNothingButErrors) {
  configure();
  const Result quiet = run({"--quiet", "backup"});
  ASSERT_TRUE(succeeded(quiet));
  EXPECT_EQ(quiet.out, "");
  EXPECT_EQ(quiet.err, "");
  const Result error = run({"-q", "config", "set", "compression.level", "0"});
  EXPECT_TRUE(failed_with(error, 2, {"compression.level"}));
}

TEST_F(CliTest, LogFileRecordsEachCommand) {
  first_backup();
  EXPECT_TRUE(failed_with(run({"config", "set", "nonsense", "1"}), 2, {"unknown key"}));
  ASSERT_TRUE(exists(log_path()));
  const std::string log = read_text(log_path());
  EXPECT_TRUE(contains(log, "init: initialized " + home_)) << log;
  EXPECT_TRUE(contains(log, "add: source " + src_)) << log;
  EXPECT_TRUE(contains(log, "config set destinations.primary = " + dest_)) << log;
  EXPECT_TRUE(contains(log, "backup: start")) << log;
  EXPECT_TRUE(contains(log, "backup: ok")) << log;
  EXPECT_TRUE(contains(log, "unknown key 'nonsense'")) << "errors are logged too\n" << log;
  for (const std::string& line : lines_of(log)) {
    EXPECT_TRUE(contains(line, " pid=")) << line;
  }
}

TEST_F(CliTest, KeyNeverAppearsInOutputOrLog) {
  first_backup();
  const std::string key = key_hex(key_path());
  ASSERT_EQ(key.size(), 64U);
  const Result show = run({"config", "show"});
  ASSERT_TRUE(succeeded(show));
  EXPECT_TRUE(contains(show.out, "encryption = AES-256-GCM (key file " + key_path() + ")")) << show;
  EXPECT_TRUE(contains(show.out, "destinations.primary = " + dest_)) << show;
  EXPECT_TRUE(contains(show.out, "compression.level = 3")) << show;
  const Result json = run({"config", "show", "--json"});
  ASSERT_TRUE(succeeded(json));
  EXPECT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["key_file"], key_path()) << json;
  ASSERT_TRUE(succeeded(run({"status"})));
  ASSERT_TRUE(succeeded(run({"backup", "--verbose", "--json"})));
  ASSERT_TRUE(succeeded(run({"backup", "--dry-run", "--verbose"})));
  // check_no_key_leaked() (TearDown) checks every output above and the log; check here as well so
  // the failure points at this test's purpose.
  for (const std::string& output : outputs_) {
    EXPECT_FALSE(contains(output, key));
  }
  EXPECT_FALSE(contains(read_text(log_path()), key));
}

// ================================================================ bad input: init

TEST_F(CliTest, InitTwiceFailsAndKeepsTheKey) {
  init();
  const std::string key_before = read_text(key_path());
  const std::string config_before = read_text(config_path());
  const Result again = run({"init"});
  EXPECT_TRUE(failed_with(again, 1, {"already initialized", home_, "mybackup init --force"}));
  EXPECT_EQ(read_text(key_path()), key_before);
  EXPECT_EQ(read_text(config_path()), config_before);
}

TEST_F(CliTest, InitForceKeepsTheOldKeyAside) {
  init();
  const std::string old_key = read_text(key_path());
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const Result forced = run({"init", "--force"});
  ASSERT_TRUE(succeeded(forced));
  std::vector<std::string> old_keys;
  std::vector<std::string> old_configs;
  for (const auto& entry : fs::directory_iterator(home_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("key.old-", 0) == 0) {
      old_keys.push_back(entry.path().string());
    }
    if (name.rfind("config.yaml.old-", 0) == 0) {
      old_configs.push_back(entry.path().string());
    }
  }
  ASSERT_EQ(old_keys.size(), 1U) << listing(home_);
  EXPECT_EQ(read_text(old_keys[0]), old_key);
  EXPECT_EQ(file_mode(old_keys[0]), 0600U);
  EXPECT_NE(read_text(key_path()), old_key);
  EXPECT_EQ(file_mode(key_path()), 0600U);
  ASSERT_EQ(old_configs.size(), 1U) << listing(home_);
  EXPECT_TRUE(contains(read_text(old_configs[0]), src_));
  EXPECT_FALSE(contains(read_text(config_path()), src_)) << "the new config starts empty";
}

// ================================================================ bad input: add

TEST_F(CliTest, AddMissingPathFails) {
  init();
  const std::string config_before = read_text(config_path());
  const Result result = run({"add", root_ + "/nowhere"});
  EXPECT_TRUE(failed_with(result, 1, {root_ + "/nowhere", "no such file or directory"}));
  EXPECT_EQ(read_text(config_path()), config_before);
}

TEST_F(CliTest, AddSameSourceTwiceFails) {
  init();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const std::string config_before = read_text(config_path());
  const Result result = run({"add", src_ + "/"});
  EXPECT_TRUE(failed_with(result, 1, {src_, "already a source"}));
  EXPECT_EQ(read_text(config_path()), config_before);
}

TEST_F(CliTest, AddOverlappingSourceFails) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const std::string config_before = read_text(config_path());
  const Result inside = run({"add", src_ + "/sub"});
  EXPECT_TRUE(failed_with(inside, 2, {src_ + "/sub", "overlaps the source " + src_}));
  const Result outside = run({"add", root_});
  EXPECT_TRUE(failed_with(outside, 2, {"overlaps the source " + src_}));
  EXPECT_EQ(read_text(config_path()), config_before);
}

// ================================================================ bad input: config

TEST_F(CliTest, ConfigSetRejectsBadKeysAndValues) {
  init();
  const std::string config_before = read_text(config_path());
  struct Case {
    std::string key;
    std::string value;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"colour", "blue", {"unknown key 'colour'", "valid keys are", "compression.level"}},
      {"compression.level", "0", {"compression.level", "from 1 to 22", "'0'"}},
      {"compression.level", "23", {"compression.level", "from 1 to 22", "'23'"}},
      {"compression.level", "abc", {"compression.level", "from 1 to 22", "'abc'"}},
      {"watch.interval", "-5", {"watch.interval", "at least 1", "'-5'"}},
      {"retention.keep_versions", "0", {"retention.keep_versions", "at least 1", "'0'"}},
      {"compression.enabled", "maybe", {"compression.enabled", "true or false"}},
      {"destination", "nosuch://x", {"nosuch://x", "unsupported scheme 'nosuch://'", "supported: file://"}},
      {"destinations.secondary", "file://otherhost/x", {"file://otherhost/x", "file:///absolute/path"}},
      {"repository.chunk_size", "3000", {"repository.chunk_size", "power of two from 1 KiB to 4 MiB"}},
      {"repository.pack_size", "1GiB", {"repository.pack_size", "a size like 64KiB or 16MiB", "'1GiB'"}},
  };
  for (const Case& item : cases) {
    const Result result = run({"config", "set", item.key, item.value});
    EXPECT_TRUE(failed_with(result, 2, item.parts));
    EXPECT_EQ(read_text(config_path()), config_before) << result;
  }
  const Result good = run({"config", "set", "compression.level", "22"});
  ASSERT_TRUE(succeeded(good));
  EXPECT_EQ(good.out, "compression.level = 22\n");
}

// repository.chunk_size and repository.pack_size, set before the first backup, are what the new
// repository is created with: its marker records them, the packs follow them, and the data
// restores. Changing them later does not change that repository.
TEST_F(CliTest, RepositorySettingsChooseTheChunkAndPackSizesOfANewRepository) {
  configure();
  ASSERT_TRUE(succeeded(run({"config", "set", "repository.chunk_size", "16KiB"})));
  const Result set_pack = run({"config", "set", "repository.pack_size", "128 KiB"});
  ASSERT_TRUE(succeeded(set_pack));
  EXPECT_EQ(set_pack.out, "repository.pack_size = 128KiB\n");
  const Result shown = run({"config", "show", "--json"});
  ASSERT_TRUE(succeeded(shown));
  EXPECT_EQ(json_of(shown.out)["repository.chunk_size"], "16KiB") << shown;
  EXPECT_EQ(json_of(shown.out)["repository.pack_size"], "128KiB") << shown;
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big.bin", 700 * 1024, 7));
  ASSERT_TRUE(succeeded(run({"backup"})));

  const std::string marker_path = dest_ + "/mybackup-repo.json";
  const std::string marker = read_text(marker_path);
  const nlohmann::json recorded = json_of(marker);
  EXPECT_EQ(recorded["chunker"]["avg_size"], 16 * 1024) << marker;
  EXPECT_EQ(recorded["chunker"]["min_size"], 8 * 1024) << marker;
  EXPECT_EQ(recorded["chunker"]["max_size"], 128 * 1024) << marker;
  EXPECT_EQ(recorded["pack_target_size"], 128 * 1024) << marker;
  std::size_t packs = 0;
  for (const std::string& file : files_below(dest_ + "/data")) {
    packs += fs::path(file).extension() == ".enc" ? 1 : 0;
    EXPECT_LT(fs::file_size(dest_ + "/data/" + file), 160U * 1024) << file << ": packs close near 128 KiB";
  }
  EXPECT_GE(packs, 5U) << "700 KiB in 128 KiB packs" << listing(dest_);

  // Later changes apply to a repository created later, not to this one.
  ASSERT_TRUE(succeeded(run({"config", "set", "repository.pack_size", "1MiB"})));
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/more.bin", 300 * 1024, 8));
  ASSERT_TRUE(succeeded(run({"backup"})));
  EXPECT_EQ(read_text(marker_path), marker);
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", out})));
  EXPECT_TRUE(read_text(out + "/big.bin") == read_text(src_ + "/big.bin"));
  EXPECT_TRUE(read_text(out + "/more.bin") == read_text(src_ + "/more.bin"));

  // Attack (issue 11, item 3): the sizes are authenticated; an edited marker is refused as damaged
  // and nothing is written.
  std::string edited = marker;
  const std::string field = "\"avg_size\": 16384";
  ASSERT_NE(edited.find(field), std::string::npos) << marker;
  edited.replace(edited.find(field), field.size(), "\"avg_size\": 1024");
  const std::string min_field = "\"min_size\": 8192";
  ASSERT_NE(edited.find(min_field), std::string::npos) << marker;
  edited.replace(edited.find(min_field), min_field.size(), "\"min_size\": 512");
  write_text(marker_path, edited);
  const std::vector<std::string> before = files_below(dest_);
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/third.bin", 100 * 1024, 9));
  const Result refused = run({"backup"});
  EXPECT_NE(refused.code, 0) << refused;
  EXPECT_NE(refused.err.find("mybackup-repo.json is damaged"), std::string::npos) << refused;
  EXPECT_EQ(files_below(dest_), before);
}

TEST_F(CliTest, AFileUrlDestinationWorksLikeAPlainPath) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const Result set = run({"config", "set", "destination", "file://" + dest_});
  ASSERT_TRUE(succeeded(set));
  EXPECT_EQ(set.out, "destinations.primary = file://" + dest_ + "\n");
  ASSERT_TRUE(succeeded(run({"backup"})));
  EXPECT_TRUE(exists(dest_ + "/mybackup-repo.json"));
  // The same destination spelled as a plain path is the same repository.
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  const Result again = run({"backup", "--json"});
  ASSERT_TRUE(succeeded(again));
  EXPECT_EQ(json_of(again.out)["files_new"], 0) << again;
  const std::string restored = root_ + "/restored";
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", "file://" + dest_})));
  ASSERT_TRUE(succeeded(run({"restore", "--directory", src_, "--destination", restored})));
  EXPECT_EQ(read_text(restored + "/a.txt"), read_text(src_ + "/a.txt"));
}

TEST_F(CliTest, BrokenConfigNamesFileAndLine) {
  configure();
  append_text(config_path(), "compression: [unclosed\n");
  const std::string config_before = read_text(config_path());
  const std::size_t line_count = lines_of(config_before).size();
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"status"}, std::vector<std::string>{"backup"}, std::vector<std::string>{"config", "show"}}) {
    const Result result = run(command);
    EXPECT_TRUE(failed_with(result, 1, {config_path() + ":"}));
    // The error is on the appended line (or the end of the file just after it).
    EXPECT_TRUE(contains(result.err, config_path() + ":" + std::to_string(line_count) + ":") ||
                contains(result.err, config_path() + ":" + std::to_string(line_count + 1) + ":"))
        << result;
  }
  EXPECT_EQ(read_text(config_path()), config_before);
  EXPECT_FALSE(exists(dest_));
}

TEST_F(CliTest, InvalidValueInConfigFileNamesItsLine) {
  init();
  std::string text = read_text(config_path());
  const std::size_t at = text.find("level: 3");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 8, "level: 99");
  write_text(config_path(), text);
  const std::size_t line = static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n')) + 1;
  const Result result = run({"status"});
  EXPECT_TRUE(failed_with(result, 1, {config_path() + ":" + std::to_string(line) + ":", "compression.level", "'99'"}));
  EXPECT_EQ(read_text(config_path()), text);
}

// The parse error of a broken config.yaml tells the user to fix that line with a text editor; it
// does not suggest `mybackup config set`, which has to load the file first and fails the same way.
TEST_F(CliTest, BrokenConfigHintIsActionable) {
  init();
  append_text(config_path(), "compression: [unclosed\n");
  const std::string config_before = read_text(config_path());
  const Result status = run({"status"});
  EXPECT_TRUE(failed_with(status, 1, {config_path() + ":", "fix that line"}));
  EXPECT_FALSE(contains(status.err, "mybackup config set")) << status;
  // `config set` indeed cannot repair it, and leaves the file alone.
  const Result set = run({"config", "set", "compression.level", "5"});
  EXPECT_TRUE(failed_with(set, 1, {config_path() + ":", "fix that line"}));
  EXPECT_EQ(read_text(config_path()), config_before);
}

// ================================================================ bad input: backup preconditions

TEST_F(CliTest, BackupWithoutSourceFails) {
  init();
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 2, {"no source", "mybackup add"}));
  EXPECT_FALSE(exists(dest_));
}

TEST_F(CliTest, BackupWithoutDestinationFails) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 2, {"destination", "mybackup config set destination"}));
  const Result status = run({"status"});
  EXPECT_TRUE(contains(status.out, "mybackup config set destination")) << status;
}

TEST_F(CliTest, EveryCommandBeforeInitSaysNotInitialized) {
  const std::vector<std::vector<std::string>> commands = {
      {"status"}, {"status", "--json"}, {"backup"}, {"add", src_}, {"remove", src_}, {"config", "show"},
      {"config", "set", "destination", dest_}};
  for (const std::vector<std::string>& command : commands) {
    const Result result = run(command);
    EXPECT_TRUE(failed_with(result, 1, {"not initialized", home_, "mybackup init"}));
  }
  EXPECT_FALSE(exists(home_)) << "a failed command must not create the home";
  EXPECT_FALSE(exists(dest_));
}

TEST_F(CliTest, MissingKeyFileIsNamed) {
  first_backup();
  ASSERT_EQ(::unlink(key_path().c_str()), 0);
  const std::string dest_before = listing(dest_);
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 1, {"key file " + key_path(), "missing"}));
  EXPECT_EQ(listing(dest_), dest_before);
}

TEST_F(CliTest, DamagedKeyFileIsDetected) {
  first_backup();
  std::string text = read_text(key_path());
  const std::string hex = key_hex(key_path());
  const std::size_t at = text.find(hex);
  ASSERT_NE(at, std::string::npos);
  text[at + 10] = text[at + 10] == '0' ? '1' : '0';
  write_text(key_path(), text);
  const std::string dest_before = listing(dest_);
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 1, {"key file " + key_path(), "damaged"}));
  EXPECT_EQ(listing(dest_), dest_before);
}

// ================================================================ bad input: destination

TEST_F(CliTest, DestinationOfAnotherRepositoryIsRefused) {
  first_backup();
  const std::string home_a = home_;
  home_ = root_ + "/home-b";  // from here on, run() uses the second home
  init();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  const std::string dest_before = listing(dest_);
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 4, {dest_, "different key"}));
  EXPECT_EQ(listing(dest_), dest_before);
  check_no_key_leaked();
  home_ = home_a;
}

TEST_F(CliTest, NonEmptyDestinationThatIsNoRepositoryIsRefused) {
  configure();
  ASSERT_EQ(::mkdir(dest_.c_str(), 0755), 0);
  write_text(dest_ + "/holiday.jpg", "not a backup");
  const std::string dest_before = listing(dest_);
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 1, {dest_, "not empty", "empty or new directory"}));
  EXPECT_EQ(listing(dest_), dest_before);
  const Result dry = run({"backup", "--dry-run"});
  EXPECT_TRUE(failed_with(dry, 1, {dest_, "not empty"}));
}

TEST_F(CliTest, DestinationUnderARegularFileFails) {
  configure();
  write_text(root_ + "/afile", "a file, not a directory");
  const std::string bad = root_ + "/afile/sub";
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", bad})));
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 1, {bad}));
  EXPECT_EQ(read_text(root_ + "/afile"), "a file, not a directory");
}

TEST_F(CliTest, LostDestinationIsReportedAndNotRecreated) {
  first_backup();
  ASSERT_EQ(::rename(dest_.c_str(), (root_ + "/moved").c_str()), 0);
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 1, {dest_, "holds no repository", "set the destination back"}));
  EXPECT_FALSE(exists(dest_)) << "a new, empty repository must not silently replace the lost one";
  const std::string status = status_json();
  EXPECT_EQ(json_of(status)["last_run"]["status"], "failed") << status;
  EXPECT_EQ(json_of(status)["files"], 3) << status;
}

// A destination inside a source (`config set destination ~/Documents/backups` after `add
// ~/Documents`) is accepted, and the backup leaves it out of the scan: the repository (its packs,
// snapshots and live lock files) is never backed up into itself, so an unchanged tree stays
// "0 new" and the repository does not grow.
TEST_F(CliTest, DestinationInsideASourceIsNotBackedUpIntoItself) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const std::string inner = src_ + "/backups";
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", inner})));
  const Result first = run({"backup"});
  ASSERT_TRUE(succeeded(first));
  EXPECT_TRUE(contains(first.out, "3 new, 0 changed, 0 deleted, 0 unchanged")) << first;
  const std::string repository_before = listing(inner);
  const Result second = run({"backup", "--verbose"});
  ASSERT_TRUE(succeeded(second));
  EXPECT_TRUE(contains(second.out, "0 new, 0 changed, 0 deleted, 3 unchanged")) << second;
  // The summary line names the destination; no per-file line may.
  EXPECT_FALSE(contains(second.out, "    " + inner)) << "the repository was backed up into itself" << second;
  EXPECT_EQ(listing(inner), repository_before) << "an unchanged tree must not make the repository grow";
  const std::string status = status_json();
  EXPECT_EQ(source_files(status, src_), 3) << status;
}

// The home (catalog, key, logs) inside a source is left out of the scan the same way: the
// catalog, which changes during every backup, is never backed up into itself, nor is the key.
TEST_F(CliTest, HomeInsideASourceIsNotBackedUp) {
  home_ = src_ + "/.mybackup";  // from here on, run() uses a home inside the source
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  const Result first = run({"backup", "--verbose"});
  ASSERT_TRUE(succeeded(first));
  EXPECT_TRUE(contains(first.out, "3 new, 0 changed, 0 deleted, 0 unchanged")) << first;
  EXPECT_FALSE(contains(first.out, home_)) << "the home was backed up" << first;
  const Result second = run({"backup", "--verbose"});
  ASSERT_TRUE(succeeded(second));
  EXPECT_TRUE(contains(second.out, "0 new, 0 changed, 0 deleted, 3 unchanged")) << second;
  EXPECT_EQ(source_files(status_json(), src_), 3);
}

// A source directory that has disappeared (an unmounted disk, a renamed folder) is skipped with
// exit 3 and a hint naming the fix (mount it again, or `mybackup remove PATH`); its files are not
// recorded as deleted, and once it is back the next backup finds them unchanged.
TEST_F(CliTest, MissingSourceDirectoryIsNamedWithTheFix) {
  first_backup();
  const std::string moved = root_ + "/src-moved";
  ASSERT_EQ(::rename(src_.c_str(), moved.c_str()), 0);
  const Result result = run({"backup"});
  EXPECT_TRUE(succeeded(result, 3));
  EXPECT_TRUE(contains(result.err, src_)) << result;
  EXPECT_TRUE(contains(result.err, "mybackup remove " + src_)) << "the message should name the fix" << result;
  EXPECT_TRUE(contains(result.out, "0 new, 0 changed, 0 deleted, 0 unchanged, 1 skipped")) << result;
  for (const std::string& line : lines_of(result.err)) {
    EXPECT_EQ(line.rfind("mybackup: ", 0), 0U) << result;
  }
  const std::string status = status_json();
  EXPECT_EQ(source_files(status, src_), 3) << "a missing source must not mark its files deleted" << status;
  EXPECT_EQ(json_of(status)["last_run"]["status"], "partial") << status;
  ASSERT_EQ(::rename(moved.c_str(), src_.c_str()), 0);
  const Result back = run({"backup"});
  ASSERT_TRUE(succeeded(back));
  EXPECT_TRUE(contains(back.out, "0 new, 0 changed, 0 deleted, 3 unchanged")) << back;
}

TEST_F(CliTest, ReadOnlyDestinationFails) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root writes into a 0555 directory anyway";
  }
  configure();
  ASSERT_EQ(::mkdir(dest_.c_str(), 0555), 0);
  const Result result = run({"backup"});
  EXPECT_TRUE(failed_with(result, 1, {dest_, "Permission denied"}));
  ::chmod(dest_.c_str(), 0755);
  EXPECT_EQ(listing(dest_), "");
}

// ================================================================ bad input: lock

class LockTest : public CliTest {
 protected:
  enum class Identity { written, left_out };  // boot_id and pid_ns: this machine's, or none (older versions)

  /// A lock file of another writer on this host: locks/<16 hex digits>.json, last refreshed
  /// `age` ago (negative: in the future).
  void write_lock(long pid, Identity identity = Identity::written, std::chrono::nanoseconds age = {}) {
    char host[256] = {};
    ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch());
    ASSERT_TRUE(::mkdir((dest_ + "/locks").c_str(), 0755) == 0 || errno == EEXIST) << std::strerror(errno);
    std::string boot_and_namespace;
    if (identity == Identity::written) {
      std::string boot_id = read_text("/proc/sys/kernel/random/boot_id");
      boot_id.erase(boot_id.find_last_not_of('\n') + 1);
      struct stat ns {};
      ASSERT_EQ(::stat("/proc/self/ns/pid", &ns), 0);
      boot_and_namespace = ", \"boot_id\": \"" + boot_id + "\", \"pid_ns\": " + std::to_string(ns.st_ino);
    }
    write_text(dest_ + "/locks/0123456789abcdef.json", std::string("{\"host\": \"") + host + "\", \"pid\": " + std::to_string(pid) +
                                                 boot_and_namespace + ", \"purpose\": \"backup\", \"time_ns\": " +
                                                 std::to_string((now - age).count()) + ", \"time\": \"2026-01-01T00:00:00Z\"}\n");
  }

  /// A pid no process has any more: a child, forked and reaped.
  static long dead_pid() {
    const pid_t child = ::fork();
    if (child == 0) {
      ::_exit(0);
    }
    EXPECT_GT(child, 0);
    EXPECT_EQ(::waitpid(child, nullptr, 0), child);
    return static_cast<long>(child);
  }
};

TEST_F(LockTest, LiveLockBlocksAndStaleLockIsBroken) {
  first_backup();
  write_text(src_ + "/new.txt", "new\n");

  write_lock(static_cast<long>(::getpid()));
  const std::string dest_before = listing(dest_);
  const Result locked = run({"backup"});
  EXPECT_TRUE(failed_with(locked, 1, {"locked", dest_, "pid " + std::to_string(::getpid())}));
  EXPECT_EQ(listing(dest_), dest_before) << "a refused run must leave the destination (and the lock) as they were";

  // A holder of this boot and pid namespace that no longer exists: its lock is stale and is broken.
  write_lock(dead_pid());
  const Result broken = run({"backup"});
  ASSERT_TRUE(succeeded(broken));
  EXPECT_TRUE(contains(broken.out, "1 new, 0 changed, 0 deleted, 3 unchanged")) << broken;
  EXPECT_EQ(lock_files(), std::vector<std::string>{}) << "the stale lock is broken and the run's own released";
}

// Issue 11, item 7: a lock without boot_id and pid_ns (an older version, or another container
// sharing the host name) is never broken by its pid, only by age.
TEST_F(LockTest, ALockWithoutBootAndNamespaceOfADeadPidStillBlocks) {
  first_backup();
  write_lock(dead_pid(), Identity::left_out);
  EXPECT_TRUE(failed_with(run({"backup"}), 1, {"locked", dest_}));
  write_lock(dead_pid(), Identity::left_out, std::chrono::minutes(31));
  EXPECT_TRUE(succeeded(run({"backup"})));
  EXPECT_EQ(lock_files(), std::vector<std::string>{});
}

// Issue 11, item 7: a lock dated in the future (clocks apart) stops the run and says what to do.
TEST_F(LockTest, ALockDatedInTheFutureNamesItsFileAndTheClocks) {
  first_backup();
  write_lock(dead_pid(), Identity::written, -std::chrono::hours(1));
  const Result future = run({"backup"});
  EXPECT_TRUE(failed_with(future, 1, {"dated in the future", dest_ + "/locks/0123456789abcdef.json", "check the clocks",
                                      "delete that file if no other mybackup is writing"}));
  EXPECT_EQ(lock_files(), std::vector<std::string>{"0123456789abcdef.json"}) << "never removed";
}

// ================================================================ interruption

// Ctrl-C in the middle of a backup: the run stops at a safe point, says it was interrupted (exit
// 1), releases its lock, writes no manifest and records the failed run; the next backup works.
TEST_F(CliTest, InterruptedBackupRecordsNothingAndReleasesTheLock) {
  init();
  // 256 KiB packs: the first one is stored after a few milliseconds, and 48 MiB in 64 KiB chunks
  // (about 200 packs, each written and synced) keep the run going for a good while after that.
  ASSERT_NO_FATAL_FAILURE(use_small_repository("64KiB", "256KiB"));
  constexpr int kFiles = 4;
  constexpr std::size_t kFileSize = 12 * 1024 * 1024;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big" + std::to_string(i) + ".bin", kFileSize, 100 + i));
  }
  write_text(src_ + "/small.txt", "small\n");
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));

  Result interrupted;
  const pid_t pid = start({"backup"}, interrupted);
  ASSERT_GT(pid, 0);
  // Wait until the run is storing data: its lock file exists (so its Ctrl-C handler is installed)
  // and its first pack is on the destination.
  const auto stored_a_pack = [&] {
    for (const std::string& file : files_below(dest_ + "/data")) {
      if (fs::path(file).filename().string().rfind(".tmp-", 0) != 0) {
        return true;
      }
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (lock_files().empty() || !stored_a_pack()) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      FAIL() << "the backup ended before the signal could be sent (exit "
             << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << "): if it succeeded, make the source bigger\n"
             << read_text(root_ + "/out/stderr");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      FAIL() << "the backup never started storing";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Still running (else the source is too small for this machine and the test proves nothing).
  int early_status = 0;
  const pid_t early = ::waitpid(pid, &early_status, WNOHANG);
  if (early == pid) {
    FAIL() << "the backup finished before the signal: make the source bigger (exit "
           << (WIFEXITED(early_status) ? WEXITSTATUS(early_status) : -1) << ")";
  }
  ASSERT_EQ(early, 0) << std::strerror(errno);
  ASSERT_EQ(::kill(pid, SIGINT), 0) << std::strerror(errno);
  finish(pid, interrupted);

  EXPECT_TRUE(failed_with(interrupted, 1, {"interrupted"}));
  EXPECT_EQ(lock_files(), std::vector<std::string>{}) << "the lock must be released";
  EXPECT_EQ(files_below(dest_ + "/snapshots"), std::vector<std::string>{}) << "no manifest may be written";
  EXPECT_EQ(temporaries_below(dest_), std::vector<std::string>{});
  EXPECT_FALSE(files_below(dest_ + "/data").empty());  // packs stored before the signal: harmless orphans
  std::string status = status_json();
  nlohmann::json last_run = json_of(status)["last_run"];
  EXPECT_EQ(last_run["status"], "failed") << status;
  EXPECT_TRUE(contains(last_run.value("error", ""), "interrupted")) << status;
  EXPECT_EQ(json_of(status)["files"], 0) << status;

  // The next backup, left alone, stores everything.
  const Result again = run({"backup"});
  ASSERT_TRUE(succeeded(again));
  EXPECT_TRUE(contains(again.out, std::to_string(kFiles + 1) + " new, 0 changed, 0 deleted, 0 unchanged")) << again;
  EXPECT_EQ(lock_files(), std::vector<std::string>{});
  EXPECT_EQ(files_below(dest_ + "/snapshots").size(), 1U);
  status = status_json();
  EXPECT_EQ(json_of(status)["last_run"]["status"], "ok") << status;
  EXPECT_EQ(json_of(status)["files"], kFiles + 1) << status;
}

// ================================================================ partial backups

TEST_F(CliTest, UnreadableSourceFileIsSkippedWithExitThree) {
  configure();
  std::string skipped_path;
  std::string reason;
  if (::geteuid() != 0) {
    skipped_path = src_ + "/secret.txt";
    write_text(skipped_path, "secret\n");
    ASSERT_EQ(::chmod(skipped_path.c_str(), 0), 0);
    reason = "Permission denied";
  } else {
    // Root reads everything, and fifos are recorded: nothing here is skipped. The scanner's own
    // tests cover unreadable entries through a FaultEnv.
    GTEST_SKIP() << "root can read every file";
  }
  const Result result = run({"backup"});
  EXPECT_TRUE(succeeded(result, 3));
  EXPECT_TRUE(contains(result.err, skipped_path)) << result;
  EXPECT_TRUE(contains(result.err, reason)) << result;
  EXPECT_TRUE(contains(result.out, "3 new, 0 changed, 0 deleted, 0 unchanged, 1 skipped")) << result;
  for (const std::string& line : lines_of(result.err)) {
    EXPECT_EQ(line.rfind("mybackup: ", 0), 0U) << result;
  }

  const Result json = run({"backup", "--json"});
  EXPECT_TRUE(succeeded(json, 3));
  ASSERT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["status"], "partial") << json;
  EXPECT_EQ(json_of(json.out)["files_skipped"], 1) << json;
  EXPECT_EQ(json_of(json.out)["skipped"][0]["path"], skipped_path) << json;

  const std::string status = status_json();
  EXPECT_EQ(json_of(status)["last_run"]["status"], "partial") << status;
  ::chmod(skipped_path.c_str(), 0644);
}

// ================================================================ bad input: the command line

TEST_F(CliTest, UnknownOptionOrCommandIsUsageError) {
  init();
  const std::string config_before = read_text(config_path());
  const std::vector<std::vector<std::string>> commands = {
      {"backup", "--bogus"}, {"frobnicate"}, {"status", "extra"}, {}, {"config"}, {"add"}};
  for (const std::vector<std::string>& command : commands) {
    const Result result = run(command);
    EXPECT_EQ(result.code, 2) << result;
    EXPECT_EQ(result.out, "") << result;
    EXPECT_FALSE(result.err.empty()) << result;
  }
  EXPECT_EQ(read_text(config_path()), config_before);
  EXPECT_FALSE(exists(dest_));
}

// A mistyped command is named in the error, which points at `mybackup --help`.
TEST_F(CliTest, UnknownCommandIsNamed) {
  const Result command = run({"frobnicate"});
  EXPECT_TRUE(failed_with(command, 2, {"unknown command 'frobnicate'", "mybackup --help"}));
}

// Command-line parse errors (CLI11's) follow the convention of every other error: one line,
// "mybackup: error: ... (see mybackup --help)".
TEST_F(CliTest, CommandLineErrorsFollowTheErrorLineConvention) {
  const Result option = run({"backup", "--bogus"});
  EXPECT_TRUE(failed_with(option, 2, {"--bogus", "--help"}));
  const Result missing = run({"config", "set", "compression.level"});
  EXPECT_TRUE(failed_with(missing, 2, {"value", "--help"}));
}

}  // namespace
}  // namespace mybackup_cli_test
