#include "mybackup/home/home.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/source/scanner.hpp"

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

std::string Home::permission_problem() const {
  struct stat info {};
  if (::stat(root_.c_str(), &info) != 0 || (info.st_mode & 077U) == 0) {
    return "";
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode) & 07777U);
  return root_ + " can be read by other users (mode " + mode + "): it holds your key; run `chmod 700 " + root_ + "`";
}

std::unique_ptr<Backend> Home::pending_keys() const { return make_local_backend(root_, 0600); }

std::string Home::key_path(const Config& config) const {
  if (!config.key_file.empty() && config.key_file.front() == '/') {
    return config.key_file;
  }
  return root_ + "/" + (config.key_file.empty() ? "key" : config.key_file);
}

std::string Home::schedule_file(const Config& config) const {
  return config.schedule_file.empty() ? root_ + "/backup_schedules.txt" : config.schedule_file;
}

std::string Home::schedule_archive_directory(const Config& config) const {
  return config.schedule_archive_dir.empty() ? root_ + "/backups" : config.schedule_archive_dir;
}

std::string Home::schedule_log_directory(const Config& config) const {
  return config.schedule_log_dir.empty() ? log_directory() : config.schedule_log_dir;
}

bool Home::initialized() const { return path_exists(config_path()); }

void Home::require_initialized() const {
  if (!initialized()) {
    throw Error(ErrorKind::not_found, "mybackup is not initialized in " + root_ + ": run `mybackup init`");
  }
}

void Home::initialize(bool force, const std::string& now_text) const {
  Config config;
  config.created_at = now_text;
  initialize_with(MasterKey::generate(), config, force, now_text, [](const std::string& catalog_path) {
    Catalog catalog(catalog_path);
  });
}

void Home::initialize_with(const MasterKey& key, const Config& config, bool force, const std::string& now_text,
                           const std::function<void(const std::string& catalog_path)>& fill_catalog) const {
  if (initialized() && !force) {
    throw Error(ErrorKind::exists, "mybackup is already initialized in " + root_ +
                                       ": nothing changed (use `mybackup init --force` to start over; the old key is kept)");
  }
  make_directories(root_, 0700);
  // "keys": wrapped copies of the old key waiting for a destination must not reach a new one.
  const std::vector<std::string> state = {"config.yaml", "key", "backups.db", "backups.db-wal", "backups.db-shm", "keys"};
  if (force && initialized()) {
    std::string stamp = now_text;
    for (char& c : stamp) {
      if (c == ':' || c == ' ') {
        c = '-';
      }
    }
    for (const std::string& name : state) {
      const std::string path = root_ + "/" + name;
      if (path_exists(path) && ::rename(path.c_str(), (path + ".old-" + stamp).c_str()) != 0) {
        throw_system_error(errno, "cannot set aside " + path);
      }
    }
    sync_directory(root_);
  }
  // Not initialized: what is there was left by an interrupted init. Its key may go only if it is
  // this very key; its catalog is incomplete and goes.
  const std::string key_file = key_path(config);
  if (path_exists(key_file)) {
    if (load_key_file(key_file).bytes != key.bytes) {
      throw Error(ErrorKind::exists, key_file + " holds another key and there is no config.yaml beside it: "
                                                "move that key somewhere safe, then run the command again");
    }
    remove_file(key_file);
  }
  for (const char* name : {"backups.db", "backups.db-wal", "backups.db-shm"}) {
    remove_file(root_ + "/" + std::string(name));
  }
  // The key first: a config without its key would be a home that cannot back up.
  save_key_file(key_file, key);
  fill_catalog(catalog_path());
  save_config(config_path(), config);
}

}  // namespace mybackup
