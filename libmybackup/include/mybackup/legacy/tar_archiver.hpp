#pragma once
// The archives of the legacy scheduler: one plain tar file per schedule, <archive_dir>/<name>.tar,
// readable by any tar (pax interchange format, written with libarchive).
//
// An archive of /home/me/documents holds "documents/" and everything below it, named relative to
// the parent of the source ("documents/report.odt"); an archive of a single file holds that file
// under its own name. Kept: file contents, directories, symlinks (as links, never followed below
// the source itself), hard links (stored once), permissions, owner ids and modification times.
// Sockets are skipped (tar cannot hold them); the archive directory itself is never archived,
// even when it lies inside the source.
//
// The archive is written to a temporary file in the archive directory (".tmp-<name>-<random>.tar",
// mode 0600), fsynced, then renamed to <name>.tar and the directory fsynced: a crash or an error
// never leaves a half archive under the real name, and the previous <name>.tar stays until the
// new one is complete.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mybackup {

struct ArchiveResult {
  std::string archive_path;     // <archive_dir>/<name>.tar
  std::uint64_t bytes = 0;      // size of the .tar written
  std::uint64_t files = 0;      // regular files (hard links included)
  std::uint64_t directories = 0;
  std::uint64_t symlinks = 0;
  std::uint64_t others = 0;     // fifos and device nodes
  /// Entries left out or changed while being read, one "path: reason" each (the archive is still
  /// complete for everything else).
  std::vector<std::string> problems;
};

/// An archive found in the archive directory.
struct ArchiveInfo {
  std::string file_name;  // "docs_morning.tar"
  std::int64_t mtime_ns = 0;
  std::uint64_t bytes = 0;
};

class TarArchiver {
 public:
  /// `archive_directory` is created (mode 0700) on the first write if missing.
  explicit TarArchiver(std::string archive_directory);

  /// "<archive_dir>/<name>.tar".
  std::string archive_path(const std::string& name) const;

  /// Archives `source` (an absolute path) into <name>.tar, replacing an older one only when the
  /// new one is complete. `should_stop` is called between entries and every MiB of data; when it
  /// returns true the temporary file is removed and Error(interrupted) is thrown.
  /// Errors: Error(not_found) if `source` does not exist; Error(no_space) for a full device;
  /// Error(io) if the archive cannot be written. On any error nothing is left behind.
  ArchiveResult write(const std::string& source, const std::string& name,
                      const std::function<bool()>& should_stop = {}) const;

 private:
  std::string directory_;
};

/// The "*.tar" files of `archive_directory` (temporaries and hidden files left out), oldest
/// first (ties by name). Empty if the directory does not exist; Error(io) if it cannot be read.
std::vector<ArchiveInfo> list_archives(const std::string& archive_directory);

}  // namespace mybackup
