#pragma once
// Walking a source tree: what is there, with the metadata the change detector needs.
//
// Symbolic links are recorded as links (never followed). Empty directories are kept.
// Fifos and character and block devices are recorded (their device number too); sockets are
// skipped silently (the program that listens on one creates it again).
// Entries the scanner cannot read (permission denied, vanished while walking) are reported as
// problems, never thrown, so one unreadable directory does not stop a backup.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/source/metadata.hpp"

namespace mybackup {

class Env;

/// What a path is. `deleted` only appears in history (a deletion marker); the scanner never
/// produces it.
enum class EntryType : std::uint8_t {
  file = 1,
  directory = 2,
  symlink = 3,
  deleted = 4,
  fifo = 5,
  char_device = 6,
  block_device = 7,
};
/// "file", "directory", "symlink", "deleted", "fifo", "character device" or "block device".
std::string_view to_string(EntryType type);

struct ScanEntry {
  std::string path;        // absolute, normalized (no trailing slash, no "." or "..")
  EntryType type = EntryType::file;
  std::uint32_t mode = 0;  // permission bits (07777)
  std::uint64_t size = 0;  // bytes for files, target length for symlinks, 0 for directories
  std::int64_t mtime_ns = 0;
  std::uint64_t inode = 0;
  std::string link_target;  // symlinks only
  /// As lstat gave it (stat_metadata): owner and group ids (names are added when a version is
  /// recorded), ctime, device, links, rdev. Extended attributes: directories only (read through
  /// the handle the scan holds); a file's are read with its content, through the handle the read
  /// opens. Symlinks, fifos and devices: none recorded.
  FileMetadata meta;
};

struct ScanProblem {
  std::string path;
  std::string reason;  // one line, e.g. "skipped: fifo" or "cannot open directory: Permission denied"
};

/// Exclude patterns of one source, as the user wrote them ("*.tmp", "~*", ".DS_Store", "build/",
/// "docs/*.pdf").
///  - A pattern without '/' is a glob (fnmatch) matched against the entry's name: "*.tmp".
///  - A pattern containing '/' (other than a trailing one) is matched against the path relative
///    to the source, where '*' and '?' do not cross '/': "docs/*.pdf", "build/cache".
///  - A trailing '/' restricts the pattern to directories: "node_modules/" skips those directories
///    (and everything below them) but not a file of that name.
/// An excluded directory is not descended into.
class ExcludeMatcher {
 public:
  ExcludeMatcher() = default;
  explicit ExcludeMatcher(std::vector<std::string> patterns);

  /// `relative_path` is relative to the source root, '/'-separated, never empty.
  bool excluded(std::string_view relative_path, bool is_directory) const;

  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  struct Pattern {
    std::string glob;
    bool directory_only = false;
    bool match_path = false;  // match the relative path instead of the name
  };
  std::vector<std::string> patterns_;
  std::vector<Pattern> compiled_;
};

/// Splits "*.tmp,~*, .DS_Store" at commas, trimming spaces and dropping empty items.
std::vector<std::string> split_patterns(std::string_view comma_separated);

/// Receives a walk as it goes (scan_tree), on the walking thread.
///
/// Entries arrive in increasing byte order of their paths (the order of std::string and of the
/// catalog's paths), the root first: "/r", "/r/a", "/r/a.txt", "/r/a/x" ('.' sorts before '/').
/// A problem about a path P arrives before any entry that sorts after P + "/": a reader comparing
/// the walk with a sorted list knows, when it passes a path, whether the walk could see it.
/// The walk holds the names of the directories it is in, never a list of every entry.
class ScanSink {
 public:
  virtual ~ScanSink() = default;
  virtual void entry(ScanEntry&& entry) = 0;
  virtual void problem(ScanProblem&& problem) = 0;
};

/// Walks `root` (an absolute path to a directory or a single file) through `env` (nullptr: the
/// real filesystem, Env::default_env()) and delivers what it finds to `sink`. Throws
/// Error(not_found) if the root does not exist and Error(io) if it cannot be read at all;
/// everything below the root that cannot be read becomes a ScanProblem. A member whose type
/// changed between the listing of its directory and its examination is a problem too ("changed
/// while being scanned"). Runs on the calling thread only; what `sink` throws propagates.
void scan_tree(const std::string& root, const ExcludeMatcher& excludes, ScanSink& sink, Env* env = nullptr);

struct ScanResult {
  std::vector<ScanEntry> entries;  // sorted by path; the root itself is included
  std::vector<ScanProblem> problems;  // sorted by path
};

/// The same walk collected in memory: for small trees and tests (a backup streams it).
ScanResult scan_tree(const std::string& root, const ExcludeMatcher& excludes, Env* env = nullptr);

/// Makes `path` absolute (against the current directory) and lexically normal: no "." or ".."
/// components, no duplicate or trailing slashes. Does not touch the filesystem.
std::string normalize_path(std::string_view path);

}  // namespace mybackup
