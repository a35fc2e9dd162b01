#pragma once
// Small, careful helpers for local files: the only place that knows how to replace a file safely.

#include <cstdint>
#include <string>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

/// Writes `data` to `path` so that a crash leaves either the old file or the new one, never a
/// mix: a temporary file beside it, fsync, rename over `path`, fsync of the directory.
/// `mode` applies to a newly created file (e.g. 0600 for key material).
void write_file_atomic(const std::string& path, ByteView data, unsigned mode = 0644);

/// Like write_file_atomic, but fails with Error(exists) if `path` already exists (the check and
/// the creation are one atomic step: link(2) of the finished temporary file).
void create_file_atomic(const std::string& path, ByteView data, unsigned mode = 0644);

/// write_file_atomic and create_file_atomic inside the open directory `dir_fd`: `name` is one
/// path component, never followed if it is a link (the temporary file is created O_NOFOLLOW and
/// renamed or linked over `name`). `what` names the file in error messages. A large `data` (a
/// pack) is written past the page cache where the file system allows it (write_all_direct).
void write_file_atomic_at(int dir_fd, const std::string& name, ByteView data, unsigned mode, const std::string& what);
void create_file_atomic_at(int dir_fd, const std::string& name, ByteView data, unsigned mode, const std::string& what);
/// The same with the bytes 0 to `size` of `source_fd` as the content, copied in pieces: a file
/// too large to hold in memory. Error(io) if `source_fd` is shorter.
void write_file_atomic_at(int dir_fd, const std::string& name, int source_fd, std::uint64_t size, unsigned mode,
                          const std::string& what);
void create_file_atomic_at(int dir_fd, const std::string& name, int source_fd, std::uint64_t size, unsigned mode,
                           const std::string& what);

/// A new file without a name in `directory` (O_TMPFILE, mode 0600; where the file system lacks
/// it, a file removed as soon as it is made), open for reading and writing; it vanishes when
/// closed. The caller owns the descriptor. Error(not_found), Error(denied), Error(io).
int open_unnamed_file(const std::string& directory);

/// Writes all of `data` to `fd`, retrying short writes and EINTR. Throws Error(io), or
/// Error(no_space) for a full device, as "cannot write <what>: <reason>".
void write_all(int fd, ByteView data, const std::string& what);

/// One pread of up to `size` bytes at `offset` into `data`, retried on EINTR. Returns how many
/// were read: 0 at the end of the file. Throws as "cannot read <what>: <reason>".
std::size_t read_some_at(int fd, std::uint8_t* data, std::size_t size, std::uint64_t offset, const std::string& what);

/// Where temporary files go: $TMPDIR, or /tmp.
std::string temporary_directory();

/// Reads a whole file. Error(not_found) if missing, Error(io) otherwise.
Bytes read_file(const std::string& path);

/// mkdir -p with `mode` for the directories it creates. Error(io) on failure.
void make_directories(const std::string& path, unsigned mode = 0755);

/// fsync of a directory, so a rename or creation inside it is durable.
void sync_directory(const std::string& path);

/// True if `path` exists (lstat succeeds).
bool path_exists(const std::string& path);

/// Deletes a file; a missing file is not an error. Error(io) otherwise.
void remove_file(const std::string& path);

/// The directory part of a path ("/a/b" -> "/a", "b" -> ".").
std::string parent_directory(const std::string& path);

/// Joins two path pieces with exactly one '/'.
std::string join_path(const std::string& base, const std::string& name);

}  // namespace mybackup
