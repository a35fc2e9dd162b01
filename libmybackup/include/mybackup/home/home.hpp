#pragma once
// The local state directory (MYBACKUP_HOME, default ~/.mybackup):
//   config.yaml   settings (config.hpp)
//   key           the master key, mode 0600 (keys.hpp)
//   backups.db    the catalog (catalog.hpp)
//   keys/         passphrase-wrapped copies of the key not yet on the destination (key_wrap.hpp)
//   logs/         mybackup.log (rotating); backup_manager.log, backup_service.log (`schedule`)
//   watch.pid     the `mybackup watch start` daemon
//   backup_schedules.txt, backups/, backup_service.pid   the legacy scheduler (`mybackup schedule`),
//                 unless config.yaml puts them elsewhere (schedule.file, .archive_dir, .log_dir)

#include <functional>
#include <memory>
#include <string>

#include "mybackup/home/config.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/storage/backend.hpp"

namespace mybackup {

class Home {
 public:
  /// `root` as given by --home; else $MYBACKUP_HOME; else $HOME/.mybackup. Made absolute.
  static Home locate(const std::string& cli_home);

  explicit Home(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string config_path() const { return root_ + "/config.yaml"; }
  std::string catalog_path() const { return root_ + "/backups.db"; }
  std::string log_directory() const { return root_ + "/logs"; }
  /// The key file named by the config (relative names are inside the home).
  std::string key_path(const Config& config) const;

  /// The legacy scheduler's files: schedule.file, schedule.archive_dir and schedule.log_dir of the
  /// config, or their defaults in the home (backup_schedules.txt, backups/, logs/).
  std::string schedule_file(const Config& config) const;
  std::string schedule_archive_directory(const Config& config) const;
  std::string schedule_log_directory(const Config& config) const;
  /// The pid file of the running scheduler service (always in the home).
  std::string schedule_pid_path() const { return root_ + "/backup_service.pid"; }
  /// The pid file of the running `mybackup watch start` daemon.
  std::string watch_pid_path() const { return root_ + "/watch.pid"; }

  /// The store of passphrase-wrapped keys made while no destination holds a repository yet
  /// (keys/<id>.json, mode 0600); the next backup moves them to the destination (key_wrap.hpp).
  std::unique_ptr<Backend> pending_keys() const;

  bool initialized() const;
  /// What is wrong with the home's permissions, "" when nothing is: the home holds the key and
  /// the list of every backed-up path, so it must be 0700 (no access for group or others).
  std::string permission_problem() const;
  /// Error(not_found) "mybackup is not initialized in DIR: run `mybackup init`" unless initialized().
  void require_initialized() const;

  /// Creates the home: directory (0700), config.yaml, a new key, an empty catalog.
  /// On an initialized home: Error(exists) unless `force`; with `force`, the old config, key,
  /// catalog and pending wrapped keys are kept beside the new ones as *.old-<time> (a key is never
  /// destroyed).
  void initialize(bool force, const std::string& now_text) const;

  /// Like initialize(), for an existing repository (`init --from`): the home gets `key` and
  /// `config` instead of new ones. `fill_catalog` receives the new catalog's path and fills it;
  /// config.yaml is written last, so the home counts as initialized only once the catalog is
  /// complete. A key file or catalog left by an interrupted earlier attempt (no config.yaml yet)
  /// is replaced if the key is the same; a different key file is never overwritten (Error(exists)).
  void initialize_with(const MasterKey& key, const Config& config, bool force, const std::string& now_text,
                       const std::function<void(const std::string& catalog_path)>& fill_catalog) const;

 private:
  std::string root_;
};

}  // namespace mybackup
