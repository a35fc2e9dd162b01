#include "mybackup/engine/commit.hpp"

#include <algorithm>
#include <array>

#include "mybackup/crypto/crypto.hpp"

namespace mybackup {

namespace {

bool records_anything(const Manifest& manifest) {
  return version_count(manifest) != 0 || pack_count(manifest) != 0 || !manifest.removed.empty() ||
         !manifest.deleted_packs.empty();
}

}  // namespace

Error lost_lock_error(const std::string& location, RunKind kind) {
  const bool clean = kind == RunKind::clean;
  return Error(ErrorKind::locked, "the lock on " + location + " was taken over by another writer during this " +
                                      (clean ? "clean" : "run") +
                                      " (was the computer asleep?): nothing was recorded, run " +
                                      (clean ? "`mybackup clean`" : "the backup") + " again");
}

CommittedRun commit_run(Catalog& catalog, Repository& repository, const RepositoryLock* lock, Manifest& manifest,
                        const RunStats& stats, RunRecorder* recorded) {
  // Checked on the destination now, not only by the refresher: a writer who judged this one stale
  // (clocks apart, a resume from suspend) must not see a manifest appear after it took over.
  if (lock != nullptr && !lock->still_held()) {
    throw lost_lock_error(repository.location(), manifest.kind);
  }
  manifest.host = host_name();
  CommittedRun committed;
  if (records_anything(manifest)) {
    std::array<std::uint8_t, 8> run_id{};
    random_bytes(run_id);
    manifest.run_id = to_hex(run_id);
    manifest.seq = repository.next_manifest_seq(catalog.last_seq());
    committed.manifest_key = repository.put_manifest(manifest);
    committed.seq = manifest.seq;
  }
  if (recorded != nullptr) {
    recorded->finish(manifest, committed.manifest_key, stats);
  } else {
    catalog.record_run(manifest, committed.manifest_key, stats);
  }
  if (committed.seq != 0) {
    // So that deleting this manifest later (a rollback) is noticed at the next listing.
    catalog.remember_highest_seq(repository.location(), committed.seq);
  }
  return committed;
}

}  // namespace mybackup
