#pragma once
// A few open directories kept by path, for code that opens many paths near each other: the
// backup's readers (the folder of each file to read) and the restore's workers (the folder of
// each file to write). Walking a path one component at a time without following links costs an
// openat per component; with the directory, or its nearest open ancestor, at hand it costs none
// or a few.
//
// Paths are compared as strings: absolute ones ("/a/b"), or relative ones below a root the
// caller holds ("a/b"; "" is that root and is never kept). The least recently used directory is
// closed first.
//
// Not thread-safe: one per thread (each reader or worker has its own).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mybackup/util/env.hpp"

namespace mybackup {

class OpenDirectories {
 public:
  /// Keeps at most `capacity` (>= 1) directories open.
  explicit OpenDirectories(std::size_t capacity) : capacity_(capacity) {}

  /// The open directory `path`, or -1 when it is not kept. Counts as a use.
  int find(const std::string& path);

  /// The nearest kept ancestor of `path` (a proper prefix ending at a '/' of `path`), or none.
  struct Ancestor {
    int fd = -1;                   // -1: none kept
    std::string_view rest;         // `path` below it ("c/d" for "/a/b/c/d" below "/a/b"), a view into `path`
  };
  Ancestor nearest_ancestor(const std::string& path) const;
  Ancestor nearest_ancestor(std::string&& path) const = delete;  // `rest` would outlive it

  /// Keeps `directory` open as `path`, closing the least recently used one when full. Returns its
  /// descriptor (owned by this cache: valid until it is closed to make room, or clear()).
  int keep(const std::string& path, EnvFd directory);

  /// Closes them all.
  void clear() { open_.clear(); }

 private:
  struct Open {
    std::string path;
    EnvFd fd;
    std::uint64_t last_used = 0;
  };
  std::size_t capacity_;
  std::vector<Open> open_;
  std::uint64_t uses_ = 0;
};

}  // namespace mybackup
