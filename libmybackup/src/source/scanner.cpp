#include "mybackup/source/scanner.hpp"

#include "mybackup/util/env.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/util/path_walk.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

namespace mybackup {

namespace {

// Each level of the walk keeps its directory fd open so children can be opened with openat.
// Beyond this depth the parent is closed before descending (children are opened from the
// deepest held level, component by component, never following a link), so a pathologically
// deep tree cannot exhaust the process's file descriptors.
constexpr int kMaxHeldDirectoryFds = 128;

ScanEntry make_entry(const std::string& path, EntryType type, const struct stat& st) {
  ScanEntry entry;
  entry.path = path;
  entry.type = type;
  entry.mode = static_cast<std::uint32_t>(st.st_mode & 07777);
  entry.size = type == EntryType::file ? static_cast<std::uint64_t>(st.st_size) : 0;
  entry.mtime_ns = time_ns(st.st_mtim);
  entry.inode = static_cast<std::uint64_t>(st.st_ino);
  entry.meta = stat_metadata(st, type == EntryType::char_device || type == EntryType::block_device);
  return entry;
}

/// The type a fifo or a device node is recorded as; nullopt for what is never recorded.
std::optional<EntryType> special_type(mode_t mode) {
  if (S_ISFIFO(mode)) {
    return EntryType::fifo;
  }
  if (S_ISCHR(mode)) {
    return EntryType::char_device;
  }
  if (S_ISBLK(mode)) {
    return EntryType::block_device;
  }
  return std::nullopt;
}

/// Records a fifo or device node; a socket is skipped silently (it is recreated by the program
/// that listens on it, never restored); anything else is a problem.
void add_special(const std::string& path, const struct stat& st, ScanResult& result) {
  if (const std::optional<EntryType> type = special_type(st.st_mode)) {
    result.entries.push_back(make_entry(path, *type, st));
  } else if (!S_ISSOCK(st.st_mode)) {
    result.problems.push_back(ScanProblem{path, "skipped: unknown file type"});
  }
}

std::string with_reason(const char* what, int errnum) {
  return std::string(what) + ": " + std::strerror(errnum);
}

class Walker {
 public:
  Walker(Env& env, const ExcludeMatcher& excludes, ScanResult& result) : env_(env), excludes_(excludes), result_(result) {}

  // `abs_path` and `rel_path` are scratch buffers that are extended for children and restored
  // before returning.
  void walk(EnvFd dir, std::string& abs_path, std::string& rel_path, int depth) {
    const int fd = dir.get();
    const std::size_t abs_length = abs_path.size();
    if (depth == kMaxHeldDirectoryFds - 1) {
      anchor_fd_ = fd;  // held while everything below it is walked
      anchor_length_ = abs_length;
    }
    const std::size_t rel_length = rel_path.size();
    std::vector<std::pair<std::string, std::size_t>> subdirectories;  // name, index of its entry

    const int listed = env_.list_directory(fd, [&](const char* name, unsigned char type) {
      append_component(abs_path, rel_path, name);
      if (visit(fd, name, type, abs_path, rel_path)) {
        subdirectories.emplace_back(name, result_.entries.size() - 1);
      }
      abs_path.resize(abs_length);
      rel_path.resize(rel_length);
    });
    if (listed < 0) {
      add_problem(abs_path, with_reason("cannot read directory", -listed));
    }

    const bool hold_parent = depth < kMaxHeldDirectoryFds;
    if (!hold_parent) {
      dir.reset();
    }
    for (const auto& [name, entry_index] : subdirectories) {
      append_component(abs_path, rel_path, name.c_str());
      const int child_fd = hold_parent ? env_.open_directory(fd, name.c_str(), FollowLinks::no)
                                       : open_directory_below(env_, anchor_fd_, abs_path.substr(anchor_length_ + 1));
      if (child_fd >= 0) {
        read_directory_xattrs(child_fd, result_.entries[entry_index]);
        walk(EnvFd(env_, child_fd), abs_path, rel_path, depth + 1);
      } else if (child_fd != -ENOENT) {
        // The directory stays listed (it exists), only its contents are missing.
        add_problem(abs_path, with_reason("cannot open directory", -child_fd));
      }
      abs_path.resize(abs_length);
      rel_path.resize(rel_length);
    }
  }

  /// Fills a directory entry's extended attributes from its open handle.
  void read_directory_xattrs(int fd, ScanEntry& entry) {
    if (const int err = read_xattrs(fd, privileged_, entry.meta.xattrs); err != 0) {
      add_problem(entry.path, with_reason("extended attributes not recorded", err));
    }
  }

 private:
  static void append_component(std::string& abs_path, std::string& rel_path, const char* name) {
    if (abs_path.back() != '/') {
      abs_path += '/';
    }
    abs_path += name;
    if (!rel_path.empty()) {
      rel_path += '/';
    }
    rel_path += name;
  }

  // Records one directory member; returns true if it is a directory to descend into.
  bool visit(int dir_fd, const char* name, unsigned char d_type, const std::string& abs_path,
             const std::string& rel_path) {
    struct stat st {};
    bool have_stat = false;
    bool is_directory = d_type == DT_DIR;
    if (d_type == DT_UNKNOWN) {
      if (!stat_member(dir_fd, name, abs_path, st)) {
        return false;
      }
      have_stat = true;
      is_directory = S_ISDIR(st.st_mode);
    }
    // Excluded members are not even stat'ed, so they cannot cause problems.
    if (excludes_.excluded(rel_path, is_directory)) {
      return false;
    }
    if (!have_stat) {
      if (!stat_member(dir_fd, name, abs_path, st)) {
        return false;
      }
      // The member was replaced since readdir; directory-only patterns depend on the type.
      if (S_ISDIR(st.st_mode) != is_directory && excludes_.excluded(rel_path, !is_directory)) {
        return false;
      }
    }

    if (S_ISREG(st.st_mode)) {
      result_.entries.push_back(make_entry(abs_path, EntryType::file, st));
      return false;
    }
    if (S_ISDIR(st.st_mode)) {
      result_.entries.push_back(make_entry(abs_path, EntryType::directory, st));
      return true;
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target;
      const int err = read_link_target(env_, dir_fd, name, static_cast<std::size_t>(st.st_size), target);
      if (err == ENOENT) {
        return false;
      }
      if (err != 0) {
        add_problem(abs_path, with_reason("cannot read symbolic link", err));
        return false;
      }
      ScanEntry entry = make_entry(abs_path, EntryType::symlink, st);
      entry.size = target.size();
      entry.link_target = std::move(target);
      result_.entries.push_back(std::move(entry));
      return false;
    }
    add_special(abs_path, st, result_);
    return false;
  }

  // A member that vanished since readdir is silently ignored; other failures are problems.
  bool stat_member(int dir_fd, const char* name, const std::string& abs_path, struct stat& st) {
    const int rc = env_.stat_at(dir_fd, name, st);
    if (rc == 0) {
      return true;
    }
    if (rc != -ENOENT) {
      add_problem(abs_path, with_reason("cannot read metadata", -rc));
    }
    return false;
  }

  void add_problem(const std::string& path, std::string reason) {
    result_.problems.push_back(ScanProblem{path, std::move(reason)});
  }

  Env& env_;
  const bool privileged_ = running_as_root();
  int anchor_fd_ = -1;             // the deepest held directory (see kMaxHeldDirectoryFds)
  std::size_t anchor_length_ = 0;  // the length of its absolute path
  const ExcludeMatcher& excludes_;
  ScanResult& result_;
};

std::string current_directory() {
  std::string buffer(256, '\0');
  for (;;) {
    if (getcwd(buffer.data(), buffer.size()) != nullptr) {
      buffer.resize(std::strlen(buffer.c_str()));
      return buffer;
    }
    if (errno != ERANGE) {
      throw_system_error(errno, "cannot determine the current directory");
    }
    buffer.resize(buffer.size() * 2);
  }
}

}  // namespace

std::string_view to_string(EntryType type) {
  switch (type) {
    case EntryType::file: return "file";
    case EntryType::directory: return "directory";
    case EntryType::symlink: return "symlink";
    case EntryType::deleted: return "deleted";
    case EntryType::fifo: return "fifo";
    case EntryType::char_device: return "character device";
    case EntryType::block_device: return "block device";
  }
  return "?";
}

ExcludeMatcher::ExcludeMatcher(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {
  for (const std::string& written : patterns_) {
    Pattern pattern;
    std::string_view glob = written;
    while (!glob.empty() && glob.back() == '/') {
      pattern.directory_only = true;
      glob.remove_suffix(1);
    }
    // "./x" and "/x" anchor the pattern at the source root.
    for (;;) {
      if (glob.starts_with("./")) {
        glob.remove_prefix(2);
      } else if (glob.starts_with('/')) {
        glob.remove_prefix(1);
      } else {
        break;
      }
      pattern.match_path = true;
    }
    if (glob.empty() || glob == ".") {
      continue;  // would only name the root itself, which is never excluded
    }
    if (glob.find('/') != std::string_view::npos) {
      pattern.match_path = true;
    }
    pattern.glob = std::string(glob);
    compiled_.push_back(std::move(pattern));
  }
}

bool ExcludeMatcher::excluded(std::string_view relative_path, bool is_directory) const {
  if (compiled_.empty()) {
    return false;
  }
  const std::string path(relative_path);  // fnmatch needs NUL-terminated strings
  const std::size_t slash = path.rfind('/');
  const char* name = path.c_str() + (slash == std::string::npos ? 0 : slash + 1);
  for (const Pattern& pattern : compiled_) {
    if (pattern.directory_only && !is_directory) {
      continue;
    }
    const int matched = pattern.match_path ? fnmatch(pattern.glob.c_str(), path.c_str(), FNM_PATHNAME)
                                           : fnmatch(pattern.glob.c_str(), name, 0);
    if (matched == 0) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> split_patterns(std::string_view comma_separated) {
  std::vector<std::string> patterns;
  std::size_t start = 0;
  while (start <= comma_separated.size()) {
    std::size_t end = comma_separated.find(',', start);
    if (end == std::string_view::npos) {
      end = comma_separated.size();
    }
    std::string_view item = comma_separated.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
      item.remove_prefix(1);
    }
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      patterns.emplace_back(item);
    }
    start = end + 1;
  }
  return patterns;
}

std::string normalize_path(std::string_view path) {
  std::string absolute;
  if (path.empty() || path.front() != '/') {
    absolute = current_directory();
    absolute += '/';
  }
  absolute += path;

  std::vector<std::string_view> components;
  std::size_t start = 0;
  const std::string_view view = absolute;
  while (start < view.size()) {
    std::size_t end = view.find('/', start);
    if (end == std::string_view::npos) {
      end = view.size();
    }
    const std::string_view component = view.substr(start, end - start);
    if (component == "..") {
      if (!components.empty()) {
        components.pop_back();  // ".." at the root stays at the root
      }
    } else if (!component.empty() && component != ".") {
      components.push_back(component);
    }
    start = end + 1;
  }

  if (components.empty()) {
    return "/";
  }
  std::string normal;
  normal.reserve(absolute.size());
  for (const std::string_view component : components) {
    normal += '/';
    normal += component;
  }
  return normal;
}

ScanResult scan_tree(const std::string& root, const ExcludeMatcher& excludes, Env* env_or_null) {
  Env& env = Env::or_default(env_or_null);
  const std::string root_path = normalize_path(root);
  // The root's parent is opened link-free (see path_walk.hpp): a link another user planted
  // above the source never decides what is read as it.
  const std::size_t slash = root_path.rfind('/');
  const std::string name = root_path == "/" ? "." : root_path.substr(slash + 1);
  EnvFd parent;
  try {
    parent = open_directory_path(env, parent_directory(root_path), PathUse::look_up);
  } catch (const Error& error) {
    if (error.kind() == ErrorKind::not_found) {
      throw Error(ErrorKind::not_found, "source not found: " + root_path);
    }
    throw;
  }
  struct stat st {};
  if (const int rc = env.stat_at(parent.get(), name.c_str(), st); rc != 0) {
    if (rc == -ENOENT || rc == -ENOTDIR) {
      throw Error(ErrorKind::not_found, "source not found: " + root_path);
    }
    throw_system_error(-rc, "cannot read source " + root_path);
  }

  ScanResult result;
  if (S_ISREG(st.st_mode)) {
    result.entries.push_back(make_entry(root_path, EntryType::file, st));
  } else if (S_ISLNK(st.st_mode)) {
    // Like every other symlink, a symlinked root is recorded, not followed.
    std::string target;
    const int err = read_link_target(env, parent.get(), name.c_str(), static_cast<std::size_t>(st.st_size), target);
    if (err != 0) {
      throw_system_error(err, "cannot read source " + root_path);
    }
    ScanEntry entry = make_entry(root_path, EntryType::symlink, st);
    entry.size = target.size();
    entry.link_target = std::move(target);
    result.entries.push_back(std::move(entry));
  } else if (S_ISDIR(st.st_mode)) {
    const int fd = env.open_directory(parent.get(), name.c_str(), FollowLinks::no);
    if (fd < 0) {
      throw_system_error(-fd, "cannot open source directory " + root_path);
    }
    result.entries.push_back(make_entry(root_path, EntryType::directory, st));
    std::string abs_path = root_path;
    std::string rel_path;
    Walker walker(env, excludes, result);
    walker.read_directory_xattrs(fd, result.entries.back());
    walker.walk(EnvFd(env, fd), abs_path, rel_path, 0);
  } else {
    add_special(root_path, st, result);
  }

  std::sort(result.entries.begin(), result.entries.end(),
            [](const ScanEntry& a, const ScanEntry& b) { return a.path < b.path; });
  std::stable_sort(result.problems.begin(), result.problems.end(),
                   [](const ScanProblem& a, const ScanProblem& b) { return a.path < b.path; });
  return result;
}

}  // namespace mybackup
