#pragma once
// Keeping a second copy of a repository (the secondary destination) up to date.
//
// The copy is made of files, since packs and manifests are immutable and named by what they are:
//   1. the marker (only when the secondary is new; an existing one must be the same repository);
//   2. the wrapped keys (keys/): the secondary gets exactly the primary's set;
//   3. the packs the secondary lacks, each checked against its name (SHA-256) before it is
//      written, so damage on the primary is never copied over a good secondary; several at once
//      when a side is remote;
//   4. the manifests it lacks, once the packs they list are there (the same write order as a
//      backup);
//   5. last, the packs the secondary holds that the primary no longer has and that no version
//      uses: what `clean` removed. A pack the catalog still indexes is never deleted from the
//      secondary, even if it vanished from the primary: it may be the only copy left.
// An interrupted sync leaves the secondary readable; the next one finishes the job.

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "mybackup/repository/repository.hpp"

namespace mybackup {

struct SyncReport {
  std::uint64_t packs_copied = 0;
  std::uint64_t bytes_copied = 0;
  std::uint64_t manifests_copied = 0;
  std::uint64_t keys_copied = 0;
  std::uint64_t keys_removed = 0;
  std::uint64_t packs_deleted = 0;  // removed by a clean on the primary
  /// Packs whose bytes on the primary do not match their name: not copied (run `mybackup verify`).
  std::vector<std::string> damaged_on_primary;
  /// Packs the catalog indexes that the primary lacks: the secondary keeps them (maybe the only copy).
  std::vector<std::string> only_on_secondary;
  /// Manifests on the primary that fail authentication: not copied (run `mybackup verify`).
  std::vector<std::string> unreadable_manifests;
};

/// The report as JSON (`sync --json`): every field above, under its own name.
void to_json(nlohmann::ordered_json& json, const SyncReport& report);

/// Brings `secondary` (opened with Repository::open_copy, which writes or checks the marker) up
/// to date with `primary`. `indexed_packs`: the packs the catalog indexes (after catching up with
/// the primary). `transfers`: packs copied at once (transfer.connections when either side is
/// remote; 1 between local disks). The caller holds the writer locks of both. Error(interrupted)
/// when `cancel` becomes true (between objects; what was copied stays valid).
SyncReport sync_repository(Repository& primary, Repository& secondary, const std::unordered_set<std::string>& indexed_packs,
                           unsigned transfers = 1, const std::atomic<bool>* cancel = nullptr);

}  // namespace mybackup
