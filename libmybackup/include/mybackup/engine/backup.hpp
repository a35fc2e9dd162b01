#pragma once
// One backup run: scan the sources, store what changed, record it.
//
//   scan (this thread) → change detection against the catalog (change_detection.hpp): an entry
//   whose size, mtime, inode and mode match its latest version is not read
//   → readers (one per core): read, FastCDC-chunk, SHA-256 of the file, HMAC id of each chunk;
//     a chunk whose id is already known (catalog or this run) is only referenced
//   → compressors (one per core): zstd (kept only if it shrinks), AES-256-GCM blob
//   → writer: appends blobs to a pack → uploader: stores each full pack (write + fsync), so
//     storage overlaps with compression
//   → when every pack is durable: the run's manifest, then one catalog transaction (commit.hpp).
// The queues between stages are bounded in bytes, so memory does not grow with the data.
//
// A file whose size or mtime changed while it was read (or that did not give as many bytes as
// its size) is read again, three attempts in all. Per-file problems (unreadable, a read error,
// vanished, still changing after the last attempt, special files) are collected in the report,
// never thrown; destination and catalog failures throw, and then nothing of the run is recorded
// in the catalog (packs already written are harmless orphans).

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/engine/change_detection.hpp"  // FileAction, FileCallback
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/source/scanner.hpp"
#include "mybackup/util/env.hpp"

namespace mybackup {

struct BackupSource {
  std::string path;  // absolute, normalized
  std::vector<std::string> exclude;
};

struct BackupOptions {
  std::vector<BackupSource> sources;
  int compression_level = 3;  // 0: store raw
  bool dry_run = false;       // read and report; write nothing anywhere
  unsigned threads = 0;       // workers per stage; 0: one per core
  unsigned uploads = 1;       // packs stored at once (a remote destination: transfer.connections)
  FileCallback on_file;       // optional
  /// Where the sources are read from and the run's times come from (the scanner and the reader
  /// threads share it). nullptr: Env::default_env().
  Env* env = nullptr;
  /// Optional: when it becomes true the run stops at the next chunk and throws
  /// Error(interrupted) without writing a manifest or touching the catalog. Once the manifest
  /// is being written the run completes (that step is short).
  const std::atomic<bool>* cancel = nullptr;
  /// Where the run keeps the list of what it recorded until its manifest is written (unnamed
  /// temporary files: ManifestSpool). Empty: $TMPDIR, else /tmp. The session gives the home.
  std::string spool_directory;
  /// The text of config.yaml, recorded in the run's manifest so that a new machine can get the
  /// settings back from the destination (`init --from`). Optional.
  std::string config;
};

/// A pack the catalog places chunks in that the destination does not hold as recorded.
struct UntrustedPack {
  std::string name;
  std::string reason;  // "missing from the destination", "N bytes on the destination instead of M"
};

struct BackupReport {
  RunStats stats;
  std::vector<ScanProblem> problems;  // every skipped file, with its reason
  /// Packs the run did not trust (checked once per run against the destination's listing): no
  /// chunk of theirs was deduplicated against, and every file whose latest version used one was
  /// read again, so the run stored its data anew where the source still has it. Packs that
  /// `verify --repair` recorded as damaged are treated so too, without being listed here again.
  std::vector<UntrustedPack> untrusted_packs;
  std::uint64_t seq = 0;              // 0 when no manifest was written
  std::string manifest_key;
  std::uint64_t packs_written = 0;
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;
  // Where the time went (seconds).
  double scan_seconds = 0;   // the walk and its comparison with the catalog (files are read meanwhile)
  double store_seconds = 0;  // reading and storing what was left when the walk ended
  double commit_seconds = 0;
};

/// The report as JSON (`backup --json`): status, seconds, the RunStats counts, packs, manifest,
/// skipped [{path, reason}] and timing {scan_seconds, store_seconds, commit_seconds}.
void to_json(nlohmann::ordered_json& json, const BackupReport& report);

/// What the run writes to, or only reads from for a dry run.
struct BackupTarget {
  const KeySet* keys = nullptr;        // chunk ids and gear table
  ChunkerParams chunker;               // the repository's parameters
  Repository* repository = nullptr;    // REQUIRES: non-null unless dry_run
  /// The writer lock held for the run (optional). If it is lost, the run stops with
  /// Error(locked) (before the next file, and in any case before writing its manifest).
  const RepositoryLock* lock = nullptr;

  /// The size packs are closed at: the repository's own (RepositoryInfo::pack_target_size), or
  /// the default without one (a dry run before the destination exists).
  std::size_t pack_target_size() const {
    return repository != nullptr ? repository->info().pack_target_size : kDefaultPackTargetSize;
  }

  /// Writing to `repository` with its own keys and chunker parameters (no lock).
  static BackupTarget writing_to(Repository& repository) {
    BackupTarget target;
    target.keys = &repository.keys();
    target.chunker = repository.info().chunker;
    target.repository = &repository;
    return target;
  }
};

/// Runs one backup. The caller holds the repository's writer lock (unless dry_run) and has
/// replayed the destination's manifests into the catalog (replay.hpp).
BackupReport run_backup(Catalog& catalog, const BackupTarget& target, const BackupOptions& options);

}  // namespace mybackup
