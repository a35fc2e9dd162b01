#include "mybackup/catalog/catalog.hpp"

#include <sys/sysmacros.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

/// Resets a statement kept prepared when its use ends, so that it holds no read transaction
/// (and no snapshot of the WAL) between uses.
struct ResetOnExit {
  SQLite::Statement& statement;
  ~ResetOnExit() {
    try {
      statement.reset();
    } catch (...) {
      // Only reports the error of the last step again, which the caller has seen.
    }
  }
};

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs(
  id INTEGER PRIMARY KEY, seq INTEGER, kind TEXT NOT NULL, manifest TEXT, host TEXT,
  started_ns INTEGER NOT NULL, finished_ns INTEGER NOT NULL, status TEXT NOT NULL, error TEXT,
  sources TEXT,
  files_new INTEGER NOT NULL DEFAULT 0, files_changed INTEGER NOT NULL DEFAULT 0,
  files_deleted INTEGER NOT NULL DEFAULT 0, files_unchanged INTEGER NOT NULL DEFAULT 0,
  files_skipped INTEGER NOT NULL DEFAULT 0, bytes_scanned INTEGER NOT NULL DEFAULT 0,
  bytes_read INTEGER NOT NULL DEFAULT 0, bytes_new INTEGER NOT NULL DEFAULT 0,
  bytes_stored INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX runs_seq ON runs(seq) WHERE seq IS NOT NULL;
CREATE TABLE packs(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,
  run_id INTEGER REFERENCES runs(id));
CREATE TABLE chunks(id INTEGER PRIMARY KEY, hash BLOB UNIQUE NOT NULL,
  pack_id INTEGER NOT NULL REFERENCES packs(id), offset INTEGER NOT NULL, length INTEGER NOT NULL,
  raw_length INTEGER NOT NULL, flags INTEGER NOT NULL, refcount INTEGER NOT NULL DEFAULT 0);
CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL);
CREATE TABLE versions(id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id),
  run_id INTEGER NOT NULL REFERENCES runs(id), number INTEGER NOT NULL, type INTEGER NOT NULL,
  size INTEGER NOT NULL, stored_size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
  mode INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 BLOB, link_target TEXT,
  uid INTEGER, gid INTEGER, owner TEXT, grp TEXT, ctime_ns INTEGER, device INTEGER, links INTEGER,
  rdev INTEGER, xattrs BLOB,
  UNIQUE(file_id, number));
CREATE INDEX versions_run ON versions(run_id);
CREATE TABLE version_chunks(version_id INTEGER NOT NULL REFERENCES versions(id),
  seq INTEGER NOT NULL, chunk_id INTEGER NOT NULL REFERENCES chunks(id),
  PRIMARY KEY(version_id, seq)) WITHOUT ROWID;
CREATE INDEX version_chunks_chunk ON version_chunks(chunk_id);
CREATE INDEX chunks_pack ON chunks(pack_id, offset);
)sql";

/// Schema 3: the totals `status` reads instead of scanning every version and chunk (a second
/// and more at a million files), kept by record_run (TotalsKeeper). A folder's row counts the
/// regular files directly in it: paths whose latest version is a file (`files`, their sizes in
/// `bytes`) and file versions in history (`versions`, `version_bytes`).
constexpr const char* kTotalsSchema = R"sql(
CREATE TABLE folder_totals(folder TEXT PRIMARY KEY, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
  versions INTEGER NOT NULL, version_bytes INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE chunk_totals(id INTEGER PRIMARY KEY CHECK(id = 1), chunks INTEGER NOT NULL,
  raw_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL);
INSERT INTO chunk_totals SELECT 1, count(*), coalesce(sum(raw_length), 0), coalesce(sum(length), 0) FROM chunks;
)sql";

/// Added to schema 2 without a new number (older releases ignore it): a pack's chunks in pack
/// order without sorting the chunk table (verify, clean).
constexpr const char* kChunksByPack = "CREATE INDEX IF NOT EXISTS chunks_pack ON chunks(pack_id, offset)";

/// Schema 1 to 2: file metadata (owner, links, device numbers, extended attributes). uid is NULL
/// for the versions recorded before: their metadata is not known.
constexpr const char* kMigrateTo2 = R"sql(
ALTER TABLE versions ADD COLUMN uid INTEGER;
ALTER TABLE versions ADD COLUMN gid INTEGER;
ALTER TABLE versions ADD COLUMN owner TEXT;
ALTER TABLE versions ADD COLUMN grp TEXT;
ALTER TABLE versions ADD COLUMN ctime_ns INTEGER;
ALTER TABLE versions ADD COLUMN device INTEGER;
ALTER TABLE versions ADD COLUMN links INTEGER;
ALTER TABLE versions ADD COLUMN rdev INTEGER;
ALTER TABLE versions ADD COLUMN xattrs BLOB;
)sql";

/// A version's metadata columns, in the order read_metadata reads them.
constexpr const char* kMetadataColumns = "v.uid, v.gid, v.owner, v.grp, v.ctime_ns, v.device, v.links, v.rdev, v.xattrs";

/// The metadata in the nine columns from `first` (kMetadataColumns); not recorded if uid is NULL.
FileMetadata read_metadata(SQLite::Statement& query, int first) {
  FileMetadata meta;
  meta.recorded = !query.getColumn(first).isNull();
  if (meta.recorded) {
    meta.uid = static_cast<std::uint32_t>(query.getColumn(first).getInt64());
    meta.gid = static_cast<std::uint32_t>(query.getColumn(first + 1).getInt64());
    meta.owner = query.getColumn(first + 2).getString();
    meta.group = query.getColumn(first + 3).getString();
    meta.ctime_ns = query.getColumn(first + 4).getInt64();
    meta.device = static_cast<std::uint64_t>(query.getColumn(first + 5).getInt64());
    meta.links = static_cast<std::uint32_t>(query.getColumn(first + 6).getInt64());
    meta.rdev = static_cast<std::uint64_t>(query.getColumn(first + 7).getInt64());
    const SQLite::Column xattrs = query.getColumn(first + 8);
    meta.xattrs = decode_xattrs(std::string_view(static_cast<const char*>(xattrs.getBlob()),
                                                 static_cast<std::size_t>(xattrs.getBytes())));
  }
  return meta;
}

/// Upper bound of the paths strictly below `root` in byte order ('0' follows '/').
std::string below_end(const std::string& root) { return (root == "/" ? std::string() : root) + "0"; }
std::string below_start(const std::string& root) { return (root == "/" ? std::string() : root) + "/"; }

std::int64_t as_i64(std::uint64_t value) { return static_cast<std::int64_t>(value); }

/// A version as the totals count it.
struct CountedVersion {
  std::int64_t number = 0;
  EntryType type = EntryType::file;
  std::int64_t size = 0;
};

/// The path's latest version: `query` is kLatestOfFile, bound to nothing.
constexpr const char* kLatestOfFile = "SELECT number, type, size FROM versions WHERE file_id = ? ORDER BY number DESC LIMIT 1";
std::optional<CountedVersion> latest_of_file(SQLite::Statement& query, std::int64_t file_id) {
  query.bind(1, file_id);
  std::optional<CountedVersion> latest;
  if (query.executeStep()) {
    latest = CountedVersion{query.getColumn(0).getInt64(), static_cast<EntryType>(query.getColumn(1).getInt()),
                            query.getColumn(2).getInt64()};
  }
  query.reset();
  return latest;
}

/// What a run changes in folder_totals and chunk_totals (kTotalsSchema), gathered in memory and
/// written by flush(): one row update per folder rather than per version. Holds at most
/// kMaxFolders folders' changes.
class TotalsKeeper {
 public:
  explicit TotalsKeeper(SQLite::Database& db)
      : add_(db, "INSERT INTO folder_totals(folder, files, bytes, versions, version_bytes) VALUES(?,?,?,?,?) "
                 "ON CONFLICT(folder) DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes, "
                 "versions = versions + excluded.versions, version_bytes = version_bytes + excluded.version_bytes"),
        drop_empty_(db, "DELETE FROM folder_totals WHERE folder = ? AND versions = 0"),
        chunks_(db, "UPDATE chunk_totals SET chunks = chunks + ?, raw_bytes = raw_bytes + ?, stored_bytes = stored_bytes + ?") {}

  /// A version of `path` entered (`sign` 1) or left (-1) the history.
  void version_counted(const std::string& path, EntryType type, std::int64_t size, int sign) {
    if (type == EntryType::file) {
      Delta& delta = folder(path);
      delta.versions += sign;
      delta.version_bytes += sign * size;
    }
  }

  /// The path's latest version is now `after` instead of `before` (nullopt: none).
  void latest_changed(const std::string& path, const std::optional<CountedVersion>& before,
                      const std::optional<CountedVersion>& after) {
    for (const auto& [version, sign] : {std::pair{&before, -1}, std::pair{&after, 1}}) {
      if (version->has_value() && (*version)->type == EntryType::file) {
        Delta& delta = folder(path);
        delta.files += sign;
        delta.bytes += sign * (*version)->size;
      }
    }
  }

  void chunks_changed(std::int64_t count, std::int64_t raw_bytes, std::int64_t stored_bytes) {
    chunk_count_ += count;
    chunk_raw_bytes_ += raw_bytes;
    chunk_stored_bytes_ += stored_bytes;
  }

  /// Writes what was gathered into the run's transaction.
  void flush() {
    for (const auto& [folder, delta] : folders_) {
      if (delta.files == 0 && delta.bytes == 0 && delta.versions == 0 && delta.version_bytes == 0) {
        continue;
      }
      add_.bind(1, folder);
      add_.bind(2, delta.files);
      add_.bind(3, delta.bytes);
      add_.bind(4, delta.versions);
      add_.bind(5, delta.version_bytes);
      add_.exec();
      add_.reset();
      if (delta.versions < 0) {
        drop_empty_.bind(1, folder);
        drop_empty_.exec();
        drop_empty_.reset();
      }
    }
    folders_.clear();
    if (chunk_count_ != 0 || chunk_raw_bytes_ != 0 || chunk_stored_bytes_ != 0) {
      chunks_.bind(1, chunk_count_);
      chunks_.bind(2, chunk_raw_bytes_);
      chunks_.bind(3, chunk_stored_bytes_);
      chunks_.exec();
      chunks_.reset();
      chunk_count_ = chunk_raw_bytes_ = chunk_stored_bytes_ = 0;
    }
  }

 private:
  struct Delta {
    std::int64_t files = 0;
    std::int64_t bytes = 0;
    std::int64_t versions = 0;
    std::int64_t version_bytes = 0;
  };
  static constexpr std::size_t kMaxFolders = 4096;

  Delta& folder(const std::string& path) {
    std::string name = parent_directory(path);
    if (folders_.size() >= kMaxFolders && folders_.count(name) == 0) {
      flush();
    }
    return folders_[std::move(name)];
  }

  SQLite::Statement add_;
  SQLite::Statement drop_empty_;
  SQLite::Statement chunks_;
  std::unordered_map<std::string, Delta> folders_;
  std::int64_t chunk_count_ = 0;
  std::int64_t chunk_raw_bytes_ = 0;
  std::int64_t chunk_stored_bytes_ = 0;
};

/// Fills folder_totals from the versions (a catalog from before schema 3).
void count_folder_totals(SQLite::Database& db) {
  TotalsKeeper totals(db);
  SQLite::Statement query(db, "SELECT f.path, v.number, v.type, v.size FROM files f JOIN versions v ON v.file_id = f.id "
                              "ORDER BY f.id, v.number");
  std::optional<CountedVersion> latest;
  std::string latest_path;
  while (query.executeStep()) {
    std::string path = query.getColumn(0).getString();
    const CountedVersion version{query.getColumn(1).getInt64(), static_cast<EntryType>(query.getColumn(2).getInt()),
                                 query.getColumn(3).getInt64()};
    totals.version_counted(path, version.type, version.size, 1);
    if (path != latest_path && latest) {
      totals.latest_changed(latest_path, std::nullopt, latest);
    }
    latest = version;
    latest_path = std::move(path);
  }
  if (latest) {
    totals.latest_changed(latest_path, std::nullopt, latest);
  }
  totals.flush();
}

/// Runs a catalog operation, turning SQLite's exceptions into the library's error kinds: a full
/// disk is no_space (with the fix), a failed constraint corrupt, anything else io, all naming the
/// catalog file.
template <typename Body>
auto guarded(const std::string& path, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const SQLite::Exception& error) {
    const bool full = error.getErrorCode() == SQLITE_FULL;
    // A constraint fails only when what is being recorded contradicts what is there (a manifest
    // reusing a sequence or version number): the data's fault, not the disk's.
    if (error.getErrorCode() == SQLITE_CONSTRAINT) {
      throw Error(ErrorKind::corrupt, "catalog " + path + ": " + error.what());
    }
    throw Error(full ? ErrorKind::no_space : ErrorKind::io,
                "catalog " + path + ": " + error.what() +
                    (full ? " (free some space on that disk and run the command again)" : ""));
  }
}

/// Binds the run row's columns 1 to 18 (in insert_run's column order) from the manifest and the stats.
void bind_run(SQLite::Statement& run, const Manifest& manifest, const std::string& manifest_key, const RunStats& stats) {
  std::string sources;
  for (const std::string& source : manifest.sources) {
    sources += (sources.empty() ? "" : "\n") + source;
  }
  if (manifest_key.empty()) {
    run.bind(1);  // a run that changed nothing wrote no manifest
  } else {
    run.bind(1, as_i64(manifest.seq));
  }
  run.bind(2, manifest.kind == RunKind::backup ? "backup" : "clean");
  run.bind(3, manifest_key);
  run.bind(4, manifest.host);
  run.bind(5, manifest.started_ns);
  run.bind(6, manifest.finished_ns);
  run.bind(7, stats.status);
  run.bind(8, stats.error);
  run.bind(9, sources);
  const std::uint64_t counters[] = {stats.files_new,     stats.files_changed, stats.files_deleted,
                                    stats.files_unchanged, stats.files_skipped, stats.bytes_scanned,
                                    stats.bytes_read,    stats.bytes_new,     stats.bytes_stored};
  int column = 10;
  for (const std::uint64_t counter : counters) {
    run.bind(column++, as_i64(counter));
  }
}

/// The run's own row. Returns its id.
std::int64_t insert_run(SQLite::Database& db, const Manifest& manifest, const std::string& manifest_key,
                        const RunStats& stats) {
  SQLite::Statement run(db,
                        "INSERT INTO runs(seq, kind, manifest, host, started_ns, finished_ns, status, error, sources, "
                        "files_new, files_changed, files_deleted, files_unchanged, files_skipped, bytes_scanned, "
                        "bytes_read, bytes_new, bytes_stored) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  bind_run(run, manifest, manifest_key, stats);
  run.exec();
  return db.getLastInsertRowid();
}

/// The row insert_run made before the run ended (RunRecorder), now with what the run did.
void complete_run(SQLite::Database& db, std::int64_t run_id, const Manifest& manifest, const std::string& manifest_key,
                  const RunStats& stats) {
  SQLite::Statement run(db,
                        "UPDATE runs SET seq = ?1, kind = ?2, manifest = ?3, host = ?4, started_ns = ?5, finished_ns = ?6, "
                        "status = ?7, error = ?8, sources = ?9, files_new = ?10, files_changed = ?11, files_deleted = ?12, "
                        "files_unchanged = ?13, files_skipped = ?14, bytes_scanned = ?15, bytes_read = ?16, "
                        "bytes_new = ?17, bytes_stored = ?18 WHERE id = ?19");
  bind_run(run, manifest, manifest_key, stats);
  run.bind(19, run_id);
  run.exec();
}

/// Records a run's packs and where each of their chunks is. Its statements are prepared once.
class PackRecorder {
 public:
  PackRecorder(SQLite::Database& db, std::int64_t run_id, TotalsKeeper& totals)
      : run_id_(run_id),
        totals_(totals),
        insert_pack_(db, "INSERT INTO packs(name, size, run_id) VALUES(?,?,?) "
                         "ON CONFLICT(name) DO UPDATE SET size = excluded.size RETURNING id"),
        name_pack_(db, "UPDATE packs SET name = ?2, size = ?3 WHERE id = ?1"),
        // A chunk stored again moves to its new place: a clean run copies live chunks out of packs it is
        // about to delete, and a backup stores again only chunks whose pack is missing or damaged.
        insert_chunk_(db, "INSERT INTO chunks(hash, pack_id, offset, length, raw_length, flags) "
                          "VALUES(?,?,?,?,?,?) ON CONFLICT(hash) DO NOTHING"),
        old_length_(db, "SELECT length FROM chunks WHERE hash = ?"),
        move_chunk_(db, "UPDATE chunks SET pack_id = ?2, offset = ?3, length = ?4, flags = ?5 WHERE hash = ?1") {}

  /// The pack's row (the one of that name if there is one). Returns its id.
  std::int64_t add(const std::string& name, std::uint64_t size) {
    insert_pack_.bind(1, name);
    insert_pack_.bind(2, as_i64(size));
    insert_pack_.bind(3, run_id_);
    if (!insert_pack_.executeStep()) {
      throw Error(ErrorKind::io, "cannot record pack " + name);
    }
    const std::int64_t pack_id = insert_pack_.getColumn(0).getInt64();
    while (insert_pack_.executeStep()) {
    }  // RETURNING's insert completes when its statement runs to the end
    insert_pack_.reset();
    return pack_id;
  }

  /// The pack added under a provisional name, now stored under its own.
  void name(std::int64_t pack_id, const std::string& name, std::uint64_t size) {
    name_pack_.bind(1, pack_id);
    name_pack_.bind(2, name);
    name_pack_.bind(3, as_i64(size));
    name_pack_.exec();
    name_pack_.reset();
  }

  /// A chunk of the pack: a new row, or the known chunk moved here.
  void add_blob(std::int64_t pack_id, const PackEntry& blob) {
    insert_chunk_.bind(1, blob.id.data(), static_cast<int>(blob.id.size()));
    insert_chunk_.bind(2, pack_id);
    insert_chunk_.bind(3, static_cast<std::int64_t>(blob.offset));
    insert_chunk_.bind(4, static_cast<std::int64_t>(blob.length));
    insert_chunk_.bind(5, static_cast<std::int64_t>(blob.raw_length));
    insert_chunk_.bind(6, static_cast<int>(blob.flags));
    const bool inserted = insert_chunk_.exec() == 1;
    insert_chunk_.reset();
    if (inserted) {
      totals_.chunks_changed(1, static_cast<std::int64_t>(blob.raw_length), static_cast<std::int64_t>(blob.length));
      return;
    }
    old_length_.bind(1, blob.id.data(), static_cast<int>(blob.id.size()));
    old_length_.executeStep();
    totals_.chunks_changed(0, 0, static_cast<std::int64_t>(blob.length) - old_length_.getColumn(0).getInt64());
    old_length_.reset();
    move_chunk_.bind(1, blob.id.data(), static_cast<int>(blob.id.size()));
    move_chunk_.bind(2, pack_id);
    move_chunk_.bind(3, static_cast<std::int64_t>(blob.offset));
    move_chunk_.bind(4, static_cast<std::int64_t>(blob.length));
    move_chunk_.bind(5, static_cast<int>(blob.flags));
    move_chunk_.exec();
    move_chunk_.reset();
  }

 private:
  std::int64_t run_id_;
  TotalsKeeper& totals_;
  SQLite::Statement insert_pack_;
  SQLite::Statement name_pack_;
  SQLite::Statement insert_chunk_;
  SQLite::Statement old_length_;
  SQLite::Statement move_chunk_;
};

/// The run's packs and where each of their chunks is.
void record_packs(SQLite::Database& db, const Manifest& manifest, std::int64_t run_id, TotalsKeeper& totals) {
  PackRecorder packs(db, run_id, totals);
  for_each_pack(manifest, [&](const ManifestPack& pack) {
    const std::int64_t pack_id = packs.add(pack.name, pack.size);
    for (const PackEntry& blob : pack.blobs) {
      packs.add_blob(pack_id, blob);
    }
  });
}

/// Records the versions of one run: each with its path's row, its chunk list (each listing is
/// one reference) and the stored size of its chunks. Its statements are prepared once per run.
class VersionRecorder {
 public:
  VersionRecorder(SQLite::Database& db, std::int64_t run_id, TotalsKeeper& totals)
      : db_(db),
        run_id_(run_id),
        totals_(totals),
        latest_(db, kLatestOfFile),
        find_file_(db, "SELECT id FROM files WHERE path = ?"),
        insert_file_(db, "INSERT INTO files(path) VALUES(?) ON CONFLICT(path) DO NOTHING RETURNING id"),
        find_chunk_(db, "SELECT id, length FROM chunks WHERE hash = ?"),
        reference_chunk_(db, "UPDATE chunks SET refcount = refcount + 1 WHERE id = ?"),
        highest_if_taken_(db, "SELECT max(number) FROM versions WHERE file_id = ?1 "
                              "AND EXISTS (SELECT 1 FROM versions WHERE file_id = ?1 AND number = ?2)"),
        insert_version_(db, "INSERT INTO versions(file_id, run_id, number, type, size, stored_size, mtime_ns, mode, "
                            "inode, sha256, link_target, uid, gid, owner, grp, ctime_ns, device, links, rdev, xattrs) "
                            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_link_(db, "INSERT INTO version_chunks(version_id, seq, chunk_id) VALUES(?,?,?)") {}

  /// Records the version, unless the catalog does not know one of its chunks: then returns
  /// false (missing_chunk() says which) and records nothing.
  bool record(const ManifestVersion& version) {
    std::int64_t stored = 0;
    if (!find_chunks(version.chunks, stored)) {
      return false;
    }
    count_references();
    bool new_path = false;
    const std::int64_t file = file_id(version.path, version.number == 1, new_path);
    // A path just added has no number taken yet; above the latest, none is taken either.
    auto number = static_cast<std::int64_t>(version.number);
    const std::optional<CountedVersion> latest = new_path ? std::nullopt : latest_of_file(latest_, file);
    if (latest && number <= latest->number) {
      number = free_number(file, number);
    }
    const std::int64_t version_id = insert_version(version, file, number, stored);
    link_chunks(version_id);
    const auto size = as_i64(version.size);
    totals_.version_counted(version.path, version.type, size, 1);
    if (!latest || number > latest->number) {
      totals_.latest_changed(version.path, latest, CountedVersion{number, version.type, size});
    }
    return true;
  }

  /// The chunk the last refused version lists and the catalog does not know.
  const ChunkId& missing_chunk() const { return missing_; }

 private:
  /// The path's row, added if it has none (`added` says so). `likely_new` (a first version) tries
  /// the insert first: one statement instead of two for every file of a first backup.
  std::int64_t file_id(const std::string& path, bool likely_new, bool& added) {
    std::optional<std::int64_t> id;
    if (likely_new) {
      id = insert_file(path);
    }
    if (!id) {
      find_file_.bind(1, path);
      if (find_file_.executeStep()) {
        id = find_file_.getColumn(0).getInt64();
      }
      find_file_.reset();
      if (id) {
        added = false;
        return *id;
      }
      if (!likely_new) {
        id = insert_file(path);
      }
    }
    if (!id) {
      throw Error(ErrorKind::io, "cannot record the path " + path);
    }
    added = true;
    return *id;
  }

  /// Adds the path's row: its id, or nullopt if it has one already.
  std::optional<std::int64_t> insert_file(const std::string& path) {
    insert_file_.bind(1, path);
    std::optional<std::int64_t> id;
    if (insert_file_.executeStep()) {
      id = insert_file_.getColumn(0).getInt64();
      while (insert_file_.executeStep()) {
      }  // RETURNING's insert completes when its statement runs to the end
    }
    insert_file_.reset();
    return id;
  }

  /// `number`, or the path's next free number when a version already has it: two writers at once
  /// (clocks apart, a resume from suspend) each recorded the same next version. Manifests are
  /// replayed in sequence order, so the later one's version moves up, the same on every rebuild.
  std::int64_t free_number(std::int64_t file_id, std::int64_t number) {
    highest_if_taken_.bind(1, file_id);
    highest_if_taken_.bind(2, number);
    std::int64_t free = number;
    if (highest_if_taken_.executeStep() && !highest_if_taken_.getColumn(0).isNull()) {
      free = highest_if_taken_.getColumn(0).getInt64() + 1;
    }
    highest_if_taken_.reset();
    return free;
  }

  /// The version's row, numbered `number`. Returns its id.
  std::int64_t insert_version(const ManifestVersion& version, std::int64_t file_id, std::int64_t number, std::int64_t stored) {
    insert_version_.bind(1, file_id);
    insert_version_.bind(2, run_id_);
    insert_version_.bind(3, number);
    insert_version_.bind(4, static_cast<int>(version.type));
    insert_version_.bind(5, as_i64(version.size));
    insert_version_.bind(6, stored);
    insert_version_.bind(7, version.mtime_ns);
    insert_version_.bind(8, static_cast<std::int64_t>(version.mode));
    insert_version_.bind(9, as_i64(version.inode));
    if (version.type == EntryType::file) {
      insert_version_.bind(10, version.sha256.data(), static_cast<int>(version.sha256.size()));
    } else {
      insert_version_.bind(10);
    }
    if (version.type == EntryType::symlink) {
      insert_version_.bind(11, version.link_target);
    } else {
      insert_version_.bind(11);
    }
    const FileMetadata& meta = version.meta;
    if (meta.recorded) {
      insert_version_.bind(12, static_cast<std::int64_t>(meta.uid));
      insert_version_.bind(13, static_cast<std::int64_t>(meta.gid));
      insert_version_.bind(14, meta.owner);
      insert_version_.bind(15, meta.group);
      insert_version_.bind(16, meta.ctime_ns);
      insert_version_.bind(17, as_i64(meta.device));
      insert_version_.bind(18, static_cast<std::int64_t>(meta.links));
      insert_version_.bind(19, as_i64(meta.rdev));
      const std::string xattrs = encode_xattrs(meta.xattrs);
      insert_version_.bind(20, xattrs.data(), static_cast<int>(xattrs.size()));
    } else {
      for (int column = 12; column <= 20; ++column) {
        insert_version_.bind(column);
      }
    }
    insert_version_.exec();
    insert_version_.reset();
    return db_.getLastInsertRowid();
  }

  /// Finds the version's chunks (kept for count_references and link_chunks) and the sum of
  /// their blob lengths. False at the first chunk the catalog does not know.
  bool find_chunks(const std::vector<ChunkId>& chunks, std::int64_t& stored) {
    chunk_rows_.clear();
    for (const ChunkId& id : chunks) {
      find_chunk_.bind(1, id.data(), static_cast<int>(id.size()));
      const bool found = find_chunk_.executeStep();
      if (found) {
        chunk_rows_.push_back(find_chunk_.getColumn(0).getInt64());
        stored += find_chunk_.getColumn(1).getInt64();
      }
      find_chunk_.reset();
      if (!found) {
        missing_ = id;
        return false;
      }
    }
    return true;
  }

  /// Each chunk find_chunks found is one reference more: every listing is one.
  void count_references() {
    for (const std::int64_t chunk_id : chunk_rows_) {
      reference_chunk_.bind(1, chunk_id);
      reference_chunk_.exec();
      reference_chunk_.reset();
    }
  }

  /// Lists the chunks find_chunks found under the version, in file order.
  void link_chunks(std::int64_t version_id) {
    std::int64_t seq = 0;
    for (const std::int64_t chunk_id : chunk_rows_) {
      insert_link_.bind(1, version_id);
      insert_link_.bind(2, seq++);
      insert_link_.bind(3, chunk_id);
      insert_link_.exec();
      insert_link_.reset();
    }
  }

  SQLite::Database& db_;
  std::int64_t run_id_;
  TotalsKeeper& totals_;
  SQLite::Statement latest_;
  SQLite::Statement find_file_;
  SQLite::Statement insert_file_;
  SQLite::Statement find_chunk_;
  SQLite::Statement reference_chunk_;
  SQLite::Statement highest_if_taken_;
  SQLite::Statement insert_version_;
  SQLite::Statement insert_link_;
  std::vector<std::int64_t> chunk_rows_;  // the version being recorded's chunks, in file order
  ChunkId missing_{};
};

void record_versions(SQLite::Database& db, const Manifest& manifest, const std::string& manifest_key,
                     std::int64_t run_id, TotalsKeeper& totals) {
  VersionRecorder recorder(db, run_id, totals);
  for_each_version(manifest, [&](const ManifestVersion& version) {
    if (!recorder.record(version)) {
      throw Error(ErrorKind::corrupt, "manifest " + manifest_key + " references unknown chunk " + to_hex(recorder.missing_chunk()));
    }
  });
}

/// Adds what storing the run encrypted to the key's count (Catalog::encryptions): the manifest,
/// each pack header and, for a backup, each blob (a clean copies blobs without encrypting them).
void count_encryptions(SQLite::Database& db, const Manifest& manifest, const std::string& manifest_key) {
  if (manifest_key.empty()) {
    return;
  }
  std::uint64_t sealed = 1 + pack_count(manifest);
  if (manifest.kind == RunKind::backup) {
    for_each_pack(manifest, [&sealed](const ManifestPack& pack) { sealed += pack.blobs.size(); });
  }
  SQLite::Statement count(db, "INSERT INTO meta(key, value) VALUES('encryptions', ?) ON CONFLICT(key) DO UPDATE "
                              "SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)");
  count.bind(1, std::to_string(sealed));
  count.exec();
}

/// A clean run's removed versions: each goes with its chunk references (a version may list one
/// chunk several times; each listing is one reference), and its path when nothing is left of it.
void forget_removed_versions(SQLite::Database& db, const Manifest& manifest, const std::string& manifest_key,
                             TotalsKeeper& totals) {
  if (manifest.removed.empty()) {
    return;
  }
  SQLite::Statement find(db, "SELECT v.id, v.file_id, v.type, v.size FROM versions v JOIN files f ON f.id = v.file_id "
                             "WHERE f.path = ? AND v.number = ?");
  SQLite::Statement latest(db, kLatestOfFile);
  SQLite::Statement release(db, "UPDATE chunks SET refcount = refcount - (SELECT count(*) FROM version_chunks vc "
                                "WHERE vc.version_id = ?1 AND vc.chunk_id = chunks.id) "
                                "WHERE id IN (SELECT chunk_id FROM version_chunks WHERE version_id = ?1)");
  SQLite::Statement unlink(db, "DELETE FROM version_chunks WHERE version_id = ?");
  SQLite::Statement erase(db, "DELETE FROM versions WHERE id = ?");
  SQLite::Statement erase_file(db, "DELETE FROM files WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM versions WHERE file_id = ?1)");
  for (const ManifestRemoval& removal : manifest.removed) {
    find.bind(1, removal.path);
    find.bind(2, static_cast<std::int64_t>(removal.number));
    if (!find.executeStep()) {
      throw Error(ErrorKind::corrupt, "manifest " + manifest_key + " removes version " + std::to_string(removal.number) +
                                          " of " + removal.path + ", which the catalog does not have");
    }
    const std::int64_t version_id = find.getColumn(0).getInt64();
    const std::int64_t file_id = find.getColumn(1).getInt64();
    const CountedVersion removed{static_cast<std::int64_t>(removal.number), static_cast<EntryType>(find.getColumn(2).getInt()),
                                 find.getColumn(3).getInt64()};
    find.reset();
    for (SQLite::Statement* step : {&release, &unlink, &erase}) {
      step->bind(1, version_id);
      step->exec();
      step->reset();
    }
    totals.version_counted(removal.path, removed.type, removed.size, -1);
    if (const std::optional<CountedVersion> now = latest_of_file(latest, file_id); !now || now->number < removed.number) {
      totals.latest_changed(removal.path, removed, now);
    }
    erase_file.bind(1, file_id);
    erase_file.exec();
    erase_file.reset();
  }
}

/// A clean run's deleted packs, with the chunks still located in them (all unreferenced: live
/// ones were moved by the run's own packs first).
void forget_deleted_packs(SQLite::Database& db, const Manifest& manifest, const std::string& manifest_key,
                          TotalsKeeper& totals) {
  SQLite::Statement find(db, "SELECT id FROM packs WHERE name = ?");
  SQLite::Statement sizes(db, "SELECT count(*), coalesce(sum(raw_length), 0), coalesce(sum(length), 0) FROM chunks WHERE pack_id = ?");
  SQLite::Statement in_use(db, "SELECT count(*) FROM chunks WHERE pack_id = ? AND refcount > 0");
  SQLite::Statement erase_chunks(db, "DELETE FROM chunks WHERE pack_id = ?");
  SQLite::Statement erase_pack(db, "DELETE FROM packs WHERE id = ?");
  for (const std::string& name : manifest.deleted_packs) {
    find.bind(1, name);
    const bool known = find.executeStep();
    const std::int64_t pack_id = known ? find.getColumn(0).getInt64() : 0;
    find.reset();
    if (!known) {
      continue;  // an orphan: never indexed
    }
    in_use.bind(1, pack_id);
    in_use.executeStep();
    const std::int64_t used = in_use.getColumn(0).getInt64();
    in_use.reset();
    if (used != 0) {
      throw Error(ErrorKind::corrupt, "manifest " + manifest_key + " deletes pack " + name + ", which still holds " +
                                          std::to_string(used) + " chunk(s) in use: refusing to record it");
    }
    sizes.bind(1, pack_id);
    sizes.executeStep();
    totals.chunks_changed(-sizes.getColumn(0).getInt64(), -sizes.getColumn(1).getInt64(), -sizes.getColumn(2).getInt64());
    sizes.reset();
    for (SQLite::Statement* step : {&erase_chunks, &erase_pack}) {
      step->bind(1, pack_id);
      step->exec();
      step->reset();
    }
  }
}

}  // namespace

namespace {

/// The catalog lists every backed-up path: it is private to its owner (0600), whatever the umask.
/// SQLite gives its -wal and -shm files the database file's mode. An existing file is never
/// opened here: closing a descriptor of a database file drops every POSIX lock this process holds
/// on it, including those of another connection (SQLite's documented hazard).
const std::string& private_file(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);  // new: nobody in this process holds a lock on it yet
    }
  } else if (S_ISREG(info.st_mode) && (info.st_mode & 077U) != 0 && info.st_uid == ::geteuid()) {
    ::chmod(path.c_str(), 0600);  // a catalog made before this rule, or by hand
  }
  return path;  // a failure shows, with its reason, when SQLite opens the file
}

}  // namespace

namespace {
/// Copies a 32-byte blob column into `id`; false if the column is not one.
bool read_id(const SQLite::Column& column, ChunkId& id) {
  if (column.getBytes() != static_cast<int>(id.size())) {
    return false;
  }
  std::memcpy(id.data(), column.getBlob(), id.size());
  return true;
}

/// A chunk's place, from the columns hash, offset, length, raw_length, flags starting at
/// `first`. Error(corrupt) for a malformed id.
PackEntry read_pack_entry(SQLite::Statement& query, int first, const std::string& catalog_path) {
  PackEntry entry;
  if (!read_id(query.getColumn(first), entry.id)) {
    throw Error(ErrorKind::corrupt, "the catalog " + catalog_path + " holds a malformed chunk id");
  }
  entry.offset = static_cast<std::uint32_t>(query.getColumn(first + 1).getInt64());
  entry.length = static_cast<std::uint32_t>(query.getColumn(first + 2).getInt64());
  entry.raw_length = static_cast<std::uint32_t>(query.getColumn(first + 3).getInt64());
  entry.flags = static_cast<std::uint8_t>(query.getColumn(first + 4).getInt());
  return entry;
}
}  // namespace

namespace {
/// Turns SQLite's foreign key checks off for its lifetime (they are on for the catalog).
class ForeignKeysOff {
 public:
  explicit ForeignKeysOff(SQLite::Database& db) : db_(db) { db_.exec("PRAGMA foreign_keys=OFF"); }
  ~ForeignKeysOff() {
    try {
      db_.exec("PRAGMA foreign_keys=ON");
    } catch (const SQLite::Exception&) {
      // Only the checks of later writes are lost; they are the catalog's own rows.
    }
  }
  ForeignKeysOff(const ForeignKeysOff&) = delete;
  ForeignKeysOff& operator=(const ForeignKeysOff&) = delete;

 private:
  SQLite::Database& db_;
};
}  // namespace

/// SQLite counts every allocation under a global mutex for sqlite3_memory_used(), which nothing
/// here reads: a tenth of the time of recording a run of small files. Only possible before
/// SQLite's first use in the process (later calls fail harmlessly).
bool skip_memory_statistics() {
  static const bool done = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  return done;
}

struct Catalog::Impl {
  explicit Impl(const std::string& file)
      : db((skip_memory_statistics(), private_file(file)), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE), path(file) {}
  SQLite::Database db;
  std::string path;
  std::mutex chunk_lookup_mutex;
  std::unique_ptr<SQLite::Statement> chunk_lookup;  // has_chunk's, prepared once
  std::mutex chunks_of_mutex;
  std::unique_ptr<SQLite::Statement> chunks_of;  // chunks_of's, prepared once
};

Catalog::Catalog(const std::string& path) {
  // Two processes opening a new catalog at once (a backup and `status`) can both hold a read lock
  // and want to write (switching to WAL mode, creating the schema): SQLite then answers one of
  // them "busy" at once, without waiting, to avoid a deadlock. That one opens it again.
  constexpr int kOpenAttempts = 20;
  for (int attempt = 1;; ++attempt) {
    try {
      impl_ = std::make_unique<Impl>(path);
      prepare(path);
      return;
    } catch (const SQLite::Exception& error) {
      impl_.reset();
      if ((error.getErrorCode() & 0xff) == SQLITE_BUSY && attempt < kOpenAttempts) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
        continue;
      }
      throw Error(ErrorKind::config, "cannot open the catalog " + path + ": " + error.what());
    }
  }
}

void Catalog::prepare(const std::string& path) {
  SQLite::Database& db = impl_->db;
  db.setBusyTimeout(5000);
  // Check what the file is before changing anything in it (journal_mode=WAL is persistent).
  // One statement reads both, from one snapshot: read apart, another process creating the
  // catalog in between made a new catalog look like someone else's database.
  SQLite::Statement what(db, "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)");
  what.executeStep();
  const int version = what.getColumn(0).getInt();
  const bool has_tables = what.getColumn(1).getInt() != 0;
  what.reset();
  if (version == 0 && has_tables) {
    throw Error(ErrorKind::config, path + " is not a mybackup catalog");
  }
  if (version < 0 || version > kCatalogSchemaVersion) {
    throw Error(ErrorKind::config, path + " has catalog schema version " + std::to_string(version) +
                                       ", this mybackup reads version " + std::to_string(kCatalogSchemaVersion) +
                                       ": use a matching mybackup release");
  }
  db.exec("PRAGMA journal_mode=WAL");
  // FULL: a committed run survives a power loss, so the catalog never forgets chunks whose
  // manifest is already on the destination.
  db.exec("PRAGMA synchronous=FULL");
  // Chunk ids are random, so recording a run inserts all over the chunk index: with SQLite's
  // default 2 MiB page cache, a run of 100,000 files spent most of its commit re-reading pages.
  limit_cache(kDefaultCacheBytes);  // only as the catalog grows
  db.exec("PRAGMA temp_store=MEMORY");
  db.exec("PRAGMA foreign_keys=ON");
  if (version < kCatalogSchemaVersion) {
    // IMMEDIATE, and the version read again inside: two processes that open a new or older
    // catalog at once (a backup and `status`) create or migrate it once, one after the other.
    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    const int current = db.execAndGet("PRAGMA user_version").getInt();
    if (current == 0) {
      db.exec(kSchema);
      db.exec(kTotalsSchema);
    } else if (current < kCatalogSchemaVersion) {
      if (current == 1) {
        db.exec(kMigrateTo2);
      }
      db.exec(kTotalsSchema);
      count_folder_totals(db);
    }
    db.exec("PRAGMA user_version=" + std::to_string(kCatalogSchemaVersion));
    transaction.commit();
  }
  db.exec(kChunksByPack);
}

Catalog::~Catalog() = default;

std::string Catalog::directory() const { return parent_directory(impl_->path); }

void Catalog::limit_cache(std::size_t bytes) const {
  return guarded(impl_->path, [&] { impl_->db.exec("PRAGMA cache_size=-" + std::to_string(std::max<std::size_t>(bytes / 1024, 1))); });
}

std::string Catalog::repository_id() const {
  return guarded(impl_->path, [&] {
    SQLite::Statement query(impl_->db, "SELECT value FROM meta WHERE key = 'repository_id'");
    return query.executeStep() ? query.getColumn(0).getString() : std::string();
  });
}

void Catalog::set_repository_id(const std::string& id) {
  return guarded(impl_->path, [&] {
    SQLite::Statement update(impl_->db, "INSERT INTO meta(key, value) VALUES('repository_id', ?) "
                                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    update.bind(1, id);
    update.exec();
  });
}

namespace {
constexpr const char* kHighestSeqPrefix = "highest_seq ";
constexpr const char* kAcceptedLossPrefix = "accepted_loss ";
constexpr const char* kOrphanPrefix = "orphan ";
constexpr const char* kDamagedPackPrefix = "damaged_pack ";

/// Values of the meta rows whose key starts with `prefix`, by the rest of the key.
std::unordered_map<std::string, std::string> meta_with_prefix(SQLite::Database& db, const std::string& prefix) {
  SQLite::Statement query(db, "SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1");
  query.bind(1, prefix);
  std::unordered_map<std::string, std::string> values;
  while (query.executeStep()) {
    values.emplace(query.getColumn(0).getString().substr(prefix.size()), query.getColumn(1).getString());
  }
  return values;
}

void set_meta(SQLite::Database& db, const std::string& key, const std::string& value) {
  SQLite::Statement update(db, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  update.bind(1, key);
  update.bind(2, value);
  update.exec();
}

/// A set of names kept as meta rows "<prefix><name>" (the value: when it was added).
std::unordered_set<std::string> meta_names(SQLite::Database& db, const std::string& prefix) {
  std::unordered_set<std::string> names;
  for (auto& [name, when] : meta_with_prefix(db, prefix)) {
    names.insert(name);
  }
  return names;
}

void add_meta_names(SQLite::Database& db, const std::string& prefix, const std::vector<std::string>& names) {
  SQLite::Transaction transaction(db);
  for (const std::string& name : names) {
    set_meta(db, prefix + name, format_utc(system_clock().now_ns()));
  }
  transaction.commit();
}
}  // namespace

std::uint64_t Catalog::highest_seq_seen(const std::string& location) const {
  return guarded(impl_->path, [&] {
    SQLite::Statement query(impl_->db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?");
    query.bind(1, kHighestSeqPrefix + location);
    return query.executeStep() ? static_cast<std::uint64_t>(query.getColumn(0).getInt64()) : std::uint64_t{0};
  });
}

void Catalog::remember_highest_seq(const std::string& location, std::uint64_t seq) {
  if (seq <= highest_seq_seen(location)) {
    return;
  }
  guarded(impl_->path, [&] { set_meta(impl_->db, kHighestSeqPrefix + location, std::to_string(seq)); });
}

std::unordered_set<std::string> Catalog::accepted_manifest_losses() const {
  return guarded(impl_->path, [&] { return meta_names(impl_->db, kAcceptedLossPrefix); });
}

void Catalog::accept_manifest_losses(const std::vector<std::string>& losses) {
  guarded(impl_->path, [&] { add_meta_names(impl_->db, kAcceptedLossPrefix, losses); });
}

std::unordered_set<std::string> Catalog::damaged_packs() const {
  return guarded(impl_->path, [&] { return meta_names(impl_->db, kDamagedPackPrefix); });
}

void Catalog::mark_damaged_packs(const std::vector<std::string>& names) {
  guarded(impl_->path, [&] { add_meta_names(impl_->db, kDamagedPackPrefix, names); });
}

std::unordered_map<std::string, std::int64_t> Catalog::orphans_first_seen(const std::vector<std::string>& orphans,
                                                                          std::int64_t now_ns, OrphanClock clock) {
  return guarded(impl_->path, [&] {
    SQLite::Transaction transaction(impl_->db);
    const std::unordered_map<std::string, std::string> known = meta_with_prefix(impl_->db, kOrphanPrefix);
    std::unordered_map<std::string, std::int64_t> first_seen;
    for (const std::string& name : orphans) {
      const auto found = known.find(name);
      if (found != known.end()) {
        first_seen[name] = std::stoll(found->second);
      } else {
        first_seen[name] = now_ns;
        if (clock == OrphanClock::start) {
          set_meta(impl_->db, kOrphanPrefix + name, std::to_string(now_ns));
        }
      }
    }
    if (clock == OrphanClock::read) {
      return first_seen;  // the transaction rolls back: nothing was written
    }
    SQLite::Statement forget(impl_->db, "DELETE FROM meta WHERE key = ?");
    for (const auto& [name, when] : known) {
      if (first_seen.count(name) == 0) {
        forget.bind(1, kOrphanPrefix + name);
        forget.exec();
        forget.reset();
      }
    }
    transaction.commit();
    return first_seen;
  });
}

std::unordered_map<std::string, LatestVersion> Catalog::latest_under(const std::string& root) const {
  std::unordered_map<std::string, LatestVersion> latest;
  const std::unique_ptr<LatestCursor> cursor = latest_cursor(root);
  std::string path;
  LatestVersion version;
  while (cursor->next(path, version)) {
    latest.emplace(path, version);
  }
  return latest;
}

/// Two queries in turn: the root's own row, then the rows below it in path order (the files
/// table's path index: no sort, nothing held): the root sorts before everything below it. `sql`
/// selects from `files f` and ends with a WHERE clause's first condition ("... WHERE x AND "),
/// whose `extra` parameters `bind_extra` binds from index 1.
struct RootThenBelow {
  RootThenBelow(SQLite::Database& db, const std::string& sql, const std::string& root, int extra,
                const std::function<void(SQLite::Statement&)>& bind_extra)
      : root_query(db, sql + "f.path = ?"), below_query(db, sql + "f.path >= ? AND f.path < ? ORDER BY f.path") {
    bind_extra(root_query);
    bind_extra(below_query);
    const int first = extra + 1;
    root_query.bind(first, root);
    below_query.bind(first, below_start(root));
    below_query.bind(first + 1, below_end(root));
  }

  /// The statement holding the next row, or nullptr at the end.
  SQLite::Statement* step() {
    if (!root_done) {
      root_done = true;
      if (root_query.executeStep()) {
        return &root_query;
      }
    }
    return below_query.executeStep() ? &below_query : nullptr;
  }

  SQLite::Statement root_query;
  SQLite::Statement below_query;
  bool root_done = false;
};

struct Catalog::LatestCursor::Impl {
  Impl(SQLite::Database& db, std::string file, const std::string& root)
      : path(std::move(file)), rows(db, kLatestColumns, root, 0, [](SQLite::Statement&) {}) {}

  // The newest version of each path is found through the (file_id, number) index, one seek per
  // path: no pass over the whole history.
  static constexpr const char* kLatestColumns =
      "SELECT f.path, v.number, v.type, v.size, v.mtime_ns, v.mode, v.inode, v.link_target, v.uid, v.gid, v.ctime_ns "
      "FROM files f JOIN versions v ON v.file_id = f.id "
      "AND v.number = (SELECT MAX(number) FROM versions WHERE file_id = f.id) WHERE ";

  std::string path;
  RootThenBelow rows;
};

Catalog::LatestCursor::LatestCursor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catalog::LatestCursor::~LatestCursor() = default;

bool Catalog::LatestCursor::next(std::string& path, LatestVersion& version) {
  return guarded(impl_->path, [&] {
    SQLite::Statement* query = impl_->rows.step();
    if (query == nullptr) {
      return false;
    }
    path = query->getColumn(0).getString();
    version.number = static_cast<std::uint32_t>(query->getColumn(1).getInt64());
    version.type = static_cast<EntryType>(query->getColumn(2).getInt());
    version.size = static_cast<std::uint64_t>(query->getColumn(3).getInt64());
    version.mtime_ns = query->getColumn(4).getInt64();
    version.mode = static_cast<std::uint32_t>(query->getColumn(5).getInt64());
    version.inode = static_cast<std::uint64_t>(query->getColumn(6).getInt64());
    version.link_target = query->getColumn(7).getString();
    version.meta_recorded = !query->getColumn(8).isNull();
    version.uid = static_cast<std::uint32_t>(query->getColumn(8).getInt64());
    version.gid = static_cast<std::uint32_t>(query->getColumn(9).getInt64());
    version.ctime_ns = query->getColumn(10).getInt64();
    return true;
  });
}

std::unique_ptr<Catalog::LatestCursor> Catalog::latest_cursor(const std::string& root) const {
  return guarded(impl_->path, [&] {
    return std::unique_ptr<LatestCursor>(new LatestCursor(std::make_unique<LatestCursor::Impl>(impl_->db, impl_->path, root)));
  });
}

bool Catalog::has_chunk(const ChunkId& id, const std::unordered_set<std::string>& except_packs) const {
  return guarded(impl_->path, [&] {
    std::lock_guard lock(impl_->chunk_lookup_mutex);
    if (!impl_->chunk_lookup) {
      impl_->chunk_lookup = std::make_unique<SQLite::Statement>(
          impl_->db, "SELECT p.name FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.hash = ?");
    }
    SQLite::Statement& query = *impl_->chunk_lookup;
    query.reset();
    const ResetOnExit reset{query};
    query.bind(1, id.data(), static_cast<int>(id.size()));
    if (!query.executeStep()) {
      return false;
    }
    return except_packs.empty() || except_packs.count(query.getColumn(0).getString()) == 0;
  });
}

bool Catalog::has_chunks() const {
  return guarded(impl_->path, [&] { return impl_->db.execAndGet("SELECT EXISTS (SELECT 1 FROM chunks)").getInt() != 0; });
}

ChunkIdSet Catalog::known_chunks() const { return known_chunks({}); }

ChunkIdSet Catalog::known_chunks(const std::unordered_set<std::string>& except_packs) const {
  return guarded(impl_->path, [&] {
    ChunkIdSet ids;
    std::unordered_set<std::int64_t> excluded;
    if (!except_packs.empty()) {
      SQLite::Statement packs(impl_->db, "SELECT id, name FROM packs");
      while (packs.executeStep()) {
        if (except_packs.count(packs.getColumn(1).getString()) != 0) {
          excluded.insert(packs.getColumn(0).getInt64());
        }
      }
    }
    SQLite::Statement query(impl_->db, "SELECT hash, pack_id FROM chunks");
    while (query.executeStep()) {
      const SQLite::Column column = query.getColumn(0);
      ChunkId id{};
      if (column.getBytes() == static_cast<int>(id.size()) && excluded.count(query.getColumn(1).getInt64()) == 0) {
        std::memcpy(id.data(), column.getBlob(), id.size());
        ids.insert(id);
      }
    }
    return ids;
  });
}

std::unordered_map<std::string, std::uint64_t> Catalog::packs_in_use() const {
  return guarded(impl_->path, [&] {
    std::unordered_map<std::string, std::uint64_t> packs;
    SQLite::Statement query(impl_->db,
                            "SELECT name, size FROM packs WHERE EXISTS (SELECT 1 FROM chunks WHERE chunks.pack_id = packs.id)");
    while (query.executeStep()) {
      packs.emplace(query.getColumn(0).getString(), static_cast<std::uint64_t>(query.getColumn(1).getInt64()));
    }
    return packs;
  });
}

void Catalog::record_run(const Manifest& manifest, const std::string& manifest_key, const RunStats& stats) {
  return guarded(impl_->path, [&] {
    SQLite::Database& db = impl_->db;
    // Every row below refers to rows this run finds or inserts itself (an unknown chunk is an
    // error): checking each reference again costs SQLite two index seeks per row, a third of the
    // time of a run of a million files. SQLite only changes the setting outside a transaction.
    const ForeignKeysOff unchecked(db);
    SQLite::Transaction transaction(db);
    const std::int64_t run_id = insert_run(db, manifest, manifest_key, stats);
    TotalsKeeper totals(db);
    record_packs(db, manifest, run_id, totals);
    record_versions(db, manifest, manifest_key, run_id, totals);
    count_encryptions(db, manifest, manifest_key);
    forget_removed_versions(db, manifest, manifest_key, totals);
    forget_deleted_packs(db, manifest, manifest_key, totals);
    totals.flush();
    transaction.commit();
  });
}

struct RunRecorder::Impl {
  explicit Impl(const std::string& file) : path(file), db(file, SQLite::OPEN_READWRITE) {
    db.setBusyTimeout(5000);
    db.exec("PRAGMA synchronous=FULL");  // per connection: as the catalog's own (see prepare)
    db.exec("PRAGMA temp_store=MEMORY");
    // Its pages are held along with the scan's and the pipeline's: less than the catalog's own
    // cache, the rest spills to the WAL.
    db.exec("PRAGMA cache_size=-" + std::to_string(kCacheBytes / 1024));
    // Every row refers to rows of this run or found by it (see Catalog::record_run).
    db.exec("PRAGMA foreign_keys=OFF");
  }

  /// The transaction and the run's row, at the first write: a run that records nothing takes
  /// the write lock only to commit.
  void start() {
    if (run_id != 0) {
      return;
    }
    transaction.emplace(db);
    run_id = insert_run(db, Manifest{}, "", RunStats{});
    totals.emplace(db);
    packs.emplace(db, run_id, *totals);
    versions.emplace(db, run_id, *totals);
  }

  static constexpr std::size_t kCacheBytes = std::size_t{8} << 20;
  std::string path;
  SQLite::Database db;
  std::optional<SQLite::Transaction> transaction;
  std::int64_t run_id = 0;
  std::optional<TotalsKeeper> totals;
  std::optional<PackRecorder> packs;
  std::optional<VersionRecorder> versions;
  std::uint64_t provisional_names = 0;
  std::unordered_set<std::int64_t> unstored;  // packs started, not yet stored
  bool finished = false;
};

RunRecorder::RunRecorder(const Catalog& catalog) {
  const std::string& path = catalog.impl_->path;
  guarded(path, [&] { impl_ = std::make_unique<Impl>(path); });
}

RunRecorder::~RunRecorder() {
  if (impl_) {
    try {
      // The statements go before the transaction rolls back (SQLiteCpp's order of members).
      impl_->versions.reset();
      impl_->packs.reset();
      impl_->totals.reset();
      impl_->transaction.reset();
    } catch (...) {
      // A rollback that fails leaves SQLite to roll back when the connection closes.
    }
  }
}

std::int64_t RunRecorder::pack_started() {
  return guarded(impl_->path, [&] {
    impl_->start();
    // Never a pack's name (those are 64 hex digits): pack_stored gives it its own.
    const std::int64_t pack = impl_->packs->add("provisional-" + std::to_string(++impl_->provisional_names), 0);
    impl_->unstored.insert(pack);
    return pack;
  });
}

void RunRecorder::chunk_placed(std::int64_t pack, const PackEntry& blob) {
  guarded(impl_->path, [&] {
    impl_->start();
    impl_->packs->add_blob(pack, blob);
  });
}

void RunRecorder::pack_stored(std::int64_t pack, const std::string& name, std::uint64_t size) {
  guarded(impl_->path, [&] {
    impl_->start();
    impl_->packs->name(pack, name, size);
    impl_->unstored.erase(pack);
  });
}

bool RunRecorder::add_version(const ManifestVersion& version) {
  return guarded(impl_->path, [&] {
    impl_->start();
    return impl_->versions->record(version);
  });
}

const ChunkId& RunRecorder::missing_chunk() const { return impl_->versions->missing_chunk(); }

void RunRecorder::finish(const Manifest& manifest, const std::string& manifest_key, const RunStats& stats) {
  guarded(impl_->path, [&] {
    if (impl_->finished) {
      throw Error(ErrorKind::usage, "RunRecorder::finish called twice");
    }
    if (!manifest.removed.empty() || !manifest.deleted_packs.empty()) {
      throw Error(ErrorKind::usage, "RunRecorder records backups: a clean goes through Catalog::record_run");
    }
    impl_->start();
    if (!impl_->unstored.empty()) {
      throw Error(ErrorKind::corrupt, "the run filled a pack it never stored: nothing was recorded");
    }
    complete_run(impl_->db, impl_->run_id, manifest, manifest_key, stats);
    count_encryptions(impl_->db, manifest, manifest_key);
    impl_->totals->flush();
    impl_->versions.reset();
    impl_->packs.reset();
    impl_->totals.reset();
    impl_->transaction->commit();
    impl_->transaction.reset();
    impl_->finished = true;
  });
}

void Catalog::record_failed_run(RunKind kind, std::int64_t started_ns, std::int64_t finished_ns, const std::string& error) {
  return guarded(impl_->path, [&] {
    SQLite::Statement run(impl_->db, "INSERT INTO runs(kind, started_ns, finished_ns, status, error) VALUES(?,?,?,'failed',?)");
    run.bind(1, kind == RunKind::backup ? "backup" : "clean");
    run.bind(2, started_ns);
    run.bind(3, finished_ns);
    run.bind(4, error);
    run.exec();
  });
}

namespace {
constexpr const char* kVersionColumns =
    "v.id, f.path, v.number, v.type, v.size, v.stored_size, v.mtime_ns, v.mode, v.sha256, v.link_target, r.finished_ns, "
    "v.inode, v.uid, v.gid, v.owner, v.grp, v.ctime_ns, v.device, v.links, v.rdev, v.xattrs";  // see read_metadata

VersionRecord read_version(SQLite::Statement& query) {
  VersionRecord version;
  version.id = query.getColumn(0).getInt64();
  version.path = query.getColumn(1).getString();
  version.number = static_cast<std::uint32_t>(query.getColumn(2).getInt64());
  version.type = static_cast<EntryType>(query.getColumn(3).getInt());
  version.size = static_cast<std::uint64_t>(query.getColumn(4).getInt64());
  version.stored_size = static_cast<std::uint64_t>(query.getColumn(5).getInt64());
  version.mtime_ns = query.getColumn(6).getInt64();
  version.mode = static_cast<std::uint32_t>(query.getColumn(7).getInt64());
  const SQLite::Column sha = query.getColumn(8);
  if (sha.getBytes() == static_cast<int>(version.sha256.size())) {
    std::memcpy(version.sha256.data(), sha.getBlob(), version.sha256.size());
  }
  version.link_target = query.getColumn(9).getString();
  version.run_finished_ns = query.getColumn(10).getInt64();
  version.inode = static_cast<std::uint64_t>(query.getColumn(11).getInt64());
  version.meta = read_metadata(query, 12);
  return version;
}
}  // namespace

std::vector<VersionRecord> Catalog::versions_of(const std::string& path) const {
  return guarded(impl_->path, [&] {
    SQLite::Statement query(impl_->db, std::string("SELECT ") + kVersionColumns +
                                           " FROM files f JOIN versions v ON v.file_id = f.id JOIN runs r ON r.id = v.run_id "
                                           "WHERE f.path = ? ORDER BY v.number");
    query.bind(1, path);
    std::vector<VersionRecord> versions;
    while (query.executeStep()) {
      versions.push_back(read_version(query));
    }
    return versions;
  });
}

std::vector<VersionRecord> Catalog::all_versions() const {
  std::vector<VersionRecord> all;
  for_each_history([&all](const std::vector<VersionRecord>& versions) { all.insert(all.end(), versions.begin(), versions.end()); });
  return all;
}

void Catalog::for_each_history(const std::function<void(const std::vector<VersionRecord>&)>& visit) const {
  return guarded(impl_->path, [&] {
    // CROSS JOIN keeps the files table outside: its path index gives the order, the versions'
    // (file_id, number) index each path's history, so nothing is sorted or held.
    SQLite::Statement query(impl_->db, std::string("SELECT ") + kVersionColumns +
                                           " FROM files f CROSS JOIN versions v ON v.file_id = f.id JOIN runs r ON r.id = v.run_id "
                                           "ORDER BY f.path, v.number");
    std::vector<VersionRecord> history;
    while (query.executeStep()) {
      VersionRecord version = read_version(query);
      if (!history.empty() && history.front().path != version.path) {
        visit(history);
        history.clear();
      }
      history.push_back(std::move(version));
    }
    if (!history.empty()) {
      visit(history);
    }
  });
}

std::vector<PackUsage> Catalog::pack_usage(const std::vector<std::int64_t>& removing, const WantLiveChunks& want_live) const {
  return guarded(impl_->path, [&] {
    SQLite::Database& db = impl_->db;
    // The removed versions go in a temporary table (this connection only; the catalog file is
    // not written), so one query can subtract their references.
    db.exec("CREATE TEMP TABLE IF NOT EXISTS usage_removing(version_id INTEGER PRIMARY KEY)");
    SQLite::Transaction transaction(db);
    db.exec("DELETE FROM usage_removing");
    SQLite::Statement add(db, "INSERT OR IGNORE INTO usage_removing(version_id) VALUES(?)");
    for (const std::int64_t id : removing) {
      add.bind(1, id);
      add.exec();
      add.reset();
    }
    std::vector<PackUsage> packs;
    std::unordered_map<std::int64_t, std::size_t> index;  // pack row id -> packs[i]
    SQLite::Statement list(db, "SELECT id, name, size FROM packs ORDER BY name");
    while (list.executeStep()) {
      index.emplace(list.getColumn(0).getInt64(), packs.size());
      PackUsage& pack = packs.emplace_back();
      pack.name = list.getColumn(1).getString();
      pack.size = static_cast<std::uint64_t>(list.getColumn(2).getInt64());
    }
    // The chunks in table order, each with its references left (the removed versions' are
    // counted from the few removed rows, CROSS JOIN keeping them outside): no sort of the table.
    const std::string chunks_left =
        "FROM chunks c LEFT JOIN (SELECT vc.chunk_id, count(*) AS refs FROM usage_removing u "
        "CROSS JOIN version_chunks vc ON vc.version_id = u.version_id GROUP BY vc.chunk_id) d ON d.chunk_id = c.id";
    const auto pack_of = [&](SQLite::Statement& query) -> PackUsage& {
      const auto found = index.find(query.getColumn(0).getInt64());
      if (found == index.end()) {
        throw Error(ErrorKind::corrupt, "the catalog " + impl_->path + " holds a chunk of an unknown pack");
      }
      return packs[found->second];
    };
    SQLite::Statement counts(db, "SELECT c.pack_id, c.length, c.refcount - coalesce(d.refs, 0) " + chunks_left);
    while (counts.executeStep()) {
      PackUsage& pack = pack_of(counts);
      const auto length = static_cast<std::uint64_t>(counts.getColumn(1).getInt64());
      if (counts.getColumn(2).getInt64() > 0) {
        ++pack.live_chunks;
        pack.live_bytes += length;
      } else {
        ++pack.dead_chunks;
        pack.dead_bytes += length;
      }
    }
    std::vector<bool> wanted(packs.size());
    bool any_wanted = false;
    for (std::size_t i = 0; i < packs.size(); ++i) {
      wanted[i] = packs[i].live_chunks > 0 && (!want_live || want_live(packs[i]));
      any_wanted = any_wanted || wanted[i];
    }
    if (any_wanted) {
      SQLite::Statement live(db, "SELECT c.pack_id, c.hash, c.offset, c.length, c.raw_length, c.flags " + chunks_left +
                                     " WHERE c.refcount - coalesce(d.refs, 0) > 0");
      while (live.executeStep()) {
        PackUsage& pack = pack_of(live);
        if (!wanted[static_cast<std::size_t>(&pack - packs.data())]) {
          continue;
        }
        pack.live.push_back(read_pack_entry(live, 1, impl_->path));
      }
      for (PackUsage& pack : packs) {
        std::sort(pack.live.begin(), pack.live.end(),
                  [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
      }
    }
    db.exec("DELETE FROM usage_removing");
    transaction.commit();
    return packs;
  });
}

std::unordered_set<std::string> Catalog::pack_names() const {
  return guarded(impl_->path, [&] {
    std::unordered_set<std::string> names;
    SQLite::Statement query(impl_->db, "SELECT name FROM packs");
    while (query.executeStep()) {
      names.insert(query.getColumn(0).getString());
    }
    return names;
  });
}

std::vector<VersionRecord> Catalog::state_at(const std::string& root, std::int64_t at_ns) const {
  std::vector<VersionRecord> versions;
  const std::unique_ptr<StateCursor> cursor = state_cursor(root, at_ns);
  VersionRecord version;
  while (cursor->next(version)) {
    versions.push_back(std::move(version));
  }
  return versions;
}

struct Catalog::StateCursor::Impl {
  // Version numbers grow with time, so the latest version as of at_ns is the highest number
  // among the versions of runs finished by then.
  Impl(SQLite::Database& db, std::string file, const std::string& root, std::int64_t at_ns)
      : path(std::move(file)),
        rows(db,
             std::string("SELECT ") + kVersionColumns +
                 " FROM files f JOIN versions v ON v.file_id = f.id JOIN runs r ON r.id = v.run_id "
                 "WHERE v.number = (SELECT max(v2.number) FROM versions v2 JOIN runs r2 ON r2.id = v2.run_id "
                 "WHERE v2.file_id = f.id AND r2.finished_ns <= ?) AND ",
             root, 1, [at_ns](SQLite::Statement& query) { query.bind(1, at_ns); }) {}

  std::string path;
  RootThenBelow rows;
};

Catalog::StateCursor::StateCursor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catalog::StateCursor::~StateCursor() = default;

bool Catalog::StateCursor::next(VersionRecord& version) {
  return guarded(impl_->path, [&] {
    SQLite::Statement* query = impl_->rows.step();
    if (query == nullptr) {
      return false;
    }
    version = read_version(*query);
    return true;
  });
}

std::unique_ptr<Catalog::StateCursor> Catalog::state_cursor(const std::string& root, std::int64_t at_ns) const {
  return guarded(impl_->path, [&] {
    return std::unique_ptr<StateCursor>(new StateCursor(std::make_unique<StateCursor::Impl>(impl_->db, impl_->path, root, at_ns)));
  });
}

std::vector<ChunkLocation> Catalog::chunks_of(std::int64_t version_id) const {
  return guarded(impl_->path, [&] {
    // Prepared once: a restore asks for every file's chunks, and parsing the query each time
    // cost as much as running it.
    std::lock_guard lock(impl_->chunks_of_mutex);
    if (!impl_->chunks_of) {
      impl_->chunks_of = std::make_unique<SQLite::Statement>(
          impl_->db,
          "SELECT c.hash, p.name, c.offset, c.length, c.raw_length, c.flags, p.id FROM version_chunks vc "
          "LEFT JOIN chunks c ON c.id = vc.chunk_id LEFT JOIN packs p ON p.id = c.pack_id "
          "WHERE vc.version_id = ? ORDER BY vc.seq");
    }
    SQLite::Statement& query = *impl_->chunks_of;
    query.reset();
    const ResetOnExit reset{query};
    query.bind(1, version_id);
    std::vector<ChunkLocation> chunks;
    while (query.executeStep()) {
      ChunkLocation location;
      const SQLite::Column hash = query.getColumn(0);
      if (hash.getBytes() != static_cast<int>(location.entry.id.size()) || query.getColumn(1).isNull()) {
        throw Error(ErrorKind::corrupt, "the catalog " + impl_->path + " lost track of a chunk of this version");
      }
      std::memcpy(location.entry.id.data(), hash.getBlob(), location.entry.id.size());
      location.pack = query.getColumn(1).getString();
      location.entry.offset = static_cast<std::uint32_t>(query.getColumn(2).getInt64());
      location.entry.length = static_cast<std::uint32_t>(query.getColumn(3).getInt64());
      location.entry.raw_length = static_cast<std::uint32_t>(query.getColumn(4).getInt64());
      location.entry.flags = static_cast<std::uint8_t>(query.getColumn(5).getInt());
      location.pack_order = query.getColumn(6).getInt64();
      chunks.push_back(std::move(location));
    }
    return chunks;
  });
}

std::uint64_t Catalog::encryptions() const {
  return guarded(impl_->path, [&] {
    return static_cast<std::uint64_t>(
        impl_->db.execAndGet("SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'encryptions'), 0)")
            .getInt64());
  });
}


namespace {

/// A statement whose rows come grouped (one version or one pack spans several rows), read one
/// group at a time: the row that starts the next group stays pending until the next call.
struct GroupedRows {
  GroupedRows(SQLite::Database& db, const std::string& sql, std::string file) : query(db, sql), path(std::move(file)) {}

  /// Reads the next group: `start` on its first row, then `row` on each of its rows, as long as
  /// `same` says a row belongs to the group `start` began. False at the end.
  template <typename Start, typename Same, typename Row>
  bool next(Start&& start, Same&& same, Row&& row) {
    return guarded(path, [&] {
      if (done || (!pending && !query.executeStep())) {
        done = true;
        return false;
      }
      start(query);
      do {
        if (!same(query)) {
          pending = true;
          return true;
        }
        row(query);
      } while (query.executeStep());
      pending = false;
      done = true;
      return true;
    });
  }

  SQLite::Statement query;
  std::string path;
  bool pending = false;
  bool done = false;
};

}  // namespace

struct Catalog::VersionCursor::Impl : GroupedRows {
  Impl(SQLite::Database& db, std::string file)
      : GroupedRows(db,
                    std::string("SELECT v.id, f.path, v.number, v.type, v.size, v.mtime_ns, v.mode, v.sha256, v.link_target, "
                                "v.inode, c.hash, ") + kMetadataColumns + " "
                    "FROM files f JOIN versions v ON v.file_id = f.id LEFT JOIN version_chunks vc ON vc.version_id = v.id "
                    "LEFT JOIN chunks c ON c.id = vc.chunk_id ORDER BY f.path, v.number, vc.seq",
                    std::move(file)) {}
};

Catalog::VersionCursor::VersionCursor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catalog::VersionCursor::~VersionCursor() = default;

bool Catalog::VersionCursor::next(ManifestVersion& version) {
  std::int64_t id = 0;
  return impl_->next(
      [&](SQLite::Statement& query) {
        id = query.getColumn(0).getInt64();
        version = ManifestVersion{};
        version.path = query.getColumn(1).getString();
        version.number = static_cast<std::uint32_t>(query.getColumn(2).getInt64());
        version.type = static_cast<EntryType>(query.getColumn(3).getInt());
        version.size = static_cast<std::uint64_t>(query.getColumn(4).getInt64());
        version.mtime_ns = query.getColumn(5).getInt64();
        version.mode = static_cast<std::uint32_t>(query.getColumn(6).getInt64());
        read_id(query.getColumn(7), version.sha256);
        version.link_target = query.getColumn(8).getString();
        version.inode = static_cast<std::uint64_t>(query.getColumn(9).getInt64());
        version.meta = read_metadata(query, 11);
      },
      [&](SQLite::Statement& query) { return query.getColumn(0).getInt64() == id; },
      [&](SQLite::Statement& query) {
        ChunkId chunk{};
        if (read_id(query.getColumn(10), chunk)) {
          version.chunks.push_back(chunk);
        }
      });
}

struct Catalog::PackCursor::Impl : GroupedRows {
  Impl(SQLite::Database& db, std::string file)
      : GroupedRows(db,
                    "SELECT p.name, p.size, c.hash, c.offset, c.length, c.raw_length, c.flags FROM packs p "
                    "LEFT JOIN chunks c ON c.pack_id = p.id ORDER BY p.name, c.offset",
                    std::move(file)) {}
};

Catalog::PackCursor::PackCursor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catalog::PackCursor::~PackCursor() = default;

bool Catalog::PackCursor::next(ManifestPack& pack) {
  const std::string& path = impl_->path;
  return impl_->next(
      [&](SQLite::Statement& query) {
        pack = ManifestPack{};
        pack.name = query.getColumn(0).getString();
        pack.size = static_cast<std::uint64_t>(query.getColumn(1).getInt64());
      },
      [&](SQLite::Statement& query) { return query.getColumn(0).getString() == pack.name; },
      [&](SQLite::Statement& query) {
        if (query.getColumn(2).isNull()) {
          return;  // a pack with no chunk left in it
        }
        pack.blobs.push_back(read_pack_entry(query, 2, path));
      });
}

std::unique_ptr<Catalog::VersionCursor> Catalog::version_cursor() const {
  return guarded(impl_->path, [&] {
    return std::unique_ptr<VersionCursor>(new VersionCursor(std::make_unique<VersionCursor::Impl>(impl_->db, impl_->path)));
  });
}

std::vector<ManifestPack> Catalog::packs() const {
  return guarded(impl_->path, [&] {
    std::vector<ManifestPack> packs;
    SQLite::Statement query(impl_->db, "SELECT name, size FROM packs ORDER BY name");
    while (query.executeStep()) {
      ManifestPack& pack = packs.emplace_back();
      pack.name = query.getColumn(0).getString();
      pack.size = static_cast<std::uint64_t>(query.getColumn(1).getInt64());
    }
    return packs;
  });
}

std::vector<PackEntry> Catalog::pack_blobs(const std::string& name) const {
  return guarded(impl_->path, [&] {
    std::vector<PackEntry> blobs;
    SQLite::Statement query(impl_->db, "SELECT c.hash, c.offset, c.length, c.raw_length, c.flags FROM packs p "
                                       "JOIN chunks c ON c.pack_id = p.id WHERE p.name = ? ORDER BY c.offset");
    query.bind(1, name);
    while (query.executeStep()) {
      blobs.push_back(read_pack_entry(query, 0, impl_->path));
    }
    return blobs;
  });
}

std::unique_ptr<Catalog::PackCursor> Catalog::pack_cursor() const {
  return guarded(impl_->path, [&] {
    return std::unique_ptr<PackCursor>(new PackCursor(std::make_unique<PackCursor::Impl>(impl_->db, impl_->path)));
  });
}

std::vector<ChunkUse> Catalog::versions_using(const std::vector<std::string>& packs, const std::vector<ChunkId>& chunks) const {
  if (packs.empty() && chunks.empty()) {
    return {};
  }
  return guarded(impl_->path, [&] {
    SQLite::Database& db = impl_->db;
    // The names and ids go in temporary tables (this connection only; the catalog file is not
    // written), so one query finds every use.
    db.exec("CREATE TEMP TABLE IF NOT EXISTS using_packs(name TEXT PRIMARY KEY)");
    db.exec("CREATE TEMP TABLE IF NOT EXISTS using_chunks(hash BLOB PRIMARY KEY)");
    SQLite::Transaction transaction(db);
    db.exec("DELETE FROM using_packs");
    db.exec("DELETE FROM using_chunks");
    SQLite::Statement add_pack(db, "INSERT OR IGNORE INTO using_packs(name) VALUES(?)");
    for (const std::string& name : packs) {
      add_pack.bind(1, name);
      add_pack.exec();
      add_pack.reset();
    }
    SQLite::Statement add_chunk(db, "INSERT OR IGNORE INTO using_chunks(hash) VALUES(?)");
    for (const ChunkId& id : chunks) {
      add_chunk.bind(1, id.data(), static_cast<int>(id.size()));
      add_chunk.exec();
      add_chunk.reset();
    }
    SQLite::Statement query(db,
                            "SELECT DISTINCT p.name, c.hash, f.path, v.number FROM chunks c JOIN packs p ON p.id = c.pack_id "
                            "JOIN version_chunks vc ON vc.chunk_id = c.id JOIN versions v ON v.id = vc.version_id "
                            "JOIN files f ON f.id = v.file_id "
                            "WHERE c.pack_id IN (SELECT p2.id FROM packs p2 JOIN using_packs u ON u.name = p2.name) "
                            "   OR c.hash IN (SELECT hash FROM using_chunks) "
                            "ORDER BY p.name, c.hash, f.path, v.number");
    std::vector<ChunkUse> uses;
    while (query.executeStep()) {
      ChunkUse use;
      use.pack = query.getColumn(0).getString();
      read_id(query.getColumn(1), use.chunk);
      use.path = query.getColumn(2).getString();
      use.number = static_cast<std::uint32_t>(query.getColumn(3).getInt64());
      uses.push_back(std::move(use));
    }
    db.exec("DELETE FROM using_packs");
    db.exec("DELETE FROM using_chunks");
    transaction.commit();
    return uses;
  });
}

std::vector<RecordedManifest> Catalog::recorded_manifests() const {
  return guarded(impl_->path, [&] {
    SQLite::Statement query(impl_->db, "SELECT seq, manifest FROM runs WHERE seq IS NOT NULL ORDER BY seq");
    std::vector<RecordedManifest> manifests;
    while (query.executeStep()) {
      manifests.push_back({static_cast<std::uint64_t>(query.getColumn(0).getInt64()), query.getColumn(1).getString()});
    }
    return manifests;
  });
}

std::uint64_t Catalog::last_seq() const {
  return guarded(impl_->path, [&] {
    return static_cast<std::uint64_t>(impl_->db.execAndGet("SELECT coalesce(max(seq), 0) FROM runs").getInt64());
  });
}

std::optional<RunRecord> Catalog::last_run(const std::string& kind) const {
  return guarded(impl_->path, [&]() -> std::optional<RunRecord> {
    SQLite::Statement query(impl_->db,
                            "SELECT id, coalesce(seq, 0), kind, started_ns, finished_ns, status, coalesce(error, ''), files_new, "
                            "files_changed, files_deleted, files_unchanged, files_skipped, bytes_scanned, bytes_read, "
                            "bytes_new, bytes_stored FROM runs WHERE ?1 = '' OR kind = ?1 ORDER BY id DESC LIMIT 1");
    query.bind(1, kind);
    if (!query.executeStep()) {
      return std::nullopt;
    }
    RunRecord run;
    run.id = query.getColumn(0).getInt64();
    run.seq = static_cast<std::uint64_t>(query.getColumn(1).getInt64());
    run.kind = query.getColumn(2).getString();
    run.started_ns = query.getColumn(3).getInt64();
    run.finished_ns = query.getColumn(4).getInt64();
    run.stats.status = query.getColumn(5).getString();
    run.stats.error = query.getColumn(6).getString();
    std::uint64_t* counters[] = {&run.stats.files_new,     &run.stats.files_changed, &run.stats.files_deleted,
                                 &run.stats.files_unchanged, &run.stats.files_skipped, &run.stats.bytes_scanned,
                                 &run.stats.bytes_read,    &run.stats.bytes_new,     &run.stats.bytes_stored};
    int column = 7;
    for (std::uint64_t* counter : counters) {
      *counter = static_cast<std::uint64_t>(query.getColumn(column++).getInt64());
    }
    return run;
  });
}

CatalogSummary Catalog::summary() const {
  return guarded(impl_->path, [&] {
    SQLite::Database& db = impl_->db;
    CatalogSummary summary;
    const auto number = [&db](const std::string& sql) {
      return static_cast<std::uint64_t>(db.execAndGet(sql).getInt64());
    };
    // The kept totals (kTotalsSchema): a row per folder, not per file or chunk, read once.
    SQLite::Statement folders(db, "SELECT coalesce(sum(files), 0), coalesce(sum(bytes), 0), coalesce(sum(versions), 0), "
                                  "coalesce(sum(version_bytes), 0) FROM folder_totals");
    folders.executeStep();
    summary.files = static_cast<std::uint64_t>(folders.getColumn(0).getInt64());
    summary.current_bytes = static_cast<std::uint64_t>(folders.getColumn(1).getInt64());
    summary.versions = static_cast<std::uint64_t>(folders.getColumn(2).getInt64());
    summary.original_bytes = static_cast<std::uint64_t>(folders.getColumn(3).getInt64());
    SQLite::Statement chunks(db, "SELECT chunks, raw_bytes, stored_bytes FROM chunk_totals");
    chunks.executeStep();
    summary.chunks = static_cast<std::uint64_t>(chunks.getColumn(0).getInt64());
    summary.unique_bytes = static_cast<std::uint64_t>(chunks.getColumn(1).getInt64());
    summary.compressed_bytes = static_cast<std::uint64_t>(chunks.getColumn(2).getInt64());
    summary.stored_bytes = number("SELECT coalesce(sum(size), 0) FROM packs");
    summary.packs = number("SELECT count(*) FROM packs");
    summary.runs = number("SELECT count(*) FROM runs WHERE status != 'failed'");
    return summary;
  });
}

std::uint64_t Catalog::file_count_under(const std::string& root) const {
  return guarded(impl_->path, [&] {
    // The files in `root` and in the folders below it, and `root` itself when it is a file.
    SQLite::Statement query(impl_->db, std::string("SELECT (SELECT coalesce(sum(files), 0) FROM folder_totals WHERE folder = ?1 "
                                                   "OR (folder >= ?2 AND folder < ?3)) + coalesce((SELECT v.type = ?4 FROM "
                                                   "files f JOIN versions v ON v.file_id = f.id WHERE f.path = ?1 "
                                                   "ORDER BY v.number DESC LIMIT 1), 0)"));
    query.bind(1, root);
    query.bind(2, below_start(root));
    query.bind(3, below_end(root));
    query.bind(4, static_cast<int>(EntryType::file));
    query.executeStep();
    return static_cast<std::uint64_t>(query.getColumn(0).getInt64());
  });
}


std::uint64_t CatalogSummary::saved_by_dedup_bytes() const {
  return original_bytes > unique_bytes ? original_bytes - unique_bytes : 0;
}

std::uint64_t CatalogSummary::saved_by_compression_bytes() const {
  return unique_bytes > compressed_bytes ? unique_bytes - compressed_bytes : 0;
}

void to_json(nlohmann::ordered_json& json, const CatalogSummary& summary) {
  json = {
      {"files", summary.files},
      {"versions", summary.versions},
      {"current_bytes", summary.current_bytes},
      {"original_bytes", summary.original_bytes},
      {"unique_bytes", summary.unique_bytes},
      {"stored_bytes", summary.stored_bytes},
      {"saved_by_dedup_bytes", summary.saved_by_dedup_bytes()},
      {"saved_by_compression_bytes", summary.saved_by_compression_bytes()},
      {"chunks", summary.chunks},
      {"packs", summary.packs},
      {"runs", summary.runs},
  };
}

void to_json(nlohmann::ordered_json& json, const RunRecord& run) {
  json = {
      {"kind", run.kind},
      {"started", format_utc(run.started_ns)},
      {"seconds", seconds_between(run.started_ns, run.finished_ns)},
      {"status", run.stats.status},
      {"error", run.stats.error},
  };
  if (run.kind == "clean") {
    json["versions_removed"] = run.stats.files_deleted;  // a clean records the versions it removed there
    return;
  }
  json["files_new"] = run.stats.files_new;
  json["files_changed"] = run.stats.files_changed;
  json["files_deleted"] = run.stats.files_deleted;
  json["files_skipped"] = run.stats.files_skipped;
}

void to_json(nlohmann::ordered_json& json, const VersionRecord& version) {
  json = {
      {"version", version.number},
      {"date", format_utc_exact(version.run_finished_ns)},
      {"type", to_string(version.type)},
      {"size", version.size},
      {"stored", version.stored_size},
      {"mode", version.mode},
      {"mtime", format_utc(version.mtime_ns)},
  };
  if (version.type == EntryType::file) {
    json["sha256"] = to_hex(version.sha256);
  }
  if (version.type == EntryType::symlink) {
    json["target"] = version.link_target;
  }
  const FileMetadata& meta = version.meta;
  if (meta.recorded) {
    json["uid"] = meta.uid;
    json["gid"] = meta.gid;
    json["owner"] = meta.owner;
    json["group"] = meta.group;
    if (meta.links > 1) {
      json["links"] = meta.links;
    }
    if (version.type == EntryType::char_device || version.type == EntryType::block_device) {
      json["device"] = std::to_string(major(meta.rdev)) + ":" + std::to_string(minor(meta.rdev));
    }
    if (!meta.xattrs.empty()) {
      nlohmann::ordered_json names = nlohmann::ordered_json::array();
      for (const ExtendedAttribute& attribute : meta.xattrs) {
        names.push_back(attribute.name);
      }
      json["xattrs"] = std::move(names);
    }
  }
}

}  // namespace mybackup
