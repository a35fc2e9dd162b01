#pragma once
// The local state directory (MYBACKUP_HOME, default ~/.mybackup):
//   config.yaml   settings (config.hpp)
//   key           the master key, mode 0600 (keys.hpp)
//   backups.db    the catalog (catalog.hpp)
//   keys/         passphrase-wrapped copies of the key not yet on the destination (key_wrap.hpp)
//   logs/         mybackup.log (rotating)

#include <string>

#include "mybackup/config.hpp"

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

  bool initialized() const;
  /// Error(not_found) "mybackup is not initialized in DIR: run `mybackup init`" unless initialized().
  void require_initialized() const;

  /// Creates the home: directory (0700), config.yaml, a new key, an empty catalog.
  /// On an initialized home: Error(exists) unless `force`; with `force`, the old config, key,
  /// catalog and pending wrapped keys are kept beside the new ones as *.old-<time> (a key is never
  /// destroyed).
  void initialize(bool force, const std::string& now_text) const;

 private:
  std::string root_;
};

}  // namespace mybackup
