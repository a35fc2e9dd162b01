#include "mybackup/engine/sync.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

void check_cancel(const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load()) {
    throw Error(ErrorKind::interrupted, "sync interrupted: what was copied is valid; run `mybackup sync` to finish");
  }
}

/// The secondary gets exactly the primary's wrapped keys: a key removed with `key remove` must
/// stop working there too.
void mirror_keys(Repository& primary, Repository& secondary, SyncReport& report) {
  const std::map<std::string, std::string> wanted = wrapped_key_texts(primary.key_store());
  const std::map<std::string, std::string> present = wrapped_key_texts(secondary.key_store());
  for (const auto& [id, text] : wanted) {
    if (present.count(id) == 0) {
      add_wrapped_key(secondary.key_store(), WrappedKey{id, text});
      ++report.keys_copied;
    }
  }
  for (const auto& [id, text] : present) {
    if (wanted.count(id) == 0) {
      remove_wrapped_key(secondary.key_store(), id, LastKey::allow);
      ++report.keys_removed;
    }
  }
}

/// Copies `missing` from the primary to the secondary, `transfers` packs at once (a remote side
/// answers each request after a round trip). A pack whose bytes do not match its name is listed,
/// not copied; any other failure stops the copy and is rethrown once the transfers in flight end.
void copy_packs(Repository& primary, Repository& secondary, const std::vector<Repository::StoredPack>& missing,
                unsigned transfers, const std::atomic<bool>* cancel, SyncReport& report) {
  std::mutex mutex;  // guards next, failure and report
  std::size_t next = 0;
  std::exception_ptr failure;
  const auto copy = [&] {
    for (;;) {
      const Repository::StoredPack* pack = nullptr;
      {
        const std::lock_guard lock(mutex);
        if (failure || next == missing.size()) {
          return;
        }
        pack = &missing[next++];
      }
      try {
        check_cancel(cancel);
        Bytes bytes;
        try {
          bytes = primary.read_pack(pack->name, pack->size);
        } catch (const Error& error) {
          if (error.kind() != ErrorKind::corrupt) {
            throw;
          }
          const std::lock_guard lock(mutex);
          report.damaged_on_primary.push_back(pack->name);
          continue;
        }
        secondary.put_pack(pack->name, bytes);
        const std::lock_guard lock(mutex);
        ++report.packs_copied;
        report.bytes_copied += bytes.size();
      } catch (...) {
        const std::lock_guard lock(mutex);
        if (!failure) {
          failure = std::current_exception();
        }
        return;
      }
    }
  };
  std::vector<std::thread> helpers;
  for (std::size_t i = 1; i < std::min<std::size_t>(std::max(1U, transfers), missing.size()); ++i) {
    helpers.emplace_back(copy);
  }
  copy();
  for (std::thread& helper : helpers) {
    helper.join();
  }
  std::sort(report.damaged_on_primary.begin(), report.damaged_on_primary.end());
  if (failure) {
    std::rethrow_exception(failure);
  }
}

}  // namespace

SyncReport sync_repository(Repository& primary, Repository& secondary, const std::unordered_set<std::string>& indexed_packs,
                           unsigned transfers, const std::atomic<bool>* cancel) {
  SyncReport report;
  mirror_keys(primary, secondary, report);

  const std::vector<Repository::StoredPack> primary_packs = primary.list_packs();
  const std::vector<std::string> secondary_packs = secondary.pack_names();
  const std::set<std::string> on_secondary(secondary_packs.begin(), secondary_packs.end());
  std::vector<Repository::StoredPack> missing;
  for (const Repository::StoredPack& pack : primary_packs) {
    if (on_secondary.count(pack.name) == 0) {
      missing.push_back(pack);
    }
  }
  copy_packs(primary, secondary, missing, transfers, cancel, report);

  const std::vector<std::string> secondary_manifests = secondary.manifest_keys();
  const std::set<std::string> manifests_there(secondary_manifests.begin(), secondary_manifests.end());
  for (const std::string& key : primary.manifest_keys()) {
    if (manifests_there.count(key) == 0) {
      check_cancel(cancel);
      Bytes object;
      try {
        object = primary.read_manifest_object(key);
      } catch (const Error& error) {
        if (error.kind() != ErrorKind::corrupt) {
          throw;
        }
        report.unreadable_manifests.push_back(key);  // never copy what fails authentication
        continue;
      }
      secondary.put_manifest_object(key, object);
      ++report.manifests_copied;
    }
  }

  std::set<std::string> on_primary;
  for (const Repository::StoredPack& pack : primary_packs) {
    on_primary.insert(pack.name);
  }
  for (const std::string& name : secondary_packs) {
    if (on_primary.count(name) != 0) {
      continue;
    }
    if (indexed_packs.count(name) != 0) {
      report.only_on_secondary.push_back(name);
      continue;
    }
    secondary.delete_pack(name);
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
      {"unreadable_manifests", report.unreadable_manifests},
  };
}

}  // namespace mybackup
