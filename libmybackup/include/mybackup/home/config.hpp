#pragma once
// config.yaml: the user's settings, in the structure of the original MyBackup tool.
//
//   version: '1.0.0'
//   created_at: '2026-01-20T14:30:00'
//   encryption: {algorithm: AES-256-GCM, key_file: key}     # the key itself is never in here
//   compression: {enabled: true, algorithm: zstd, level: 3}
//   sources: [{path: /home/me/Documents, exclude: ['*.tmp'], added_at: '…'}]
//   destinations: {primary: /mnt/backups, secondary: null}
//   repository: {chunk_size: 1MiB, pack_size: 16MiB}   # for a repository created from now on
//   watch: {enabled: true, interval: 300, realtime: true, debounce: 5}    # `mybackup watch`
//   notify: {command: null}       # run after a failed watch backup: notify-send mybackup '{message}'
//   retention: {keep_days: 30, keep_versions: 10, auto_clean: false, orphan_grace_hours: 24}
//   schedule: {file: null, archive_dir: null, log_dir: null, catch_up: true}  # `mybackup schedule`
//
// Errors name the file and line: "/home/me/.mybackup/config.yaml:12: compression.level must be …".
// One table of settings (config.cpp) drives loading, saving (its order is the file's layout),
// `config set` and `config show`.

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <utility>
#include <vector>

#include "mybackup/repository/options.hpp"

namespace mybackup {

struct SourceConfig {
  std::string path;  // absolute, normalized
  std::vector<std::string> exclude;
  std::string added_at;
};

struct Config {
  std::string version = "1.0.0";
  std::string created_at;

  std::string encryption_algorithm = "AES-256-GCM";
  std::string key_file = "key";  // relative to the home, or absolute

  bool compression_enabled = true;
  int compression_level = 3;  // 1..22

  std::vector<SourceConfig> sources;

  std::string destination_primary;    // empty: not set
  std::string destination_secondary;  // empty: not set

  // The options of a repository created with this config (the first backup to a new destination):
  // repository.chunk_size (the average; min and max follow, see RepositoryOptions::chunker_for)
  // and repository.pack_size. An existing repository keeps the options it was created with.
  RepositoryOptions new_repository;

  // Remote destinations: transfers at once (packs stored by a backup or copied by sync, regions
  // read ahead by a restore), and the upload bandwidth limit in bytes per second (0: none; see
  // storage/throttled_backend.hpp).
  int transfer_connections = 4;  // 1..64
  std::uint64_t transfer_upload_limit = 0;

  bool watch_enabled = true;
  int watch_interval = 300;  // seconds, > 0
  bool watch_realtime = true;
  int watch_debounce = 5;  // seconds without a change before a watch backup starts, >= 0

  // Run (without a shell) after a failed watch backup; {message}, {source} and {exit_code} are
  // replaced. Empty: none.
  std::string notify_command;

  int retention_keep_days = 30;     // >= 0
  int retention_keep_versions = 10;  // >= 1
  bool retention_auto_clean = false;
  // A pack no run recorded is deleted by clean only this long after this home first saw it so:
  // until then it may belong to a run still writing elsewhere. 0: at once.
  int retention_orphan_grace_hours = 24;

  // The legacy scheduler (`mybackup schedule …`). Empty paths mean the defaults under the home:
  // backup_schedules.txt, backups/ and logs/ (see Home::schedule_file() and its siblings).
  std::string schedule_file;
  std::string schedule_archive_dir;
  std::string schedule_log_dir;
  bool schedule_catch_up = true;  // on start-up, make once an archive missed earlier today

  /// The source whose path equals `path`, or nullptr.
  const SourceConfig* find_source(const std::string& path) const;
};

/// As JSON (`config show --json`): path, exclude, added_at.
void to_json(nlohmann::ordered_json& json, const SourceConfig& source);
/// As JSON (`config show --json`): every key of config_values() with its text, then sources.
void to_json(nlohmann::ordered_json& json, const Config& config);

/// Reads config.yaml. Error(config) "<path>:<line>: <problem>" if it does not parse or holds an
/// unknown key or an invalid value; Error(not_found) if it is missing.
Config load_config(const std::string& path);

/// The configured sources' paths joined with ", " ("none" when there are none), for messages.
std::string source_paths(const Config& config);

/// Parses the text of a config.yaml; `name` stands for the file in error messages.
Config parse_config(const std::string& text, const std::string& name);

/// Writes config.yaml atomically (temporary file, fsync, rename).
void save_config(const std::string& path, const Config& config);

/// The keys `config set` accepts, in display order. "destination" is an alias of
/// "destinations.primary".
const std::vector<std::string>& config_keys();

/// Sets one key from its text form. Error(usage) for an unknown key ("unknown key 'x': valid keys
/// are …") or an invalid value ("compression.level must be a whole number from 1 to 22, got '0'").
/// Paths are made absolute.
void set_config_value(Config& config, const std::string& key, const std::string& value);

/// Every key with its value as text, in display order ("" for unset).
std::vector<std::pair<std::string, std::string>> config_values(const Config& config);

}  // namespace mybackup
