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
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "util/unique_fd.hpp"

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

timespec to_timespec(std::int64_t ns) {
  timespec time{};
  time.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  time.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (time.tv_nsec < 0) {
    time.tv_nsec += 1'000'000'000;
    time.tv_sec -= 1;
  }
  return time;
}

std::string temporary_name() {
  std::array<std::uint8_t, 8> random{};
  random_bytes(random);
  return ".mybackup-restore-" + to_hex(random);
}

/// SHA-256 of an existing file (opened without following a symlink), or nullopt if unreadable.
std::optional<Digest> hash_existing(int directory, const std::string& name) {
  UniqueFd file(::openat(directory, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (file.get() < 0) {
    return std::nullopt;
  }
  Sha256 hash;
  std::vector<std::uint8_t> buffer(1 << 20);
  for (;;) {
    const ssize_t n = ::read(file.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
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
  Restorer(const Catalog& catalog, const Repository& repository, const RestoreOptions& options, int root, bool root_existed)
      : catalog_(catalog), repository_(repository), options_(options), root_(root), root_existed_(root_existed) {}

  /// Opens (creating when allowed) the directory `relative` below the root, component by
  /// component, never following a symlink. The last directory opened is cached: plans are
  /// sorted, so siblings share it.
  int open_directory(const std::string& relative, bool create) {
    if (relative == cached_path_ && cached_.get() >= 0) {
      return cached_.get();
    }
    UniqueFd current(::dup(root_));
    std::string walked;
    for (const std::string& part : split(relative)) {
      walked += (walked.empty() ? "" : "/") + part;
      if (create && !options_.dry_run && ::mkdirat(current.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        throw ItemError{"cannot create directory " + walked + ": " + std::strerror(errno)};
      }
      UniqueFd next(::openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.get() < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
          throw ItemError{"a symbolic link or a file is in the way at " + walked + " (nothing is written through it)"};
        }
        if (errno == ENOENT && options_.dry_run) {
          return -1;  // would be created
        }
        throw ItemError{"cannot open directory " + walked + ": " + std::strerror(errno)};
      }
      current = std::move(next);
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
    const bool exists = directory >= 0 && ::fstatat(directory, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;

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
      if (!exists && ::mkdirat(directory, name.c_str(), 0700) != 0 && errno != EEXIST) {
        throw ItemError{std::string("cannot create directory: ") + std::strerror(errno)};
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
        const int directory = open_directory(item.relative, false);
        const timespec times[2] = {to_timespec(item.version.mtime_ns), to_timespec(item.version.mtime_ns)};
        if (::fchmod(directory, item.version.mode & 07777) != 0 || ::futimens(directory, times) != 0) {
          throw ItemError{std::string("cannot set mode and time: ") + std::strerror(errno)};
        }
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
      const ssize_t n = ::readlinkat(directory, name.c_str(), target.data(), target.size());
      return n >= 0 && static_cast<std::size_t>(n) == version.link_target.size() &&
             target.compare(0, static_cast<std::size_t>(n), version.link_target) == 0;
    }
    if (!S_ISREG(existing.st_mode) || static_cast<std::uint64_t>(existing.st_size) != version.size) {
      return false;
    }
    const std::optional<Digest> digest = hash_existing(directory, name);
    return digest && *digest == version.sha256;
  }

  void write_symlink(const VersionRecord& version, int directory, const std::string& name) {
    const std::string temporary = temporary_name();
    if (::symlinkat(version.link_target.c_str(), directory, temporary.c_str()) != 0) {
      throw ItemError{std::string("cannot create symbolic link: ") + std::strerror(errno)};
    }
    const timespec times[2] = {to_timespec(version.mtime_ns), to_timespec(version.mtime_ns)};
    ::utimensat(directory, temporary.c_str(), times, AT_SYMLINK_NOFOLLOW);  // best effort
    if (::renameat(directory, temporary.c_str(), directory, name.c_str()) != 0) {
      const int saved = errno;
      ::unlinkat(directory, temporary.c_str(), 0);
      throw ItemError{std::string("cannot move into place: ") + std::strerror(saved)};
    }
  }

  /// Returns the bytes written.
  std::uint64_t write_file(const VersionRecord& version, int directory, const std::string& name, bool replacing) {
    const std::string temporary = temporary_name();
    UniqueFd file(::openat(directory, temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (file.get() < 0) {
      throw ItemError{std::string("cannot create a file there: ") + std::strerror(errno)};
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
        write_all(file.get(), data, name);
        written += data.size();
      }
      if (written != version.size || hash.finish() != version.sha256) {
        throw ItemError{"does not match its recorded size and SHA-256 (damaged catalog or repository)"};
      }
      const timespec times[2] = {to_timespec(version.mtime_ns), to_timespec(version.mtime_ns)};
      if (::fchmod(file.get(), version.mode & 07777) != 0 || ::futimens(file.get(), times) != 0) {
        throw ItemError{std::string("cannot set mode and time: ") + std::strerror(errno)};
      }
      // Replacing a file: make the new content durable before the old one is gone.
      if (replacing && ::fsync(file.get()) != 0) {
        throw ItemError{std::string("cannot sync: ") + std::strerror(errno)};
      }
      file.reset();
      if (::renameat(directory, temporary.c_str(), directory, name.c_str()) != 0) {
        throw ItemError{std::string("cannot move into place: ") + std::strerror(errno)};
      }
      return written;
    } catch (...) {
      file.reset();
      ::unlinkat(directory, temporary.c_str(), 0);
      throw;
    }
  }

  const Catalog& catalog_;
  const Repository& repository_;
  const RestoreOptions& options_;
  int root_;
  bool root_existed_;
  UniqueFd cached_;
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

  const bool root_existed = path_exists(plan.root);
  if (!options.dry_run) {
    make_directories(plan.root);
  }
  UniqueFd root(::open(plan.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0 && !(options.dry_run && !root_existed)) {
    throw_system_error(errno, "cannot open " + plan.root);
  }
  RestoreReport report;
  report.root = plan.root;
  if (root.get() < 0) {
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

  Restorer restorer(catalog, repository, options, root.get(), root_existed);
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
      Restorer worker(catalog, repository, options, root.get(), root_existed);
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
      const timespec times[2] = {to_timespec(root_item->version.mtime_ns), to_timespec(root_item->version.mtime_ns)};
      ::fchmod(root.get(), root_item->version.mode & 07777);
      ::futimens(root.get(), times);
    }
    // Every file went to a temporary name and was renamed into place; one syncfs makes all of it
    // durable before success is reported (an fsync per file would cost a disk flush per file).
    if (::syncfs(root.get()) != 0) {
      throw_system_error(errno, "cannot flush the restored files to disk under " + plan.root);
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
