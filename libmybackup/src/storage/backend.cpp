#include "mybackup/storage/backend.hpp"

#include "mybackup/util/error.hpp"

#include <unistd.h>

#include <cerrno>

namespace mybackup {

Bytes read_file_range(int fd, std::uint64_t size, const std::string& what) {
  Bytes data(size);
  std::uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, data.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      throw_system_error(n == 0 ? EIO : errno, "cannot read what is to become " + what);
    }
    done += static_cast<std::uint64_t>(n);
  }
  return data;
}

void Backend::put_file(const std::string& name, int fd, std::uint64_t size, Overwrite overwrite) {
  put(name, read_file_range(fd, size, name), overwrite);
}

void check_object_name(const std::string& name) {
  bool valid = !name.empty() && name.size() <= 1024;
  std::size_t segment_start = 0;
  for (std::size_t i = 0; valid && i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      valid = i > segment_start && name[segment_start] != '.';
      segment_start = i + 1;
      continue;
    }
    const char c = name[i];
    valid = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  }
  if (!valid) {
    throw Error(ErrorKind::usage, "invalid object name '" + name + "' (a bug: names are made by object_names.hpp)");
  }
}

}  // namespace mybackup
