#pragma once
// The catalog (backups.db, SQLite): the local index of everything on the destination.
//
// It holds the runs, every version of every path, the chunk list of each version, and where each
// chunk is stored. It is an index, not the truth: every fact in it comes from a manifest on the
// destination (record_run takes a Manifest), so it can be rebuilt from there. One transaction per
// run; WAL journal; the schema version is checked on open.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mybackup/format/manifest.hpp"

namespace mybackup {

/// 2: file metadata; 3: kept totals (status). An older catalog is migrated when opened; a newer
/// one is refused, since this release would not keep what it added.
constexpr int kCatalogSchemaVersion = 3;

/// Backups stop once a repository key has made this many encryptions: half of the 2^32 that
/// NIST SP 800-38D allows for AES-GCM with random 96-bit nonces, so the chance that two blobs
/// ever share a nonce stays below about 2^-34.
constexpr std::uint64_t kEncryptionLimit = std::uint64_t{1} << 31;

/// Hash functor so chunk ids can key unordered containers (ids are already uniform).
struct ChunkIdHash {
  std::size_t operator()(const ChunkId& id) const noexcept {
    std::size_t value = 0;
    for (std::size_t i = 0; i < sizeof value; ++i) {
      value = value << 8 | id[i];
    }
    return value;
  }
};
using ChunkIdSet = std::unordered_set<ChunkId, ChunkIdHash>;

/// The most recent version recorded for a path.
struct LatestVersion {
  std::uint32_t number = 0;
  EntryType type = EntryType::file;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint32_t mode = 0;
  std::uint64_t inode = 0;
  std::string link_target;
  bool meta_recorded = false;  // uid, gid and ctime_ns are known (recorded since catalog schema 2)
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t ctime_ns = 0;
};

/// Figures a run reports beyond what its manifest holds. A clean run uses files_deleted for the
/// versions it removed from history and bytes_stored for the bytes of the packs it wrote.
struct RunStats {
  std::string status = "ok";  // "ok", "partial" (some files skipped) or "failed"
  std::string error;          // for failed runs
  std::uint64_t files_new = 0;
  std::uint64_t files_changed = 0;
  std::uint64_t files_deleted = 0;
  std::uint64_t files_unchanged = 0;
  std::uint64_t files_skipped = 0;
  std::uint64_t bytes_scanned = 0;  // size of every file considered
  std::uint64_t bytes_read = 0;     // size of the files actually read
  std::uint64_t bytes_new = 0;      // raw bytes of chunks stored for the first time
  std::uint64_t bytes_stored = 0;   // bytes written to the destination (packs)
};

struct RunRecord {
  std::int64_t id = 0;
  std::uint64_t seq = 0;
  std::string kind;
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;
  RunStats stats;
};

struct CatalogSummary {
  std::uint64_t files = 0;           // paths whose latest version is a regular file
  std::uint64_t versions = 0;        // file versions in history (deletion markers not counted)
  std::uint64_t original_bytes = 0;  // sum of the sizes of all file versions
  std::uint64_t current_bytes = 0;   // sum of the sizes of the latest file versions
  std::uint64_t unique_bytes = 0;    // raw bytes of distinct chunks (after deduplication)
  std::uint64_t compressed_bytes = 0;  // sum of blob lengths (after compression and encryption)
  std::uint64_t stored_bytes = 0;    // sum of pack sizes on the destination
  std::uint64_t chunks = 0;
  std::uint64_t packs = 0;
  std::uint64_t runs = 0;

  /// What deduplication saved: original_bytes - unique_bytes (0 if there is nothing to save).
  std::uint64_t saved_by_dedup_bytes() const;
  /// What compression saved: unique_bytes - compressed_bytes (0 if it saved nothing).
  std::uint64_t saved_by_compression_bytes() const;
};

/// As JSON (`status --json`): files, versions, current_bytes, original_bytes, unique_bytes,
/// stored_bytes, saved_by_dedup_bytes, saved_by_compression_bytes, chunks, packs, runs.
void to_json(nlohmann::ordered_json& json, const CatalogSummary& summary);
/// As JSON (`status --json`): kind, started (UTC), seconds, status, error, then the counts of its
/// kind: for a clean versions_removed, for a backup files_new, files_changed, files_deleted and
/// files_skipped.
void to_json(nlohmann::ordered_json& json, const RunRecord& run);

/// One recorded version of a path, with the run that recorded it.
struct VersionRecord {
  std::int64_t id = 0;  // the catalog's row id (for chunks_of)
  std::string path;
  std::uint32_t number = 0;
  EntryType type = EntryType::file;
  std::uint64_t size = 0;
  std::uint64_t stored_size = 0;  // bytes of its chunks on the destination (shared chunks counted fully)
  std::int64_t mtime_ns = 0;
  std::uint32_t mode = 0;
  Digest sha256{};  // files only
  std::string link_target;
  std::int64_t run_finished_ns = 0;  // when the run that recorded it finished
  std::uint64_t inode = 0;           // at backup time: with meta.device, what hard links share
  FileMetadata meta;
};

/// As JSON (`list --json`, one element of "versions"): version, date (the run's end, UTC), type,
/// size, stored, mode, mtime, then sha256 for a file or target for a symlink; where the metadata
/// is known, uid, gid, owner, group, links (when more than one), device ("major:minor") and the
/// names of the extended attributes. Not the path: the listing names it once.
void to_json(nlohmann::ordered_json& json, const VersionRecord& version);

/// One pack, and which of its chunks some set of versions still references (Catalog::pack_usage).
struct PackUsage {
  std::string name;                // hex
  std::uint64_t size = 0;          // bytes on the destination
  std::vector<PackEntry> live;     // chunks still referenced, in pack order (if asked for)
  std::uint64_t live_chunks = 0;   // how many chunks are still referenced
  std::uint64_t live_bytes = 0;    // their blob bytes
  std::uint64_t dead_chunks = 0;   // chunks no remaining version references
  std::uint64_t dead_bytes = 0;    // their blob bytes
};

/// Where one chunk of a version is stored.
struct ChunkLocation {
  std::string pack;  // pack name (hex)
  PackEntry entry;
  /// The order in which the catalog learnt of the pack (its row id): packs in about the order a
  /// backup stored them. 0 when not from the catalog.
  std::int64_t pack_order = 0;
};

/// A file version that lists a chunk of interest (Catalog::versions_using).
struct ChunkUse {
  std::string pack;  // where the catalog places the chunk
  ChunkId chunk{};
  std::string path;
  std::uint32_t number = 0;
};

/// A run the catalog recorded together with its manifest on the destination.
struct RecordedManifest {
  std::uint64_t seq = 0;
  std::string key;  // "snapshots/…"
};

class Catalog {
 public:
  class VersionCursor;
  class PackCursor;
  class LatestCursor;
  class StateCursor;

  /// Opens or creates the catalog at `path`, migrating an older schema in one transaction (for
  /// schema 2, counting its totals: seconds at a million versions, once). Error(config) if the
  /// file is not a catalog or its schema version is above kCatalogSchemaVersion.
  explicit Catalog(const std::string& path);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  /// The id of the repository this catalog indexes; empty before the first backup.
  std::string repository_id() const;
  void set_repository_id(const std::string& id);

  // ---- what this home remembers about its destinations (replay.hpp, clean.hpp use it)
  /// The highest manifest sequence number this home has seen on the destination at `location`
  /// (0: never listed). A destination that later shows less was rolled back or lost manifests.
  std::uint64_t highest_seq_seen(const std::string& location) const;
  /// Raises the remembered number for `location` to `seq` (never lowers it).
  void remember_highest_seq(const std::string& location, std::uint64_t seq);
  /// Manifest losses the user accepted (`verify --repair`): tokens for ranges of missing sequence
  /// numbers and rollbacks (replay.hpp makes them), and keys of manifests that cannot be read.
  /// They no longer stop `clean`.
  std::unordered_set<std::string> accepted_manifest_losses() const;
  void accept_manifest_losses(const std::vector<std::string>& losses);
  /// When each pack of `orphans` (on the destination, recorded by no run) was first seen so:
  /// now_ns for those not seen before. OrphanClock::start records those times and forgets packs
  /// no longer in the list; ::read changes nothing (a dry run).
  enum class OrphanClock { read, start };
  std::unordered_map<std::string, std::int64_t> orphans_first_seen(const std::vector<std::string>& orphans,
                                                                    std::int64_t now_ns, OrphanClock clock);
  /// Packs `verify --repair` found damaged: no backup dedups against their chunks again.
  std::unordered_set<std::string> damaged_packs() const;
  void mark_damaged_packs(const std::vector<std::string>& names);

  /// The latest version of `root` and of every path below it, deletion markers included.
  /// Holds them all in memory: a backup reads them through latest_cursor instead.
  std::unordered_map<std::string, LatestVersion> latest_under(const std::string& root) const;
  /// The same, one path at a time in increasing byte order (root first), in constant memory.
  /// REQUIRES: the catalog outlives the cursor, which is used by one thread; the catalog may be
  /// read by another thread meanwhile (has_chunk), not written.
  std::unique_ptr<LatestCursor> latest_cursor(const std::string& root) const;

  /// Whether the chunk `id` is indexed in a pack other than `except_packs` (names). One indexed
  /// lookup: deduplication asks it for every new chunk instead of holding every id in memory.
  /// Thread-safe (serialized) against itself and against a cursor read by another thread.
  bool has_chunk(const ChunkId& id, const std::unordered_set<std::string>& except_packs) const;
  /// Whether any chunk is indexed: a first backup need not look up each of its chunks.
  bool has_chunks() const;

  /// Every chunk id stored so far.
  ChunkIdSet known_chunks() const;
  /// The same, without the chunks located in `except_packs` (packs missing or damaged).
  ChunkIdSet known_chunks(const std::unordered_set<std::string>& except_packs) const;
  /// Every pack that holds at least one indexed chunk, with its recorded size.
  std::unordered_map<std::string, std::uint64_t> packs_in_use() const;

  /// Records a finished run in one transaction: the run itself, its packs and their chunks, the
  /// new versions (with their chunk lists), then, for a clean run, the versions it removed and the
  /// packs it deleted. Nothing is recorded if it throws.
  /// - A backup's chunk that the catalog already knows stays where it is; a clean run's packs
  ///   move the chunks they list (live chunks copied out of a pack being rewritten).
  /// - A removed version is forgotten with its chunk references; a path left with no version is
  ///   forgotten too. Chunks nobody references stay known (a later backup may reuse them) until
  ///   their pack is deleted.
  /// - A deleted pack is forgotten with every chunk still located in it; a pack name the catalog
  ///   does not know (an orphan of an interrupted run) is ignored.
  /// - A version whose number its path already has (two writers at once each recorded the same
  ///   next version) gets the path's next free number instead: the later manifest's version
  ///   moves up, the same on every rebuild (manifests are replayed in sequence order).
  /// Error(corrupt) if a version lists a chunk that is neither in the manifest's packs nor
  /// already known, if a removed version does not exist, or if a deleted pack still holds a
  /// referenced chunk (the catalog refuses to lose data it indexes).
  void record_run(const Manifest& manifest, const std::string& manifest_key, const RunStats& stats);

  /// Records a run that failed before it could write a manifest (shown by `status`).
  void record_failed_run(RunKind kind, std::int64_t started_ns, std::int64_t finished_ns, const std::string& error);

  /// Every version of `path`, oldest first (deletion markers included). Empty if unknown.
  std::vector<VersionRecord> versions_of(const std::string& path) const;

  /// Every version of every path: grouped by path (in byte order), oldest first within a path.
  /// Holds them all: for_each_history is the same in constant memory.
  std::vector<VersionRecord> all_versions() const;

  /// Every path's versions, one path at a time in byte order, oldest first (deletion markers
  /// included): `visit` gets a path's whole history, then the next. Holds one path's versions.
  void for_each_history(const std::function<void(const std::vector<VersionRecord>&)>& visit) const;

  /// Says, from a pack's counts, whether pack_usage should list its live chunks.
  using WantLiveChunks = std::function<bool(const PackUsage&)>;

  /// Every pack the catalog knows, in name order, with how many of its chunks (and bytes) stay
  /// referenced once the versions whose row ids are in `removing` are gone (empty: as things are
  /// now). `live` lists those chunks, in pack order, for the packs `want_live` accepts (all of
  /// them when it is empty): a clean of millions of chunks holds only those of the packs it
  /// rewrites. Reads the chunk table once, or twice when some pack's live chunks are wanted.
  std::vector<PackUsage> pack_usage(const std::vector<std::int64_t>& removing, const WantLiveChunks& want_live = {}) const;

  /// Keeps at most `bytes` of the catalog's pages in memory from now on: for callers that only
  /// read it in order. By default, kDefaultCacheBytes (recording a run inserts all over the
  /// chunk index, which pays to keep in memory).
  void limit_cache(std::size_t bytes) const;
  static constexpr std::size_t kDefaultCacheBytes = std::size_t{64} << 20;

  /// The folder the catalog file is in (where temporary files about it may go).
  std::string directory() const;

  /// Names of every pack the catalog indexes.
  std::unordered_set<std::string> pack_names() const;

  /// The state at time `at_ns`: for `root` and every path below it, its latest version from a run
  /// finished at or before `at_ns`, deletion markers included (callers skip them). Sorted by path.
  std::vector<VersionRecord> state_at(const std::string& root, std::int64_t at_ns) const;
  /// The same, one version at a time in path order, in constant memory (a restore of millions of
  /// files). Same requirements as latest_cursor; other threads may read the catalog meanwhile.
  std::unique_ptr<StateCursor> state_cursor(const std::string& root, std::int64_t at_ns) const;

  /// The chunks of a file version, in file order, with where each is stored.
  /// Error(corrupt) if the catalog lost track of one.
  std::vector<ChunkLocation> chunks_of(std::int64_t version_id) const;

  /// How many AES-256-GCM encryptions the repository key has made, as far as the manifests
  /// recorded tell: every blob a backup stored, every pack header and every manifest (a clean
  /// copies blobs without encrypting them again). Random 96-bit nonces stay safe for up to 2^32
  /// encryptions under one key; see kEncryptionLimit.
  std::uint64_t encryptions() const;
  /// Every version of every path with its chunk list, as its manifest recorded it, one at a
  /// time, ordered by path (bytes) then number: two catalogs can be compared side by side in
  /// constant memory.
  /// REQUIRES: the catalog outlives the cursor, which is used by one thread.
  std::unique_ptr<VersionCursor> version_cursor() const;
  /// Every pack with every chunk located in it (referenced or not, by offset), one at a time, by
  /// name (same requirements).
  std::unique_ptr<PackCursor> pack_cursor() const;
  /// Every pack, by name, with its size but without its chunks (`blobs` left empty).
  std::vector<ManifestPack> packs() const;
  /// The chunks located in the pack `name`, by offset (empty for an unknown pack).
  std::vector<PackEntry> pack_blobs(const std::string& name) const;

  /// Every (chunk, file version) pair where the version lists a chunk that is located in one of
  /// `packs` (hex names) or whose id is in `chunks`; sorted by pack, chunk, path, number, without
  /// duplicates. One query whatever the number of packs and chunks.
  std::vector<ChunkUse> versions_using(const std::vector<std::string>& packs, const std::vector<ChunkId>& chunks) const;

  /// The runs recorded with a manifest, in sequence order.
  std::vector<RecordedManifest> recorded_manifests() const;

  /// The highest manifest sequence number recorded (0 if none).
  std::uint64_t last_seq() const;
  /// The most recent run of `kind` ("backup", "clean"), or of any kind when `kind` is empty.
  std::optional<RunRecord> last_run(const std::string& kind = "") const;
  /// From totals kept as runs are recorded: as fast at a million files as at ten.
  CatalogSummary summary() const;
  /// Number of paths below `root` (or `root` itself) whose latest version is a regular file,
  /// from the same totals: it reads one row per folder below `root`.
  std::uint64_t file_count_under(const std::string& root) const;

 private:
  /// Checks, configures and creates or migrates the open database (the constructor's work,
  /// retried by it when SQLite answers busy).
  void prepare(const std::string& path);

  friend class RunRecorder;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A backup recorded while it runs: its packs as they fill and are stored, its versions as they
/// are read, on a connection of its own, so that SQLite's work overlaps the reading instead of
/// following it. Everything goes into one transaction that only finish() commits, after the
/// run's manifest is on the destination; until then no other connection sees any of it, and
/// destroying the recorder (a failed or interrupted run) rolls it back. It records what
/// record_run would from the same manifest, by the same rules (see there).
///
/// The recorder holds the catalog's write lock from its first call to finish(): other writers
/// wait (up to 5 s) meanwhile, which is why only a run holding the destination's writer lock
/// uses one. The Catalog it was opened from must not write until then either.
///
/// Not thread-safe: one thread makes every call. Errors: Error(io / no_space) from SQLite,
/// Error(corrupt) as record_run.
class RunRecorder {
 public:
  /// Opens a second connection to `catalog`'s file.
  explicit RunRecorder(const Catalog& catalog);
  ~RunRecorder();
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  /// A pack starts filling: its handle for chunk_placed and pack_stored.
  std::int64_t pack_started();
  /// A chunk was placed in the pack being filled (its entry as the pack's header will list it).
  void chunk_placed(std::int64_t pack, const PackEntry& blob);
  /// The pack is stored on the destination, under `name` (hex SHA-256), `size` bytes.
  void pack_stored(std::int64_t pack, const std::string& name, std::uint64_t size);
  /// Records `version` if the catalog knows each of its chunks (from earlier runs, or placed by
  /// this one). Otherwise returns false and records nothing: offer it again once more chunks are
  /// placed.
  bool add_version(const ManifestVersion& version);
  /// After add_version returned false: the chunk it did not know.
  const ChunkId& missing_chunk() const;
  /// Completes the run's row from `manifest` (sequence, times, sources, counts of encryptions)
  /// and `stats`, and commits. Error(corrupt) if a pack was never stored. The recorder is spent.
  void finish(const Manifest& manifest, const std::string& manifest_key, const RunStats& stats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Catalog::VersionCursor {
 public:
  ~VersionCursor();
  /// Fills `version` with the next one; false at the end. Error(io) if the catalog fails.
  bool next(ManifestVersion& version);

 private:
  friend class Catalog;
  struct Impl;
  explicit VersionCursor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Catalog::LatestCursor {
 public:
  ~LatestCursor();
  /// Fills `path` and `version` with the next path's latest version; false at the end.
  /// Error(io) if the catalog fails.
  bool next(std::string& path, LatestVersion& version);

 private:
  friend class Catalog;
  struct Impl;
  explicit LatestCursor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Catalog::StateCursor {
 public:
  ~StateCursor();
  /// Fills `version` with the next path's version; false at the end. Error(io) if the catalog fails.
  bool next(VersionRecord& version);

 private:
  friend class Catalog;
  struct Impl;
  explicit StateCursor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Catalog::PackCursor {
 public:
  ~PackCursor();
  /// Fills `pack` with the next one; false at the end. Error(io) if the catalog fails.
  bool next(ManifestPack& pack);

 private:
  friend class Catalog;
  struct Impl;
  explicit PackCursor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mybackup
