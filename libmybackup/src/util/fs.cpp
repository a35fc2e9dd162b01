#include "mybackup/util/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/direct_write.hpp"
#include "mybackup/util/error.hpp"
#include "util/unique_fd.hpp"

namespace mybackup {

namespace {

/// Writes (through `write`) and fsyncs a new temporary file in `dir_fd`; returns its name.
/// Removes it on failure.
std::string write_temporary_at(int dir_fd, const std::string& what, const std::function<void(int fd)>& write,
                               unsigned mode) {
  std::array<std::uint8_t, 8> random{};
  random_bytes(random);
  const std::string temporary = ".tmp-" + to_hex(random);
  UniqueFd fd(::openat(dir_fd, temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot write " + what);
  }
  try {
    write(fd.get());
    if (::fsync(fd.get()) != 0) {
      throw_system_error(errno, "cannot sync " + what);
    }
    if (fd.close_checked() != 0) {
      throw_system_error(errno, "cannot close " + what);
    }
  } catch (...) {
    ::unlinkat(dir_fd, temporary.c_str(), 0);
    throw;
  }
  return temporary;
}

void sync_directory_fd(int dir_fd, const std::string& what) {
  if (::fsync(dir_fd) != 0 && errno != EINVAL) {  // EINVAL: the filesystem cannot sync dirs
    throw_system_error(errno, "cannot sync directory " + what);
  }
}

/// The directory holding `path`, opened (following links: a home or a config path may be one).
UniqueFd open_parent(const std::string& path) {
  const std::string parent = parent_directory(path);
  UniqueFd fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot write in " + parent);
  }
  return fd;
}

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// Writes the bytes 0 to `size` of `source_fd` to `fd`, in pieces.
void copy_file_content(int source_fd, std::uint64_t size, int fd, const std::string& what) {
  Bytes buffer(std::min<std::uint64_t>(size, 1024 * 1024));
  std::uint64_t done = 0;
  while (done < size) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - done));
    const std::size_t n = read_some_at(source_fd, buffer.data(), want, done, "what is to become " + what);
    if (n == 0) {
      throw_system_error(EIO, "cannot read what is to become " + what);
    }
    write_all(fd, ByteView(buffer.data(), n), what);
    done += n;
  }
}

void replace_with_temporary(int dir_fd, const std::string& name, const std::string& temporary, const std::string& what) {
  if (::renameat(dir_fd, temporary.c_str(), dir_fd, name.c_str()) != 0) {
    const int saved = errno;
    ::unlinkat(dir_fd, temporary.c_str(), 0);
    throw_system_error(saved, "cannot rename into " + what);
  }
  sync_directory_fd(dir_fd, parent_directory(what));
}

void link_temporary(int dir_fd, const std::string& name, const std::string& temporary, const std::string& what) {
  const int rc = ::linkat(dir_fd, temporary.c_str(), dir_fd, name.c_str(), 0);
  const int saved = errno;
  ::unlinkat(dir_fd, temporary.c_str(), 0);
  if (rc != 0) {
    if (saved == EEXIST) {
      throw Error(ErrorKind::exists, what + " already exists");
    }
    throw_system_error(saved, "cannot create " + what);
  }
  sync_directory_fd(dir_fd, parent_directory(what));
}

}  // namespace

void write_file_atomic_at(int dir_fd, const std::string& name, ByteView data, unsigned mode, const std::string& what) {
  const auto write = [&](int fd) { write_all_direct(fd, data, what); };
  replace_with_temporary(dir_fd, name, write_temporary_at(dir_fd, what, write, mode), what);
}

void create_file_atomic_at(int dir_fd, const std::string& name, ByteView data, unsigned mode, const std::string& what) {
  const auto write = [&](int fd) { write_all_direct(fd, data, what); };
  link_temporary(dir_fd, name, write_temporary_at(dir_fd, what, write, mode), what);
}

void write_file_atomic_at(int dir_fd, const std::string& name, int source_fd, std::uint64_t size, unsigned mode,
                          const std::string& what) {
  const auto write = [&](int fd) { copy_file_content(source_fd, size, fd, what); };
  replace_with_temporary(dir_fd, name, write_temporary_at(dir_fd, what, write, mode), what);
}

void create_file_atomic_at(int dir_fd, const std::string& name, int source_fd, std::uint64_t size, unsigned mode,
                           const std::string& what) {
  const auto write = [&](int fd) { copy_file_content(source_fd, size, fd, what); };
  link_temporary(dir_fd, name, write_temporary_at(dir_fd, what, write, mode), what);
}

int open_unnamed_file(const std::string& directory) {
  int fd = ::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) {
    return fd;
  }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    throw_system_error(errno, "cannot create a temporary file in " + directory);
  }
  std::string name = directory + "/.tmp-XXXXXX";
  fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    throw_system_error(errno, "cannot create a temporary file in " + directory);
  }
  ::unlink(name.c_str());
  return fd;
}

std::string temporary_directory() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

std::size_t read_some_at(int fd, std::uint8_t* data, std::size_t size, std::uint64_t offset, const std::string& what) {
  for (;;) {
    const ssize_t n = ::pread(fd, data, size, static_cast<off_t>(offset));
    if (n >= 0) {
      return static_cast<std::size_t>(n);
    }
    if (errno != EINTR) {
      throw_system_error(errno, "cannot read " + what);
    }
  }
}

void write_all(int fd, ByteView data, const std::string& what) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_system_error(errno, "cannot write " + what);
    }
    done += static_cast<std::size_t>(n);
  }
}


void write_file_atomic(const std::string& path, ByteView data, unsigned mode) {
  write_file_atomic_at(open_parent(path).get(), base_name(path), data, mode, path);
}

void create_file_atomic(const std::string& path, ByteView data, unsigned mode) {
  create_file_atomic_at(open_parent(path).get(), base_name(path), data, mode, path);
}

Bytes read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot open " + path);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    throw_system_error(errno, "cannot stat " + path);
  }
  Bytes data;
  data.reserve(static_cast<std::size_t>(info.st_size));
  std::uint8_t buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_system_error(errno, "cannot read " + path);
    }
    if (n == 0) {
      break;
    }
    data.insert(data.end(), buffer, buffer + n);
  }
  return data;
}

void make_directories(const std::string& path, unsigned mode) {
  if (path.empty() || path == "/" || path == ".") {
    return;
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) {
      throw Error(ErrorKind::io, path + " exists and is not a directory");
    }
    return;
  }
  make_directories(parent_directory(path), mode);
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    throw_system_error(errno, "cannot create directory " + path);
  }
}

void sync_directory(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot open directory " + path);
  }
  sync_directory_fd(fd.get(), path);
}

bool path_exists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

void remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw_system_error(errno, "cannot delete " + path);
  }
}

std::string parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  if (slash == 0) {
    return "/";
  }
  return path.substr(0, slash);
}

std::string join_path(const std::string& base, const std::string& name) {
  if (base.empty()) {
    return name;
  }
  if (base.back() == '/') {
    return base + name;
  }
  return base + "/" + name;
}

}  // namespace mybackup
