#include "mybackup/util/path_walk.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr int kMaxLinksFollowed = 40;  // as the kernel's own limit

/// The components of `path` in order, without empty ones and ".".
std::deque<std::string> components_of(const std::string& path) {
  std::deque<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) {
      end = path.size();
    }
    std::string part = path.substr(start, end - start);
    if (!part.empty() && part != ".") {
      parts.push_back(std::move(part));
    }
    start = end + 1;
  }
  return parts;
}

bool trusted_owner(uid_t uid) { return uid == 0 || uid == ::geteuid(); }

/// True if a link in the open directory `dir_fd` can be trusted (see the header).
bool trusted_link(Env& env, int dir_fd, const struct stat& link) {
  struct stat directory {};
  if (env.stat_fd(dir_fd, directory) != 0) {
    return false;
  }
  const bool others_can_change = (directory.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (directory.st_mode & S_ISVTX) == 0;
  return trusted_owner(link.st_uid) && trusted_owner(directory.st_uid) && !others_can_change;
}

ErrorKind kind_of(int errnum) {
  switch (errnum) {
    case ENOENT:
    case ENOTDIR:
      return ErrorKind::not_found;
    case EACCES:
    case EPERM:
      return ErrorKind::denied;
    default:
      return ErrorKind::io;
  }
}

}  // namespace

int read_link_target(Env& env, int dir_fd, const char* name, std::size_t size_hint, std::string& target) {
  // st_size is only a hint (0 on some pseudo filesystems, stale if the link changed).
  std::size_t capacity = size_hint > 0 ? size_hint + 1 : 256;
  for (;;) {
    target.resize(capacity);
    const std::int64_t length = env.read_link_at(dir_fd, name, target.data(), capacity);
    if (length < 0) {
      return static_cast<int>(-length);
    }
    if (static_cast<std::size_t>(length) < capacity) {
      target.resize(static_cast<std::size_t>(length));
      return 0;
    }
    capacity *= 2;
  }
}

EnvFd open_directory_path(Env& env, const std::string& path, PathUse use, CreateMissing create, unsigned mode) {
  const bool absolute = !path.empty() && path[0] == '/';
  // Every component but a write_into destination is opened only to look names up in.
  const auto open_component = [&env, use](int dir_fd, const char* name, bool last) {
    return last && use == PathUse::write_into ? env.open_directory(dir_fd, name, FollowLinks::no)
                                              : env.open_directory_for_lookup(dir_fd, name);
  };
  std::deque<std::string> remaining = components_of(path);
  EnvFd current(env, open_component(AT_FDCWD, absolute ? "/" : ".", remaining.empty()));
  if (!current.valid()) {
    throw_system_error(-current.get(), "cannot open " + std::string(absolute ? "/" : "the current directory"));
  }
  std::string walked = absolute ? "" : ".";  // for messages: where the walk is
  int links_followed = 0;
  while (!remaining.empty()) {
    const std::string part = std::move(remaining.front());
    remaining.pop_front();
    const bool last = remaining.empty();
    const std::string here = walked + "/" + part;
    int next = open_component(current.get(), part.c_str(), last);
    if (next == -ENOENT && create == CreateMissing::yes) {
      const int made = env.make_directory_at(current.get(), part.c_str(), mode);
      if (made != 0 && made != -EEXIST) {
        throw_system_error(-made, "cannot create directory " + here);
      }
      next = open_component(current.get(), part.c_str(), last);
    }
    if (next >= 0) {
      current = EnvFd(env, next);
      walked = part == ".." ? walked.substr(0, walked.rfind('/')) : here;
      continue;
    }
    struct stat link {};
    if ((next != -ELOOP && next != -ENOTDIR) || env.stat_at(current.get(), part.c_str(), link) != 0 ||
        !S_ISLNK(link.st_mode)) {
      throw Error(kind_of(-next), (next == -ENOTDIR ? here + " is not a directory" : "cannot open " + here + ": " + std::strerror(-next)));
    }
    if (last && use == PathUse::write_into) {
      throw Error(ErrorKind::denied, here + " is a symbolic link: mybackup does not write or read through a link here; give the real path");
    }
    if (!trusted_link(env, current.get(), link)) {
      throw Error(ErrorKind::denied, here + " is a symbolic link another user could have placed (owner uid " +
                                         std::to_string(link.st_uid) + "): mybackup does not follow it; give the real path");
    }
    if (++links_followed > kMaxLinksFollowed) {
      throw Error(ErrorKind::io, "too many symbolic links in " + path);
    }
    std::string target;
    if (const int err = read_link_target(env, current.get(), part.c_str(), static_cast<std::size_t>(link.st_size), target); err != 0) {
      throw_system_error(err, "cannot read the symbolic link " + here);
    }
    std::deque<std::string> through = components_of(target);
    remaining.insert(remaining.begin(), through.begin(), through.end());
    if (!target.empty() && target[0] == '/') {
      current = EnvFd(env, open_component(AT_FDCWD, "/", remaining.empty()));
      if (!current.valid()) {
        throw_system_error(-current.get(), "cannot open /");
      }
      walked.clear();
    }
  }
  return current;
}

int open_directory_below(Env& env, int dir_fd, std::string_view relative, PathUse use) {
  const auto open_one = [&env, use](int from, const char* name) {
    return use == PathUse::write_into ? env.open_directory(from, name, FollowLinks::no)
                                      : env.open_directory_for_lookup(from, name);
  };
  EnvFd current;
  std::string part;
  for (std::size_t start = 0; start < relative.size();) {
    const std::size_t slash = std::min(relative.find('/', start), relative.size());
    part.assign(relative.substr(start, slash - start));
    start = slash + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      return -EINVAL;  // "below" never climbs out
    }
    const int next = open_one(current.valid() ? current.get() : dir_fd, part.c_str());
    if (next < 0) {
      return next;
    }
    current = EnvFd(env, next);
  }
  if (!current.valid()) {
    return open_one(dir_fd, ".");
  }
  return current.release();
}

}  // namespace mybackup
