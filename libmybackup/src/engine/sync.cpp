#include "mybackup/engine/sync.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr const char* kKeysDirectory = "keys";

std::set<std::string> listed(const Backend& backend, const std::string& prefix) {
  const std::vector<std::string> keys = backend.list(prefix);
  return {keys.begin(), keys.end()};
}

void check_cancel(const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load()) {
    throw Error(ErrorKind::interrupted, "sync interrupted: what was copied is valid; run `mybackup sync` to finish");
  }
}

void mirror_keys(Repository& primary, Backend& secondary, SyncReport& report);

}  // namespace

void adopt_repository(Repository& primary, Backend& secondary) {
  const std::string marker = Repository::marker_key();
  const Bytes ours = primary.backend().get(marker);
  if (secondary.size(marker)) {
    if (secondary.get(marker) != ours) {
      throw Error(ErrorKind::mismatch, "the secondary destination " + secondary.location() +
                                           " holds another repository: choose an empty directory for the secondary");
    }
    return;
  }
  if (!secondary.empty()) {
    throw Error(ErrorKind::mismatch, "the secondary destination " + secondary.location() +
                                         " is not empty and is not a mybackup repository: choose an empty or new directory");
  }
  secondary.put(marker, ours, Overwrite::no);
}

namespace {

void mirror_keys(Repository& primary, Backend& secondary, SyncReport& report) {
  const std::set<std::string> wanted = listed(primary.backend(), kKeysDirectory);
  const std::set<std::string> present = listed(secondary, kKeysDirectory);
  for (const std::string& key : wanted) {
    if (present.count(key) == 0) {
      secondary.put(key, primary.backend().get(key), Overwrite::yes);
      ++report.keys_copied;
    }
  }
  for (const std::string& key : present) {
    if (wanted.count(key) == 0) {
      secondary.remove(key);  // removed with `key remove`: that passphrase must stop working here too
      ++report.keys_removed;
    }
  }
}

}  // namespace

SyncReport sync_repository(Repository& primary, Backend& secondary, const std::unordered_set<std::string>& indexed_packs,
                           const std::atomic<bool>* cancel) {
  SyncReport report;
  adopt_repository(primary, secondary);
  mirror_keys(primary, secondary, report);

  const std::vector<std::string> primary_packs = primary.pack_names();
  const std::set<std::string> secondary_keys = listed(secondary, "data");
  for (const std::string& name : primary_packs) {
    const std::string key = Repository::pack_key(name);
    if (secondary_keys.count(key) != 0) {
      continue;
    }
    check_cancel(cancel);
    const Bytes bytes = primary.backend().get(key);
    if (to_hex(Sha256::hash(bytes)) != name) {
      report.damaged_on_primary.push_back(name);
      continue;
    }
    secondary.put(key, bytes, Overwrite::yes);
    ++report.packs_copied;
    report.bytes_copied += bytes.size();
  }

  const std::set<std::string> secondary_manifests = listed(secondary, "snapshots");
  for (const std::string& key : primary.manifest_keys()) {
    if (secondary_manifests.count(key) == 0) {
      check_cancel(cancel);
      secondary.put(key, primary.backend().get(key), Overwrite::no);
      ++report.manifests_copied;
    }
  }

  const std::set<std::string> on_primary(primary_packs.begin(), primary_packs.end());
  for (const std::string& key : secondary_keys) {
    const std::string name = Repository::pack_name(key);
    if (name.empty() || on_primary.count(name) != 0) {
      continue;
    }
    if (indexed_packs.count(name) != 0) {
      report.only_on_secondary.push_back(name);
      continue;
    }
    secondary.remove(key);
    ++report.packs_deleted;
  }
  return report;
}


void to_json(nlohmann::ordered_json& json, const SyncReport& report) {
  json = {
      {"packs_copied", report.packs_copied},
      {"bytes_copied", report.bytes_copied},
      {"manifests_copied", report.manifests_copied},
      {"keys_copied", report.keys_copied},
      {"keys_removed", report.keys_removed},
      {"packs_deleted", report.packs_deleted},
      {"damaged_on_primary", report.damaged_on_primary},
      {"only_on_secondary", report.only_on_secondary},
  };
}

}  // namespace mybackup
