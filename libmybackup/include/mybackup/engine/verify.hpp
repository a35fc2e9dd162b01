#pragma once
// Checking a repository (`mybackup verify`): is everything the catalog indexes really on the
// destination, intact, and does the catalog say what the manifests say?
//
// Always (cheap: a listing, one size per pack, and reading the manifests):
//   - every pack the catalog references exists on the destination with the recorded size;
//   - the manifests on the destination are exactly those of the runs the catalog recorded, they
//     are numbered 1, 2, 3… without a gap, and the newest is at least the newest this home has
//     seen there (replay.hpp: deleting manifests hides versions and rolls a repository back);
//   - a catalog rebuilt by replaying those manifests into a temporary catalog holds the same
//     versions (path, number, type, size, mtime, mode, SHA-256, link target, chunk list) and the
//     same packs and chunk locations as the live one. Both are read as sorted streams, so memory
//     does not grow with the number of versions;
//   - packs that nothing references are reported, as a warning (an interrupted run left them;
//     `mybackup clean` removes them).
// With read_data, every pack the catalog references (or a random share of them) is also read
// whole: its SHA-256 must be its name, its header must authenticate and list every chunk the
// catalog places in it at the same place, and every such chunk is authenticated, decompressed
// and re-hashed (Repository::open_chunk, the checks a restore makes).
//
// Findings go in the report, never thrown, and each one names the file versions it affects.
// Nothing is written to the catalog or to the destination: the rebuilt catalog lives in a
// temporary directory, removed at the end. No lock is taken; a backup running at the same time
// shows up as unreferenced packs and, for a moment, as a manifest the catalog has not recorded.
//
// A secondary destination (a copy of the same repository), when given, is consulted for every
// pack found missing or damaged on the primary (and for the pack of every damaged chunk): the
// problem then says whether an intact copy is there (its bytes hash to its name).

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/repository/repository.hpp"

namespace mybackup {

enum class VerifyProblemKind {
  missing_pack,         // referenced by the catalog, absent from the destination
  wrong_size,           // present, but not with the size the catalog recorded
  damaged_pack,         // its bytes do not hash to its name (or cannot be read)
  damaged_header,       // its header is malformed or fails authentication
  header_mismatch,      // its header does not list a chunk where the catalog places it
  damaged_chunk,        // a chunk fails authentication, decompression or its id check
  missing_manifest,     // a run the catalog recorded, whose manifest is gone from the destination
  unrecorded_manifest,  // a manifest on the destination that the catalog has not recorded
  damaged_manifest,     // a manifest that cannot be read, decrypted or replayed
  manifest_gap,         // sequence numbers no manifest on the destination holds (deleted manifests)
  rolled_back,          // the destination's newest manifest is older than one this home has seen
  catalog_mismatch,     // the catalog and the replayed manifests disagree
  unreferenced_pack,    // (warning) on the destination, referenced by nothing
};

enum class Severity { warning, error };

/// Stable snake_case name of a kind ("missing_pack"), for JSON and logs.
std::string_view to_string(VerifyProblemKind kind);
/// unreferenced_pack is a warning; everything else is an error.
Severity severity(VerifyProblemKind kind);

/// What the secondary destination holds of a pack damaged on the primary.
enum class SecondaryCopy { not_checked, intact, missing, damaged };
std::string_view to_string(SecondaryCopy copy);

struct AffectedVersion {
  std::string path;
  std::uint32_t number = 0;

  auto operator<=>(const AffectedVersion&) const = default;
};

struct VerifyProblem {
  VerifyProblemKind kind = VerifyProblemKind::missing_pack;
  std::string pack;      // hex name, for pack and chunk problems
  std::string chunk;     // hex id, for chunk problems
  std::string manifest;  // key ("snapshots/…"), for manifest problems
  /// manifest_gap: the missing numbers first..last; rolled_back: last = the highest number seen.
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::string detail;    // one line: what is wrong
  /// File versions that cannot be restored intact from the primary because of it (or, for a
  /// catalog_mismatch, the versions on which the catalog and the manifests disagree); sorted.
  std::vector<AffectedVersion> affected;
  SecondaryCopy secondary = SecondaryCopy::not_checked;
};

struct VerifyProgress {
  std::string_view stage;  // "sizes", "manifests", "catalog", "reading"
  std::uint64_t done = 0;
  std::uint64_t total = 0;  // 0 when unknown
};

struct VerifyOptions {
  bool read_data = false;
  /// With read_data: the share of the referenced packs to read, in (0, 100]; at least one pack
  /// is read when there is any. The packs are drawn at random.
  double subset_percent = 100;
  std::uint64_t seed = 0;  // of the random draw; 0: a random seed
  /// A copy of the same repository to consult for what is damaged on the primary (optional).
  const Repository* secondary = nullptr;
  /// Where the temporary catalog is rebuilt; "" means $TMPDIR, else /tmp.
  std::string scratch_directory;
  /// Called now and then from the calling thread (optional).
  std::function<void(const VerifyProgress&)> on_progress;
  /// Optional: when it becomes true the check stops at the next pack with Error(interrupted).
  const std::atomic<bool>* cancel = nullptr;
};

struct VerifyReport {
  bool read_data = false;
  double subset_percent = 100;
  std::uint64_t packs_referenced = 0;      // packs the catalog indexes
  std::uint64_t packs_on_destination = 0;  // packs stored on the primary
  std::uint64_t packs_read = 0;            // read whole (read_data)
  std::uint64_t bytes_read = 0;            // of packs read whole, on the primary
  std::uint64_t chunks_checked = 0;        // authenticated, decompressed and re-hashed
  std::uint64_t manifests_checked = 0;     // read, decrypted and decoded
  std::uint64_t versions_compared = 0;     // versions of the live catalog compared with the manifests
  bool catalog_compared = false;           // false when the manifests could not all be replayed
  bool secondary_consulted = false;        // a secondary was given
  std::vector<VerifyProblem> problems;     // errors and warnings, in the order found
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;

  std::uint64_t count(VerifyProblemKind kind) const;
  std::uint64_t errors() const;
  std::uint64_t warnings() const;
  /// True when nothing is missing, damaged or in disagreement (warnings allowed).
  bool ok() const { return errors() == 0; }
};

/// One problem as JSON: kind, severity ("error" or "warning"), pack, chunk, manifest, detail,
/// secondary and affected [{path, version}].
void to_json(nlohmann::ordered_json& json, const VerifyProblem& problem);
/// The report as JSON (`verify --json`): read_data, subset_percent, ok, seconds, the counts,
/// errors, warnings, problems_by_kind {kind: count} (sorted by kind) and problems.
void to_json(nlohmann::ordered_json& json, const VerifyReport& report);

/// What `verify --repair` records in the catalog from a report, so that the repository heals and
/// its known losses stop blocking:
///   - packs missing, of the wrong size or damaged (any of their chunks) are never deduplicated
///     against again (Catalog::mark_damaged_packs): the next backup reads again every file whose
///     latest version used one and stores its data anew where the source still has it;
///   - manifest losses (missing numbers, a rollback, manifests that cannot be read) are accepted
///     (Catalog::accept_manifest_losses): `clean` works again, and they are no longer reported.
/// `lost_versions` are the versions that cannot be restored from the primary (sorted).
struct VerifyRepair {
  std::vector<std::string> damaged_packs;
  std::vector<std::string> accepted_losses;
  std::vector<AffectedVersion> lost_versions;
  bool empty() const { return damaged_packs.empty() && accepted_losses.empty(); }
};
VerifyRepair plan_repair(const VerifyReport& report);
/// Records `repair` in `catalog` (one transaction each for packs and losses).
void apply_repair(Catalog& catalog, const VerifyRepair& repair);

/// Checks `primary` against `catalog` as described above. Throws only when the check itself
/// cannot go on: Error(usage) for a subset outside (0, 100], Error(io) when the destination
/// cannot be listed or the temporary catalog cannot be made, Error(interrupted) on cancel.
VerifyReport verify_repository(const Catalog& catalog, const Repository& primary, const VerifyOptions& options);

}  // namespace mybackup
