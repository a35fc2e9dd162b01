#pragma once
// The end of every run that writes to a destination (backup, clean): what it did becomes durable
// on the destination first, then known to the catalog.
//
//   1. The writer lock is checked: a run whose lock another writer took over (after a long
//      suspend, say) commits nothing and throws Error(locked).
//   2. If the manifest records anything (versions, packs, removed versions or deleted packs), it
//      is given this host's name, a random run id and the next sequence number, and stored
//      atomically and durably (Repository::put_manifest). A run that changed nothing writes no
//      manifest.
//   3. The catalog records the run in one transaction (Catalog::record_run), with its manifest's
//      key or, for a run that changed nothing, without one. A backup has recorded its packs and
//      versions as it went (RunRecorder): its transaction gets the run's row and commits.
//
// The order keeps the catalog an index of the destination: it never records a run the
// destination does not hold. A failure in 2 leaves the catalog as it was (the run's packs are
// orphans `clean` removes); a crash between 2 and 3 leaves a manifest the catalog lacks, which
// the next run replays first (catalog/replay.hpp), so no sequence or version number is reused.

#include <cstdint>
#include <string>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/format/manifest.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

/// What commit_run recorded.
struct CommittedRun {
  std::uint64_t seq = 0;     // the manifest's sequence number; 0 when no manifest was written
  std::string manifest_key;  // "snapshots/…"; empty when no manifest was written
};

/// Commits a finished run: the manifest on the destination, then the run in the catalog (see
/// above). `manifest` holds the run's kind, times and content; commit_run sets its host, run_id
/// and seq (seq: one more than the highest of the destination's and the catalog's, so a catalog
/// ahead of a destination, or behind it, never makes a number repeat). `lock` is the writer lock
/// held for the run (nullptr: none to check). `stats` go to the catalog's record of the run.
/// `recorded`: the run's packs and versions, recorded as it went (nullptr: record_run records
/// them from `manifest`); it is spent afterwards.
/// REQUIRES: the caller holds the writer lock and the catalog has replayed the destination's
/// manifests. Throws Error(locked) if the lock was lost, what Repository::put_manifest throws
/// (then the catalog is unchanged) and what Catalog::record_run throws (then the manifest is on
/// the destination and the next run replays it; so does RunRecorder::finish).
CommittedRun commit_run(Catalog& catalog, Repository& repository, const RepositoryLock* lock, Manifest& manifest,
                        const RunStats& stats, RunRecorder* recorded = nullptr);

/// The error a run of `kind` throws when it finds its writer lock on `location` taken over:
/// nothing of the run is recorded, and the message says to run it again.
Error lost_lock_error(const std::string& location, RunKind kind);

}  // namespace mybackup
