#include "mybackup/catalog/replay.hpp"

#include "mybackup/repository/object_names.hpp"

namespace mybackup {

std::size_t replay_new_manifests(Catalog& catalog, const Repository& repository, std::uint64_t up_to_seq) {
  const std::uint64_t known = catalog.last_seq();
  std::size_t replayed = 0;
  for (const std::string& key : repository.manifest_keys()) {
    const std::uint64_t seq = object_names::parse_manifest(key).value_or(0);
    if (seq <= known) {
      continue;
    }
    if (seq > up_to_seq) {
      break;  // keys come in sequence order
    }
    const Manifest manifest = repository.read_manifest(key);
    RunStats stats;
    if (manifest.kind == RunKind::clean) {
      stats.files_deleted = manifest.removed.size();  // a clean run's count of removed versions
    }
    for (const ManifestVersion& version : manifest.versions) {
      if (version.type == EntryType::deleted) {
        ++stats.files_deleted;
      } else if (version.type != EntryType::directory) {
        ++stats.files_changed;  // new or changed: the manifest does not say which
      }
    }
    for (const ManifestPack& pack : manifest.packs) {
      stats.bytes_stored += pack.size;
    }
    catalog.record_run(manifest, key, stats);
    ++replayed;
  }
  return replayed;
}

std::string newest_recorded_config(const Repository& repository) {
  const std::vector<std::string> keys = repository.manifest_keys();
  for (auto key = keys.rbegin(); key != keys.rend(); ++key) {
    Manifest manifest = repository.read_manifest(*key);
    if (!manifest.config.empty()) {
      return std::move(manifest.config);
    }
  }
  return "";
}

}  // namespace mybackup
