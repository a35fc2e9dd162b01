#pragma once
// Real-time change detection for `mybackup watch`: one inotify watch on every directory below
// each source, reporting "something changed under source N", never which file (the backup that
// follows finds out by itself).
//
// - Directories created (or moved in) below a source get their own watches as they appear.
// - Paths the source's exclude patterns match (ExcludeMatcher, as the scanner applies them) are
//   neither watched nor reported.
// - A source that is a single file is watched through its parent directory, events filtered by
//   name.
// - When the kernel refuses a watch with ENOSPC (fs.inotify.max_user_watches reached), watching
//   stops there: complete() turns false and limit_message() says what to do; the caller falls back
//   to the interval. A queue overflow (IN_Q_OVERFLOW) reports every source as changed.

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mybackup/source/scanner.hpp"

namespace mybackup {

struct WatchRoot {
  std::string path;                  // absolute, normalized (a directory or a file)
  std::vector<std::string> exclude;  // the source's exclude patterns
};

class ChangeWatcher {
 public:
  /// Watches every directory below `roots`. Error(io) if inotify itself is not available (no
  /// kernel support, too many inotify instances). A root that does not exist is not watched.
  explicit ChangeWatcher(std::vector<WatchRoot> roots);
  ~ChangeWatcher();
  ChangeWatcher(const ChangeWatcher&) = delete;
  ChangeWatcher& operator=(const ChangeWatcher&) = delete;

  /// Waits at most `timeout_ms` (0: do not wait) for changes; returns the indexes (into the roots
  /// given) of the sources under which something changed, sorted and unique; empty on timeout.
  /// Changes are queued by the kernel between calls, so none is lost while the caller is busy.
  std::vector<std::size_t> wait(int timeout_ms);

  /// False once a watch was refused for the watch limit: some directories are not watched.
  bool complete() const { return !limit_reached_; }
  /// A one-line explanation when !complete().
  std::string limit_message() const;
  /// The number of directories watched.
  std::size_t watch_count() const { return watches_.size(); }

 private:
  struct Watch {
    std::size_t root = 0;
    std::string relative;   // the directory, relative to the root ("" for the root itself)
    std::string only_name;  // for a file root: the only name reported in its parent directory
  };
  void add_tree(std::size_t root, const std::string& directory, const std::string& relative);
  bool add_watch(const std::string& directory, const Watch& watch);
  void read_events(std::vector<bool>& changed);

  std::vector<WatchRoot> roots_;
  std::vector<ExcludeMatcher> matchers_;
  int fd_ = -1;
  std::map<int, Watch> watches_;  // by watch descriptor
  bool limit_reached_ = false;
};

}  // namespace mybackup
