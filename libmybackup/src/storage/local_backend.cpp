// The local-directory Backend: one file per object, written through fs.hpp's atomic helpers.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

bool is_temporary(const std::string& name) { return name.rfind(".tmp-", 0) == 0; }

void list_recursive(const std::string& directory, const std::string& key_prefix, std::vector<std::string>& out) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) {
      return;
    }
    throw_system_error(errno, "cannot list " + directory);
  }
  std::vector<std::pair<std::string, bool>> children;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == ".." || is_temporary(name)) {
      continue;
    }
    bool is_dir = entry->d_type == DT_DIR;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat info {};
      is_dir = ::stat(join_path(directory, name).c_str(), &info) == 0 && S_ISDIR(info.st_mode);
    }
    children.emplace_back(name, is_dir);
  }
  ::closedir(dir);
  for (const auto& [name, is_dir] : children) {
    if (is_dir) {
      list_recursive(join_path(directory, name), key_prefix + name + "/", out);
    } else {
      out.push_back(key_prefix + name);
    }
  }
}

class LocalBackend final : public Backend {
 public:
  LocalBackend(std::string root, unsigned file_mode)
      : root_(std::move(root)), file_mode_(file_mode), directory_mode_(file_mode | ((file_mode & 0444U) >> 2)) {}

  std::string location() const override { return root_; }

  void put(const std::string& key, ByteView data, Overwrite overwrite) override {
    const std::string path = path_of(key);
    ensure_directory(parent_directory(path));
    if (overwrite == Overwrite::yes) {
      write_file_atomic(path, data, file_mode_);
    } else {
      create_file_atomic(path, data, file_mode_);
    }
  }

  Bytes get(const std::string& key) const override { return read_file(path_of(key)); }

  Bytes get_range(const std::string& key, std::uint64_t offset, std::uint64_t length) const override {
    const std::string path = path_of(key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      throw_system_error(errno, "cannot open " + path);
    }
    // Check the range before allocating: a damaged entry may ask for up to 4 GiB.
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int saved = errno;
      ::close(fd);
      throw_system_error(saved, "cannot stat " + path);
    }
    const auto object_size = static_cast<std::uint64_t>(info.st_size);
    if (offset > object_size || length > object_size - offset) {
      ::close(fd);
      throw Error(ErrorKind::corrupt, path + " is shorter than expected (truncated?)");
    }
    Bytes data(length);
    std::uint64_t done = 0;
    while (done < length) {
      const ssize_t n = ::pread(fd, data.data() + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        const int saved = errno;
        ::close(fd);
        if (n == 0) {
          throw Error(ErrorKind::corrupt, path + " is shorter than expected (truncated?)");
        }
        throw_system_error(saved, "cannot read " + path);
      }
      done += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    return data;
  }

  std::optional<std::uint64_t> size(const std::string& key) const override {
    struct stat info {};
    if (::stat(path_of(key).c_str(), &info) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return std::nullopt;
      }
      throw_system_error(errno, "cannot stat " + path_of(key));
    }
    return static_cast<std::uint64_t>(info.st_size);
  }

  std::vector<std::string> list(const std::string& prefix) const override {
    std::vector<std::string> keys;
    list_recursive(path_of(prefix), prefix.empty() ? "" : prefix + "/", keys);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  bool empty() const override {
    DIR* dir = ::opendir(root_.c_str());
    if (dir == nullptr) {
      if (errno == ENOENT) {
        return true;
      }
      throw_system_error(errno, "cannot open " + root_);
    }
    bool found = false;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      // A temporary left by a crashed put() is not a stored object (list() skips it too).
      if (name != "." && name != ".." && !is_temporary(name)) {
        found = true;
        break;
      }
    }
    ::closedir(dir);
    return !found;
  }

  void remove(const std::string& key) override {
    const std::string path = path_of(key);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      throw_system_error(errno, "cannot delete " + path);
    }
  }

 private:
  std::string path_of(const std::string& key) const { return key.empty() ? root_ : join_path(root_, key); }

  /// Creates a directory once per backend; new directories are made durable in their parent.
  void ensure_directory(const std::string& directory) {
    {
      std::lock_guard lock(mutex_);
      if (known_directories_.count(directory) != 0) {
        return;
      }
    }
    // Every directory this creates must be durable in its parent, not only the deepest one:
    // the first put() may create the root, "data" and "data/ab" at once.
    std::vector<std::string> missing;
    for (std::string path = directory; !path_exists(path); path = parent_directory(path)) {
      missing.push_back(path);
      if (path == "/" || path == ".") {
        break;
      }
    }
    make_directories(directory, directory_mode_);
    for (const std::string& created : missing) {
      sync_directory(parent_directory(created));
    }
    std::lock_guard lock(mutex_);
    known_directories_.insert(directory);
  }

  std::string root_;
  unsigned file_mode_;
  unsigned directory_mode_;  // file_mode_ with x wherever it has r (0644 -> 0755, 0600 -> 0700)
  std::mutex mutex_;
  std::set<std::string> known_directories_;
};

}  // namespace

std::unique_ptr<Backend> make_local_backend(const std::string& root, unsigned file_mode) {
  return std::make_unique<LocalBackend>(root, file_mode);
}

}  // namespace mybackup
