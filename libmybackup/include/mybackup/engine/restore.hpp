#pragma once
// Writing recorded versions back to disk, verified, without ever destroying data unasked.
//
// A plan names a root directory and, below it, relative paths with the version to put there.
// For every file: its chunks are read from the repository (each one authenticated, decompressed
// and its id recomputed), written to a temporary file in the target directory, the whole file's
// SHA-256 is compared with the recorded one, mode and mtime are set, and only then is it renamed
// into place. A file that cannot be restored leaves nothing at its target path.
//
// Safety rules:
//  - relative paths may not be absolute or contain "." or ".." components;
//  - below the root every directory is opened with O_NOFOLLOW, so a symlink (or a file) in the
//    way is reported, never followed: nothing is written outside the root;
//  - an existing file that differs is left alone and reported, unless ExistingFile::overwrite;
//    an identical one (same type, same content or link target) is left alone and counted;
//  - directories the restore creates get their recorded mode and mtime after their contents are
//    written; existing directories keep theirs unless ExistingFile::overwrite.
// Per-item problems are collected in the report, never thrown.

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/util/env.hpp"

namespace mybackup {

enum class ExistingFile { keep, overwrite };

struct RestoreItem {
  std::string relative;   // '/'-separated path below the root; "" is the root itself
  VersionRecord version;  // a file, directory or symlink (never a deletion marker)
};

/// Gives the next item (false at the end).
using RestoreItemSource = std::function<bool(RestoreItem& item)>;

struct RestorePlan {
  std::string root;  // absolute; created with its parents if missing
  std::vector<RestoreItem> items;  // held in memory, in any order
  /// When set, used instead of `items`: starts a reading of the items, one at a time in
  /// increasing byte order of `relative` (a directory of millions of files: never held whole;
  /// each restore of the plan reads it afresh). Read on the calling thread.
  std::function<RestoreItemSource()> open_items;
};

/// Every item of `plan`, in order of `relative`, held in memory: for small plans and tests.
std::vector<RestoreItem> items_of(const RestorePlan& plan);

enum class RestoreAction { restored, identical, failed, would_restore };

/// Called once per item, from the worker threads but never two calls at once.
using RestoreCallback = std::function<void(RestoreAction action, const RestoreItem& item, const std::string& note)>;

struct RestoreOptions {
  ExistingFile existing = ExistingFile::keep;
  bool dry_run = false;  // check and report; write nothing
  RestoreCallback on_item;
  const std::atomic<bool>* cancel = nullptr;  // stop before the next item or chunk; Error(interrupted)
  /// Restore owners, setuid and setgid bits, device nodes and the `trusted.*` and `security.*`
  /// attributes (see RestoreReport). Root's right by default; false restores as any other user
  /// would (tar's --no-same-owner).
  bool privileged = running_as_root();
  /// Files restored at once, each by its own worker thread; 0: one per core (a remote
  /// destination's waits are the read-ahead's, below).
  unsigned threads = 0;
  /// Reads from a remote destination, where each read is a round trip: the neighbouring chunks
  /// of a pack are read together, `read_ahead` such regions at once ahead of the workers
  /// (engine/pack_region_reader.hpp); transfer.connections. 0 (a local disk, which serves single
  /// reads faster and in less memory): each chunk is read on its own when a worker needs it.
  unsigned read_ahead = 0;
  /// Items held at once: the restore reads the plan a batch at a time.
  std::size_t batch_items = 4096;
  /// Where the files are written (and existing ones read for comparison), from the worker
  /// threads. nullptr: Env::default_env(). The root and its missing parents are opened
  /// and created through it too, link-free (util/path_walk.hpp): a root that is a symbolic link,
  /// or a path through a link another user owns, is refused with Error(denied).
  Env* env = nullptr;
};

struct RestoreProblem {
  std::string target;  // where it was to be written
  std::string path;    // the backed-up path
  std::uint32_t number = 0;
  std::string reason;
};

struct RestoreReport {
  std::string root;  // the plan's root
  std::uint64_t files = 0;
  std::uint64_t directories = 0;
  std::uint64_t symlinks = 0;
  std::uint64_t special = 0;     // fifos and device nodes
  std::uint64_t hard_links = 0;  // files restored as another name of a file restored before (counted in files too)
  std::uint64_t identical = 0;
  std::uint64_t bytes = 0;
  /// Metadata left out, reported but never a failure. Run by a user other than root, a restore
  /// gives every item to that user (owners_not_restored counts those recorded with another
  /// owner), and never sets setuid or setgid bits (a user's setuid file must not come back
  /// setuid-root, nor another user's setuid-yours); run by root it restores the owner, by name
  /// where this system knows the name, else by id, and then the setuid and setgid bits too,
  /// except for versions recorded before owners were (their owner is unknown).
  std::uint64_t owners_not_restored = 0;
  std::uint64_t setid_bits_dropped = 0;
  std::uint64_t xattrs_not_restored = 0;  // a namespace only root may set, or unsupported here
  std::vector<RestoreProblem> problems;
};

/// The report as JSON (`restore --json`): root, the counts (metadata left out under
/// "not_restored": owners, setid_bits, xattrs), and problems [{target, path, version,
/// reason}] with each target as an absolute path below root.
void to_json(nlohmann::ordered_json& json, const RestoreReport& report);

/// Error(usage) unless `relative` is "" or made of non-empty components other than "." and "..",
/// without a leading '/'.
void check_relative_path(std::string_view relative);

/// Restores every item of the plan, a batch of a few thousand at a time in path order (a plan
/// of millions of items is never held): in each, directories first (parents before children), then files,
/// symlinks, fifos and device nodes (root only) on one worker thread per core, each with its
/// owner, mode, extended attributes and time (see RestoreReport for what a user other than root
/// gets). Throws only for problems with the root itself (cannot be created or opened), when
/// cancelled (Error(interrupted)), or when the repository stops answering (Error(transient), once
/// its retries are spent: every later file would wait through them too); in the last two cases
/// after giving the directories restored so far their mode and mtime. Every file restored by then
/// is complete; a file cut short is removed.
RestoreReport restore(const Catalog& catalog, const Repository& repository, const RestorePlan& plan,
                      const RestoreOptions& options);

}  // namespace mybackup
