#include "mybackup/storage/backend.hpp"

#include "mybackup/util/error.hpp"

namespace mybackup {

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
