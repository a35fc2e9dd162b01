#pragma once
// One clean run (`mybackup clean`): forget the versions the retention policy no longer keeps,
// then reclaim the space of the chunks no version references any more.
//
//   1. Plan: the retention rule (retention.hpp) over every path's versions; then, for every
//      pack, which of its chunks stay referenced; and the packs on the destination that the
//      catalog does not know (orphans of interrupted runs), once they have been seen so for
//      the grace period (a run still writing on another machine has not recorded them yet).
//   2. Packs with no live chunk are deleted. Packs whose dead share reaches rewrite_threshold
//      are rewritten: their live blobs are copied, still encrypted (no re-encryption), into new
//      packs, each blob authenticated first so that damage is never copied. Packs below the
//      threshold stay as they are; their dead chunks stay known, so a later backup can reuse them.
//   3. When the new packs are durable: the clean manifest (removed versions, new packs, deleted
//      packs), then one catalog transaction, then the old packs are deleted.
//
// Interrupting it at any point is safe, and a rerun finishes the job: before the manifest, only
// unreferenced new packs exist (the next clean deletes them as orphans); after it, the next run
// replays the manifest and the next clean deletes whatever is left of the old packs. A pack that
// a remaining version references is never deleted.

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/engine/retention.hpp"

namespace mybackup {

/// A pack is rewritten once this share of its bytes is dead: the copy costs reading and writing
/// the pack, so a few dead chunks are left until more of the pack has expired.
constexpr double kDefaultRewriteThreshold = 0.25;

constexpr std::int64_t kDefaultOrphanGraceNs = std::int64_t{24} * 3600 * 1'000'000'000;

struct CleanOptions {
  RetentionPolicy policy;
  bool dry_run = false;  // plan and report; write and delete nothing
  double rewrite_threshold = kDefaultRewriteThreshold;  // in (0, 1]
  const Clock* clock = nullptr;                         // nullptr: the system clock
  /// Orphan packs (recorded by no run) are deleted only this long after the catalog first saw
  /// them so (Catalog::orphans_first_seen): another machine's backup may still be writing them.
  std::int64_t orphan_grace_ns = kDefaultOrphanGraceNs;
  /// Optional: when it becomes true before the manifest is written, the run stops at the next
  /// pack and throws Error(interrupted); nothing is recorded (new packs are orphans the next
  /// clean deletes). Once the manifest is written the run completes.
  const std::atomic<bool>* cancel = nullptr;
};

struct CleanReport {
  std::uint64_t versions_removed = 0;  // deletion markers included
  std::uint64_t paths_removed = 0;     // paths left with no version at all
  std::uint64_t chunks_removed = 0;    // unreferenced chunks whose space was reclaimed
  std::uint64_t packs_deleted = 0;     // packs that held no live chunk
  std::uint64_t packs_rewritten = 0;   // packs whose live chunks were copied, then deleted
  std::uint64_t packs_written = 0;     // new packs holding those live chunks
  std::uint64_t orphan_packs = 0;      // packs no run had recorded (interrupted runs), deleted
  std::uint64_t orphan_packs_kept = 0; // orphans first seen less than the grace period ago, kept
  std::uint64_t bytes_deleted = 0;     // sizes of every pack deleted (rewritten and orphans too)
  std::uint64_t bytes_written = 0;     // sizes of the new packs
  std::uint64_t bytes_dead_kept = 0;   // unreferenced bytes left in packs below the threshold
  /// Packs that should have been rewritten but could not be read or authenticated; they are
  /// left as they are (run `mybackup verify`).
  std::vector<std::string> damaged_packs;
  std::uint64_t seq = 0;               // 0 when no manifest was written
  std::string manifest_key;
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;

  std::uint64_t bytes_freed() const { return bytes_deleted > bytes_written ? bytes_deleted - bytes_written : 0; }
};

/// The report as JSON (`clean --json`): seconds, every count above, bytes_freed,
/// bytes_unreferenced_kept (bytes_dead_kept), manifest and damaged_packs.
void to_json(nlohmann::ordered_json& json, const CleanReport& report);

/// Runs one clean. The caller holds the repository's writer lock (unless dry_run; pass it so a
/// lost lock stops the run before its manifest, and again before it deletes packs: the lock is
/// checked on the destination at both steps) and has replayed the destination's manifests into
/// the catalog (replay.hpp). Throws Error(usage) for an invalid policy or threshold, Error(locked)
/// if the lock was lost (after the manifest: it is recorded, and no pack was deleted).
CleanReport run_clean(Catalog& catalog, Repository& repository, const RepositoryLock* lock, const CleanOptions& options);

}  // namespace mybackup
