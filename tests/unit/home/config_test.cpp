#include "mybackup/home/config.hpp"

#include "mybackup/util/error.hpp"
#include "mybackup/home/home.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace mybackup {
namespace {

using testing::TempDir;
using testing::catch_error;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::map<std::string, std::string> values_of(const Config& config) {
  std::map<std::string, std::string> values;
  for (const auto& [key, value] : config_values(config)) {
    values[key] = value;
  }
  return values;
}

unsigned mode_of(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    ADD_FAILURE() << "stat " << path << ": " << std::strerror(errno);
    return 0;
  }
  return info.st_mode & 07777;
}

Config every_field_set() {
  Config config;
  config.version = "2.5.1";
  config.created_at = "2026-01-20T14:30:00";
  config.encryption_algorithm = "AES-256-GCM";
  config.key_file = "/secure/keys/my key: #1";
  config.compression_enabled = false;
  config.compression_level = 19;
  config.sources.push_back({"/home/me/Documents",
                            {"*.tmp", "~*", ".DS_Store", "build/", "docs/*.pdf", "it's", "#x", "a: b", "new\nline\ttab"},
                            "2026-01-20T14:31:00"});
  config.sources.push_back({"/srv/data with space", {}, ""});
  config.destination_primary = "/mnt/backups";
  config.destination_secondary = "/media/usb/backups";
  config.new_repository.chunker = RepositoryOptions::chunker_for(8 * 1024);
  config.new_repository.pack_target_size = 100'000;
  config.transfer_connections = 16;
  config.transfer_upload_limit = 5 * 1024 * 1024;
  config.watch_enabled = false;
  config.watch_interval = 7200;
  config.watch_realtime = false;
  config.watch_debounce = 0;
  config.notify_command = "notify-send mybackup '{message}'";
  config.retention_keep_days = 0;
  config.retention_keep_versions = 1;
  config.retention_auto_clean = true;
  config.schedule_file = "/srv/sched/backup_schedules.txt";
  config.schedule_archive_dir = "/srv/tar backups";
  config.schedule_log_dir = "/var/log/mybackup";
  config.schedule_catch_up = false;
  return config;
}

void expect_same_config(const Config& a, const Config& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.encryption_algorithm, b.encryption_algorithm);
  EXPECT_EQ(a.key_file, b.key_file);
  EXPECT_EQ(a.compression_enabled, b.compression_enabled);
  EXPECT_EQ(a.compression_level, b.compression_level);
  ASSERT_EQ(a.sources.size(), b.sources.size());
  for (std::size_t i = 0; i < a.sources.size(); ++i) {
    EXPECT_EQ(a.sources[i].path, b.sources[i].path);
    EXPECT_EQ(a.sources[i].exclude, b.sources[i].exclude);
    EXPECT_EQ(a.sources[i].added_at, b.sources[i].added_at);
  }
  EXPECT_EQ(a.destination_primary, b.destination_primary);
  EXPECT_EQ(a.destination_secondary, b.destination_secondary);
  EXPECT_EQ(a.new_repository, b.new_repository);
  EXPECT_EQ(a.transfer_connections, b.transfer_connections);
  EXPECT_EQ(a.transfer_upload_limit, b.transfer_upload_limit);
  EXPECT_EQ(a.watch_enabled, b.watch_enabled);
  EXPECT_EQ(a.watch_interval, b.watch_interval);
  EXPECT_EQ(a.watch_realtime, b.watch_realtime);
  EXPECT_EQ(a.watch_debounce, b.watch_debounce);
  EXPECT_EQ(a.notify_command, b.notify_command);
  EXPECT_EQ(a.retention_keep_days, b.retention_keep_days);
  EXPECT_EQ(a.retention_keep_versions, b.retention_keep_versions);
  EXPECT_EQ(a.retention_auto_clean, b.retention_auto_clean);
  EXPECT_EQ(a.schedule_file, b.schedule_file);
  EXPECT_EQ(a.schedule_archive_dir, b.schedule_archive_dir);
  EXPECT_EQ(a.schedule_log_dir, b.schedule_log_dir);
  EXPECT_EQ(a.schedule_catch_up, b.schedule_catch_up);
}

// ---- save and load

TEST(Config, SaveLoadRoundTripKeepsEveryField) {
  TempDir dir("config_test_");
  const Config original = every_field_set();
  save_config(dir / "config.yaml", original);
  const Config loaded = load_config(dir / "config.yaml");
  expect_same_config(loaded, original);
  ASSERT_NE(loaded.find_source("/home/me/Documents"), nullptr);
  EXPECT_EQ(loaded.find_source("/home/me/Documents")->exclude.size(), 9u);
  EXPECT_EQ(loaded.find_source("/home/me"), nullptr);
}

TEST(Config, DefaultConfigRoundTrips) {
  TempDir dir("config_test_");
  const Config original;
  save_config(dir / "config.yaml", original);
  const Config loaded = load_config(dir / "config.yaml");
  expect_same_config(loaded, original);
  EXPECT_TRUE(loaded.destination_primary.empty());
  EXPECT_TRUE(loaded.sources.empty());
}

TEST(Config, SavedFileHasTheDocumentedStructure) {
  TempDir dir("config_test_");
  save_config(dir / "config.yaml", every_field_set());
  std::ifstream in(dir / "config.yaml");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* part : {"version:", "created_at:", "encryption:", "key_file:", "compression:", "level: 19",
                           "sources:", "exclude:", "added_at:", "destinations:", "primary:", "secondary:", "watch:",
                           "interval: 7200", "retention:", "keep_versions: 1", "auto_clean: true", "schedule:",
                           "archive_dir: '/srv/tar backups'", "log_dir: '/var/log/mybackup'", "catch_up: false"}) {
    EXPECT_TRUE(contains(text, part)) << part << " missing from:\n" << text;
  }
}

TEST(Config, SavedFileHasMode0600) {
  TempDir dir("config_test_");
  save_config(dir / "config.yaml", Config{});
  EXPECT_EQ(mode_of(dir / "config.yaml"), 0600u);

  // Replacing a file that was readable by others makes it private too.
  write_text(dir / "old.yaml", "version: '1.0.0'\n");
  ASSERT_EQ(::chmod((dir / "old.yaml").c_str(), 0644), 0);
  save_config(dir / "old.yaml", every_field_set());
  EXPECT_EQ(mode_of(dir / "old.yaml"), 0600u);
  EXPECT_EQ(load_config(dir / "old.yaml").compression_level, 19);
}

// ---- set_config_value

TEST(Config, SetConfigValueAcceptsEveryKey) {
  // key, value given, value shown afterwards. Every key of config_keys() must be here.
  const std::vector<std::vector<std::string>> cases = {
      {"compression.enabled", "false", "false"},
      {"compression.level", "22", "22"},
      {"destinations.primary", "/mnt/backups/", "/mnt/backups"},
      {"destinations.secondary", "/media//usb/./b", "/media/usb/b"},
      {"repository.chunk_size", "64k", "64KiB"},
      {"repository.pack_size", "1048576", "1MiB"},
      {"transfer.connections", "8", "8"},
      {"transfer.upload_limit", "512k", "512KiB"},
      {"watch.enabled", "no", "false"},
      {"watch.interval", "3600", "3600"},
      {"watch.realtime", "OFF", "false"},
      {"watch.debounce", "0", "0"},
      {"notify.command", "notify-send mybackup '{message}'", "notify-send mybackup '{message}'"},
      {"retention.keep_days", "0", "0"},
      {"retention.keep_versions", "1", "1"},
      {"retention.auto_clean", "Yes", "true"},
      {"retention.orphan_grace_hours", "0", "0"},
      {"schedule.file", "/srv//sched/backup_schedules.txt", "/srv/sched/backup_schedules.txt"},
      {"schedule.archive_dir", "/srv/tar/", "/srv/tar"},
      {"schedule.log_dir", "/var/log/./mybackup", "/var/log/mybackup"},
      {"schedule.catch_up", "off", "false"},
  };
  std::vector<std::string> covered;
  Config config;
  for (const auto& item : cases) {
    set_config_value(config, item[0], item[1]);
    EXPECT_EQ(values_of(config)[item[0]], item[2]) << item[0];
    covered.push_back(item[0]);
  }
  EXPECT_EQ(covered, config_keys());

  EXPECT_FALSE(config.compression_enabled);
  EXPECT_EQ(config.compression_level, 22);
  EXPECT_EQ(config.destination_primary, "/mnt/backups");
  EXPECT_EQ(config.destination_secondary, "/media/usb/b");
  EXPECT_EQ(config.transfer_connections, 8);
  EXPECT_EQ(config.transfer_upload_limit, 512U * 1024);
  EXPECT_FALSE(config.watch_enabled);
  EXPECT_EQ(config.watch_interval, 3600);
  EXPECT_FALSE(config.watch_realtime);
  EXPECT_EQ(config.retention_keep_days, 0);
  EXPECT_EQ(config.retention_keep_versions, 1);
  EXPECT_TRUE(config.retention_auto_clean);
  EXPECT_EQ(config.schedule_file, "/srv/sched/backup_schedules.txt");
  EXPECT_EQ(config.schedule_archive_dir, "/srv/tar");
  EXPECT_EQ(config.schedule_log_dir, "/var/log/mybackup");
  EXPECT_FALSE(config.schedule_catch_up);
}

TEST(Config, ScheduleDefaultsAreUnderTheHome) {
  const Config config;
  EXPECT_TRUE(config.schedule_catch_up);
  EXPECT_EQ(values_of(config)["schedule.file"], "");
  EXPECT_EQ(values_of(config)["schedule.catch_up"], "true");
  const Home home("/h/.mybackup");
  EXPECT_EQ(home.schedule_file(config), "/h/.mybackup/backup_schedules.txt");
  EXPECT_EQ(home.schedule_archive_directory(config), "/h/.mybackup/backups");
  EXPECT_EQ(home.schedule_log_directory(config), "/h/.mybackup/logs");
  EXPECT_EQ(home.schedule_pid_path(), "/h/.mybackup/backup_service.pid");
  const Config moved = every_field_set();
  EXPECT_EQ(home.schedule_file(moved), "/srv/sched/backup_schedules.txt");
  EXPECT_EQ(home.schedule_archive_directory(moved), "/srv/tar backups");
  EXPECT_EQ(home.schedule_log_directory(moved), "/var/log/mybackup");
}

TEST(Config, ScheduleSectionIsReadFromAHandWrittenFile) {
  TempDir dir("config_test_");
  write_text(dir / "config.yaml",
             "schedule:\n  file: /srv/s.txt\n  archive_dir: /srv/tars\n  catch_up: no\n");
  const Config loaded = load_config(dir / "config.yaml");
  EXPECT_EQ(loaded.schedule_file, "/srv/s.txt");
  EXPECT_EQ(loaded.schedule_archive_dir, "/srv/tars");
  EXPECT_EQ(loaded.schedule_log_dir, "");
  EXPECT_FALSE(loaded.schedule_catch_up);

  write_text(dir / "empty.yaml", "schedule:\n");  // an empty section means the defaults
  EXPECT_TRUE(load_config(dir / "empty.yaml").schedule_catch_up);

  write_text(dir / "bad.yaml", "version: '1.0.0'\nschedule:\n  catch_up: sometimes\n");
  const Error bad = catch_error([&] { load_config(dir / "bad.yaml"); });
  EXPECT_EQ(bad.kind(), ErrorKind::config);
  EXPECT_TRUE(contains(bad.what(), "bad.yaml:3: schedule.catch_up must be true or false, got 'sometimes'")) << bad.what();

  write_text(dir / "unknown.yaml", "schedule:\n  interval: 5\n");
  const Error unknown = catch_error([&] { load_config(dir / "unknown.yaml"); });
  EXPECT_TRUE(contains(unknown.what(), "unknown.yaml:2: unknown key 'schedule.interval'")) << unknown.what();
}

TEST(Config, SetConfigValueAcceptsBoundsAndBoolSpellings) {
  Config config;
  set_config_value(config, "compression.level", "1");
  EXPECT_EQ(config.compression_level, 1);
  set_config_value(config, "watch.interval", "1");
  EXPECT_EQ(config.watch_interval, 1);
  for (const char* yes : {"true", "TRUE", "yes", "on", "1"}) {
    config.watch_enabled = false;
    set_config_value(config, "watch.enabled", yes);
    EXPECT_TRUE(config.watch_enabled) << yes;
  }
  for (const char* no : {"false", "False", "no", "off", "0"}) {
    config.watch_enabled = true;
    set_config_value(config, "watch.enabled", no);
    EXPECT_FALSE(config.watch_enabled) << no;
  }
}

TEST(Config, RepositorySizesTakeUnitsAndTheRepositoryBounds) {
  Config config;
  EXPECT_EQ(values_of(config)["repository.chunk_size"], "1MiB");
  EXPECT_EQ(values_of(config)["repository.pack_size"], "16MiB");
  EXPECT_EQ(config.new_repository, RepositoryOptions{});
  set_config_value(config, "repository.chunk_size", "1 KiB");
  EXPECT_EQ(config.new_repository.chunker, (ChunkerParams{512, 1024, 8192}));
  set_config_value(config, "repository.chunk_size", "4M");
  EXPECT_EQ(config.new_repository.chunker.avg_size, 4U * 1024 * 1024);
  set_config_value(config, "repository.pack_size", "4KiB");
  EXPECT_EQ(config.new_repository.pack_target_size, 4096U);
  set_config_value(config, "repository.pack_size", "100000");
  EXPECT_EQ(values_of(config)["repository.pack_size"], "100000");
  set_config_value(config, "repository.pack_size", "64mib");
  EXPECT_EQ(config.new_repository.pack_target_size, 64U * 1024 * 1024);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"repository.chunk_size", "512"},   {"repository.chunk_size", "8MiB"}, {"repository.chunk_size", "3000"},
      {"repository.chunk_size", "1.5M"},  {"repository.chunk_size", "big"},  {"repository.chunk_size", ""},
      {"repository.pack_size", "4095"},   {"repository.pack_size", "65MiB"}, {"repository.pack_size", "16GB"},
      {"repository.pack_size", "-1"},     {"repository.pack_size", "99999999999999999999"},
  };
  for (const auto& entry : bad) {
    const std::string& key = entry.first;  // named, not a structured binding: clang 14 cannot capture those
    const std::string& value = entry.second;
    const Config before = config;
    const testing::ErrorOutcome outcome = testing::error_kind([&] { set_config_value(config, key, value); });
    EXPECT_EQ(outcome, ErrorKind::usage) << key << " " << value;
    EXPECT_TRUE(contains(outcome.message(), key)) << outcome;
    EXPECT_EQ(config.new_repository, before.new_repository) << key << " " << value;
  }
  EXPECT_TRUE(contains(testing::error_message([&] { set_config_value(config, "repository.pack_size", "1KiB"); }),
                       "repository.pack_size must be from 4 KiB to 64 MiB (got 1 KiB)"));

  TempDir dir("config_test_");
  write_text(dir / "c.yaml", "repository:\n  chunk_size: 16KiB\n  pack_size: 7MiB\n");
  const Config loaded = load_config(dir / "c.yaml");
  EXPECT_EQ(loaded.new_repository.chunker, RepositoryOptions::chunker_for(16 * 1024));
  EXPECT_EQ(loaded.new_repository.pack_target_size, 7U * 1024 * 1024);
  write_text(dir / "bad.yaml", "repository:\n  chunk_size: 16KiB\n  pack_size: 1KiB\n");
  const Error error = testing::catch_error([&] { load_config(dir / "bad.yaml"); });
  EXPECT_EQ(error.kind(), ErrorKind::config);
  EXPECT_TRUE(contains(error.what(), "bad.yaml:3: repository.pack_size must be from 4 KiB")) << error.what();
}

TEST(Config, DestinationIsAnAliasOfDestinationsPrimary) {
  Config config;
  set_config_value(config, "destination", "/mnt/external");
  EXPECT_EQ(config.destination_primary, "/mnt/external");
  EXPECT_EQ(config.destination_secondary, "");
  EXPECT_EQ(values_of(config)["destinations.primary"], "/mnt/external");
}

TEST(Config, PathsAreMadeAbsolute) {
  const std::string cwd = std::filesystem::current_path().string();
  Config config;
  set_config_value(config, "destination", "backups/../dest/");
  EXPECT_EQ(config.destination_primary, (cwd == "/" ? "" : cwd) + "/dest");
  set_config_value(config, "destinations.secondary", "usb");
  EXPECT_EQ(config.destination_secondary, (cwd == "/" ? "" : cwd) + "/usb");
  set_config_value(config, "destinations.secondary", "null");  // unsets it
  EXPECT_EQ(config.destination_secondary, "");
}

void expect_usage_error(const std::string& key, const std::string& value) {
  Config config;
  const Config before = config;
  const Error error = catch_error([&] { set_config_value(config, key, value); });
  EXPECT_EQ(error.kind(), ErrorKind::usage) << key << " = '" << value << "'";
  const std::string message = error.what();
  EXPECT_TRUE(starts_with(message, key + " must be")) << message;
  EXPECT_TRUE(contains(message, "got '" + value + "'")) << message;
  expect_same_config(config, before);  // a rejected value changes nothing
}

TEST(Config, InvalidCompressionLevelsAreUsageErrors) {
  for (const char* value : {"0", "23", "abc", "5x", "", "-3", "3.5", "99999999999"}) {
    expect_usage_error("compression.level", value);
  }
  Config config;
  const Error error = catch_error([&] { set_config_value(config, "compression.level", "0"); });
  EXPECT_EQ(std::string(error.what()), "compression.level must be a whole number from 1 to 22, got '0'");
}

TEST(Config, InvalidWatchIntervalsAreUsageErrors) {
  for (const char* value : {"-1", "0", "ten", "10s"}) {
    expect_usage_error("watch.interval", value);
  }
}

TEST(Config, InvalidTransferValuesAreUsageErrors) {
  for (const char* value : {"0", "65", "-1", "four"}) {
    expect_usage_error("transfer.connections", value);
  }
  for (const char* value : {"-1", "fast", "10 GB"}) {
    expect_usage_error("transfer.upload_limit", value);
  }
  Config config;
  set_config_value(config, "transfer.upload_limit", "0");
  EXPECT_EQ(config.transfer_upload_limit, 0U) << "0 turns the limit off";
}

TEST(Config, InvalidRetentionValuesAreUsageErrors) {
  expect_usage_error("retention.keep_versions", "0");
  expect_usage_error("retention.keep_versions", "-2");
  expect_usage_error("retention.keep_days", "-1");
  expect_usage_error("retention.keep_days", "week");
}

TEST(Config, InvalidBoolsAreUsageErrors) {
  for (const char* key : {"compression.enabled", "watch.enabled", "watch.realtime", "retention.auto_clean",
                          "schedule.catch_up"}) {
    expect_usage_error(key, "maybe");
    expect_usage_error(key, "");
  }
}

TEST(Config, UnknownKeyIsAUsageErrorListingValidKeys) {
  Config config;
  const Error error = catch_error([&] { set_config_value(config, "compression.lvl", "3"); });
  EXPECT_EQ(error.kind(), ErrorKind::usage);
  const std::string message = error.what();
  EXPECT_TRUE(starts_with(message, "unknown key 'compression.lvl'")) << message;
  EXPECT_TRUE(contains(message, "destination,")) << message;
  for (const std::string& key : config_keys()) {
    EXPECT_TRUE(contains(message, key)) << key << " not listed in: " << message;
  }
  EXPECT_EQ(catch_error([&] { set_config_value(config, "encryption.key", "00ff"); }).kind(), ErrorKind::usage);
  EXPECT_EQ(catch_error([&] { set_config_value(config, "", "x"); }).kind(), ErrorKind::usage);
}

// ---- load_config errors

Error load_error(const TempDir& dir, const std::string& text) {
  write_text(dir / "config.yaml", text);
  return catch_error([&] { load_config(dir / "config.yaml"); });
}

TEST(Config, LoadMissingFileIsNotFound) {
  TempDir dir("config_test_");
  const Error error = catch_error([&] { load_config(dir / "nope.yaml"); });
  EXPECT_EQ(error.kind(), ErrorKind::not_found);
  EXPECT_TRUE(contains(error.what(), dir / "nope.yaml")) << error.what();
}

TEST(Config, LoadEmptyFileGivesDefaults) {
  TempDir dir("config_test_");
  write_text(dir / "config.yaml", "# nothing here yet\n");
  expect_same_config(load_config(dir / "config.yaml"), Config{});
}

TEST(Config, LoadSyntaxErrorNamesFileAndLine) {
  TempDir dir("config_test_");
  const std::string path = dir / "config.yaml";
  {
    // A second ": " inside a value, on line 3.
    const Error error = load_error(dir, "version: '1.0.0'\ncompression:\n  level: 3: 4\nwatch:\n  enabled: true\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_TRUE(starts_with(error.what(), path + ":3: ")) << error.what();
  }
  {
    // A stray closing bracket on line 5.
    const Error error =
        load_error(dir, "version: '1.0.0'\n# comment\n\ncompression:\n  level: ]\nwatch:\n  enabled: true\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_TRUE(starts_with(error.what(), path + ":5: ")) << error.what();
  }
  {
    // A key indented less than its siblings, on line 4.
    const Error error =
        load_error(dir, "version: '1.0.0'\ncompression:\n  enabled: true\n level: 3\nwatch:\n  enabled: true\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_TRUE(starts_with(error.what(), path + ":4: ")) << error.what();
  }
  {
    // A flow mapping opened on line 2 and never closed: the parser notices on the next line.
    const Error error = load_error(dir, "version: '1.0.0'\nwatch: {enabled: true, interval: 5\nretention:\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_TRUE(starts_with(error.what(), path + ":3: ")) << error.what();
  }
}

TEST(Config, LoadUnknownKeyNamesLine) {
  TempDir dir("config_test_");
  const std::string path = dir / "config.yaml";
  {
    const Error error = load_error(dir, "version: '1.0.0'\ncompression:\n  enabled: true\n  speed: 9\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":4: unknown key 'compression.speed'");
  }
  {
    const Error error = load_error(dir, "version: '1.0.0'\n\ncolour: blue\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":3: unknown key 'colour'");
  }
  {
    const Error error = load_error(dir, "sources:\n  - path: /x\n    excludes: ['*.tmp']\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":3: unknown key 'sources.excludes'");
  }
  {
    const Error error = load_error(dir, "version: '1.0.0'\nencryption:\n  algorithm: AES-256-GCM\n  cipher: x\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":4: unknown key 'encryption.cipher'");
  }
}

// Found by fuzz/config_fuzz.cpp: yaml-cpp's own exception escaped for these instead of Error(config).
TEST(Config, LoadKeysAndPatternsMustBeSingleValues) {
  TempDir dir("config_test_");
  const std::string path = dir / "config.yaml";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version: '1.0.0'\n? [a, b]\n: 1\n", ":2: a key must be a single value"},
      {"compression:\n  ? {x: 1}\n  : 2\n", ":2: a key must be a single value"},
      {"~: 1\n", ":1: a key must be a single value"},
      {"sources:\n  - path: /x\n    [k]: 1\n", ":3: a key must be a single value"},
      {"sources:\n  - path: /x\n    exclude: ['*.tmp', [a]]\n", ":3: an exclude pattern must be a single value"},
      {"sources:\n  - path: /x\n    exclude: [~]\n", ":3: an exclude pattern must be a single value"},
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    const Error error = load_error(dir, text);
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()).rfind(path + expected, 0), 0U) << error.what();
  }
}

TEST(Config, LoadUnknownKeyWithoutAValueIsAnError) {
  TempDir dir("config_test_");
  const std::string path = dir / "config.yaml";
  const Error error = load_error(dir, "version: '1.0.0'\ncolour:\n");
  EXPECT_EQ(error.kind(), ErrorKind::config);
  EXPECT_EQ(std::string(error.what()), path + ":2: unknown key 'colour'");

  // An empty known section keeps its defaults.
  write_text(path, "compression:\nwatch:\ndestinations:\nretention:\nsources:\n");
  expect_same_config(load_config(path), Config{});
}

TEST(Config, LoadInvalidValueNamesLine) {
  TempDir dir("config_test_");
  const std::string path = dir / "config.yaml";
  {
    const Error error =
        load_error(dir, "version: '1.0.0'\ncreated_at: ''\ncompression:\n  enabled: true\n  level: 99\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":5: compression.level must be a whole number from 1 to 22, got '99'");
  }
  {
    const Error error = load_error(dir, "watch:\n  enabled: sometimes\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":2: watch.enabled must be true or false, got 'sometimes'");
  }
  {
    const Error error = load_error(dir, "retention:\n  keep_days: 3\n  keep_versions: [1, 2]\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_TRUE(starts_with(error.what(), path + ":3: retention.keep_versions")) << error.what();
  }
  {
    const Error error = load_error(dir, "compression:\n  algorithm: gzip\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    EXPECT_EQ(std::string(error.what()), path + ":2: compression.algorithm must be zstd");
  }
}

TEST(Config, LoadInlineEncryptionKeyTellsToRemoveIt) {
  TempDir dir("config_test_");
  const std::string path = dir / "config.yaml";
  const std::string secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  {
    const Error error =
        load_error(dir, "version: '1.0.0'\nencryption:\n  algorithm: AES-256-GCM\n  key: " + secret + "\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    const std::string message = error.what();
    EXPECT_TRUE(starts_with(message, path + ":4: encryption.key")) << message;
    EXPECT_TRUE(contains(message, "remove this line")) << message;
    EXPECT_FALSE(contains(message, secret)) << "the key must never appear in a message";
  }
  {
    const Error error = load_error(dir, "version: '1.0.0'\nencryption: {key: " + secret + "}\n");
    EXPECT_EQ(error.kind(), ErrorKind::config);
    const std::string message = error.what();
    EXPECT_TRUE(starts_with(message, path + ":2: ")) << message;
    EXPECT_TRUE(contains(message, "remove this line")) << message;
    EXPECT_FALSE(contains(message, secret));
  }
}

TEST(Config, LoadAcceptsAHandWrittenFile) {
  TempDir dir("config_test_");
  write_text(dir / "config.yaml",
             "version: '1.0.0'\n"
             "created_at: '2026-01-20T14:30:00'\n"
             "encryption: {algorithm: AES-256-GCM, key_file: key}\n"
             "compression: {enabled: true, algorithm: zstd, level: 7}\n"
             "sources: [{path: /home/me/Documents/, exclude: ['*.tmp', 'build/'], added_at: '2026-01-21'}]\n"
             "destinations: {primary: /mnt/backups, secondary: null}\n"
             "watch: {enabled: false, interval: 60, realtime: true}\n"
             "retention: {keep_days: 14, keep_versions: 3, auto_clean: yes}\n");
  const Config config = load_config(dir / "config.yaml");
  EXPECT_EQ(config.created_at, "2026-01-20T14:30:00");
  EXPECT_EQ(config.key_file, "key");
  EXPECT_EQ(config.compression_level, 7);
  ASSERT_EQ(config.sources.size(), 1u);
  EXPECT_EQ(config.sources[0].path, "/home/me/Documents");
  EXPECT_EQ(config.sources[0].exclude, (std::vector<std::string>{"*.tmp", "build/"}));
  EXPECT_EQ(config.sources[0].added_at, "2026-01-21");
  EXPECT_EQ(config.destination_primary, "/mnt/backups");
  EXPECT_EQ(config.destination_secondary, "");
  EXPECT_FALSE(config.watch_enabled);
  EXPECT_EQ(config.watch_interval, 60);
  EXPECT_EQ(config.retention_keep_days, 14);
  EXPECT_EQ(config.retention_keep_versions, 3);
  EXPECT_TRUE(config.retention_auto_clean);
}


TEST(Config, EverySettingOfTheTableRoundTripsThroughSaveAndLoad) {
  // Each key `config set` accepts gets a value other than its default; saving and loading must
  // keep it. A setting the file writer forgot would come back as its default.
  TempDir dir("config_test_");
  const Config defaults;
  Config changed;
  std::map<std::string, std::string> before;
  for (const auto& [key, text] : config_values(defaults)) {
    before[key] = text;
  }
  for (const std::string& key : config_keys()) {
    const std::string old = before.at(key);
    std::string value;
    if (old == "true" || old == "false") {
      value = old == "true" ? "false" : "true";
    } else if (!old.empty() && old.find_first_not_of("0123456789") == std::string::npos) {
      value = std::to_string(std::stoi(old) + 1);
    } else if (old.size() > 3 && old.substr(old.size() - 3) == "MiB") {
      value = std::to_string(std::stoi(old) * 2) + "MiB";  // a size
    } else {
      value = "/srv/" + key;  // a path, or for notify.command any text
    }
    set_config_value(changed, key, value);
  }
  std::map<std::string, std::string> expected;
  for (const auto& [key, text] : config_values(changed)) {
    EXPECT_NE(text, before.at(key)) << key << " kept its default";
    expected[key] = text;
  }
  save_config(dir / "config.yaml", changed);
  const Config loaded = load_config(dir / "config.yaml");
  std::size_t compared = 0;
  for (const auto& [key, text] : config_values(loaded)) {
    EXPECT_EQ(text, expected.at(key)) << key;
    ++compared;
  }
  EXPECT_EQ(compared, config_keys().size());
  expect_same_config(loaded, changed);
}

}  // namespace
}  // namespace mybackup
