#include "mybackup/home.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "mybackup/catalog.hpp"
#include "mybackup/error.hpp"
#include "mybackup/fs.hpp"
#include "mybackup/keys.hpp"
#include "mybackup/scanner.hpp"

namespace mybackup {

Home Home::locate(const std::string& cli_home) {
  if (!cli_home.empty()) {
    return Home(normalize_path(cli_home));
  }
  if (const char* env = std::getenv("MYBACKUP_HOME"); env != nullptr && *env != '\0') {
    return Home(normalize_path(env));
  }
  const char* user_home = std::getenv("HOME");
  if (user_home == nullptr || *user_home == '\0') {
    throw Error(ErrorKind::usage, "cannot find your home directory: set HOME, MYBACKUP_HOME or pass --home DIR");
  }
  return Home(normalize_path(std::string(user_home) + "/.mybackup"));
}

std::string Home::key_path(const Config& config) const {
  if (!config.key_file.empty() && config.key_file.front() == '/') {
    return config.key_file;
  }
  return root_ + "/" + (config.key_file.empty() ? "key" : config.key_file);
}

bool Home::initialized() const { return path_exists(config_path()); }

void Home::require_initialized() const {
  if (!initialized()) {
    throw Error(ErrorKind::not_found, "mybackup is not initialized in " + root_ + ": run `mybackup init`");
  }
}

void Home::initialize(bool force, const std::string& now_text) const {
  if (initialized() && !force) {
    throw Error(ErrorKind::exists, "mybackup is already initialized in " + root_ +
                                       ": nothing changed (use `mybackup init --force` to start over; the old key is kept)");
  }
  make_directories(root_, 0700);
  if (force) {
    std::string stamp = now_text;
    for (char& c : stamp) {
      if (c == ':' || c == ' ') {
        c = '-';
      }
    }
    for (const std::string& name : {std::string("config.yaml"), std::string("key"), std::string("backups.db"),
                                    std::string("backups.db-wal"), std::string("backups.db-shm"),
                                    std::string("keys")}) {
      const std::string path = root_ + "/" + name;
      if (path_exists(path) && ::rename(path.c_str(), (path + ".old-" + stamp).c_str()) != 0) {
        throw_system_error(errno, "cannot set aside " + path);
      }
    }
    sync_directory(root_);
  }
  Config config;
  config.created_at = now_text;
  // The key first: a config without its key would be a home that cannot back up.
  save_key_file(key_path(config), MasterKey::generate());
  { Catalog catalog(catalog_path()); }
  save_config(config_path(), config);
}

}  // namespace mybackup
