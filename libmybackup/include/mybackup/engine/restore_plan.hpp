#pragma once
// Restore planning: which recorded version of each path a restore writes, and where.
//
// The rule, in one place: "the state at a moment" is, for every path, its latest version from a
// run finished at or before that moment (Catalog::state_at); a deletion marker there means the
// path did not exist then. Without a moment, a file's newest version that is not a deletion is
// restored (a deleted file comes back); a directory comes back as it is now. A version number
// names one version of one file.
//
// Errors are one line that lists what exists: Error(not_found) for a path, version or moment
// with nothing to restore, Error(usage) for a file asked as a directory or the other way round,
// or a version number for a directory.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/engine/restore.hpp"

namespace mybackup {

/// What to restore: a version number or a moment, never both.
struct RestorePoint {
  std::uint32_t version = 0;          // one file's version number; 0 when not asked
  std::optional<std::int64_t> at_ns;  // the moment (Unix ns); nullopt for "now"
  std::string label;                  // the moment as the user wrote it, for messages

  bool operator==(const RestorePoint&) const = default;
};

/// The version of `path` that `point` selects among `versions` (Catalog::versions_of, oldest first).
VersionRecord choose_version(const Catalog& catalog, const std::vector<VersionRecord>& versions, const std::string& path,
                             const RestorePoint& point);

/// One file (absolute, normalized `path`) back in place (`destination` empty), at `destination`,
/// or inside `destination` when it is an existing directory.
RestorePlan plan_file_restore(const Catalog& catalog, const std::string& path, const std::string& destination,
                              const RestorePoint& point);

/// A directory's contents as they were, back in place or directly under `destination`.
RestorePlan plan_directory_restore(const Catalog& catalog, const std::string& directory, const std::string& destination,
                                   const RestorePoint& point);

}  // namespace mybackup
