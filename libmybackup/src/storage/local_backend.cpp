// The local-directory Backend: one file per object, written through fs.hpp's atomic helpers.
//
// The destination is untrusted (a NAS or a USB disk others can write to). Only its root may be a
// link (to a mounted disk, say); below it every step is taken with openat(O_NOFOLLOW) from the
// directory above, so a link planted in the place of "keys/" or "data/ab/" is never followed, for
// reading, writing or deleting. Objects are opened without blocking (a FIFO planted in the
// destination must not hang us) and must be regular files; listings skip anything else.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
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

/// Opens object `leaf` of `directory` for reading: no link followed, never blocking, a regular
/// file only. `path` names it in messages.
UniqueFd open_object(int directory, const std::string& leaf, const std::string& path, struct stat& info) {
  UniqueFd fd(::openat(directory, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ELOOP) {
      throw Error(ErrorKind::corrupt, path + " is a symbolic link, not a stored object (never followed)");
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

enum class CreateDirectories { no, yes };

/// The objects ranged reads came to last, kept open with their folders: a restore reads a pack
/// chunk by chunk, and opening it each time (the root, two folders, the file, a stat, four
/// closes) cost more than reading it. Before each use the name is looked up again in the kept
/// folder (one fstatat): a file replaced, removed or resized since is opened afresh, so a read
/// sees what it would without the cache. Holds at most kMaxOpen objects, each for at most
/// kMaxIdle unused (a deleted pack's space is not held long by a running process). Thread-safe.
class OpenObjects {
 public:
  struct Object {
    UniqueFd directory;
    UniqueFd fd;
    struct stat info {};  // when opened

    /// True while the name in `directory` is still this file, of the same size.
    bool current(const std::string& leaf) const {
      struct stat now {};
      return ::fstatat(directory.get(), leaf.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == info.st_ino &&
             now.st_dev == info.st_dev && now.st_size == info.st_size;
    }
  };

  /// The open object `name`, or nullptr. The pointer keeps it open while the caller reads; the
  /// caller checks it is current(). `ticket` is for keep(): what was opened after it may be kept.
  std::shared_ptr<const Object> find(const std::string& name, std::uint64_t& ticket) {
    const std::lock_guard lock(mutex_);
    ticket = forgotten_;
    const auto now = Clock::now();
    for (auto entry = entries_.begin(); entry != entries_.end(); ++entry) {
      if (entry->name != name) {
        continue;
      }
      if (now - entry->used > kMaxIdle) {
        entries_.erase(entry);
        return nullptr;
      }
      entry->used = now;
      entries_.splice(entries_.begin(), entries_, entry);
      return entries_.front().object;
    }
    return nullptr;
  }

  /// Keeps `object`, opened after find() gave `ticket`, unless a name was forgotten since: it
  /// may then be a replaced object's old file.
  void keep(const std::string& name, std::shared_ptr<const Object> object, std::uint64_t ticket) {
    const std::lock_guard lock(mutex_);
    if (ticket != forgotten_) {
      return;
    }
    forget_locked(name);
    entries_.push_front({name, std::move(object), Clock::now()});
    if (entries_.size() > kMaxOpen) {
      entries_.pop_back();
    }
  }

  /// Called once this backend has written or deleted `name`.
  void forget(const std::string& name) {
    const std::lock_guard lock(mutex_);
    ++forgotten_;
    forget_locked(name);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxOpen = 8;
  static constexpr auto kMaxIdle = std::chrono::seconds(10);
  struct Entry {
    std::string name;
    std::shared_ptr<const Object> object;
    Clock::time_point used;
  };

  void forget_locked(const std::string& name) {
    entries_.remove_if([&](const Entry& entry) { return entry.name == name; });
  }

  std::mutex mutex_;
  std::uint64_t forgotten_ = 0;  // forget() calls so far
  std::list<Entry> entries_;  // most recently used first
};

class LocalBackend final : public Backend {
 public:
  LocalBackend(std::string root, unsigned file_mode)
      : root_(std::move(root)), file_mode_(file_mode), directory_mode_(file_mode | ((file_mode & 0444U) >> 2)) {}

  std::string location() const override { return root_; }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    const std::string path = path_of(name);
    const UniqueFd directory = open_directory_of(name, CreateDirectories::yes);
    if (directory.get() < 0) {
      throw Error(ErrorKind::corrupt, "cannot store " + path + ": a file is where the repository has a folder");
    }
    if (overwrite == Overwrite::yes) {
      write_file_atomic_at(directory.get(), leaf_of(name), data, file_mode_, path);
    } else {
      create_file_atomic_at(directory.get(), leaf_of(name), data, file_mode_, path);
    }
    open_objects_.forget(name);
  }

  void put_file(const std::string& name, int fd, std::uint64_t size, Overwrite overwrite) override {
    const std::string path = path_of(name);
    const UniqueFd directory = open_directory_of(name, CreateDirectories::yes);
    if (directory.get() < 0) {
      throw Error(ErrorKind::corrupt, "cannot store " + path + ": a file is where the repository has a folder");
    }
    if (overwrite == Overwrite::yes) {
      write_file_atomic_at(directory.get(), leaf_of(name), fd, size, file_mode_, path);
    } else {
      create_file_atomic_at(directory.get(), leaf_of(name), fd, size, file_mode_, path);
    }
    open_objects_.forget(name);
  }

  Bytes get(const std::string& name, std::uint64_t max_size) const override {
    const std::string path = path_of(name);
    struct stat info {};
    const UniqueFd fd = open_object(open_existing_directory_of(name).get(), leaf_of(name), path, info);
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
    const std::string leaf = leaf_of(name);
    std::uint64_t ticket = 0;
    std::shared_ptr<const OpenObjects::Object> object = open_objects_.find(name, ticket);
    if (!object || !object->current(leaf)) {
      auto opened = std::make_shared<OpenObjects::Object>();
      opened->directory = open_existing_directory_of(name);
      opened->fd = open_object(opened->directory.get(), leaf, path, opened->info);
      object = opened;
      open_objects_.keep(name, object, ticket);
    }
    // Check the range before allocating: a damaged entry may ask for up to 4 GiB.
    const auto object_size = static_cast<std::uint64_t>(object->info.st_size);
    if (offset > object_size || length > object_size - offset) {
      throw Error(ErrorKind::corrupt, path + " is shorter than expected (truncated?)");
    }
    Bytes data(length);
    read_exactly(object->fd.get(), data.data(), length, offset, path);
    return data;
  }

  std::optional<std::uint64_t> size(const std::string& name) const override {
    const std::string path = path_of(name);
    const UniqueFd directory = open_directory_of(name, CreateDirectories::no);
    struct stat info {};
    if (directory.get() < 0 || ::fstatat(directory.get(), leaf_of(name).c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      if (directory.get() < 0 || errno == ENOENT) {
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
    const UniqueFd directory = open_directory_of(name, CreateDirectories::no);
    if (directory.get() < 0) {
      return;  // a missing folder holds nothing to delete
    }
    struct stat info {};
    if (::fstatat(directory.get(), leaf_of(name).c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(info.st_mode)) {
      throw Error(ErrorKind::corrupt, path + " is a directory, not a stored object: left as it is");
    }
    if (::unlinkat(directory.get(), leaf_of(name).c_str(), 0) != 0 && errno != ENOENT) {
      throw_system_error(errno, "cannot delete " + path);
    }
    open_objects_.forget(name);
  }

 private:
  std::string path_of(const std::string& name) const {
    check_object_name(name);
    return join_path(root_, name);
  }

  static std::string leaf_of(const std::string& name) { return name.substr(name.find_last_of('/') + 1); }

  /// The folder that holds object `name`, opened one step at a time from the root without
  /// following links. A link or a file where a folder should be: Error(corrupt). A missing
  /// folder: created with CreateDirectories::yes (each made durable in its parent), otherwise an
  /// empty UniqueFd.
  UniqueFd open_directory_of(const std::string& name, CreateDirectories create) const {
    check_object_name(name);
    UniqueFd directory(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));  // the root may be a link
    if (directory.get() < 0 && errno == ENOENT && create == CreateDirectories::yes) {
      create_root();
      directory = UniqueFd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    if (directory.get() < 0) {
      if (errno == ENOENT) {
        return UniqueFd();
      }
      throw_system_error(errno, "cannot open " + root_);
    }
    std::string walked = root_;
    std::size_t start = 0;
    for (std::size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', start)) {
      const std::string step = name.substr(start, slash - start);
      walked = join_path(walked, step);
      start = slash + 1;
      UniqueFd next(::openat(directory.get(), step.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.get() < 0 && errno == ENOENT && create == CreateDirectories::yes) {
        if (::mkdirat(directory.get(), step.c_str(), directory_mode_) != 0 && errno != EEXIST) {
          throw_system_error(errno, "cannot create directory " + walked);
        }
        if (::fsync(directory.get()) != 0 && errno != EINVAL) {  // the new folder is durable in its parent
          throw_system_error(errno, "cannot sync directory " + parent_directory(walked));
        }
        next = UniqueFd(::openat(directory.get(), step.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      }
      if (next.get() < 0) {
        const int error = errno;
        struct stat info {};
        if (error == ELOOP || (error == ENOTDIR && ::fstatat(directory.get(), step.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
                               S_ISLNK(info.st_mode))) {
          throw Error(ErrorKind::corrupt, walked + " is a symbolic link where the repository has a folder: never "
                                                   "followed (was the destination tampered with?)");
        }
        if (error == ENOENT || error == ENOTDIR) {
          return UniqueFd();  // nothing can be stored below a missing folder or a file
        }
        throw_system_error(error, "cannot open " + walked);
      }
      directory = std::move(next);
    }
    return directory;
  }

  /// open_directory_of for reading an object: a missing folder is a missing object.
  UniqueFd open_existing_directory_of(const std::string& name) const {
    UniqueFd directory = open_directory_of(name, CreateDirectories::no);
    if (directory.get() < 0) {
      throw Error(ErrorKind::not_found, "cannot open " + path_of(name) + ": No such file or directory");
    }
    return directory;
  }

  /// The root and the folders above it that are missing, each made durable in its parent (the
  /// user chose this path: links in it are followed).
  void create_root() const {
    std::vector<std::string> missing;
    for (std::string path = root_; !path_exists(path); path = parent_directory(path)) {
      missing.push_back(path);
      if (path == "/" || path == ".") {
        break;
      }
    }
    make_directories(root_, directory_mode_);
    for (const std::string& created : missing) {
      sync_directory(parent_directory(created));
    }
  }

  std::string root_;
  unsigned file_mode_;
  unsigned directory_mode_;  // file_mode_ with x wherever it has r (0644 -> 0755, 0600 -> 0700)
  mutable OpenObjects open_objects_;  // get_range's
};

}  // namespace

std::unique_ptr<Backend> make_local_backend(const std::string& root, unsigned file_mode) {
  return std::make_unique<LocalBackend>(root, file_mode);
}

}  // namespace mybackup
