#include "mybackup/util/open_directories.hpp"

#include <algorithm>

namespace mybackup {

int OpenDirectories::find(const std::string& path) {
  for (Open& open : open_) {
    if (open.path == path) {
      open.last_used = ++uses_;
      return open.fd.get();
    }
  }
  return -1;
}

OpenDirectories::Ancestor OpenDirectories::nearest_ancestor(const std::string& path) const {
  const Open* nearest = nullptr;
  for (const Open& open : open_) {
    const std::size_t length = open.path.size();
    // "/" is the ancestor of "/a"; "a" of "a/b"; "a" is not one of "ab".
    const bool below = length < path.size() && path.compare(0, length, open.path) == 0 &&
                       (path[length] == '/' || (length > 0 && open.path.back() == '/'));
    if (below && (nearest == nullptr || length > nearest->path.size())) {
      nearest = &open;
    }
  }
  if (nearest == nullptr) {
    return {};
  }
  std::size_t start = nearest->path.size();
  while (start < path.size() && path[start] == '/') {
    ++start;
  }
  return {nearest->fd.get(), std::string_view(path).substr(start)};
}

int OpenDirectories::keep(const std::string& path, EnvFd directory) {
  if (open_.size() < capacity_) {
    open_.push_back({path, std::move(directory), ++uses_});
    return open_.back().fd.get();
  }
  Open& oldest = *std::min_element(open_.begin(), open_.end(),
                                   [](const Open& a, const Open& b) { return a.last_used < b.last_used; });
  oldest = {path, std::move(directory), ++uses_};
  return oldest.fd.get();
}

}  // namespace mybackup
