#pragma once
// Change detection: which entries of a source a backup records, and what a changed file holds.
//
// A backup reads only the files whose metadata differ from their latest recorded version.
// ChangePlanner compares one source's scan (scanner.hpp) with the latest version the catalog
// holds for every path of that source (Catalog::latest_cursor), as two streams sorted by path,
// entry by entry (plan_changes does the same for a scan and a map held in memory):
//
//   new        the catalog has no version of the path, or its latest one is a deletion marker (a
//              path that comes back). Its number continues the path's history (1 if it has none).
//   unchanged  the latest version has the same type, owner, group and ctime_ns (the inode change
//              time, which moves with the mode, the links and the extended attributes), and
//                regular file: the same mode, mtime_ns, size and inode;
//                directory, fifo, device: the same mode and mtime_ns;
//                symlink:      the same target and mtime_ns (a link's mode means nothing on Linux,
//                              restore sets its target and time).
//              A version recorded before metadata was kept (catalog schema 1) is never unchanged:
//              the first backup after the upgrade records every path again, once.
//              Nothing is recorded for it, and a file is not read.
//   changed    anything else, a change of type (file, directory, symlink) included: a new version
//              of the path, numbered after its latest one.
//   deleted    the catalog has a live version of a path the scan did not find. A deletion marker
//              is recorded, unless the path is at or below one the scan could not read
//              (ScanResult::problems): then its fate is unknown and its history stays as it is.
//
// New and changed regular files have to be read (ChangePlan::reads); ContentReader turns each
// into the version it becomes: its chunk ids (FastCDC cuts, HMAC-SHA256 ids) and its SHA-256.
// Directories, symlinks, fifos, devices and deletion markers are recorded from their metadata alone
// (ChangePlan::direct). Every version carries its owner and group (ids, and names from this
// system's databases), link count, device number and extended attributes (FileMetadata).
//
// Nothing here touches the catalog or the destination: the caller passes the catalog's view in
// and records the result.

#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/format/chunker.hpp"
#include "mybackup/format/manifest.hpp"
#include "mybackup/source/scanner.hpp"
#include "mybackup/util/env.hpp"
#include "mybackup/util/open_directories.hpp"

namespace mybackup {

/// What a run does with an entry, as reported to FileCallback.
enum class FileAction { added, changed, deleted, skipped };

/// Called from worker threads (the callee must be thread-safe). `path` is absolute.
using FileCallback = std::function<void(FileAction action, EntryType type, const std::string& path,
                                        std::uint64_t size, const std::string& note)>;

/// A new or changed regular file: its content has to be read.
struct FileToRead {
  ScanEntry entry;
  std::uint32_t number = 0;               // the number of the version it becomes
  FileAction action = FileAction::added;  // added (new) or changed
};

/// What a backup records for one source, in scan order.
struct ChangePlan {
  std::vector<FileToRead> reads;
  std::vector<ManifestVersion> direct;  // directories, symlinks and deletion markers: no data to read
};

/// Paths whose latest version is read again even when it looks unchanged (its data is in a pack
/// that is missing or damaged), by path with the version numbers concerned.
using VersionsToReread = std::unordered_map<std::string, std::vector<std::uint32_t>>;

/// The catalog's side: the next path (root first, then in increasing byte order) with its
/// latest version; false at the end. Catalog::LatestCursor::next fits.
using LatestSource = std::function<bool(std::string& path, LatestVersion& version)>;

/// Compares one source's walk with its catalog history as they stream by: a ScanSink (feed it
/// scan_tree's entries and problems in the walk's order), then finish(). Holds one pending
/// catalog row and the paths of the walk's problems, never a list of the tree.
///
/// Adds to `stats`: bytes_scanned (every regular file in the scan), files_unchanged, and
/// files_new, files_changed, files_deleted for the versions it records directly (directories
/// are not counted) and gives to `on_direct` (directories, symlinks, fifos, devices and deletion
/// markers: recorded without reading). Files to read go to `on_read` and are not counted: the caller counts them
/// once it knows whether they could be read. Calls `on_file` (optional) once for each version
/// recorded directly, with added, changed or deleted (for a deletion, the type and size of the
/// path's latest version). Throws what the callbacks and `latest` throw, and Error(usage) for
/// entries out of order. Not thread-safe; the callbacks run on the caller's thread.
class ChangePlanner final : public ScanSink {
 public:
  using ReadSink = std::function<void(FileToRead&& file)>;
  using VersionSink = std::function<void(ManifestVersion&& version)>;
  /// Reads the first catalog row. `reread`, `stats` and `on_file` must outlive it.
  ChangePlanner(LatestSource latest, const VersionsToReread& reread, RunStats& stats, const FileCallback& on_file,
                ReadSink on_read, VersionSink on_direct);
  void entry(ScanEntry&& entry) override;
  void problem(ScanProblem&& problem) override;
  /// The catalog's paths the walk did not reach: deletion markers, unless a problem hid them.
  void finish();

 private:
  void advance();
  void pass_latest_before(const std::string& path);  // the catalog's paths before it are missing
  void missing(const std::string& path, const LatestVersion& last);
  bool must_reread(const std::string& path, std::uint32_t number) const;

  LatestSource latest_;
  const VersionsToReread& reread_;
  RunStats& stats_;
  const FileCallback& on_file_;
  ReadSink on_read_;
  VersionSink on_direct_;
  std::vector<std::string> problem_paths_;
  std::string last_entry_;
  bool have_latest_ = false;
  std::string latest_path_;
  LatestVersion latest_version_;
};

/// Compares `scan` (one source) with `latest` (Catalog::latest_under of that source) and appends
/// what changed to `plan`, as ChangePlanner does (same counts and callbacks); plan.direct in path
/// order.
void plan_changes(const ScanResult& scan, const std::unordered_map<std::string, LatestVersion>& latest,
                  ChangePlan& plan, RunStats& stats, const FileCallback& on_file, const VersionsToReread& reread = {});

/// How reading a file ended.
enum class ReadOutcome {
  read,                // `version` holds the file
  changed_while_read,  // its size or mtime moved, or it gave another number of bytes than its size
  unreadable,          // vanished, no longer a regular file, or an open or read error
  stopped,             // the caller's stop check said so; the file is abandoned
};

struct ReadResult {
  ReadOutcome outcome = ReadOutcome::read;
  std::string problem;  // one line for the report ("cannot read: …"); empty when read
};

/// Turns a regular file's bytes into the version it becomes. One per thread: it owns its read
/// buffer and HMAC state. The chunker is shared (it is immutable) and must outlive the reader.
class ContentReader {
 public:
  /// Receives each chunk in file order with its id. `chunk` is valid during the call only.
  using ChunkSink = std::function<void(const ChunkId& id, ByteView chunk)>;
  /// Polled before each chunk and once after the last; true abandons the file.
  using StopCheck = std::function<bool()>;

  /// `id_key`: the repository's HMAC key of chunk ids (KeySet::id_key).
  ContentReader(Env& env, const Chunker& chunker, ByteView id_key);

  /// Reads `file.entry.path` (opened through the Env relative to its directory, which is opened
  /// without following links another user could have placed: util/path_walk.hpp; the file itself
  /// must be the inode and device the scan recorded, else it is unreadable), cuts it into
  /// chunks and passes each to `on_chunk`. On success fills `version`: path, type file, number,
  /// mode, mtime and inode as fstat gave them when the file was opened, size, SHA-256 and the
  /// chunk ids in file order. A file whose size or mtime changed while it was read (or whose
  /// bytes did not add up to its size) gives changed_while_read: the caller may read it again.
  /// Per-file problems are returned, never thrown; what `on_chunk` throws propagates.
  ReadResult read(const FileToRead& file, ManifestVersion& version, const ChunkSink& on_chunk,
                  const StopCheck& stopped);

 private:
  Env& env_;
  const Chunker& chunker_;
  HmacSha256 hmac_;
  /// The open directory `directory` (absolute), opened link-free; throws what
  /// open_directory_path throws. A few stay open: readers take files largest first, so the
  /// folders of consecutive files are often apart.
  int open_parent(const std::string& directory);

  // Not zeroed when allocated: a reader of small files touches only its first pages (zeroing
  // twice the largest chunk cost each reader thousands of page faults for nothing).
  std::unique_ptr<std::uint8_t[]> buffer_;
  std::size_t buffer_size_;
  const bool privileged_ = running_as_root();  // records trusted.* and security.* attributes
  OpenDirectories parents_{64};
  std::string last_parent_;  // the folder of the previous file
};

}  // namespace mybackup
