#include "mybackup/watch/change_watcher.hpp"

#include <dirent.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr std::uint32_t kDirectoryMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
                                         IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                                         IN_DONT_FOLLOW | IN_EXCL_UNLINK;

std::string child_path(const std::string& directory, const std::string& name) {
  return directory == "/" ? "/" + name : directory + "/" + name;
}

std::string child_relative(const std::string& relative, const std::string& name) {
  return relative.empty() ? name : relative + "/" + name;
}

std::string parent_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

ChangeWatcher::ChangeWatcher(std::vector<WatchRoot> roots) : roots_(std::move(roots)) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    throw_system_error(errno, "cannot watch the sources for changes (inotify)");
  }
  for (const WatchRoot& root : roots_) {
    matchers_.emplace_back(root.exclude);
  }
  for (std::size_t i = 0; i < roots_.size() && !limit_reached_; ++i) {
    struct stat info {};
    if (::lstat(roots_[i].path.c_str(), &info) != 0) {
      continue;
    }
    if (S_ISDIR(info.st_mode)) {
      add_tree(i, roots_[i].path, "");
    } else {
      add_watch(parent_of(roots_[i].path), Watch{i, "", base_name(roots_[i].path)});
    }
  }
}

ChangeWatcher::~ChangeWatcher() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::string ChangeWatcher::limit_message() const {
  return "the inotify watch limit is reached (" + std::to_string(watches_.size()) +
         " directories watched): changes are only caught by the interval; raise it with `sysctl "
         "fs.inotify.max_user_watches=524288`";
}

bool ChangeWatcher::add_watch(const std::string& directory, const Watch& watch) {
  const int wd = ::inotify_add_watch(fd_, directory.c_str(), kDirectoryMask);
  if (wd < 0) {
    if (errno == ENOSPC) {
      limit_reached_ = true;
    }
    return false;  // ENOENT, EACCES, ENOTDIR: gone or unreadable, the backup reports it
  }
  watches_[wd] = watch;
  return true;
}

void ChangeWatcher::add_tree(std::size_t root, const std::string& directory, const std::string& relative) {
  if (limit_reached_ || !add_watch(directory, Watch{root, relative, ""})) {
    return;
  }
  DIR* listing = ::opendir(directory.c_str());
  if (listing == nullptr) {
    return;
  }
  std::vector<std::string> children;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    bool is_directory = entry->d_type == DT_DIR;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat info {};
      is_directory = ::lstat(child_path(directory, name).c_str(), &info) == 0 && S_ISDIR(info.st_mode);
    }
    if (is_directory && !matchers_[root].excluded(child_relative(relative, name), true)) {
      children.push_back(name);
    }
  }
  ::closedir(listing);
  for (const std::string& name : children) {
    add_tree(root, child_path(directory, name), child_relative(relative, name));
  }
}

void ChangeWatcher::read_events(std::vector<bool>& changed) {
  alignas(inotify_event) char buffer[16 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // EAGAIN: drained
    }
    for (ssize_t at = 0; at < n;) {
      inotify_event event{};
      std::memcpy(&event, buffer + at, sizeof event);
      const std::string name =
          event.len > 0 ? std::string(buffer + at + sizeof(inotify_event)) : std::string();  // NUL-padded
      at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
      if ((event.mask & IN_Q_OVERFLOW) != 0) {
        changed.assign(changed.size(), true);
        continue;
      }
      const auto found = watches_.find(event.wd);
      if (found == watches_.end()) {
        continue;
      }
      if ((event.mask & IN_IGNORED) != 0) {
        watches_.erase(found);
        continue;
      }
      const Watch watch = found->second;
      if (!watch.only_name.empty()) {
        if (name == watch.only_name) {
          changed[watch.root] = true;
        }
        continue;
      }
      if (name.empty()) {  // the directory itself (deleted, moved, attributes)
        changed[watch.root] = true;
        continue;
      }
      const bool is_directory = (event.mask & IN_ISDIR) != 0;
      const std::string relative = child_relative(watch.relative, name);
      if (matchers_[watch.root].excluded(relative, is_directory)) {
        continue;
      }
      changed[watch.root] = true;
      if (is_directory && (event.mask & (IN_CREATE | IN_MOVED_TO)) != 0) {
        const std::string directory =
            watch.relative.empty() ? roots_[watch.root].path : child_path(roots_[watch.root].path, watch.relative);
        add_tree(watch.root, child_path(directory, name), relative);
      }
    }
  }
}

std::vector<std::size_t> ChangeWatcher::wait(int timeout_ms) {
  pollfd wanted{fd_, POLLIN, 0};
  const int ready = ::poll(&wanted, 1, timeout_ms < 0 ? 0 : timeout_ms);
  std::vector<std::size_t> result;
  if (ready <= 0) {
    return result;  // timeout or EINTR (a signal: the caller checks its stop flag)
  }
  std::vector<bool> changed(roots_.size(), false);
  read_events(changed);
  for (std::size_t i = 0; i < changed.size(); ++i) {
    if (changed[i]) {
      result.push_back(i);
    }
  }
  return result;
}

}  // namespace mybackup
