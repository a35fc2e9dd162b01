#include "mybackup/engine/clean.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_set>

#include "mybackup/engine/commit.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/format/pack.hpp"

namespace mybackup {

namespace {

constexpr const char* kInterrupted = "clean interrupted: nothing was recorded; run `mybackup clean` again";

struct CleanPlan {
  std::vector<ManifestRemoval> removed;
  std::vector<std::int64_t> removed_ids;
  std::vector<const PackUsage*> dead;     // no live chunk: deleted
  std::vector<const PackUsage*> rewrite;  // live chunks copied, then deleted
  std::vector<std::string> orphans;       // on the destination, unknown to the catalog
};

/// The retention rule over every path, one path's history at a time: which versions go.
void plan_removals(const Catalog& catalog, std::int64_t now_ns, const RetentionPolicy& policy, CleanPlan& plan,
                   CleanReport& report) {
  catalog.for_each_history([&](const std::vector<VersionRecord>& versions) {
    const std::vector<bool> keep = versions_to_keep(versions, now_ns, policy);
    const auto kept = static_cast<std::size_t>(std::count(keep.begin(), keep.end(), true));
    for (std::size_t i = 0; i < versions.size(); ++i) {
      if (!keep[i]) {
        plan.removed.push_back({versions[i].path, versions[i].number});
        plan.removed_ids.push_back(versions[i].id);
      }
    }
    report.versions_removed += versions.size() - kept;
    report.paths_removed += kept == 0 ? 1 : 0;
  });
}

/// A pack with live chunks is rewritten when at least `threshold` of its bytes are dead.
bool worth_rewriting(const PackUsage& pack, double threshold) {
  return pack.live_chunks > 0 && pack.dead_chunks > 0 &&
         static_cast<double>(pack.dead_bytes) >= threshold * static_cast<double>(pack.size);
}

/// Which packs go, which are rewritten, and which destination packs nobody recorded.
void plan_packs(const std::vector<PackUsage>& usage, const std::vector<std::string>& stored, double threshold,
                CleanPlan& plan, CleanReport& report) {
  std::unordered_set<std::string> known;
  for (const PackUsage& pack : usage) {
    known.insert(pack.name);
    if (pack.live_chunks == 0) {
      plan.dead.push_back(&pack);
    } else if (worth_rewriting(pack, threshold)) {
      plan.rewrite.push_back(&pack);
    } else {
      report.bytes_dead_kept += pack.dead_bytes;
    }
  }
  for (const std::string& name : stored) {
    if (known.count(name) == 0) {
      plan.orphans.push_back(name);
    }
  }
}

/// Copies the live blobs of the packs to rewrite into new packs. Returns the new packs (as the
/// manifest lists them) and leaves out, in `damaged`, packs that could not be read or whose live
/// blobs fail authentication: those are neither copied nor deleted.
std::vector<ManifestPack> copy_live_blobs(Repository& repository, const std::vector<const PackUsage*>& packs,
                                          const std::atomic<bool>* cancel, std::vector<std::string>& damaged) {
  std::vector<ManifestPack> written;
  PackBuilder builder(repository.info().pack_target_size);
  const auto flush = [&] {
    FinishedPack pack = builder.finish(repository.keys().enc_key);
    repository.put_pack(pack);
    written.push_back({pack.name, pack.bytes.size(), std::move(pack.entries)});
  };
  for (const PackUsage* pack : packs) {
    if (cancel != nullptr && cancel->load()) {
      throw Error(ErrorKind::interrupted, kInterrupted);
    }
    Bytes bytes;
    try {
      bytes = repository.read_pack(pack->name, pack->size);
      for (const PackEntry& entry : pack->live) {
        if (static_cast<std::uint64_t>(entry.offset) + entry.length > bytes.size()) {
          throw Error(ErrorKind::corrupt, "pack " + pack->name + " is shorter than its index says");
        }
        std::uint8_t flags = 0;
        open_blob(repository.keys().enc_key, entry.id, ByteView(bytes).subspan(entry.offset, entry.length), flags);
      }
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::not_found && error.kind() != ErrorKind::corrupt) {
        throw;
      }
      damaged.push_back(pack->name);
      continue;
    }
    for (const PackEntry& entry : pack->live) {
      if (!builder.fits(entry.length)) {
        flush();
      }
      builder.add(entry.id, ByteView(bytes).subspan(entry.offset, entry.length), entry.raw_length, entry.flags);
    }
  }
  if (!builder.empty()) {
    flush();
  }
  return written;
}

/// What copy_live_blobs would write, without reading anything (for a dry run): the same packing.
void estimate_copy(const std::vector<const PackUsage*>& packs, std::size_t pack_target_size, CleanReport& report) {
  std::uint64_t blobs_size = 0;
  std::size_t entries = 0;
  const auto close = [&] {
    ++report.packs_written;
    report.bytes_written += blobs_size + pack_trailer_size(entries);
    blobs_size = 0;
    entries = 0;
  };
  for (const PackUsage* pack : packs) {
    for (const PackEntry& entry : pack->live) {
      if (!pack_fits(blobs_size, entry.length, pack_target_size)) {
        close();
      }
      blobs_size += entry.length;
      ++entries;
    }
  }
  if (entries > 0) {
    close();
  }
}

/// The packs the clean deletes, with their figures in the report: the dead ones, the rewritten
/// ones whose live blobs were copied (a damaged one stays, its dead bytes kept), the orphans.
std::vector<std::string> packs_to_delete(const CleanPlan& plan, const Repository& repository, CleanReport& report) {
  const auto damaged = [&report](const std::string& name) {
    return std::find(report.damaged_packs.begin(), report.damaged_packs.end(), name) != report.damaged_packs.end();
  };
  std::vector<std::string> names;
  for (const PackUsage* pack : plan.dead) {
    names.push_back(pack->name);
    ++report.packs_deleted;
    report.chunks_removed += pack->dead_chunks;
    report.bytes_deleted += pack->size;
  }
  for (const PackUsage* pack : plan.rewrite) {
    if (damaged(pack->name)) {
      report.bytes_dead_kept += pack->dead_bytes;
      continue;
    }
    names.push_back(pack->name);
    ++report.packs_rewritten;
    report.chunks_removed += pack->dead_chunks;
    report.bytes_deleted += pack->size;
  }
  for (const std::string& name : plan.orphans) {
    names.push_back(name);
    ++report.orphan_packs;
    if (const auto size = repository.pack_size(name)) {
      report.bytes_deleted += *size;
    }
  }
  return names;
}

/// Leaves out of the plan the orphans first seen less than the grace period ago. A dry run does
/// not start their clocks.
void keep_young_orphans(Catalog& catalog, const CleanOptions& options, std::int64_t now_ns, CleanPlan& plan,
                        CleanReport& report) {
  const std::unordered_map<std::string, std::int64_t> first_seen =
      catalog.orphans_first_seen(plan.orphans, now_ns, options.dry_run ? Catalog::OrphanClock::read : Catalog::OrphanClock::start);
  std::vector<std::string> old_enough;
  for (std::string& name : plan.orphans) {
    if (now_ns - first_seen.at(name) >= options.orphan_grace_ns) {
      old_enough.push_back(std::move(name));
    } else {
      ++report.orphan_packs_kept;
    }
  }
  plan.orphans = std::move(old_enough);
}

}  // namespace

CleanReport run_clean(Catalog& catalog, Repository& repository, const RepositoryLock* lock, const CleanOptions& options) {
  options.policy.validate();
  if (!(options.rewrite_threshold > 0 && options.rewrite_threshold <= 1)) {
    throw Error(ErrorKind::usage, "the rewrite threshold must be above 0 and at most 1");
  }
  const Clock& clock = options.clock != nullptr ? *options.clock : system_clock();
  CleanReport report;
  report.started_ns = clock.now_ns();

  // 1. Plan.
  CleanPlan plan;
  plan_removals(catalog, report.started_ns, options.policy, plan, report);
  // Only the packs to rewrite have their live chunks listed: the others need only counts.
  const double threshold = options.rewrite_threshold;
  const std::vector<PackUsage> usage =
      catalog.pack_usage(plan.removed_ids, [threshold](const PackUsage& pack) { return worth_rewriting(pack, threshold); });
  plan_packs(usage, repository.pack_names(), options.rewrite_threshold, plan, report);
  keep_young_orphans(catalog, options, report.started_ns, plan, report);

  // 2. Copy what the rewritten packs still hold.
  std::vector<ManifestPack> written;
  if (options.dry_run) {
    estimate_copy(plan.rewrite, repository.info().pack_target_size, report);
  } else {
    written = copy_live_blobs(repository, plan.rewrite, options.cancel, report.damaged_packs);
    report.packs_written = written.size();
    for (const ManifestPack& pack : written) {
      report.bytes_written += pack.size;
    }
  }

  Manifest manifest;
  manifest.kind = RunKind::clean;
  manifest.removed = std::move(plan.removed);
  manifest.packs = std::move(written);
  manifest.deleted_packs = packs_to_delete(plan, repository, report);
  report.finished_ns = clock.now_ns();
  if (options.dry_run) {
    return report;
  }
  if (options.cancel != nullptr && options.cancel->load()) {
    throw Error(ErrorKind::interrupted, kInterrupted);
  }

  // 3. Manifest, catalog, then the deletions: a pack goes only once the move of its live chunks
  // is recorded on the destination.
  manifest.started_ns = report.started_ns;
  manifest.finished_ns = report.finished_ns;
  RunStats stats;
  stats.files_deleted = report.versions_removed;
  stats.bytes_stored = report.bytes_written;
  const CommittedRun committed = commit_run(catalog, repository, lock, manifest, stats);
  report.manifest_key = committed.manifest_key;
  report.seq = committed.seq;
  // Checked again on the destination: a writer who took the lock over after the commit may be
  // planning against these packs (it has not seen this manifest yet).
  if (!manifest.deleted_packs.empty() && lock != nullptr && !lock->still_held()) {
    throw Error(ErrorKind::locked, "the lock on " + repository.location() +
                                       " was taken over by another writer after this clean was recorded (was the "
                                       "computer asleep?): no pack was deleted; run `mybackup clean` again to delete them");
  }
  for (const std::string& name : manifest.deleted_packs) {
    try {
      repository.delete_pack(name);
    } catch (const Error& error) {
      throw Error(error.kind(), std::string(error.what()) +
                                    " (the clean is recorded; run `mybackup clean` again to delete the packs left over)");
    }
  }
  return report;
}


void to_json(nlohmann::ordered_json& json, const CleanReport& report) {
  json = {
      {"seconds", seconds_between(report.started_ns, report.finished_ns)},
      {"versions_removed", report.versions_removed},
      {"paths_removed", report.paths_removed},
      {"chunks_removed", report.chunks_removed},
      {"packs_deleted", report.packs_deleted},
      {"packs_rewritten", report.packs_rewritten},
      {"packs_written", report.packs_written},
      {"orphan_packs", report.orphan_packs},
      {"orphan_packs_kept", report.orphan_packs_kept},
      {"bytes_deleted", report.bytes_deleted},
      {"bytes_written", report.bytes_written},
      {"bytes_freed", report.bytes_freed()},
      {"bytes_unreferenced_kept", report.bytes_dead_kept},
      {"manifest", report.manifest_key},
      {"damaged_packs", report.damaged_packs},
  };
}

}  // namespace mybackup
