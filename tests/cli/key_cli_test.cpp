// End-to-end tests of passphrases and keys: `init --passphrase`, `key export|add|list|remove|check`,
// the pending wrapped keys reaching the destination at the first backup, exit code 4 for a wrong
// passphrase. Every run has no controlling terminal (so nothing can wait for typing) and cheap
// scrypt parameters (MYBACKUP_TEST_SCRYPT_N=16).

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cli_harness.hpp"
#include "common/planted_keys.hpp"
#include "mybackup/storage/backend.hpp"
#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/crypto/key_wrap.hpp"

namespace mybackup_cli_test {
namespace {

const std::string kPassphrase = "tulip anvil 42 orbit";
const std::string kOther = "second passphrase here";

class KeyCliTest : public CliTest {
 protected:
  using Env = std::vector<std::pair<std::string, std::optional<std::string>>>;

  /// Runs mybackup without a terminal, with cheap scrypt and no inherited MYBACKUP_PASSPHRASE.
  Result run_keys(const std::vector<std::string>& args, const Env& env = {}) {
    RunOptions options;
    options.no_terminal = true;
    options.env = {{"MYBACKUP_TEST_SCRYPT_N", "16"}, {"MYBACKUP_PASSPHRASE", std::nullopt}};
    options.env.insert(options.env.end(), env.begin(), env.end());
    return run(args, options);
  }
  Result with_passphrase(const std::vector<std::string>& args, const std::string& passphrase = kPassphrase) {
    return run_keys(args, {{"MYBACKUP_PASSPHRASE", passphrase}});
  }

  /// init --passphrase, a source tree and a destination (no backup yet).
  void configure_with_passphrase() {
    ASSERT_TRUE(succeeded(with_passphrase({"init", "--passphrase"})));
    make_tree();
    ASSERT_TRUE(succeeded(run({"add", src_})));
    ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  }

  std::vector<std::string> pending_files() const { return json_files(home_ + "/keys"); }
  std::vector<std::string> destination_files() const { return json_files(dest_ + "/keys"); }

  static std::vector<std::string> json_files(const std::string& directory) {
    std::vector<std::string> found;
    std::error_code error;
    for (auto it = fs::directory_iterator(directory, error); !error && it != fs::directory_iterator(); it.increment(error)) {
      found.push_back(it->path().filename().string());
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  static std::string id_of(const std::string& file_name) { return file_name.substr(0, file_name.size() - 5); }

  /// The master key a passphrase opens in `directory`'s keys/ (through the library), as hex.
  static std::string unlocked_hex(const std::string& directory, const std::string& passphrase) {
    const auto backend = mybackup::make_local_backend(directory);
    return mybackup::to_hex(mybackup::unlock_with_passphrase(mybackup::plan_unlock(*backend), passphrase).bytes);
  }

  /// Forgets outputs that legitimately hold the key (key export), so the leak check still
  /// covers every other command.
  void forget_outputs_with_key() {
    const std::string key = key_hex(key_path());
    outputs_.erase(std::remove_if(outputs_.begin(), outputs_.end(), [&](const std::string& output) { return contains(output, key); }),
                   outputs_.end());
  }

  /// listing(home_) without the log, which every command may append to.
  std::string home_listing() const {
    std::string text;
    for (const std::string& line : lines_of(listing(home_))) {
      if (line.rfind("logs", 0) != 0) {
        text += line + "\n";
      }
    }
    return text;
  }

  void expect_no_passphrase_in_outputs(const std::string& passphrase) {
    for (const std::string& output : outputs_) {
      EXPECT_FALSE(contains(output, passphrase)) << "a passphrase appeared in a command's output:\n" << output;
    }
    EXPECT_FALSE(contains(read_text(log_path()), passphrase)) << "a passphrase appeared in the log";
  }
};

// ================================================================ init --passphrase

TEST_F(KeyCliTest, InitWithPassphraseFromEnvironmentKeepsAWrappedKeyPending) {
  const Result init = with_passphrase({"init", "--passphrase"});
  ASSERT_TRUE(succeeded(init));
  EXPECT_TRUE(contains(init.out, "goes to the destination at the first backup")) << init;
  EXPECT_EQ(init.err, "");
  const std::vector<std::string> pending = pending_files();
  ASSERT_EQ(pending.size(), 1U);
  const std::string file = home_ + "/keys/" + pending[0];
  EXPECT_EQ(file_mode(file), 0600U);
  EXPECT_TRUE(is_one_json_object(read_text(file)));
  EXPECT_EQ(json_of(read_text(file))["format"], "mybackup-wrapped-key");
  EXPECT_EQ(json_of(read_text(file))["N"], 16);
  EXPECT_TRUE(contains(init.out, id_of(pending[0]))) << init;
  EXPECT_FALSE(contains(read_text(file), kPassphrase));
  EXPECT_EQ(unlocked_hex(home_, kPassphrase), key_hex(key_path()));

  const Result list = run_keys({"key", "list"});
  ASSERT_TRUE(succeeded(list));
  EXPECT_TRUE(contains(list.out, id_of(pending[0]))) << list;
  EXPECT_TRUE(contains(list.out, "pending")) << list;
  EXPECT_TRUE(contains(list.out, "init")) << list;  // its label

  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"})));
  expect_no_passphrase_in_outputs(kPassphrase);
}

TEST_F(KeyCliTest, InitWithPassphraseFileUsesItsFirstLine) {
  const std::string file = root_ + "/passphrase.txt";
  write_text(file, "first line secret\r\nsecond line\n");
  ASSERT_TRUE(succeeded(run_keys({"init", "--passphrase", "--passphrase-file", file})));
  ASSERT_EQ(pending_files().size(), 1U);
  EXPECT_EQ(unlocked_hex(home_, "first line secret"), key_hex(key_path()));
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"}, "first line secret")));
  EXPECT_TRUE(failed_with(with_passphrase({"key", "check"}, "second line"), 4, {"passphrase"}));
  // --passphrase-file takes precedence over the environment.
  EXPECT_TRUE(succeeded(run_keys({"key", "check", "--passphrase-file", file}, {{"MYBACKUP_PASSPHRASE", "second line"}})));
}

TEST_F(KeyCliTest, InitWithoutPassphraseMakesNoWrappedKey) {
  ASSERT_TRUE(succeeded(with_passphrase({"init"})));  // MYBACKUP_PASSPHRASE alone does not ask for one
  EXPECT_FALSE(exists(home_ + "/keys"));
  const Result list = run_keys({"key", "list"});
  ASSERT_TRUE(succeeded(list));
  EXPECT_TRUE(contains(list.out, "No passphrase-wrapped keys")) << list;
  EXPECT_TRUE(failed_with(with_passphrase({"key", "check"}), 1, {"no passphrase-wrapped keys", "key add"}));
}

TEST_F(KeyCliTest, NoPassphraseSourceAndNoTerminalIsAUsageErrorAndCreatesNothing) {
  const Result result = run_keys({"init", "--passphrase"});
  EXPECT_TRUE(failed_with(result, 2, {"--passphrase-file", "MYBACKUP_PASSPHRASE", "terminal"}));
  EXPECT_FALSE(exists(home_)) << "a refused init must not leave a home behind";

  init();
  const std::string home_before = home_listing();
  EXPECT_TRUE(failed_with(run_keys({"key", "add"}), 2, {"--passphrase-file", "MYBACKUP_PASSPHRASE", "terminal"}));
  EXPECT_TRUE(failed_with(run_keys({"key", "check"}), 2, {"--passphrase-file", "MYBACKUP_PASSPHRASE", "terminal"}));
  EXPECT_EQ(home_listing(), home_before);
}

TEST_F(KeyCliTest, EmptyPassphraseIsRefused) {
  EXPECT_TRUE(failed_with(with_passphrase({"init", "--passphrase"}, ""), 2, {"MYBACKUP_PASSPHRASE", "empty"}));
  const std::string file = root_ + "/empty.txt";
  write_text(file, "\nsecret on the second line\n");
  EXPECT_TRUE(failed_with(run_keys({"init", "--passphrase-file", file}), 2, {file, "empty"}));
  EXPECT_TRUE(failed_with(run_keys({"init", "--passphrase-file", root_ + "/absent.txt"}), 1, {root_ + "/absent.txt"}));
  EXPECT_FALSE(exists(home_));
}

TEST_F(KeyCliTest, BadTestScryptSettingIsRefusedBeforeAnythingIsCreated) {
  const Result result = run_keys({"init", "--passphrase"}, {{"MYBACKUP_PASSPHRASE", kPassphrase}, {"MYBACKUP_TEST_SCRYPT_N", "1000"}});
  EXPECT_TRUE(failed_with(result, 2, {"MYBACKUP_TEST_SCRYPT_N", "power of two"}));
  EXPECT_FALSE(exists(home_));
}

TEST_F(KeyCliTest, InitForceSetsThePendingKeysOfTheOldKeyAside) {
  ASSERT_TRUE(succeeded(with_passphrase({"init", "--passphrase"})));
  const std::vector<std::string> old_pending = pending_files();
  ASSERT_EQ(old_pending.size(), 1U);
  ASSERT_TRUE(succeeded(run_keys({"init", "--force"})));
  EXPECT_TRUE(pending_files().empty()) << "a wrapped copy of the old key must not reach the new repository";
  bool set_aside = false;
  for (const auto& entry : fs::directory_iterator(home_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("keys.old-", 0) == 0) {
      set_aside = exists(entry.path().string() + "/" + old_pending[0]);
    }
  }
  EXPECT_TRUE(set_aside);
}

// ================================================================ the destination

TEST_F(KeyCliTest, PendingKeyReachesTheDestinationAtTheFirstBackup) {
  configure_with_passphrase();
  const std::vector<std::string> pending = pending_files();
  ASSERT_EQ(pending.size(), 1U);
  const std::string content = read_text(home_ + "/keys/" + pending[0]);

  const Result backup = run_keys({"backup"});
  ASSERT_TRUE(succeeded(backup));
  EXPECT_EQ(destination_files(), pending);
  EXPECT_EQ(read_text(dest_ + "/keys/" + pending[0]), content);
  EXPECT_TRUE(pending_files().empty());
  // The destination and the passphrase alone give back the key.
  EXPECT_EQ(unlocked_hex(dest_, kPassphrase), key_hex(key_path()));

  const Result list = run_keys({"key", "list", "--json"});
  ASSERT_TRUE(succeeded(list));
  EXPECT_TRUE(is_one_json_object(list.out)) << list;
  EXPECT_EQ(json_of(list.out)["keys"][0]["id"], id_of(pending[0]));
  EXPECT_EQ(json_of(list.out)["keys"][0]["where"], "destination");
  EXPECT_EQ(json_of(list.out)["keys"][0]["label"], "init");
  EXPECT_EQ(json_of(list.out)["keys"][0]["damaged"], false);

  // A later backup has nothing to move.
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  EXPECT_EQ(destination_files(), pending);
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"})));
}

TEST_F(KeyCliTest, KeyAddWritesToAnExistingDestination) {
  configure_with_passphrase();
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  ASSERT_TRUE(succeeded(with_passphrase({"key", "add", "--label", "later"}, kOther)));
  // With a repository there, key add writes to the destination directly.
  EXPECT_EQ(destination_files().size(), 2U);
  EXPECT_TRUE(pending_files().empty());
}

TEST_F(KeyCliTest, KeyAddBeforeAnyDestinationIsPendingThenMoved) {
  init();
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  const Result add = with_passphrase({"key", "add", "--label", "offsite"});
  ASSERT_TRUE(succeeded(add));
  EXPECT_TRUE(contains(add.out, "pending")) << add;
  ASSERT_EQ(pending_files().size(), 1U);
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_TRUE(succeeded(run_keys({"backup", "--dry-run"})));
  EXPECT_EQ(pending_files().size(), 1U) << "a dry run writes nothing to the destination";
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  EXPECT_TRUE(pending_files().empty());
  ASSERT_EQ(destination_files().size(), 1U);
  EXPECT_EQ(unlocked_hex(dest_, kPassphrase), key_hex(key_path()));
}

TEST_F(KeyCliTest, KeyAddListRemove) {
  configure_with_passphrase();
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  const std::string first = id_of(destination_files().at(0));

  const Result add = with_passphrase({"key", "add", "--label", "offsite"}, kOther);
  ASSERT_TRUE(succeeded(add));
  EXPECT_TRUE(contains(add.out, "on the destination " + dest_)) << add;
  ASSERT_EQ(destination_files().size(), 2U);
  std::string second;
  for (const std::string& file : destination_files()) {
    if (id_of(file) != first) {
      second = id_of(file);
    }
  }
  EXPECT_TRUE(contains(add.out, second)) << add;
  EXPECT_EQ(unlocked_hex(dest_, kOther), key_hex(key_path()));
  EXPECT_EQ(unlocked_hex(dest_, kPassphrase), key_hex(key_path()));

  const Result list = run_keys({"key", "list"});
  ASSERT_TRUE(succeeded(list));
  EXPECT_TRUE(contains(list.out, first)) << list;
  EXPECT_TRUE(contains(list.out, second)) << list;
  EXPECT_TRUE(contains(list.out, "offsite")) << list;
  EXPECT_EQ(count_of(list.out, "destination"), 2U) << list;
  const Result json = run_keys({"key", "list", "--json"});
  ASSERT_TRUE(succeeded(json));
  EXPECT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(count_of(json.out, "\"id\""), 2U) << json;

  // Removing the first: its passphrase no longer opens anything; the other still does.
  const Result remove = run_keys({"key", "remove", first});
  ASSERT_TRUE(succeeded(remove));
  EXPECT_TRUE(contains(remove.out, "Removed key " + first)) << remove;
  EXPECT_EQ(destination_files(), std::vector<std::string>{second + ".json"});
  EXPECT_TRUE(failed_with(with_passphrase({"key", "check"}), 4, {"passphrase"}));
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"}, kOther)));

  // The last one is refused without --force, and nothing changes.
  const std::string dest_before = listing(dest_);
  EXPECT_TRUE(failed_with(run_keys({"key", "remove", second}), 2, {second, "last", "--force"}));
  EXPECT_EQ(listing(dest_), dest_before);
  EXPECT_TRUE(failed_with(run_keys({"key", "remove", "0123456789abcdef"}), 1, {"0123456789abcdef", "key list"}));
  EXPECT_TRUE(failed_with(run_keys({"key", "remove", "../mybackup-repo"}), 1, {"key list"}));
  EXPECT_EQ(listing(dest_), dest_before);

  ASSERT_TRUE(succeeded(run_keys({"key", "remove", second, "--force"})));
  EXPECT_TRUE(destination_files().empty());
  const Result empty = run_keys({"key", "list"});
  ASSERT_TRUE(succeeded(empty));
  EXPECT_TRUE(contains(empty.out, "No passphrase-wrapped keys")) << empty;
  // Backups still work with the key file alone.
  EXPECT_TRUE(succeeded(run_keys({"backup"})));
  expect_no_passphrase_in_outputs(kPassphrase);
  expect_no_passphrase_in_outputs(kOther);
}

TEST_F(KeyCliTest, RemovingAPendingKey) {
  ASSERT_TRUE(succeeded(with_passphrase({"init", "--passphrase"})));
  ASSERT_TRUE(succeeded(with_passphrase({"key", "add"}, kOther)));
  ASSERT_EQ(pending_files().size(), 2U);
  const std::string id = id_of(pending_files()[0]);
  const Result remove = run_keys({"key", "remove", id});
  ASSERT_TRUE(succeeded(remove));
  EXPECT_TRUE(contains(remove.out, "pending")) << remove;
  EXPECT_EQ(pending_files().size(), 1U);
}

// ================================================================ wrong passphrase or key

TEST_F(KeyCliTest, WrongPassphraseExitsWithFourAndChangesNothing) {
  configure_with_passphrase();
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  ASSERT_TRUE(succeeded(with_passphrase({"key", "add"}, kOther)));  // two keys on the destination
  const std::string key_before = read_text(key_path());
  const std::string config_before = read_text(config_path());
  const std::string pending_before = listing(home_ + "/keys");
  const std::string dest_before = listing(dest_);
  const Result result = with_passphrase({"key", "check"}, "not the passphrase");
  EXPECT_TRUE(failed_with(result, 4, {"passphrase", "opens none"}));
  EXPECT_FALSE(contains(result.err, "not the passphrase")) << result;
  EXPECT_EQ(listing(dest_), dest_before);
  EXPECT_EQ(listing(home_ + "/keys"), pending_before);
  EXPECT_EQ(read_text(key_path()), key_before);
  EXPECT_EQ(read_text(config_path()), config_before);
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"})));
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"}, kOther)));
}

TEST_F(KeyCliTest, DestinationOfAnotherKeyExitsWithFour) {
  configure_with_passphrase();
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  const std::string home_a = home_;
  home_ = root_ + "/home-b";
  ASSERT_TRUE(succeeded(with_passphrase({"init", "--passphrase"}, kOther)));
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  const std::string dest_before = listing(dest_);
  EXPECT_TRUE(failed_with(run_keys({"key", "list"}), 4, {dest_, "different key"}));
  EXPECT_TRUE(failed_with(run_keys({"backup"}), 4, {dest_, "different key"}));
  EXPECT_EQ(listing(dest_), dest_before) << "the other home's pending key must not reach this destination";
  EXPECT_EQ(pending_files().size(), 1U);
  check_no_key_leaked();
  home_ = home_a;
}

// ================================================================ key export

TEST_F(KeyCliTest, KeyExportPrintsTheKeyFileWithAWarning) {
  init();
  const Result result = run_keys({"key", "export"});
  ASSERT_TRUE(succeeded(result));
  EXPECT_EQ(result.out, read_text(key_path()));
  EXPECT_TRUE(contains(result.err, "warning")) << result;
  EXPECT_TRUE(contains(result.err, "whoever holds it can read every backup")) << result;
  EXPECT_EQ(lines_of(result.err).size(), 1U) << result;
  forget_outputs_with_key();
}

TEST_F(KeyCliTest, KeyExportToAFileIsPrivateAndNeverOverwrites) {
  init();
  const std::string out = root_ + "/exported.key";
  const Result result = run_keys({"key", "export", "--output", out});
  ASSERT_TRUE(succeeded(result));
  EXPECT_EQ(read_text(out), read_text(key_path()));
  EXPECT_EQ(file_mode(out), 0600U);
  EXPECT_TRUE(contains(result.err, "whoever holds it can read every backup")) << result;
  EXPECT_TRUE(contains(result.out, out)) << result;
  EXPECT_FALSE(contains(result.out, key_hex(key_path())));

  write_text(out, "something precious");
  const Result again = run_keys({"key", "export", "--output", out});
  EXPECT_TRUE(failed_with(again, 1, {out, "already exists"}));
  EXPECT_EQ(read_text(out), "something precious");
}

TEST_F(KeyCliTest, KeyExportOfADamagedKeyFileFails) {
  init();
  const std::string good = read_text(key_path());
  write_text(key_path(), "mybackup-key-v1\nnot a key\n");
  const Result result = run_keys({"key", "export"});
  EXPECT_TRUE(failed_with(result, 1, {"key file " + key_path(), "damaged"}));
  write_text(key_path(), good);  // for the leak check at the end
}

TEST_F(KeyCliTest, KeyCommandNeedsASubcommandAndAnInitializedHome) {
  EXPECT_EQ(run_keys({"key"}).code, 2);
  EXPECT_TRUE(failed_with(run_keys({"key", "list"}), 1, {"not initialized", "mybackup init"}));
  const Result help = run_keys({"--help"});
  EXPECT_TRUE(contains(help.out, "4 wrong key or passphrase")) << help;
}

// Attack (issue 11, item 1): the secondary's keys/ replaced by a link to a local folder made the
// sync after a backup delete every file there; the primary's keys/ as a link made the sync copy
// local files (an SSH key) in plaintext to the secondary. Neither link may ever be followed.
TEST_F(KeyCliTest, ALinkedKeysFolderOnEitherDestinationIsNeverFollowed) {
  ASSERT_NO_FATAL_FAILURE(configure_with_passphrase());
  const std::string nas = root_ + "/nas";
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", nas})));
  ASSERT_TRUE(succeeded(run_keys({"backup"})));
  ASSERT_EQ(json_files(nas + "/keys").size(), 1U);

  const std::string victim = root_ + "/victim";
  fs::create_directories(victim);
  write_text(victim + "/0123456789abcdef.json", "-----BEGIN OPENSSH PRIVATE KEY-----");
  write_text(victim + "/notes.txt", "precious");
  fs::remove_all(nas + "/keys");
  fs::create_directory_symlink(victim, nas + "/keys");

  // A new key must reach the secondary: the link is refused, loudly, and the folder is untouched.
  ASSERT_TRUE(succeeded(with_passphrase({"key", "add", "--label", "second"}, kOther)));
  write_text(src_ + "/a.txt", "changed");
  const Result synced = run_keys({"backup"});
  EXPECT_EQ(synced.code, 3) << synced;
  EXPECT_TRUE(contains(synced.err, "symbolic link")) << synced;
  EXPECT_EQ(json_files(victim), (std::vector<std::string>{"0123456789abcdef.json", "notes.txt"}));
  EXPECT_EQ(read_text(victim + "/notes.txt"), "precious");
  EXPECT_EQ(run_keys({"sync"}).code, 1);

  // The primary's keys/ as a link: nothing of the folder reaches the secondary.
  fs::remove(nas + "/keys");
  fs::rename(dest_ + "/keys", root_ + "/saved-keys");
  fs::create_directory_symlink(victim, dest_ + "/keys");
  const Result copied = run_keys({"sync"});
  EXPECT_TRUE(json_files(nas + "/keys").empty()) << copied;
  EXPECT_FALSE(contains(listing(nas), "0123456789abcdef")) << listing(nas);
  EXPECT_EQ(json_files(victim), (std::vector<std::string>{"0123456789abcdef.json", "notes.txt"}));
}

// ================================================================ a hostile destination (issue 11, item 9)

class KeyAttackCliTest : public KeyCliTest {
 protected:
  /// A destination holding this home's wrapped key (cheap scrypt, the passphrase kPassphrase).
  std::string set_up_destination() {
    configure_with_passphrase();
    EXPECT_TRUE(succeeded(run_keys({"backup"})));
    const std::vector<std::string> files = destination_files();
    EXPECT_EQ(files.size(), 1U);
    return files.empty() ? "" : id_of(files[0]);
  }
  std::string plant(const mybackup::ScryptParams& params, const std::string& before = "g") {
    const auto backend = mybackup::make_local_backend(dest_);
    return mybackup::testing::plant_wrapped_key(*backend, params, before);
  }
  /// The best of two timed runs of `key check` with `passphrase` (a loaded machine only adds time).
  double check_seconds(const std::string& passphrase, Result& result) {
    double best = 1e9;
    for (int i = 0; i < 2; ++i) {
      const auto start = std::chrono::steady_clock::now();
      result = with_passphrase({"key", "check"}, passphrase);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  }
};

// Three planted keys within the caps but dear used to be tried first (in name order): a quick
// unlock took seconds. Now the cheapest key is tried first, and over-cap keys are never derived
// but named in a warning.
TEST_F(KeyAttackCliTest, PlantedExpensiveKeysDoNotSlowAnUnlockAndOverCapOnesAreNamed) {
  const std::string real = set_up_destination();
  Result result;
  const double quick = check_seconds(kPassphrase, result);
  ASSERT_TRUE(succeeded(result));
  EXPECT_EQ(result.err, "");

  // 2^15 x 8 (32 MiB, the old default): thousands of times the test key's cost; all sorting
  // before ours, so a reader going in name order would pay for the three first.
  const mybackup::ScryptParams dear{std::uint64_t{1} << 15, 8, 1};
  std::vector<std::string> dear_ids;
  for (int i = 0; i < 3; ++i) {
    dear_ids.push_back(plant(dear, real));
  }
  const std::string huge = plant(mybackup::ScryptParams{std::uint64_t{1} << 20, 8, 1}, real);  // 1 GiB
  // What one of them costs on this machine now (a wrong passphrase: a full derivation).
  const auto start = std::chrono::steady_clock::now();
  try {
    mybackup::unwrap_master_key(read_text(dest_ + "/keys/" + dear_ids[0] + ".json"), "x");
    ADD_FAILURE() << "a planted key opened";
  } catch (const mybackup::Error& error) {
    EXPECT_EQ(error.kind(), mybackup::ErrorKind::wrong_key) << error.what();
  }
  const double one_dear = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double planted = check_seconds(kPassphrase, result);
  ASSERT_TRUE(succeeded(result));
  EXPECT_LT(planted - quick, one_dear) << "an unlock paid for a planted key (one takes " << one_dear << " s; " << quick
                                       << " s without them, " << planted << " s with them)";
  // Exactly one warning: the over-cap key, by file, with the cap it passes.
  EXPECT_EQ(lines_of(result.err).size(), 1U) << result;
  EXPECT_TRUE(contains(result.err, "mybackup: warning: " + dest_ + "/keys/" + huge + ".json")) << result;
  EXPECT_TRUE(contains(result.err, "1024 MiB of memory, over this program's cap of 256 MiB")) << result;
  EXPECT_TRUE(contains(read_text(log_path()), huge + ".json")) << "the warning is logged too";

  // A wrong passphrase tries the three dear ones too (within the caps), never the huge one.
  const Result wrong = with_passphrase({"key", "check"}, "not it");
  EXPECT_EQ(wrong.code, 4) << wrong;
  EXPECT_TRUE(contains(wrong.err, "opens none of this key's passphrase-wrapped copies (4 tried, 1 more not tried: see the "
                                  "warnings)"))
      << wrong;

  // key list shows every file with its problem; --json carries it too.
  const Result list = run_keys({"key", "list", "--json"});
  ASSERT_TRUE(succeeded(list));
  EXPECT_TRUE(is_one_json_object(list.out)) << list;
  std::size_t with_problem = 0;
  const nlohmann::json listed = json_of(list.out);
  for (const auto& key : listed["keys"]) {
    with_problem += key["problem"].get<std::string>().empty() ? 0U : 1U;
    if (key["id"] == huge) {
      EXPECT_EQ(key["file"], "keys/" + huge + ".json");
      EXPECT_TRUE(contains(key["problem"].get<std::string>(), "cap of 256 MiB")) << key;
    }
  }
  EXPECT_EQ(with_problem, 1U) << list;
  EXPECT_TRUE(contains(list.err, huge + ".json")) << list;
}

TEST_F(KeyAttackCliTest, TooManyKeyFilesAreReportedInOneLineAndNotRead) {
  const std::string real = set_up_destination();
  for (std::size_t i = 0; i < mybackup::kMaxWrappedKeysPerUnlock + 4; ++i) {
    plant(mybackup::ScryptParams{2, 1, 1}, real);  // cheap, all before ours in name order
  }
  const Result check = with_passphrase({"key", "check"});
  EXPECT_EQ(check.code, 4) << check;
  EXPECT_TRUE(contains(check.err, "mybackup: warning: 5 more wrapped key files in " + dest_ + "/keys were not read (at most 16 "
                                  "per unlock"))
      << check;
  EXPECT_TRUE(contains(check.err, "opens none")) << check;
  EXPECT_EQ(lines_of(check.err).size(), 2U) << check;
  // Every planted file can be seen (key list is not capped) and removed; then the passphrase
  // works again. One through the CLI, the rest by hand (a run each would be slow).
  const Result list = run_keys({"key", "list", "--json"});
  ASSERT_TRUE(succeeded(list));
  ASSERT_EQ(json_of(list.out)["keys"].size(), mybackup::kMaxWrappedKeysPerUnlock + 5);
  bool first = true;
  const nlohmann::json listed = json_of(list.out);
  for (const auto& key : listed["keys"]) {
    const std::string id = key["id"].get<std::string>();
    if (id == real) {
      continue;
    }
    if (first) {
      ASSERT_TRUE(succeeded(run_keys({"key", "remove", id})));
      first = false;
    } else {
      fs::remove(dest_ + "/" + key["file"].get<std::string>());
    }
  }
  EXPECT_EQ(destination_files(), std::vector<std::string>{real + ".json"});
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"})));
}

// A file renamed in the destination keeps the id of its content: the name neither changes nor
// forges an id, the mismatch is reported, and `key remove ID` takes every file of that key.
TEST_F(KeyAttackCliTest, RenamedKeyFileKeepsItsIdAndIsReported) {
  const std::string real = set_up_destination();
  ASSERT_TRUE(succeeded(with_passphrase({"key", "add", "--label", "second"}, kOther)));
  std::string second;
  for (const std::string& file : destination_files()) {
    if (id_of(file) != real) {
      second = id_of(file);
    }
  }
  // The first key's file moved under the second key's name (the second one gone).
  const std::string original = read_text(dest_ + "/keys/" + real + ".json");
  fs::rename(dest_ + "/keys/" + real + ".json", dest_ + "/keys/" + second + ".json");

  const Result list = run_keys({"key", "list", "--json"});
  ASSERT_TRUE(succeeded(list));
  ASSERT_EQ(json_of(list.out)["keys"].size(), 1U) << list;
  const auto key = json_of(list.out)["keys"][0];
  EXPECT_EQ(key["id"], real) << "the id comes from the content, not the name";
  EXPECT_EQ(key["file"], "keys/" + second + ".json");
  EXPECT_EQ(key["label"], "init");
  EXPECT_TRUE(contains(key["problem"].get<std::string>(), "does not match its content, whose id is " + real)) << key;
  EXPECT_TRUE(contains(list.err, "mybackup: warning: " + dest_ + "/keys/" + second + ".json")) << list;
  const Result human = run_keys({"key", "list"});
  ASSERT_TRUE(succeeded(human));
  EXPECT_TRUE(contains(human.out, real)) << human;
  EXPECT_FALSE(contains(human.out, second)) << human;
  EXPECT_TRUE(contains(human.out, "(not used)")) << human;

  // Not tried under a name that is not its own: no passphrase opens the destination now.
  const Result check = with_passphrase({"key", "check"});
  EXPECT_EQ(check.code, 1) << check;
  EXPECT_TRUE(contains(check.err, "can be tried (see the warnings)")) << check;
  EXPECT_TRUE(contains(check.err, "warning: " + dest_ + "/keys/" + second + ".json")) << check;

  // The name is no id; the content id removes it (no usable key is lost, so no --force needed).
  EXPECT_TRUE(failed_with(run_keys({"key", "remove", second}), 1, {second, "key list"}));
  // Renamed back, it works again.
  fs::rename(dest_ + "/keys/" + second + ".json", dest_ + "/keys/" + real + ".json");
  EXPECT_TRUE(succeeded(with_passphrase({"key", "check"})));
  EXPECT_EQ(read_text(dest_ + "/keys/" + real + ".json"), original);
  // A second copy under another name: removing the key removes both.
  write_text(dest_ + "/keys/00000000000000aa.json", original);
  ASSERT_TRUE(succeeded(with_passphrase({"key", "add", "--label", "third"}, kOther)));
  const Result remove = run_keys({"key", "remove", real});
  ASSERT_TRUE(succeeded(remove));
  EXPECT_EQ(destination_files().size(), 1U);
  EXPECT_FALSE(exists(dest_ + "/keys/00000000000000aa.json"));
  EXPECT_TRUE(failed_with(with_passphrase({"key", "check"}), 4, {"opens none"}));
}

// Recovering a home from the destination: an over-cap planted key is named, the real one opens.
TEST_F(KeyAttackCliTest, InitFromDestinationWarnsAboutOverCapKeys) {
  const std::string real = set_up_destination();
  const std::string huge = plant(mybackup::ScryptParams{std::uint64_t{1} << 19, 16, 1}, real);
  home_ = root_ + "/home-new";
  const Result init = with_passphrase({"init", "--from", dest_, "--passphrase"});
  ASSERT_TRUE(succeeded(init));
  EXPECT_TRUE(contains(init.err, "mybackup: warning: " + dest_ + "/keys/" + huge + ".json")) << init;
  EXPECT_TRUE(contains(init.err, "cap of 256 MiB")) << init;
}

}  // namespace
}  // namespace mybackup_cli_test
