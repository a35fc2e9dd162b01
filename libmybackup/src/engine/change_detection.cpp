#include "mybackup/engine/change_detection.hpp"

#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/util/path_walk.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mybackup {

namespace {

constexpr std::size_t kReadBlock = 1024 * 1024;

std::int64_t mtime_of(const struct stat& info) { return time_ns(info.st_mtim); }

/// Owner, group and the inode change time (which moves with mode, links and extended attributes)
/// are as recorded. A version recorded before metadata was kept never matches: the next backup
/// records the file again, once, with its metadata.
bool same_metadata(const ScanEntry& entry, const LatestVersion& last) {
  return last.meta_recorded && last.uid == entry.meta.uid && last.gid == entry.meta.gid &&
         last.ctime_ns == entry.meta.ctime_ns;
}

/// The names of the owner and group, added to what the stat gave.
void add_names(FileMetadata& meta) {
  OwnerNames& names = system_owner_names();
  meta.owner = names.user_name(meta.uid);
  meta.group = names.group_name(meta.gid);
}

bool is_at_or_below(const std::string& path, const std::string& root) {
  if (path == root) {
    return true;
  }
  const std::string prefix = root == "/" ? "/" : root + "/";
  return path.compare(0, prefix.size(), prefix) == 0;
}

/// True if `entry` is as `last` recorded it (same type; see the rules in the header).
bool unchanged(const ScanEntry& entry, const LatestVersion& last) {
  if (last.type != entry.type || !same_metadata(entry, last)) {
    return false;
  }
  switch (entry.type) {
    case EntryType::file:
      return last.mode == entry.mode && last.mtime_ns == entry.mtime_ns && last.size == entry.size &&
             last.inode == entry.inode;
    case EntryType::symlink:
      return last.link_target == entry.link_target && last.mtime_ns == entry.mtime_ns;
    default:
      return last.mode == entry.mode && last.mtime_ns == entry.mtime_ns;
  }
}

ManifestVersion metadata_version(const ScanEntry& entry, std::uint32_t number) {
  ManifestVersion version;
  version.path = entry.path;
  version.type = entry.type;
  version.number = number;
  version.mode = entry.mode;
  version.mtime_ns = entry.mtime_ns;
  version.size = entry.size;
  version.inode = entry.inode;
  version.link_target = entry.link_target;
  version.meta = entry.meta;
  add_names(version.meta);
  return version;
}

}  // namespace

ChangePlanner::ChangePlanner(LatestSource latest, const VersionsToReread& reread, RunStats& stats,
                             const FileCallback& on_file, ReadSink on_read, VersionSink on_direct)
    : latest_(std::move(latest)),
      reread_(reread),
      stats_(stats),
      on_file_(on_file),
      on_read_(std::move(on_read)),
      on_direct_(std::move(on_direct)) {
  advance();
}

void ChangePlanner::advance() { have_latest_ = latest_(latest_path_, latest_version_); }

void ChangePlanner::pass_latest_before(const std::string& path) {
  while (have_latest_ && latest_path_ < path) {
    missing(latest_path_, latest_version_);
    advance();
  }
}

void ChangePlanner::missing(const std::string& path, const LatestVersion& last) {
  if (last.type == EntryType::deleted) {
    return;
  }
  const bool unknown = std::any_of(problem_paths_.begin(), problem_paths_.end(),
                                   [&path](const std::string& problem) { return is_at_or_below(path, problem); });
  if (unknown) {
    return;  // below what the scan could not read: its fate is unknown
  }
  ManifestVersion marker;
  marker.path = path;
  marker.type = EntryType::deleted;
  marker.number = last.number + 1;
  if (last.type != EntryType::directory) {
    ++stats_.files_deleted;
  }
  if (on_file_) {
    on_file_(FileAction::deleted, last.type, path, last.size, "");
  }
  on_direct_(std::move(marker));
}

void ChangePlanner::entry(ScanEntry&& entry) {
  if (!last_entry_.empty() && !(last_entry_ < entry.path)) {
    throw Error(ErrorKind::usage, "ChangePlanner: entries out of order at " + entry.path);
  }
  last_entry_ = entry.path;
  pass_latest_before(entry.path);
  const bool found = have_latest_ && latest_path_ == entry.path;
  const bool existed = found && latest_version_.type != EntryType::deleted;
  const std::uint32_t number = found ? latest_version_.number + 1 : 1;
  const bool same = existed && unchanged(entry, latest_version_) && !must_reread(entry.path, latest_version_.number);
  if (found) {
    advance();
  }
  if (entry.type == EntryType::file) {
    stats_.bytes_scanned += entry.size;
  }
  if (same) {
    if (entry.type != EntryType::directory) {
      ++stats_.files_unchanged;
    }
    return;
  }
  const FileAction action = existed ? FileAction::changed : FileAction::added;
  if (entry.type == EntryType::file) {
    on_read_(FileToRead{std::move(entry), number, action});
    return;
  }
  if (entry.type != EntryType::directory) {
    ++(existed ? stats_.files_changed : stats_.files_new);
  }
  if (on_file_) {
    on_file_(action, entry.type, entry.path, entry.size, "");
  }
  on_direct_(metadata_version(entry, number));
}

void ChangePlanner::problem(ScanProblem&& problem) { problem_paths_.push_back(std::move(problem.path)); }

void ChangePlanner::finish() {
  while (have_latest_) {
    missing(latest_path_, latest_version_);
    advance();
  }
}

bool ChangePlanner::must_reread(const std::string& path, std::uint32_t number) const {
  const auto found = reread_.find(path);
  return found != reread_.end() && std::find(found->second.begin(), found->second.end(), number) != found->second.end();
}

void plan_changes(const ScanResult& scan, const std::unordered_map<std::string, LatestVersion>& latest,
                  ChangePlan& plan, RunStats& stats, const FileCallback& on_file, const VersionsToReread& reread) {
  std::vector<std::pair<std::string, LatestVersion>> sorted(latest.begin(), latest.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::size_t next = 0;
  const auto source = [&](std::string& path, LatestVersion& version) {
    if (next == sorted.size()) {
      return false;
    }
    path = sorted[next].first;
    version = sorted[next].second;
    ++next;
    return true;
  };
  ChangePlanner planner(
      source, reread, stats, on_file, [&plan](FileToRead&& read) { plan.reads.push_back(std::move(read)); },
      [&plan](ManifestVersion&& version) { plan.direct.push_back(std::move(version)); });
  for (const ScanProblem& problem : scan.problems) {
    planner.problem(ScanProblem(problem));  // earlier than a walk delivers them: the same outcome
  }
  std::vector<const ScanEntry*> entries;
  for (const ScanEntry& entry : scan.entries) {
    entries.push_back(&entry);
  }
  std::sort(entries.begin(), entries.end(), [](const ScanEntry* a, const ScanEntry* b) { return a->path < b->path; });
  for (const ScanEntry* entry : entries) {
    planner.entry(ScanEntry(*entry));
  }
  planner.finish();
}

ContentReader::ContentReader(Env& env, const Chunker& chunker, ByteView id_key)
    : env_(env),
      chunker_(chunker),
      hmac_(id_key),
      buffer_size_(2 * static_cast<std::size_t>(chunker.params().max_size) + kReadBlock) {
  buffer_.reset(new std::uint8_t[buffer_size_]);  // default-initialized: not zeroed
}

namespace {

/// The deepest folder other than "/" holding both absolute folders `a` and `b` and neither of
/// them: "/x" for "/x/y" and "/x/z", and for "/x/y" and "/x/y/z"; "" when there is none.
std::string shared_ancestor(const std::string& a, const std::string& b) {
  std::size_t shared = 0;  // a and b agree up to here, a '/' in both
  for (std::size_t i = 0; i < a.size() && i < b.size() && a[i] == b[i]; ++i) {
    if (a[i] == '/') {
      shared = i;
    }
  }
  return shared == 0 ? "" : a.substr(0, shared);
}

}  // namespace

int ContentReader::open_parent(const std::string& directory) {
  if (const int open = parents_.find(directory); open >= 0) {
    return open;
  }
  OpenDirectories::Ancestor ancestor = parents_.nearest_ancestor(directory);
  if (ancestor.fd < 0) {
    // None open: open the deepest folder it shares with the previous file's (a source's root,
    // or below it) the whole way, and keep it for the next ones.
    const std::string shared = shared_ancestor(directory, last_parent_);
    if (!shared.empty()) {
      parents_.keep(shared, open_directory_path(env_, shared, PathUse::look_up));
      ancestor = parents_.nearest_ancestor(directory);
    }
  }
  last_parent_ = directory;
  // Below a folder already open, every component was a real folder at scan time (the scan
  // follows no link below a source's root): step down without following links.
  if (ancestor.fd >= 0) {
    if (const int below = open_directory_below(env_, ancestor.fd, ancestor.rest, PathUse::look_up); below >= 0) {
      return parents_.keep(directory, EnvFd(env_, below));
    }
    // A link or a file on the way (new since the scan, or a second source reached through a
    // trusted link): the whole walk below decides, with its rules for links.
  }
  return parents_.keep(directory, open_directory_path(env_, directory, PathUse::look_up));
}

ReadResult ContentReader::read(const FileToRead& file, ManifestVersion& version, const ChunkSink& on_chunk,
                               const StopCheck& stopped) {
  const auto unreadable = [](std::string problem) { return ReadResult{ReadOutcome::unreadable, std::move(problem)}; };
  // Opened relative to its directory, itself opened without following links another user could
  // have put in the path since the scan; then it must be the very file the scan saw.
  const std::string& path = file.entry.path;
  const std::size_t slash = path.rfind('/');
  int directory = -1;
  try {
    directory = open_parent(parent_directory(path));
  } catch (const Error& error) {
    return unreadable(error.kind() == ErrorKind::not_found ? "vanished before it could be read" : error.what());
  }
  const int fd = env_.open_for_reading(directory, path.c_str() + slash + 1);
  if (fd < 0) {
    return unreadable(fd == -ENOENT ? "vanished before it could be read"
                      : fd == -ELOOP ? "was replaced by a symbolic link since the scan (not followed)"
                                     : std::string("cannot open: ") + std::strerror(-fd));
  }
  const EnvFd opened(env_, fd);
  struct stat before {};
  if (env_.stat_fd(opened.get(), before) != 0 || !S_ISREG(before.st_mode)) {
    return unreadable("is no longer a regular file");
  }
  if (static_cast<std::uint64_t>(before.st_ino) != file.entry.inode || static_cast<std::uint64_t>(before.st_dev) != file.entry.meta.device) {
    return unreadable("was replaced by another file between the scan and the read (the next backup reads it)");
  }
  Sha256 file_hash;
  std::vector<ChunkId> chunks;
  std::uint64_t total = 0;
  std::size_t start = 0;
  std::size_t end = 0;
  bool at_eof = false;
  const std::size_t max_size = chunker_.params().max_size;
  while (!stopped()) {
    // Keep at least max_size bytes ahead of `start` (or everything up to EOF): then next_cut
    // always finds a cut.
    while (!at_eof && end - start < max_size) {
      if (end + kReadBlock > buffer_size_) {
        std::memmove(buffer_.get(), buffer_.get() + start, end - start);
        end -= start;
        start = 0;
      }
      const std::int64_t n = env_.read(opened.get(), buffer_.get() + end, kReadBlock);
      if (n < 0) {
        return unreadable(std::string("cannot read: ") + std::strerror(static_cast<int>(-n)));
      }
      if (n == 0) {
        at_eof = true;
      }
      end += static_cast<std::size_t>(n);
    }
    if (start == end) {
      break;
    }
    const ByteView window(buffer_.get() + start, end - start);
    const std::size_t cut = chunker_.next_cut(window, at_eof);
    const ByteView chunk = window.first(cut);
    file_hash.update(chunk);
    const ChunkId id = hmac_.mac(chunk);
    chunks.push_back(id);
    total += cut;
    on_chunk(id, chunk);
    start += cut;
  }
  if (stopped()) {
    return {ReadOutcome::stopped, "interrupted"};
  }
  struct stat after {};
  if (env_.stat_fd(opened.get(), after) != 0 || after.st_size != before.st_size || mtime_of(after) != mtime_of(before) ||
      total != static_cast<std::uint64_t>(before.st_size)) {
    return {ReadOutcome::changed_while_read, "changed while being read"};
  }
  version.path = file.entry.path;
  version.type = EntryType::file;
  version.number = file.number;
  version.mode = static_cast<std::uint32_t>(before.st_mode & 07777);
  version.mtime_ns = mtime_of(before);
  version.size = total;
  version.inode = static_cast<std::uint64_t>(before.st_ino);
  version.meta = stat_metadata(before, false);
  add_names(version.meta);
  if (const int err = read_xattrs(opened.get(), privileged_, version.meta.xattrs); err != 0) {
    return unreadable(std::string("cannot read its extended attributes: ") + std::strerror(err));
  }
  version.sha256 = file_hash.finish();
  version.chunks = std::move(chunks);
  return {};
}

}  // namespace mybackup
