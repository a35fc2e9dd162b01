#include "mybackup/engine/restore.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <cerrno>
#include <cstring>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/env.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

constexpr const char* kInterrupted = "interrupted: the files restored so far are complete; run the restore again for the rest";

/// A per-item failure: reported, never fatal for the run.
struct ItemError {
  std::string reason;
};

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

std::string temporary_name() {
  std::array<std::uint8_t, 8> random{};
  random_bytes(random);
  return ".mybackup-restore-" + to_hex(random);
}

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
  Restorer(Env& env, const Catalog& catalog, const Repository& repository, const RestoreOptions& options, int root,
           bool root_existed)
      : env_(env), catalog_(catalog), repository_(repository), options_(options), root_(root), root_existed_(root_existed) {}

  /// Opens (creating when allowed) the directory `relative` below the root, component by
  /// component, never following a symlink. The last directory opened is cached: plans are
  /// sorted, so siblings share it. The root itself is root_ (owned by the caller).
  int open_directory(const std::string& relative, bool create) {
    if (relative.empty()) {
      return root_;
    }
    if (relative == cached_path_ && cached_.valid()) {
      return cached_.get();
    }
    EnvFd current;
    std::string walked;
    for (const std::string& part : split(relative)) {
      walked += (walked.empty() ? "" : "/") + part;
      const int parent = current.valid() ? current.get() : root_;
      if (create && !options_.dry_run) {
        const int made = env_.make_directory_at(parent, part.c_str(), 0755);
        if (made != 0 && made != -EEXIST) {
          throw ItemError{failure(("cannot create directory " + walked).c_str(), made)};
        }
      }
      const int next = env_.open_directory(parent, part.c_str(), FollowLinks::no);
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
    cached_ = std::move(current);
    cached_path_ = relative;
    return cached_.get();
  }

  /// Restores one item; returns what happened (throws ItemError for a per-item failure).
  RestoreAction restore_item(const RestoreItem& item, RestoreReport& report) {
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
      directories_.push_back(&item);
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
    } else {
      report.bytes += write_file(version, directory, name, exists);
      ++report.files;
    }
    return RestoreAction::restored;
  }

  /// Directories get their mode and mtime once everything inside them is written (deepest first).
  void finish_directories(RestoreReport& report) {
    cached_.reset();
    cached_path_.clear();
    for (auto it = directories_.rbegin(); it != directories_.rend(); ++it) {
      const RestoreItem& item = **it;
      try {
        set_mode_and_time(open_directory(item.relative, false), item.version);
      } catch (const ItemError& error) {
        report.problems.push_back({item.relative, item.version.path, item.version.number, error.reason});
      }
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
    if (!S_ISREG(existing.st_mode) || static_cast<std::uint64_t>(existing.st_size) != version.size) {
      return false;
    }
    const std::optional<Digest> digest = hash_existing(env_, directory, name);
    return digest && *digest == version.sha256;
  }

  void write_symlink(const VersionRecord& version, int directory, const std::string& name) {
    const std::string temporary = temporary_name();
    if (const int rc = env_.symlink_at(version.link_target.c_str(), directory, temporary.c_str()); rc != 0) {
      throw ItemError{failure("cannot create symbolic link", rc)};
    }
    env_.set_times_at(directory, temporary.c_str(), version.mtime_ns);  // best effort
    if (const int rc = env_.rename_at(directory, temporary.c_str(), name.c_str()); rc != 0) {
      env_.unlink_at(directory, temporary.c_str());
      throw ItemError{failure("cannot move into place", rc)};
    }
  }

  /// Returns the bytes written.
  std::uint64_t write_file(const VersionRecord& version, int directory, const std::string& name, bool replacing) {
    const std::string temporary = temporary_name();
    EnvFd file(env_, env_.create_file_at(directory, temporary.c_str(), 0600));
    if (!file.valid()) {
      throw ItemError{failure("cannot create a file there", file.get())};
    }
    try {
      Sha256 hash;
      std::uint64_t written = 0;
      std::vector<ChunkLocation> chunks;
      try {
        chunks = catalog_.chunks_of(version.id);
      } catch (const Error& error) {
        throw ItemError{error.what()};
      }
      for (const ChunkLocation& chunk : chunks) {
        Bytes data;
        try {
          data = repository_.read_chunk(chunk.pack, chunk.entry);
        } catch (const Error& error) {
          // Missing pack, failed authentication or a chunk that does not match its id.
          throw ItemError{std::string("cannot be read: ") + error.what()};
        }
        hash.update(data);
        if (const int rc = env_.write_all(file.get(), data); rc != 0) {
          throw ItemError{rc == -ENOSPC || rc == -EDQUOT ? "cannot write: the destination's disk is full" : failure("cannot write", rc)};
        }
        written += data.size();
      }
      if (written != version.size || hash.finish() != version.sha256) {
        throw ItemError{"does not match its recorded size and SHA-256 (damaged catalog or repository)"};
      }
      set_mode_and_time(file.get(), version);
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

  void set_mode_and_time(int fd, const VersionRecord& version) {
    int rc = env_.set_mode(fd, version.mode & 07777);
    if (rc == 0) {
      rc = env_.set_times(fd, version.mtime_ns);
    }
    if (rc != 0) {
      throw ItemError{failure("cannot set mode and time", rc)};
    }
  }

  Env& env_;
  const Catalog& catalog_;
  const Repository& repository_;
  const RestoreOptions& options_;
  int root_;
  bool root_existed_;
  EnvFd cached_;
  std::string cached_path_ = "\x01";  // never a real path
  std::vector<const RestoreItem*> directories_;
};

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

RestoreReport restore(const Catalog& catalog, const Repository& repository, const RestorePlan& plan,
                      const RestoreOptions& options) {
  for (const RestoreItem& item : plan.items) {
    check_relative_path(item.relative);
    if (item.version.type == EntryType::deleted) {
      throw Error(ErrorKind::usage, "cannot restore a deletion marker: " + item.version.path);
    }
    if (item.relative.empty() && item.version.type != EntryType::directory) {
      throw Error(ErrorKind::usage, item.version.path + " is not a directory: restore it as a file into the directory above");
    }
  }
  std::vector<const RestoreItem*> ordered;
  for (const RestoreItem& item : plan.items) {
    ordered.push_back(&item);
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const RestoreItem* a, const RestoreItem* b) { return a->relative < b->relative; });

  Env& env = Env::or_default(options.env);
  struct stat root_info {};
  const bool root_existed = env.stat_at(AT_FDCWD, plan.root.c_str(), root_info) == 0;
  if (!options.dry_run) {
    make_directories(plan.root);
  }
  const EnvFd root(env, env.open_directory(AT_FDCWD, plan.root.c_str(), FollowLinks::yes));
  if (!root.valid() && !(options.dry_run && !root_existed)) {
    throw_system_error(-root.get(), "cannot open " + plan.root);
  }
  RestoreReport report;
  report.root = plan.root;
  if (!root.valid()) {
    // Dry run into a directory that does not exist yet: everything would be written.
    for (const RestoreItem* item : ordered) {
      if (options.on_item) {
        options.on_item(RestoreAction::would_restore, *item, "");
      }
    }
    return report;
  }
  // Directories first, in order, so every parent exists before its children; then files and
  // symlinks on one worker per core, each with its own directory cache.
  std::vector<const RestoreItem*> directories;
  std::vector<const RestoreItem*> leaves;
  for (const RestoreItem* item : ordered) {
    (item->version.type == EntryType::directory ? directories : leaves).push_back(item);
  }
  std::mutex mutex;  // serializes on_item and the merge of per-worker reports
  std::atomic<bool> cancelled{false};
  const auto process = [&](Restorer& restorer, const RestoreItem& item, RestoreReport& counts) {
    if (options.cancel != nullptr && options.cancel->load()) {
      cancelled = true;
      return false;
    }
    RestoreAction action = RestoreAction::failed;
    std::string note;
    try {
      action = restorer.restore_item(item, counts);
    } catch (const ItemError& error) {
      note = error.reason;
    } catch (const Error& error) {
      note = error.what();  // per-item: never stops the rest of the restore
    }
    if (action == RestoreAction::failed) {
      counts.problems.push_back({item.relative, item.version.path, item.version.number, note});
    }
    if (options.on_item) {
      std::lock_guard lock(mutex);
      options.on_item(action, item, note);
    }
    return true;
  };

  Restorer restorer(env, catalog, repository, options, root.get(), root_existed);
  for (const RestoreItem* item : directories) {
    if (!process(restorer, *item, report)) {
      break;
    }
  }
  const unsigned workers =
      static_cast<unsigned>(std::min<std::size_t>(std::max(1U, std::thread::hardware_concurrency()), leaves.size()));
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < workers && !cancelled; ++i) {
    threads.emplace_back([&] {
      Restorer worker(env, catalog, repository, options, root.get(), root_existed);
      RestoreReport counts;
      for (std::size_t index = next++; index < leaves.size(); index = next++) {
        if (!process(worker, *leaves[index], counts)) {
          break;
        }
      }
      std::lock_guard lock(mutex);
      report.files += counts.files;
      report.symlinks += counts.symlinks;
      report.identical += counts.identical;
      report.bytes += counts.bytes;
      report.problems.insert(report.problems.end(), counts.problems.begin(), counts.problems.end());
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  std::sort(report.problems.begin(), report.problems.end(),
            [](const RestoreProblem& a, const RestoreProblem& b) { return a.target < b.target; });
  if (cancelled) {
    if (!options.dry_run) {
      restorer.finish_directories(report);  // leave no half-set-up directories behind
    }
    throw Error(ErrorKind::interrupted, kInterrupted);
  }
  if (!options.dry_run) {
    restorer.finish_directories(report);
    // The root's own metadata only when the restore created it: an existing directory the user
    // chose as destination keeps its mode.
    const auto root_item = std::find_if(plan.items.begin(), plan.items.end(),
                                        [](const RestoreItem& item) { return item.relative.empty(); });
    if (!root_existed && root_item != plan.items.end() && root_item->version.type == EntryType::directory) {
      env.set_mode(root.get(), root_item->version.mode & 07777);  // best effort, as for any directory
      env.set_times(root.get(), root_item->version.mtime_ns);
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
      {"identical", report.identical},
      {"bytes", report.bytes},
      {"problems", std::move(problems)},
  };
}

}  // namespace mybackup
