// The local-directory Backend: one file per object, written through fs.hpp's atomic helpers.
//
// Objects are opened without following symbolic links and without blocking (a FIFO planted in
// the destination must not hang us), and must be regular files; listings skip anything else.

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
#include "util/unique_fd.hpp"

namespace mybackup {

namespace {

bool is_temporary(const std::string& name) { return name.rfind(".tmp-", 0) == 0; }

enum class FollowLink { no, yes };

/// Lists `directory` into `out`. The destination's root may be a link (to a mounted disk, say);
/// nothing below it is followed.
void list_recursive(const std::string& directory, const std::string& name_prefix, std::vector<ObjectInfo>& out,
                    FollowLink follow) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow == FollowLink::yes ? 0 : O_NOFOLLOW));
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
      return;  // nothing stored there (a link or a file in the place of a folder holds no objects)
    }
    throw_system_error(errno, "cannot list " + directory);
  }
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int saved = errno;
    ::close(fd);
    throw_system_error(saved, "cannot list " + directory);
  }
  std::vector<std::pair<std::string, bool>> directories;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == ".." || is_temporary(name)) {
      continue;
    }
    struct stat info {};
    if (::fstatat(fd, entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;  // gone since readdir
    }
    if (S_ISDIR(info.st_mode)) {
      directories.emplace_back(name, true);
    } else if (S_ISREG(info.st_mode)) {
      out.push_back({name_prefix + name, static_cast<std::uint64_t>(info.st_size)});
    }
    // Links, FIFOs, sockets and devices are not objects: never listed, never followed.
  }
  ::closedir(dir);
  for (const auto& [name, is_dir] : directories) {
    list_recursive(join_path(directory, name), name_prefix + name + "/", out, FollowLink::no);
  }
}

/// Opens an object for reading: no link followed, never blocking, a regular file only.
UniqueFd open_object(const std::string& path, struct stat& info) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ELOOP) {
      throw Error(ErrorKind::corrupt, path + " is a symbolic link, not a stored object (never followed)");
    }
    if (errno == ENOTDIR) {
      throw Error(ErrorKind::not_found, "cannot open " + path + ": a parent is not a directory");
    }
    throw_system_error(errno, "cannot open " + path);
  }
  if (::fstat(fd.get(), &info) != 0) {
    throw_system_error(errno, "cannot stat " + path);
  }
  if (!S_ISREG(info.st_mode)) {
    throw Error(ErrorKind::corrupt, path + " is not a regular file, so not a stored object");
  }
  return fd;
}

void read_exactly(int fd, std::uint8_t* out, std::uint64_t length, std::uint64_t offset, const std::string& path) {
  std::uint64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      throw_system_error(errno, "cannot read " + path);
    }
    if (n == 0) {
      throw Error(ErrorKind::corrupt, path + " is shorter than expected (truncated?)");
    }
    done += static_cast<std::uint64_t>(n);
  }
}

class LocalBackend final : public Backend {
 public:
  LocalBackend(std::string root, unsigned file_mode)
      : root_(std::move(root)), file_mode_(file_mode), directory_mode_(file_mode | ((file_mode & 0444U) >> 2)) {}

  std::string location() const override { return root_; }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    const std::string path = path_of(name);
    ensure_directory(parent_directory(path));
    if (overwrite == Overwrite::yes) {
      write_file_atomic(path, data, file_mode_);
    } else {
      create_file_atomic(path, data, file_mode_);
    }
  }

  Bytes get(const std::string& name, std::uint64_t max_size) const override {
    const std::string path = path_of(name);
    struct stat info {};
    const UniqueFd fd = open_object(path, info);
    const auto size = static_cast<std::uint64_t>(info.st_size);
    if (size > max_size) {
      throw Error(ErrorKind::corrupt, path + " is " + std::to_string(size) + " bytes, more than the " +
                                          std::to_string(max_size) + " such an object can have (damaged or planted)");
    }
    Bytes data(size);
    read_exactly(fd.get(), data.data(), size, 0, path);
    return data;
  }

  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    const std::string path = path_of(name);
    struct stat info {};
    const UniqueFd fd = open_object(path, info);
    // Check the range before allocating: a damaged entry may ask for up to 4 GiB.
    const auto object_size = static_cast<std::uint64_t>(info.st_size);
    if (offset > object_size || length > object_size - offset) {
      throw Error(ErrorKind::corrupt, path + " is shorter than expected (truncated?)");
    }
    Bytes data(length);
    read_exactly(fd.get(), data.data(), length, offset, path);
    return data;
  }

  std::optional<std::uint64_t> size(const std::string& name) const override {
    const std::string path = path_of(name);
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return std::nullopt;
      }
      throw_system_error(errno, "cannot stat " + path);
    }
    if (!S_ISREG(info.st_mode)) {
      throw Error(ErrorKind::corrupt, path + " is not a regular file, so not a stored object");
    }
    return static_cast<std::uint64_t>(info.st_size);
  }

  std::vector<ObjectInfo> list(const std::string& prefix) const override {
    if (!prefix.empty()) {
      check_object_name(prefix);
    }
    std::vector<ObjectInfo> objects;
    if (prefix.empty()) {
      list_recursive(root_, "", objects, FollowLink::yes);
    } else {
      list_recursive(path_of(prefix), prefix + "/", objects, FollowLink::no);
    }
    std::sort(objects.begin(), objects.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return objects;
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

  void remove(const std::string& name) override {
    const std::string path = path_of(name);
    struct stat info {};
    if (::lstat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      throw Error(ErrorKind::corrupt, path + " is a directory, not a stored object: left as it is");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
      throw_system_error(errno, "cannot delete " + path);
    }
  }

 private:
  std::string path_of(const std::string& name) const {
    check_object_name(name);
    return join_path(root_, name);
  }

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
