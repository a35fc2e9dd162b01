#include "mybackup/util/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "util/unique_fd.hpp"

namespace mybackup {

namespace {

std::string temporary_name_beside(const std::string& path) {
  std::array<std::uint8_t, 8> random{};
  random_bytes(random);
  return join_path(parent_directory(path), ".tmp-" + to_hex(random));
}

/// Writes and fsyncs a new temporary file beside `path`; returns its name. Removes it on failure.
std::string write_temporary(const std::string& path, ByteView data, unsigned mode) {
  const std::string temporary = temporary_name_beside(path);
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot write in " + parent_directory(path));
  }
  try {
    write_all(fd.get(), data, path);
    if (::fsync(fd.get()) != 0) {
      throw_system_error(errno, "cannot sync " + path);
    }
    if (fd.close_checked() != 0) {
      throw_system_error(errno, "cannot close " + path);
    }
  } catch (...) {
    ::unlink(temporary.c_str());
    throw;
  }
  return temporary;
}

}  // namespace

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
  const std::string temporary = write_temporary(path, data, mode);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temporary.c_str());
    throw_system_error(saved, "cannot rename into " + path);
  }
  sync_directory(parent_directory(path));
}

void create_file_atomic(const std::string& path, ByteView data, unsigned mode) {
  const std::string temporary = write_temporary(path, data, mode);
  const int rc = ::link(temporary.c_str(), path.c_str());
  const int saved = errno;
  ::unlink(temporary.c_str());
  if (rc != 0) {
    if (saved == EEXIST) {
      throw Error(ErrorKind::exists, path + " already exists");
    }
    throw_system_error(saved, "cannot create " + path);
  }
  sync_directory(parent_directory(path));
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
  if (::fsync(fd.get()) != 0 && errno != EINVAL) {  // EINVAL: the filesystem cannot sync dirs
    throw_system_error(errno, "cannot sync directory " + path);
  }
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
