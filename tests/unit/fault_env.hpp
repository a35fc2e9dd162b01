#pragma once
// A test Env that forwards to the real one (or another Env) and injects the faults a real
// filesystem produces only by bad luck, as LevelDB's fault_injection_test does:
//
//   fail(op, pattern, n, errnum)   the n-th `op` on a matching path fails with errnum
//   deny(pattern)                  opening a matching file or directory fails with EACCES,
//                                  whatever the real permissions (so root tests it too)
//   short_reads(pattern, bytes)    reads of a matching file return at most `bytes` at a time
//   change_while_read(pattern, n)  the first n opens of a matching file see it change while it
//                                  is read: after the first read its bytes read inverted and
//                                  fstat reports a newer mtime, as if a writer had rewritten it
//   limit_space(bytes)             writes fail with ENOSPC once `bytes` were written in all
//   on(op, pattern, hook)          runs hook(path) before each matching `op` (to act mid-run)
//   crash()                        "power loss": every file written through this Env and not
//                                  made durable since (fsync of the file, or syncfs of its
//                                  filesystem) is truncated to its last durable size
//
// Patterns are fnmatch globs matched against the full path, where '*' also matches '/'
// ("*/big.bin", "/tmp/x/out/*"). Paths of *at calls are the directory's path (as it was opened
// through this Env) joined with the name. Counts are per rule, from 1.
//
// Simplifications: crash() models lost data, not lost directory entries (a rename is taken as
// durable when the data is); fds opened outside this Env have no known path ("?").
//
// Thread-safe: the backup pipeline and the restore workers call it from several threads; the
// hooks run outside its mutex, on the calling thread.

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mybackup/util/env.hpp"

namespace mybackup::testing {

class FaultEnv : public EnvWrapper {
 public:
  /// The calls a fault or a hook applies to. `open` is open_for_reading, open_directory (and
  /// open_directory_for_lookup), create_file_at and create_unnamed_file_at; `sync` is sync and
  /// sync_filesystem; `rename` is rename_at and name_unnamed_file_at.
  enum class Op { open, read, write, sync, rename };

  explicit FaultEnv(Env& target = Env::default_env()) : EnvWrapper(target) {}

  // ---- configuring faults (they add up; each applies to the calls made after it is set)

  /// The n-th to (n + times - 1)-th `op` on a path matching `pattern` fail with `errnum`.
  void fail(Op op, std::string pattern, int n, int errnum, int times = 1) {
    const std::lock_guard lock(mutex_);
    failures_.push_back({op, std::move(pattern), n, n + times - 1, errnum, 0});
  }

  void deny(std::string pattern) {
    const std::lock_guard lock(mutex_);
    denied_.push_back(std::move(pattern));
  }

  void short_reads(std::string pattern, std::size_t max_bytes) {
    const std::lock_guard lock(mutex_);
    short_reads_.emplace_back(std::move(pattern), max_bytes);
  }

  void change_while_read(std::string pattern, int opens) {
    const std::lock_guard lock(mutex_);
    changing_.emplace_back(std::move(pattern), opens);
  }

  void limit_space(std::uint64_t bytes) {
    const std::lock_guard lock(mutex_);
    space_left_ = bytes;
    space_limited_ = true;
  }

  void on(Op op, std::string pattern, std::function<void(const std::string& path)> hook) {
    const std::lock_guard lock(mutex_);
    hooks_.push_back({op, std::move(pattern), std::move(hook)});
  }

  // ---- what happened

  /// How many `op` calls were made on paths matching `pattern` (failed ones included).
  int calls(Op op, const std::string& pattern) const {
    const std::lock_guard lock(mutex_);
    int count = 0;
    for (const auto& [logged_op, path] : log_) {
      count += logged_op == op && matches(pattern, path) ? 1 : 0;
    }
    return count;
  }

  /// The files with data not yet durable, sorted.
  std::vector<std::string> unsynced_files() const {
    const std::lock_guard lock(mutex_);
    std::vector<std::string> paths;
    for (const auto& [path, state] : files_) {
      if (state.dirty) {
        paths.push_back(path);
      }
    }
    return paths;
  }

  /// Simulates power loss: truncates every file with data not yet durable to its last durable
  /// size (0 if it never was). Returns those files (sorted); afterwards everything counts as
  /// durable.
  std::vector<std::string> crash() {
    const std::lock_guard lock(mutex_);
    std::vector<std::string> lost;
    for (auto& [path, state] : files_) {
      if (state.dirty) {
        lost.push_back(path);
        ::truncate(path.c_str(), static_cast<off_t>(state.synced_size));
        state.dirty = false;
      }
    }
    return lost;
  }

  // ---- the Env

  int open_for_reading(int dir_fd, const char* path) override {
    const std::string full = before(Op::open, dir_fd, path);
    if (int fault = open_fault(Op::open, full); fault != 0) {
      return fault;
    }
    const int fd = EnvWrapper::open_for_reading(dir_fd, path);
    if (fd >= 0) {
      const std::lock_guard lock(mutex_);
      OpenFile file{full, false, 0};
      for (auto& [pattern, opens] : changing_) {
        if (opens > 0 && matches(pattern, full)) {
          --opens;
          file.changing = true;
        }
      }
      open_[fd] = std::move(file);
    }
    return fd;
  }

  int open_directory(int dir_fd, const char* path, FollowLinks follow) override {
    const std::string full = before(Op::open, dir_fd, path);
    if (int fault = open_fault(Op::open, full); fault != 0) {
      return fault;
    }
    const int fd = EnvWrapper::open_directory(dir_fd, path, follow);
    remember(fd, full);
    return fd;
  }

  int open_directory_for_lookup(int dir_fd, const char* path) override {
    const std::string full = before(Op::open, dir_fd, path);
    if (int fault = open_fault(Op::open, full); fault != 0) {
      return fault;
    }
    const int fd = EnvWrapper::open_directory_for_lookup(dir_fd, path);
    remember(fd, full);
    return fd;
  }

  int create_file_at(int dir_fd, const char* name, unsigned mode) override {
    const std::string full = before(Op::open, dir_fd, name);
    if (int fault = injected(Op::open, full); fault != 0) {
      return fault;
    }
    const int fd = EnvWrapper::create_file_at(dir_fd, name, mode);
    if (fd >= 0) {
      const std::lock_guard lock(mutex_);
      open_[fd] = OpenFile{full, false, 0};
      files_[full] = FileState{0, true};
    }
    return fd;
  }

  /// Known as "<dir>/(unnamed N)" until named; faults set for `open` apply under that name.
  int create_unnamed_file_at(int dir_fd, unsigned mode) override {
    std::string full;
    {
      const std::lock_guard lock(mutex_);
      full = path_at(dir_fd, ("(unnamed " + std::to_string(++unnamed_files_) + ")").c_str());
    }
    full = logged(Op::open, std::move(full));
    if (int fault = injected(Op::open, full); fault != 0) {
      return fault;
    }
    const int fd = EnvWrapper::create_unnamed_file_at(dir_fd, mode);
    if (fd >= 0) {
      const std::lock_guard lock(mutex_);
      open_[fd] = OpenFile{full, false, 0};
      files_[full] = FileState{0, true};
    }
    return fd;
  }

  /// Counts as a rename, from the unnamed file's name.
  int name_unnamed_file_at(int fd, int dir_fd, const char* name) override {
    const std::string from = before(Op::rename, fd);
    if (int fault = injected(Op::rename, from); fault != 0) {
      return fault;
    }
    const int rc = EnvWrapper::name_unnamed_file_at(fd, dir_fd, name);
    if (rc == 0) {
      const std::lock_guard lock(mutex_);
      const std::string to = path_at(dir_fd, name);
      move_state(from, to);
      open_[fd].path = to;
    }
    return rc;
  }

  int close(int fd) override {
    {
      const std::lock_guard lock(mutex_);
      if (const auto file = open_.find(fd); file != open_.end() && file->second.path.find("/(unnamed ") != std::string::npos) {
        files_.erase(file->second.path);  // never named: gone with its descriptor
      }
      open_.erase(fd);
    }
    return EnvWrapper::close(fd);
  }


  std::int64_t read(int fd, void* buffer, std::size_t size) override {
    const std::string path = before(Op::read, fd);
    if (int fault = injected(Op::read, path); fault != 0) {
      return fault;
    }
    bool invert = false;
    {
      const std::lock_guard lock(mutex_);
      for (const auto& [pattern, max_bytes] : short_reads_) {
        if (matches(pattern, path) && size > max_bytes) {
          size = max_bytes;
        }
      }
      const auto file = open_.find(fd);
      if (file != open_.end() && file->second.changing) {
        invert = file->second.reads++ > 0;
      }
    }
    const std::int64_t n = EnvWrapper::read(fd, buffer, size);
    if (invert && n > 0) {
      auto* bytes = static_cast<unsigned char*>(buffer);
      for (std::int64_t i = 0; i < n; ++i) {
        bytes[i] = static_cast<unsigned char>(~bytes[i]);
      }
    }
    return n;
  }

  int stat_fd(int fd, struct stat& info) override {
    const int rc = EnvWrapper::stat_fd(fd, info);
    const std::lock_guard lock(mutex_);
    const auto file = open_.find(fd);
    if (rc == 0 && file != open_.end() && file->second.changing && file->second.reads > 0) {
      info.st_mtim.tv_sec += 1;  // rewritten while it was being read
    }
    return rc;
  }

  std::int64_t write(int fd, const void* data, std::size_t size) override {
    const std::string path = before(Op::write, fd);
    if (int fault = injected(Op::write, path); fault != 0) {
      return fault;
    }
    {
      const std::lock_guard lock(mutex_);
      if (space_limited_) {
        if (space_left_ == 0) {
          return -ENOSPC;
        }
        size = static_cast<std::size_t>(std::min<std::uint64_t>(size, space_left_));
      }
    }
    const std::int64_t n = EnvWrapper::write(fd, data, size);
    if (n > 0) {
      const std::lock_guard lock(mutex_);
      if (space_limited_) {
        space_left_ -= static_cast<std::uint64_t>(n);
      }
      // Only create_file_at opens for writing, so the file is known.
      files_[path].dirty = true;
    }
    return n;
  }

  int sync(int fd) override {
    const std::string path = before(Op::sync, fd);
    if (int fault = injected(Op::sync, path); fault != 0) {
      return fault;
    }
    const int rc = EnvWrapper::sync(fd);
    struct stat info {};
    if (rc == 0 && ::fstat(fd, &info) == 0) {
      const std::lock_guard lock(mutex_);
      const auto state = files_.find(path);
      if (state != files_.end()) {
        state->second = FileState{static_cast<std::uint64_t>(info.st_size), false};
      }
    }
    return rc;
  }

  int sync_filesystem(int fd) override {
    const std::string path = before(Op::sync, fd);
    if (int fault = injected(Op::sync, path); fault != 0) {
      return fault;
    }
    const int rc = EnvWrapper::sync_filesystem(fd);
    struct stat filesystem {};
    if (rc == 0 && ::fstat(fd, &filesystem) == 0) {
      const std::lock_guard lock(mutex_);
      for (auto& [file, state] : files_) {
        struct stat info {};
        if (::lstat(file.c_str(), &info) == 0 && info.st_dev == filesystem.st_dev) {
          state = FileState{static_cast<std::uint64_t>(info.st_size), false};
        }
      }
    }
    return rc;
  }

  int rename_at(int dir_fd, const char* from, const char* to) override {
    const std::string full_from = before(Op::rename, dir_fd, from);
    if (int fault = injected(Op::rename, full_from); fault != 0) {
      return fault;
    }
    const int rc = EnvWrapper::rename_at(dir_fd, from, to);
    if (rc == 0) {
      const std::lock_guard lock(mutex_);
      move_state(full_from, path_at(dir_fd, to));
    }
    return rc;
  }

  int unlink_at(int dir_fd, const char* name) override {
    const int rc = EnvWrapper::unlink_at(dir_fd, name);
    if (rc == 0) {
      const std::lock_guard lock(mutex_);
      files_.erase(path_at(dir_fd, name));
    }
    return rc;
  }

 private:
  /// What is known of `from` is now `to`'s (whose own state, if any, is gone). Called with mutex_ held.
  void move_state(const std::string& from, const std::string& to) {
    files_.erase(to);
    if (const auto state = files_.find(from); state != files_.end()) {
      files_[to] = state->second;
      files_.erase(state);
    }
  }

  struct Failure {
    Op op;
    std::string pattern;
    int first;
    int last;
    int errnum;
    int seen;
  };
  struct Hook {
    Op op;
    std::string pattern;
    std::function<void(const std::string&)> run;
  };
  struct OpenFile {
    std::string path;
    bool changing = false;
    int reads = 0;
  };
  struct FileState {
    std::uint64_t synced_size = 0;
    bool dirty = false;
  };

  static bool matches(const std::string& pattern, const std::string& path) {
    return ::fnmatch(pattern.c_str(), path.c_str(), 0) == 0;
  }

  /// REQUIRES: mutex_ held.
  std::string path_at(int dir_fd, const char* name) const {
    if (name[0] == '/') {
      return name;
    }
    std::string directory = "?";
    if (dir_fd == AT_FDCWD) {
      char cwd[4096];
      directory = ::getcwd(cwd, sizeof cwd) != nullptr ? cwd : "?";
    } else if (const auto found = open_.find(dir_fd); found != open_.end()) {
      directory = found->second.path;
    }
    return directory == "/" ? "/" + std::string(name) : directory + "/" + name;
  }

  void remember(int fd, const std::string& path) {
    if (fd >= 0) {
      const std::lock_guard lock(mutex_);
      open_[fd] = OpenFile{path, false, 0};
    }
  }

  /// Logs the call, runs its hooks, and returns the full path.
  std::string before(Op op, int dir_fd, const char* name) {
    std::string path;
    {
      const std::lock_guard lock(mutex_);
      path = path_at(dir_fd, name);
    }
    return logged(op, std::move(path));
  }
  std::string before(Op op, int fd) {
    std::string path = "?";
    {
      const std::lock_guard lock(mutex_);
      if (const auto found = open_.find(fd); found != open_.end()) {
        path = found->second.path;
      }
    }
    return logged(op, std::move(path));
  }
  std::string logged(Op op, std::string path) {
    std::vector<std::function<void(const std::string&)>> due;
    {
      const std::lock_guard lock(mutex_);
      log_.emplace_back(op, path);
      for (const Hook& hook : hooks_) {
        if (hook.op == op && matches(hook.pattern, path)) {
          due.push_back(hook.run);
        }
      }
    }
    for (const auto& run : due) {
      run(path);
    }
    return path;
  }

  /// -errnum if a fail() rule selects this call, else 0.
  int injected(Op op, const std::string& path) {
    const std::lock_guard lock(mutex_);
    int result = 0;
    for (Failure& failure : failures_) {
      if (failure.op != op || !matches(failure.pattern, path)) {
        continue;
      }
      ++failure.seen;
      if (result == 0 && failure.seen >= failure.first && failure.seen <= failure.last) {
        result = -failure.errnum;
      }
    }
    return result;
  }

  /// A fail() rule or deny() for an open.
  int open_fault(Op op, const std::string& path) {
    if (const int fault = injected(op, path); fault != 0) {
      return fault;
    }
    const std::lock_guard lock(mutex_);
    for (const std::string& pattern : denied_) {
      if (matches(pattern, path)) {
        return -EACCES;
      }
    }
    return 0;
  }

  mutable std::mutex mutex_;
  std::vector<Failure> failures_;
  std::vector<std::string> denied_;
  std::vector<std::pair<std::string, std::size_t>> short_reads_;
  std::vector<std::pair<std::string, int>> changing_;
  std::vector<Hook> hooks_;
  bool space_limited_ = false;
  std::uint64_t space_left_ = 0;
  std::vector<std::pair<Op, std::string>> log_;
  std::unordered_map<int, OpenFile> open_;
  std::map<std::string, FileState> files_;
  std::uint64_t unnamed_files_ = 0;  // create_unnamed_file_at calls, to name them apart
};

}  // namespace mybackup::testing
