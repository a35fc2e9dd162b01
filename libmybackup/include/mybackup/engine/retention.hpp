#pragma once
// The retention rule of `mybackup clean`: which versions of a path stay in history.
//
// This is the decision only. It reads no clock and touches no catalog; the caller passes the
// versions of one path and the current time, and removes what comes back false.
//
// A version is kept if any of these holds:
//   - it is young: its run finished less than keep_days days before now (strictly less: a version
//     exactly keep_days days old is not young). keep_days 0 makes no version young, so only the
//     count below applies;
//   - it is among the newest keep_versions versions of its path, unless the path is deleted and
//     its deletion is no longer young (below);
//   - it is the newest version and not a deletion marker: a path that still exists never loses
//     its current content, whatever its age.
//
// Deletion markers (EntryType::deleted) are versions like the others: they count among the newest
// keep_versions and expire by age. A deleted path (its newest version is a marker) keeps its
// history by the rules above for as long as the marker is young, so a file deleted by mistake can
// be restored for keep_days days, with its recent versions. Once the marker is no longer young, the
// whole path is removed: every version before the marker is older still, so all of them have
// expired too. The count does not save the marker then; otherwise the marker, always the newest
// version of a deleted path, would be kept by the count forever and a deleted path would never
// leave history. A marker followed by newer versions (the path was re-created) is an ordinary
// version: the count keeps it like any other. Directories and symlinks are versions like files.
//
// Ages are taken along the list, not version by version: a version counts as finished no earlier
// than any version before it (the running maximum of run_finished_ns). Runs finish in order, so
// this changes nothing normally; it only matters when the clock stepped back between two runs,
// and then it keeps the invariant below true instead of letting an older version outlive a newer
// one.
//
// What follows, and what callers may rely on:
//   - The kept versions are always a suffix of the list (possibly empty): if a version is kept,
//     every newer version is kept too. Each rule above keeps "everything from some point on", and
//     so does their union.
//   - In particular, if any version older than a deletion marker is kept, the marker is kept too
//     (it is newer, and no older). Removing versions therefore never resurrects a deleted file: a
//     point-in-time view or restore can lose old history, but can never show a path as present at
//     a time when it had been deleted.
//   - A run that finished after now (the clock stepped back since) counts as finishing now.

#include <cstdint>
#include <vector>

#include "mybackup/catalog/catalog.hpp"

namespace mybackup {

struct RetentionPolicy {
  int keep_days = 30;      // versions younger than this many days are kept (0: none by age)
  int keep_versions = 10;  // the newest this many versions of each path are kept (at least 1)

  /// Throws Error(usage) naming the option (--keep-days or --keep-versions) and the bad value if
  /// keep_days < 0 or keep_versions < 1.
  void validate() const;
};

/// For the versions of ONE path, oldest first (as Catalog::versions_of returns them), which to
/// keep: result[i] is true if versions[i] stays, per the rule above. Same length as `versions`;
/// empty for an empty input. `now_ns` is Unix nanoseconds (the caller reads the clock).
/// Throws what policy.validate() throws.
std::vector<bool> versions_to_keep(const std::vector<VersionRecord>& versions, std::int64_t now_ns,
                                   const RetentionPolicy& policy);

}  // namespace mybackup
