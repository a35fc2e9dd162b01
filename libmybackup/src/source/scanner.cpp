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
void add_special(const std::string& path, const struct stat& st, ScanSink& sink) {
  if (const std::optional<EntryType> type = special_type(st.st_mode)) {
    sink.entry(make_entry(path, *type, st));
  } else if (!S_ISSOCK(st.st_mode)) {
    sink.problem(ScanProblem{path, "skipped: unknown file type"});
  }
}

std::string with_reason(const char* what, int errnum) {
  return std::string(what) + ": " + std::strerror(errnum);
}

/// A directory's member as listed, before it is examined.
struct Member {
  std::string name;
  bool directory = false;  // as listed (d_type, or a stat where the file system gives no type)
};

/// When a member is visited: at its name for its own entry, at its name + "/" for what lies below
/// it. Sorting these keys byte-wise puts every path of the walk in byte order (see ScanSink).
struct Step {
  std::string_view key_prefix;  // the member's name
  bool descend = false;         // the key is key_prefix + "/"
  std::uint32_t member = 0;
};

bool step_before(const Step& a, const Step& b) {
  // Compares key_prefix + (descend ? "/" : "") without building the strings.
  const std::size_t common = std::min(a.key_prefix.size(), b.key_prefix.size());
  if (const int c = a.key_prefix.substr(0, common).compare(b.key_prefix.substr(0, common)); c != 0) {
    return c < 0;
  }
  const auto char_at = [](const Step& step, std::size_t i) -> int {
    if (i < step.key_prefix.size()) {
      return static_cast<unsigned char>(step.key_prefix[i]);
    }
    return i == step.key_prefix.size() && step.descend ? '/' : -1;  // -1: the key has ended
  };
  return char_at(a, common) < char_at(b, common);
}

class Walker {
 public:
  Walker(Env& env, const ExcludeMatcher& excludes, ScanSink& sink) : env_(env), excludes_(excludes), sink_(sink) {}

  // `abs_path` and `rel_path` are scratch buffers that are extended for children and restored
  // before returning. The directory's own entry has been delivered.
  void walk(EnvFd dir, std::string& abs_path, std::string& rel_path, int depth) {
    const std::size_t abs_length = abs_path.size();
    if (depth == kMaxHeldDirectoryFds - 1) {
      anchor_fd_ = dir.get();  // held while everything below it is walked
      anchor_length_ = abs_length;
    }
    const std::size_t rel_length = rel_path.size();

    // Only names are held for a directory being walked: a folder of a million files costs its
    // names, not a million entries.
    std::vector<Member> members;
    const int listed = env_.list_directory(dir.get(), [&](const char* name, unsigned char type) {
      Member member{name, type == DT_DIR};
      if (type == DT_UNKNOWN) {
        struct stat st {};
        member.directory = env_.stat_at(dir.get(), name, st) == 0 && S_ISDIR(st.st_mode);
      }
      members.push_back(std::move(member));
    });
    if (listed < 0) {
      sink_.problem(ScanProblem{abs_path, with_reason("cannot read directory", -listed)});
    }
    std::vector<Step> steps;
    steps.reserve(members.size());
    for (std::uint32_t i = 0; i < members.size(); ++i) {
      steps.push_back({members[i].name, false, i});
      if (members[i].directory) {
        steps.push_back({members[i].name, true, i});
      }
    }
    std::sort(steps.begin(), steps.end(), step_before);

    // Directories whose entry was delivered, kept open (a few) until their turn to be walked.
    std::vector<std::pair<std::uint32_t, EnvFd>> opened;
    std::vector<bool> walkable(members.size(), false);  // delivered as a directory to walk
    const auto release_opened = [&] { pending_fds_ -= opened.size(); };
    for (const Step& step : steps) {
      const Member& member = members[step.member];
      append_component(abs_path, rel_path, member.name.c_str());
      if (!step.descend) {
        EnvFd child;
        walkable[step.member] = visit(dir.get(), depth, member, abs_path, rel_path, child);
        if (walkable[step.member] && child.valid() && pending_fds_ < kMaxPendingDirectoryFds) {
          ++pending_fds_;
          opened.emplace_back(step.member, std::move(child));
        }
      } else if (walkable[step.member]) {
        EnvFd child;
        const auto held = std::find_if(opened.begin(), opened.end(), [&](const auto& p) { return p.first == step.member; });
        if (held != opened.end()) {
          child = std::move(held->second);
          opened.erase(held);
          --pending_fds_;
        } else {
          child = open_child(dir.get(), depth, abs_path, member.name.c_str());
        }
        if (child.valid()) {
          const bool hold_parent = depth < kMaxHeldDirectoryFds;
          if (!hold_parent) {
            dir.reset();  // too deep to keep every level open: reopened from the anchor after
          }
          walk(std::move(child), abs_path, rel_path, depth + 1);
          if (!hold_parent) {
            abs_path.resize(abs_length);
            dir = reopen_below_anchor(abs_path);
            if (!dir.valid()) {
              release_opened();
              return;  // the folder is gone: nothing more of it can be listed
            }
          }
        }
      }
      abs_path.resize(abs_length);
      rel_path.resize(rel_length);
    }
    release_opened();  // none left in practice: each was walked at its turn
  }

  /// Fills a directory entry's extended attributes from its open handle.
  void read_directory_xattrs(int fd, ScanEntry& entry) {
    if (const int err = read_xattrs(fd, privileged_, entry.meta.xattrs); err != 0) {
      sink_.problem(ScanProblem{entry.path, with_reason("extended attributes not recorded", err)});
    }
  }

 private:
  // A directory whose entry is delivered is opened then (for its extended attributes); up to so
  // many (in the whole walk) are kept open until walked, the others are opened again. Names that
  // sort between a folder's entry and its contents ("a", "a.txt", "a/") are rare, but a hostile
  // tree could make many.
  static constexpr std::size_t kMaxPendingDirectoryFds = 16;

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

  /// Opens the directory `name` of `dir_fd` (whose depth is `depth`) without following links;
  /// an invalid handle if it cannot (a problem is reported unless it vanished).
  EnvFd open_child(int dir_fd, int depth, const std::string& abs_path, const char* name) {
    const int child_fd = depth < kMaxHeldDirectoryFds
                             ? env_.open_directory(dir_fd, name, FollowLinks::no)
                             : open_directory_below(env_, anchor_fd_, abs_path.substr(anchor_length_ + 1));
    if (child_fd >= 0) {
      return EnvFd(env_, child_fd);
    }
    if (child_fd != -ENOENT) {
      // The directory stays listed (it exists), only its contents are missing.
      sink_.problem(ScanProblem{abs_path, with_reason("cannot open directory", -child_fd)});
    }
    return EnvFd();
  }

  EnvFd reopen_below_anchor(const std::string& abs_path) {
    const int fd = open_directory_below(env_, anchor_fd_, abs_path.substr(anchor_length_ + 1));
    if (fd < 0) {
      sink_.problem(ScanProblem{abs_path, with_reason("cannot open directory", -fd)});
      return EnvFd();
    }
    return EnvFd(env_, fd);
  }

  // Delivers one directory member; returns true if it is a directory to walk (then `child` holds
  // it open, unless it could not be opened: a problem was reported, and it is not walked).
  bool visit(int dir_fd, int depth, const Member& member, const std::string& abs_path, const std::string& rel_path,
             EnvFd& child) {
    const char* name = member.name.c_str();
    // Excluded members are not even stat'ed, so they cannot cause problems.
    if (excludes_.excluded(rel_path, member.directory)) {
      return false;
    }
    struct stat st {};
    if (!stat_member(dir_fd, name, abs_path, st)) {
      return false;
    }
    if (S_ISDIR(st.st_mode) != member.directory) {
      // Replaced by another type since it was listed: its place in the order (and in the
      // comparison with the catalog) is unknown until the next backup.
      sink_.problem(ScanProblem{abs_path, "changed while being scanned (the next backup records it)"});
      return false;
    }

    if (S_ISREG(st.st_mode)) {
      sink_.entry(make_entry(abs_path, EntryType::file, st));
      return false;
    }
    if (S_ISDIR(st.st_mode)) {
      ScanEntry entry = make_entry(abs_path, EntryType::directory, st);
      child = open_child(dir_fd, depth, abs_path, name);
      if (!child.valid()) {
        sink_.entry(std::move(entry));
        return false;
      }
      read_directory_xattrs(child.get(), entry);
      sink_.entry(std::move(entry));
      return true;
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target;
      const int err = read_link_target(env_, dir_fd, name, static_cast<std::size_t>(st.st_size), target);
      if (err == ENOENT) {
        return false;
      }
      if (err != 0) {
        sink_.problem(ScanProblem{abs_path, with_reason("cannot read symbolic link", err)});
        return false;
      }
      ScanEntry entry = make_entry(abs_path, EntryType::symlink, st);
      entry.size = target.size();
      entry.link_target = std::move(target);
      sink_.entry(std::move(entry));
      return false;
    }
    add_special(abs_path, st, sink_);
    return false;
  }

  // A member that vanished since readdir is silently ignored; other failures are problems.
  bool stat_member(int dir_fd, const char* name, const std::string& abs_path, struct stat& st) {
    const int rc = env_.stat_at(dir_fd, name, st);
    if (rc == 0) {
      return true;
    }
    if (rc != -ENOENT) {
      sink_.problem(ScanProblem{abs_path, with_reason("cannot read metadata", -rc)});
    }
    return false;
  }

  Env& env_;
  const bool privileged_ = running_as_root();
  std::size_t pending_fds_ = 0;    // directories delivered and held open until walked
  int anchor_fd_ = -1;             // the deepest held directory (see kMaxHeldDirectoryFds)
  std::size_t anchor_length_ = 0;  // the length of its absolute path
  const ExcludeMatcher& excludes_;
  ScanSink& sink_;
};

/// Collects a walk into a ScanResult.
class CollectingSink final : public ScanSink {
 public:
  explicit CollectingSink(ScanResult& result) : result_(result) {}
  void entry(ScanEntry&& entry) override { result_.entries.push_back(std::move(entry)); }
  void problem(ScanProblem&& problem) override { result_.problems.push_back(std::move(problem)); }

 private:
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

void scan_tree(const std::string& root, const ExcludeMatcher& excludes, ScanSink& sink, Env* env_or_null) {
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

  if (S_ISREG(st.st_mode)) {
    sink.entry(make_entry(root_path, EntryType::file, st));
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
    sink.entry(std::move(entry));
  } else if (S_ISDIR(st.st_mode)) {
    const int fd = env.open_directory(parent.get(), name.c_str(), FollowLinks::no);
    if (fd < 0) {
      throw_system_error(-fd, "cannot open source directory " + root_path);
    }
    EnvFd root_fd(env, fd);
    ScanEntry entry = make_entry(root_path, EntryType::directory, st);
    Walker walker(env, excludes, sink);
    walker.read_directory_xattrs(fd, entry);
    sink.entry(std::move(entry));
    std::string abs_path = root_path;
    std::string rel_path;
    walker.walk(std::move(root_fd), abs_path, rel_path, 0);
  } else {
    add_special(root_path, st, sink);
  }
}

ScanResult scan_tree(const std::string& root, const ExcludeMatcher& excludes, Env* env) {
  ScanResult result;
  CollectingSink sink(result);
  scan_tree(root, excludes, sink, env);
  std::stable_sort(result.problems.begin(), result.problems.end(),
                   [](const ScanProblem& a, const ScanProblem& b) { return a.path < b.path; });
  return result;
}

}  // namespace mybackup
