#include "mybackup/engine/restore.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <tuple>
#include <mutex>
#include <thread>
#include <cerrno>
#include <cstring>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/engine/pack_region_reader.hpp"
#include "mybackup/source/metadata.hpp"
#include "mybackup/util/env.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/util/direct_write.hpp"
#include "mybackup/util/open_directories.hpp"
#include "mybackup/util/path_walk.hpp"

namespace mybackup {

namespace {

constexpr const char* kInterrupted = "interrupted: the files restored so far are complete; run the restore again for the rest";

/// A per-item failure: reported, never fatal for the run.
struct ItemError {
  std::string reason;
};

/// Thrown between two chunks of a file when the user asked to stop: a large file must not keep
/// the restore running for minutes after Ctrl-C. The partial file is removed.
struct StopRequested {};

std::vector<std::string> split(std::string_view relative) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= relative.size() && !relative.empty()) {
    const std::size_t slash = relative.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? relative.size() : slash;
    parts.emplace_back(relative.substr(start, end - start));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  return parts;
}

/// "what: reason" for a failed Env call's -errno.
std::string failure(const char* what, int negative_errno) {
  return std::string(what) + ": " + std::strerror(-negative_errno);
}

/// Names a restorer writes under before renaming into place: random per restorer, then counted
/// (a random draw per file cost a lock and a getpid in OpenSSL for each).
class TemporaryNames {
 public:
  TemporaryNames() {
    std::array<std::uint8_t, 8> random{};
    random_bytes(random);
    prefix_ = ".mybackup-restore-" + to_hex(random) + "-";
  }
  std::string next() { return prefix_ + std::to_string(++count_); }

 private:
  std::string prefix_;
  std::uint64_t count_ = 0;
};

/// SHA-256 of an existing file (opened without following a symlink), or nullopt if unreadable.
std::optional<Digest> hash_existing(Env& env, int directory, const std::string& name) {
  const EnvFd file(env, env.open_for_reading(directory, name.c_str()));
  if (!file.valid()) {
    return std::nullopt;
  }
  Sha256 hash;
  std::vector<std::uint8_t> buffer(1 << 20);
  for (;;) {
    const std::int64_t n = env.read(file.get(), buffer.data(), buffer.size());
    if (n < 0) {
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    hash.update(ByteView(buffer.data(), static_cast<std::size_t>(n)));
  }
  return hash.finish();
}

class Restorer {
 public:
  Restorer(Env& env, const Catalog& catalog, PackRegionReader& chunks, const RestoreOptions& options, int root,
           bool root_existed)
      : env_(env), catalog_(catalog), chunks_(chunks), options_(options), root_(root), root_existed_(root_existed) {}

  /// Opens (creating when allowed) the directory `relative` below the root, component by
  /// component, never following a symlink. The last few directories opened stay open: siblings,
  /// and files restored side by side in data order, share them. The root itself is root_ (owned
  /// by the caller).
  int open_directory(const std::string& relative, bool create) {
    if (relative.empty()) {
      return root_;
    }
    if (const int open = open_directories_.find(relative); open >= 0) {
      return open;
    }
    // From its nearest open ancestor: files come in the order their data lies in the packs, so
    // siblings are often apart.
    const OpenDirectories::Ancestor ancestor = open_directories_.nearest_ancestor(relative);
    const std::string_view below = ancestor.fd >= 0 ? ancestor.rest : std::string_view(relative);
    EnvFd current;
    std::string walked = relative.substr(0, relative.size() - below.size());
    if (!walked.empty() && walked.back() == '/') {
      walked.pop_back();
    }
    const int start = ancestor.fd >= 0 ? ancestor.fd : root_;
    for (const std::string& part : split(below)) {
      walked += (walked.empty() ? "" : "/") + part;
      const int parent = current.valid() ? current.get() : start;
      int next = env_.open_directory(parent, part.c_str(), FollowLinks::no);
      if (next == -ENOENT && create && !options_.dry_run) {
        const int made = env_.make_directory_at(parent, part.c_str(), 0755);
        if (made != 0 && made != -EEXIST) {
          throw ItemError{failure(("cannot create directory " + walked).c_str(), made)};
        }
        next = env_.open_directory(parent, part.c_str(), FollowLinks::no);
      }
      if (next < 0) {
        if (next == -ELOOP || next == -ENOTDIR) {
          throw ItemError{"a symbolic link or a file is in the way at " + walked + " (nothing is written through it)"};
        }
        if (next == -ENOENT && options_.dry_run) {
          return -1;  // would be created
        }
        throw ItemError{failure(("cannot open directory " + walked).c_str(), next)};
      }
      current = EnvFd(env_, next);
    }
    return open_directories_.keep(relative, std::move(current));
  }

  /// For the hard-link pass: the Restorer whose directory cache opens the first names of linked
  /// files (this one's holds the directory being written).
  void set_link_sources(Restorer& sources) { link_sources_ = &sources; }

  /// Restores one item; returns what happened (throws ItemError for a per-item failure).
  /// `same_inode`: a file restored earlier that this one was a hard link to at backup time.
  RestoreAction restore_item(const RestoreItem& item, RestoreReport& report, const RestoreItem* same_inode = nullptr) {
    const VersionRecord& version = item.version;
    if (item.relative.empty()) {
      // The root directory: created already; its metadata is set at the end.
      return root_existed_ ? RestoreAction::identical : (options_.dry_run ? RestoreAction::would_restore : RestoreAction::restored);
    }
    const std::size_t slash = item.relative.rfind('/');
    const std::string parent = slash == std::string::npos ? "" : item.relative.substr(0, slash);
    const std::string name = slash == std::string::npos ? item.relative : item.relative.substr(slash + 1);
    const int directory = open_directory(parent, true);
    struct stat existing {};
    const bool exists = directory >= 0 && env_.stat_at(directory, name.c_str(), existing) == 0;

    if (version.type == EntryType::directory) {
      if (exists && !S_ISDIR(existing.st_mode)) {
        throw ItemError{"something that is not a directory is in the way"};
      }
      if (options_.dry_run) {
        return exists ? RestoreAction::identical : RestoreAction::would_restore;
      }
      if (exists && options_.existing == ExistingFile::keep) {
        // An existing directory keeps the mode and time its owner gave it (like existing files).
        return RestoreAction::identical;
      }
      if (!exists) {
        const int made = env_.make_directory_at(directory, name.c_str(), 0700);
        if (made != 0 && made != -EEXIST) {
          throw ItemError{failure("cannot create directory", made)};
        }
      }
      directories_.push_back(item);
      ++report.directories;
      return RestoreAction::restored;
    }

    if (exists) {
      if (S_ISDIR(existing.st_mode)) {
        throw ItemError{"a directory is in the way"};
      }
      if (is_identical(version, directory, name, existing)) {
        ++report.identical;
        return RestoreAction::identical;
      }
      if (options_.existing == ExistingFile::keep) {
        throw ItemError{"exists and differs: nothing was changed (use --overwrite to replace it, or --destination to "
                        "restore elsewhere)"};
      }
    }
    if (options_.dry_run) {
      return RestoreAction::would_restore;
    }
    if (version.type == EntryType::symlink) {
      write_symlink(version, directory, name);
      ++report.symlinks;
    } else if (version.type == EntryType::file) {
      if (same_inode != nullptr && link_to(*same_inode, directory, name)) {
        ++report.hard_links;
      } else {
        report.bytes += write_file(version, directory, name, exists, report);
      }
      ++report.files;
    } else {
      write_node(version, directory, name, report);
      ++report.special;
    }
    return RestoreAction::restored;
  }

  /// Directories get their mode and mtime once everything inside them is written (deepest first).
  void finish_directories(RestoreReport& report) {
    open_directories_.clear();
    for (auto it = directories_.rbegin(); it != directories_.rend(); ++it) {
      const RestoreItem& item = *it;
      try {
        apply_metadata(open_directory(item.relative, false), item.version, report);
      } catch (const ItemError& error) {
        report.problems.push_back({item.relative, item.version.path, item.version.number, error.reason});
      }
    }
  }

  /// Owner, extended attributes, mode and time, in that order: a change of owner clears the
  /// setuid and setgid bits, and setting an ACL changes the group bits of the mode.
  void apply_metadata(int fd, const VersionRecord& version, RestoreReport& report) {
    const FileMetadata& meta = version.meta;
    const bool owner_restored = privileged_ && meta.recorded;
    if (owner_restored) {
      const RestoredOwner owner = owner_to_restore(meta, names_);
      if (const int rc = env_.set_owner(fd, owner.uid, owner.gid); rc != 0) {
        throw ItemError{failure("cannot set owner", rc)};
      }
    } else if (meta.recorded && meta.uid != effective_uid_) {
      ++report.owners_not_restored;
    }
    for (const ExtendedAttribute& attribute : meta.xattrs) {
      if (!xattr_wanted(attribute.name, privileged_) || env_.set_xattr(fd, attribute.name, attribute.value) != 0) {
        ++report.xattrs_not_restored;
      }
    }
    std::uint32_t mode = version.mode & 07777;
    if (!owner_restored && (mode & 06000) != 0) {
      mode &= ~std::uint32_t{06000};
      ++report.setid_bits_dropped;
    }
    int rc = env_.set_mode(fd, mode);
    if (rc == 0) {
      rc = env_.set_times(fd, version.mtime_ns);
    }
    if (rc != 0) {
      throw ItemError{failure("cannot set mode and time", rc)};
    }
  }

 private:
  bool is_identical(const VersionRecord& version, int directory, const std::string& name, const struct stat& existing) {
    if (version.type == EntryType::symlink) {
      if (!S_ISLNK(existing.st_mode)) {
        return false;
      }
      std::string target(static_cast<std::size_t>(existing.st_size) + 1, '\0');
      const std::int64_t n = env_.read_link_at(directory, name.c_str(), target.data(), target.size());
      return n >= 0 && static_cast<std::size_t>(n) == version.link_target.size() &&
             target.compare(0, static_cast<std::size_t>(n), version.link_target) == 0;
    }
    if (version.type == EntryType::fifo) {
      return S_ISFIFO(existing.st_mode);
    }
    if (version.type == EntryType::char_device || version.type == EntryType::block_device) {
      return (version.type == EntryType::char_device ? S_ISCHR(existing.st_mode) : S_ISBLK(existing.st_mode)) &&
             static_cast<std::uint64_t>(existing.st_rdev) == version.meta.rdev;
    }
    if (!S_ISREG(existing.st_mode) || static_cast<std::uint64_t>(existing.st_size) != version.size) {
      return false;
    }
    const std::optional<Digest> digest = hash_existing(env_, directory, name);
    return digest && *digest == version.sha256;
  }

  void write_symlink(const VersionRecord& version, int directory, const std::string& name) {
    const std::string temporary = temporary_names_.next();
    if (const int rc = env_.symlink_at(version.link_target.c_str(), directory, temporary.c_str()); rc != 0) {
      throw ItemError{failure("cannot create symbolic link", rc)};
    }
    if (privileged_ && version.meta.recorded) {
      const RestoredOwner owner = owner_to_restore(version.meta, names_);
      env_.set_owner_at(directory, temporary.c_str(), owner.uid, owner.gid);  // best effort, as times
    }
    env_.set_times_at(directory, temporary.c_str(), version.mtime_ns);  // best effort
    if (const int rc = env_.rename_at(directory, temporary.c_str(), name.c_str()); rc != 0) {
      env_.unlink_at(directory, temporary.c_str());
      throw ItemError{failure("cannot move into place", rc)};
    }
  }

  /// Makes `name` in `directory` another name of the file restored at `first`, through a
  /// temporary name, after checking that the first name is still a regular file of the recorded
  /// size. False when that fails or the filesystem refuses (another device, no hard links, too
  /// many): the caller writes the file instead.
  bool link_to(const RestoreItem& first, int directory, const std::string& name) {
    if (link_sources_ == nullptr) {
      return false;
    }
    const std::size_t slash = first.relative.rfind('/');
    const std::string first_parent = slash == std::string::npos ? "" : first.relative.substr(0, slash);
    const std::string first_name = slash == std::string::npos ? first.relative : first.relative.substr(slash + 1);
    int first_directory = -1;
    try {
      first_directory = link_sources_->open_directory(first_parent, false);
    } catch (const ItemError&) {
      return false;
    }
    struct stat source {};
    if (env_.stat_at(first_directory, first_name.c_str(), source) != 0 || !S_ISREG(source.st_mode) ||
        static_cast<std::uint64_t>(source.st_size) != first.version.size) {
      return false;
    }
    const std::string temporary = temporary_names_.next();
    if (env_.link_at(first_directory, first_name.c_str(), directory, temporary.c_str()) != 0) {
      return false;
    }
    struct stat linked {};
    if (env_.stat_at(directory, temporary.c_str(), linked) != 0 || linked.st_ino != source.st_ino ||
        linked.st_dev != source.st_dev) {
      env_.unlink_at(directory, temporary.c_str());
      return false;
    }
    if (const int rc = env_.rename_at(directory, temporary.c_str(), name.c_str()); rc != 0) {
      env_.unlink_at(directory, temporary.c_str());
      throw ItemError{failure("cannot move into place", rc)};
    }
    return true;
  }

  /// A fifo, or a character or block device (root only), under a temporary name first like a file.
  void write_node(const VersionRecord& version, int directory, const std::string& name, RestoreReport& report) {
    const bool fifo = version.type == EntryType::fifo;
    if (!fifo && !privileged_) {
      throw ItemError{"device nodes are restored only by root (run the restore as root)"};
    }
    const unsigned type = fifo ? S_IFIFO : (version.type == EntryType::char_device ? S_IFCHR : S_IFBLK);
    // A fifo's mode is set through its handle below; a device keeps what mknod gives it.
    const unsigned mode = type | (fifo ? 0600U : (version.mode & 0777U));
    const std::string temporary = temporary_names_.next();
    if (const int rc = env_.make_node_at(directory, temporary.c_str(), mode, fifo ? 0 : version.meta.rdev); rc != 0) {
      throw ItemError{failure(fifo ? "cannot create fifo" : "cannot create device node", rc)};
    }
    try {
      if (fifo) {
        // Opening a fifo to read without blocking needs no writer; through the handle, nothing
        // that replaced the name meanwhile can be changed.
        EnvFd node(env_, env_.open_for_reading(directory, temporary.c_str()));
        struct stat info {};
        if (!node.valid() || env_.stat_fd(node.get(), info) != 0 || !S_ISFIFO(info.st_mode)) {
          throw ItemError{failure("cannot open the new fifo", node.valid() ? -EEXIST : node.get())};
        }
        apply_metadata(node.get(), version, report);
      } else {
        // A device is never opened (that would talk to its driver): owner and time are set by
        // name without following a link, and its mode is the recorded one less the umask.
        const RestoredOwner owner = owner_to_restore(version.meta, names_);
        if (const int rc = env_.set_owner_at(directory, temporary.c_str(), owner.uid, owner.gid); rc != 0) {
          throw ItemError{failure("cannot set owner", rc)};
        }
        env_.set_times_at(directory, temporary.c_str(), version.mtime_ns);
      }
      if (const int rc = env_.rename_at(directory, temporary.c_str(), name.c_str()); rc != 0) {
        throw ItemError{failure("cannot move into place", rc)};
      }
    } catch (...) {
      env_.unlink_at(directory, temporary.c_str());
      throw;
    }
  }

  /// Returns the bytes written. A new file is written without a name and named once complete
  /// and checked, so nothing half-written ever carries its name, even if the process dies; a
  /// replaced file, and any file where the filesystem has no unnamed files, goes to a temporary
  /// name first and is renamed into place.
  std::uint64_t write_file(const VersionRecord& version, int directory, const std::string& name, bool replacing,
                           RestoreReport& report) {
    if (!replacing && unnamed_files_) {
      if (const std::optional<std::uint64_t> written = write_unnamed_file(version, directory, name, report)) {
        return *written;
      }
    }
    const std::string temporary = temporary_names_.next();
    EnvFd file(env_, env_.create_file_at(directory, temporary.c_str(), 0600));
    if (!file.valid()) {
      throw ItemError{failure("cannot create a file there", file.get())};
    }
    try {
      const std::uint64_t written = fill(file.get(), version, report);
      // Replacing a file: make the new content durable before the old one is gone.
      if (replacing) {
        if (const int rc = env_.sync(file.get()); rc != 0) {
          throw ItemError{failure("cannot sync", rc)};
        }
      }
      file.reset();
      if (const int rc = env_.rename_at(directory, temporary.c_str(), name.c_str()); rc != 0) {
        throw ItemError{failure("cannot move into place", rc)};
      }
      return written;
    } catch (...) {
      file.reset();
      env_.unlink_at(directory, temporary.c_str());
      throw;
    }
  }

  /// write_file into an unnamed file; nullopt when this filesystem or process cannot make or
  /// name one (then the restorer stops trying).
  std::optional<std::uint64_t> write_unnamed_file(const VersionRecord& version, int directory, const std::string& name,
                                                  RestoreReport& report) {
    EnvFd file(env_, env_.create_unnamed_file_at(directory, 0600));
    if (file.get() == -EOPNOTSUPP) {
      unnamed_files_ = false;
      return std::nullopt;
    }
    if (!file.valid()) {
      throw ItemError{failure("cannot create a file there", file.get())};
    }
    const std::uint64_t written = fill(file.get(), version, report);
    const int rc = env_.name_unnamed_file_at(file.get(), directory, name.c_str());
    if (rc == -EOPNOTSUPP) {
      unnamed_files_ = false;
      return std::nullopt;  // written again under a temporary name
    }
    if (rc != 0) {
      throw ItemError{rc == -EEXIST ? "something appeared under its name while it was restored: nothing was changed"
                                    : failure("cannot move into place", rc)};
    }
    return written;
  }

  /// Writes the version's chunks to `fd`, checks them against its size and SHA-256 and sets its
  /// metadata. Returns the bytes written.
  std::uint64_t fill(int fd, const VersionRecord& version, RestoreReport& report) {
    Sha256 hash;
    std::uint64_t written = 0;
    std::vector<ChunkLocation> chunks;
    try {
      chunks = catalog_.chunks_of(version.id);
    } catch (const Error& error) {
      throw ItemError{error.what()};
    }
    writer_.start(fd, version.size);
    for (const ChunkLocation& chunk : chunks) {
      if (options_.cancel != nullptr && options_.cancel->load()) {
        throw StopRequested{};
      }
      Bytes data;
      try {
        data = chunks_.read_chunk(chunk.pack, chunk.entry);
      } catch (const Error& error) {
        if (error.kind() == ErrorKind::transient) {
          throw;  // the destination stopped answering, retries included: the restore stops
        }
        // Missing pack, failed authentication or a chunk that does not match its id.
        throw ItemError{std::string("cannot be read: ") + error.what()};
      }
      hash.update(data);
      if (const int rc = writer_.add(data); rc != 0) {
        throw write_failure(rc);
      }
      written += data.size();
    }
    if (const int rc = writer_.finish(); rc != 0) {
      throw write_failure(rc);
    }
    if (written != version.size || hash.finish() != version.sha256) {
      throw ItemError{"does not match its recorded size and SHA-256 (damaged catalog or repository)"};
    }
    apply_metadata(fd, version, report);
    return written;
  }

  ItemError write_failure(int rc) const {
    return ItemError{rc == -ENOSPC || rc == -EDQUOT ? "cannot write: the destination's disk is full" : failure("cannot write", rc)};
  }

  Env& env_;
  const Catalog& catalog_;
  PackRegionReader& chunks_;
  const RestoreOptions& options_;
  const bool privileged_ = options_.privileged;
  const std::uint32_t effective_uid_ = ::geteuid();
  OwnerNames& names_ = system_owner_names();
  Restorer* link_sources_ = nullptr;
  TemporaryNames temporary_names_;
  bool unnamed_files_ = true;  // until the filesystem or the process cannot make or name one
  int root_;
  bool root_existed_;
  OpenDirectories open_directories_{32};  // per worker, below the root
  DirectWriter writer_{env_};             // large files go past the page cache
  std::vector<RestoreItem> directories_;  // created by this restore, to finish at the end
};

/// For a restore that reads ahead (RestoreOptions::read_ahead): puts `leaves` in the order their
/// data lies in the packs, the order the backup stored it (largest files first, two or more files
/// side by side), and returns every chunk they need in the order that `workers` workers, each
/// taking the next file when it is done, will ask for them. The schedule simulates the workers,
/// with time in bytes written: chunks that files restored side by side need at about the same
/// time, which the backup packed together, join one region and are read ahead together. In path
/// order, the same restore read most packs several times over.
std::vector<ChunkLocation> order_for_reading(const Catalog& catalog, std::vector<const RestoreItem*>& leaves, unsigned workers) {
  struct Leaf {
    const RestoreItem* item;
    std::vector<ChunkLocation> chunks;
  };
  std::vector<Leaf> files;
  files.reserve(leaves.size());
  for (const RestoreItem* item : leaves) {
    Leaf leaf{item, {}};
    if (item->version.type == EntryType::file) {
      try {
        leaf.chunks = catalog.chunks_of(item->version.id);
      } catch (const Error&) {
        // The file's own restore reports it.
      }
    }
    files.push_back(std::move(leaf));
  }
  const auto position = [](const Leaf& leaf) {
    return leaf.chunks.empty() ? std::pair<std::int64_t, std::uint32_t>{0, 0}
                               : std::pair<std::int64_t, std::uint32_t>{leaf.chunks.front().pack_order, leaf.chunks.front().entry.offset};
  };
  std::stable_sort(files.begin(), files.end(), [&](const Leaf& a, const Leaf& b) { return position(a) < position(b); });

  constexpr std::uint64_t kFileCost = 64 * 1024;  // creating, closing and renaming a file, in bytes written
  std::priority_queue<std::uint64_t, std::vector<std::uint64_t>, std::greater<>> free_at;  // one per worker
  for (unsigned i = 0; i < std::max(1U, workers); ++i) {
    free_at.push(0);
  }
  struct Need {
    std::uint64_t at;
    std::size_t sequence;
    const ChunkLocation* chunk;
  };
  std::vector<Need> needs;
  for (std::size_t i = 0; i < files.size(); ++i) {
    leaves[i] = files[i].item;
    std::uint64_t clock = free_at.top();
    free_at.pop();
    for (const ChunkLocation& chunk : files[i].chunks) {
      needs.push_back({clock, needs.size(), &chunk});
      clock += chunk.entry.raw_length;
    }
    free_at.push(clock + kFileCost);
  }
  std::sort(needs.begin(), needs.end(), [](const Need& a, const Need& b) { return std::tie(a.at, a.sequence) < std::tie(b.at, b.sequence); });
  std::vector<ChunkLocation> ordered;
  ordered.reserve(needs.size());
  for (const Need& need : needs) {
    ordered.push_back(*need.chunk);
  }
  return ordered;
}

}  // namespace

void check_relative_path(std::string_view relative) {
  if (relative.empty()) {
    return;
  }
  if (relative.front() == '/') {
    throw Error(ErrorKind::usage, "refusing to restore to an absolute name below the destination: " + std::string(relative));
  }
  for (const std::string& part : split(relative)) {
    if (part.empty() || part == "." || part == "..") {
      throw Error(ErrorKind::usage, "refusing to restore a path that could leave the destination: " + std::string(relative));
    }
  }
}

namespace {

/// The plan's items one at a time in order of `relative`: its stream, or its items sorted.
RestoreItemSource items_in_order(const RestorePlan& plan) {
  if (plan.open_items) {
    return plan.open_items();
  }
  auto ordered = std::make_shared<std::vector<const RestoreItem*>>();
  for (const RestoreItem& item : plan.items) {
    ordered->push_back(&item);
  }
  std::sort(ordered->begin(), ordered->end(), [](const RestoreItem* a, const RestoreItem* b) { return a->relative < b->relative; });
  auto next = std::make_shared<std::size_t>(0);
  return [ordered, next](RestoreItem& item) {
    if (*next == ordered->size()) {
      return false;
    }
    item = *(*ordered)[(*next)++];
    return true;
  };
}

void check_item(const RestoreItem& item) {
  check_relative_path(item.relative);
  if (item.version.type == EntryType::deleted) {
    throw Error(ErrorKind::usage, "cannot restore a deletion marker: " + item.version.path);
  }
  if (item.relative.empty() && item.version.type != EntryType::directory) {
    throw Error(ErrorKind::usage, item.version.path + " is not a directory: restore it as a file into the directory above");
  }
}

}  // namespace

std::vector<RestoreItem> items_of(const RestorePlan& plan) {
  std::vector<RestoreItem> items;
  const RestoreItemSource next = items_in_order(plan);
  RestoreItem item;
  while (next(item)) {
    items.push_back(std::move(item));
  }
  return items;
}

RestoreReport restore(const Catalog& catalog, const Repository& repository, const RestorePlan& plan,
                      const RestoreOptions& options) {
  const RestoreItemSource next_item = items_in_order(plan);
  if (!plan.open_items) {
    for (const RestoreItem& item : plan.items) {
      check_item(item);  // a plan held in memory is refused whole before anything is written
    }
  }

  Env& env = Env::or_default(options.env);
  struct stat root_info {};
  const bool root_existed = env.stat_at(AT_FDCWD, plan.root.c_str(), root_info) == 0;
  // The root and its parents are opened (and created) link-free: a link another user put in
  // their place never sends the restore elsewhere (util/path_walk.hpp).
  EnvFd root;
  if (!options.dry_run || root_existed) {
    root = open_directory_path(env, plan.root, PathUse::write_into, options.dry_run ? CreateMissing::no : CreateMissing::yes);
  }
  RestoreReport report;
  report.root = plan.root;
  if (!root.valid()) {
    // Dry run into a directory that does not exist yet: everything would be written.
    RestoreItem item;
    while (next_item(item)) {
      check_item(item);
      if (options.on_item) {
        options.on_item(RestoreAction::would_restore, item, "");
      }
    }
    return report;
  }
  const unsigned wanted = options.threads != 0 ? options.threads : std::max(1U, std::thread::hardware_concurrency());
  PackRegionLimits limits;
  limits.read_ahead = options.read_ahead;
  PackRegionReader direct_reads(repository, {}, limits);  // for the directories and the hard-link pass
  // Hard links: the later names of an inode recorded with several links (same device, inode and
  // content) are linked to its first name once the workers have restored it.
  std::vector<std::pair<RestoreItem, RestoreItem>> links;  // later name, first name
  std::map<std::tuple<std::uint64_t, std::uint64_t, Digest>, RestoreItem> first_names;
  std::set<std::string> restored_first_names;  // guarded by `mutex`: relative paths
  std::optional<RestoreItem> root_item;
  std::mutex mutex;  // serializes on_item and the merge of per-worker reports
  std::atomic<bool> cancelled{false};
  std::string unreachable;  // guarded by `mutex`: why the destination stopped answering
  const auto process = [&](Restorer& restorer, const RestoreItem& item, RestoreReport& counts,
                           const RestoreItem* same_inode = nullptr) {
    if (options.cancel != nullptr && options.cancel->load()) {
      cancelled = true;
      return false;
    }
    RestoreAction action = RestoreAction::failed;
    std::string note;
    try {
      action = restorer.restore_item(item, counts, same_inode);
    } catch (const StopRequested&) {
      cancelled = true;
      return false;
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::transient) {
        note = error.what();  // per-item: never stops the rest of the restore
      } else {
        // Every file after this one would wait through the same retries: stop now.
        const std::lock_guard lock(mutex);
        if (unreachable.empty()) {
          unreachable = error.what();
        }
        cancelled = true;
        return false;
      }
    } catch (const ItemError& error) {
      note = error.reason;
    }
    if (action == RestoreAction::failed) {
      counts.problems.push_back({item.relative, item.version.path, item.version.number, note});
    }
    std::lock_guard lock(mutex);
    // Only a file recorded with several links can be a first name (see first_names below).
    if (action == RestoreAction::restored && item.version.meta.links > 1 &&
        first_names.count(std::make_tuple(item.version.meta.device, item.version.inode, item.version.sha256)) != 0) {
      restored_first_names.insert(item.relative);
    }
    if (options.on_item) {
      options.on_item(action, item, note);
    }
    return true;
  };

  // Batch by batch in path order: directories first, in order, so every parent exists before
  // its children; then the batch's files and symlinks on one worker per core, each with its own
  // directory cache.
  Restorer restorer(env, catalog, direct_reads, options, root.get(), root_existed);
  std::vector<RestoreItem> batch;
  bool more = true;
  while (more && !cancelled) {
    batch.clear();
    RestoreItem item;
    while (batch.size() < std::max<std::size_t>(1, options.batch_items) && (more = next_item(item))) {
      check_item(item);
      batch.push_back(std::move(item));
    }
    std::vector<const RestoreItem*> leaves;
    for (const RestoreItem& entry : batch) {
      const VersionRecord& version = entry.version;
      if (entry.relative.empty()) {
        root_item = entry;
      }
      if (version.type == EntryType::directory) {
        if (!process(restorer, entry, report)) {
          break;
        }
        continue;
      }
      if (version.type == EntryType::file && version.meta.recorded && version.meta.links > 1 && !options.dry_run) {
        const std::lock_guard lock(mutex);
        const auto [first, inserted] = first_names.emplace(std::make_tuple(version.meta.device, version.inode, version.sha256), entry);
        if (!inserted) {
          links.emplace_back(entry, first->second);
          continue;
        }
      }
      leaves.push_back(&entry);
    }
    if (cancelled || leaves.empty()) {
      continue;
    }
    const unsigned workers = static_cast<unsigned>(std::min<std::size_t>(wanted, leaves.size()));
    PackRegionReader chunks(repository,
                            options.read_ahead == 0 || options.dry_run ? std::vector<ChunkLocation>{}
                                                                       : order_for_reading(catalog, leaves, workers),
                            limits);
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < workers && !cancelled; ++i) {
      threads.emplace_back([&] {
        Restorer worker(env, catalog, chunks, options, root.get(), root_existed);
        RestoreReport counts;
        for (std::size_t index = next++; index < leaves.size(); index = next++) {
          if (!process(worker, *leaves[index], counts)) {
            break;
          }
        }
        std::lock_guard lock(mutex);
        report.files += counts.files;
        report.symlinks += counts.symlinks;
        report.special += counts.special;
        report.identical += counts.identical;
        report.bytes += counts.bytes;
        report.hard_links += counts.hard_links;
        report.owners_not_restored += counts.owners_not_restored;
        report.setid_bits_dropped += counts.setid_bits_dropped;
        report.xattrs_not_restored += counts.xattrs_not_restored;
        report.problems.insert(report.problems.end(), counts.problems.begin(), counts.problems.end());
      });
    }
    for (std::thread& thread : threads) {
      thread.join();
    }
  }
  if (!links.empty() && !cancelled) {
    Restorer linker(env, catalog, direct_reads, options, root.get(), root_existed);
    Restorer sources(env, catalog, direct_reads, options, root.get(), root_existed);
    linker.set_link_sources(sources);
    for (const auto& [item, first] : links) {
      const bool first_restored = restored_first_names.count(first.relative) != 0;
      if (!process(linker, item, report, first_restored ? &first : nullptr)) {
        break;
      }
    }
  }
  std::sort(report.problems.begin(), report.problems.end(),
            [](const RestoreProblem& a, const RestoreProblem& b) { return a.target < b.target; });
  if (cancelled) {
    if (!options.dry_run) {
      restorer.finish_directories(report);  // leave no half-set-up directories behind
    }
    if (!unreachable.empty()) {
      throw Error(ErrorKind::transient, "the restore stopped: " + unreachable +
                                            ". The files restored so far are complete; run the same restore again to finish "
                                            "(it skips them)");
    }
    throw Error(ErrorKind::interrupted, kInterrupted);
  }
  if (!options.dry_run) {
    restorer.finish_directories(report);
    // The root's own metadata only when the restore created it: an existing directory the user
    // chose as destination keeps its mode.
    if (!root_existed && root_item && root_item->version.type == EntryType::directory) {
      try {
        restorer.apply_metadata(root.get(), root_item->version, report);
      } catch (const ItemError&) {
        // Best effort, as for any directory.
      }
    }
    // Every file went to a temporary name and was renamed into place; one syncfs makes all of it
    // durable before success is reported (an fsync per file would cost a disk flush per file).
    if (const int rc = env.sync_filesystem(root.get()); rc != 0) {
      throw_system_error(-rc, "cannot flush the restored files to disk under " + plan.root);
    }
  }
  return report;
}

void to_json(nlohmann::ordered_json& json, const RestoreReport& report) {
  nlohmann::ordered_json problems = nlohmann::ordered_json::array();
  for (const RestoreProblem& problem : report.problems) {
    problems.push_back({{"target", join_path(report.root, problem.target)},
                        {"path", problem.path},
                        {"version", problem.number},
                        {"reason", problem.reason}});
  }
  json = {
      {"root", report.root},
      {"files", report.files},
      {"directories", report.directories},
      {"symlinks", report.symlinks},
      {"special", report.special},
      {"hard_links", report.hard_links},
      {"identical", report.identical},
      {"bytes", report.bytes},
      {"not_restored",
       {{"owners", report.owners_not_restored},
        {"setid_bits", report.setid_bits_dropped},
        {"xattrs", report.xattrs_not_restored}}},
      {"problems", std::move(problems)},
  };
}

}  // namespace mybackup
