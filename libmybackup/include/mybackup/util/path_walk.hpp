#pragma once
// Opening a directory by its path without being steered by a symbolic link someone else planted.
//
// Run as root over trees other users can write, `open("/home/ana/out/x")` follows whatever link
// ana put at any level of that path: a restore would write into /etc, a backup would read
// /etc/shadow under ana's name. These functions open one component at a time with openat and
// O_NOFOLLOW. A symbolic link met on the way is followed only when it is trusted:
//   - it is owned by root or by this process's effective user, and
//   - the directory holding it is owned by root or by this user and no one else can change its
//     entries (not writable by group or others, unless sticky like /tmp);
// so system links such as /bin -> usr/bin or a user's own ~/backups -> /mnt/disk still work,
// and another user's links never steer us. The last component is never followed when it is the
// folder to write into (PathUse::write_into); the folder that holds a source or a file to read
// (PathUse::look_up) is treated as any other component. Components only looked up in are opened
// with O_PATH: search permission is enough, as for open(2) (a 0711 folder above a home).
//
// Thread safety: the functions are reentrant; each call uses only the descriptors it opens.

#include <string>
#include <string_view>

#include "mybackup/util/env.hpp"

namespace mybackup {

/// Whether open_directory_path creates the missing directories of the path.
enum class CreateMissing { no, yes };

/// What the directory is opened for.
enum class PathUse {
  /// To list and write into (a restore destination): opened for reading; if it is itself a
  /// symbolic link, refused.
  write_into,
  /// Only to look names up in (the folder holding a source or a file to read): a handle from
  /// Env::open_directory_for_lookup; a trusted link as its last component is followed.
  look_up,
};

/// Opens the directory `path` (absolute; a relative path starts at the current directory) as
/// described above. With CreateMissing::yes, missing components are created with `mode` (less
/// the umask). Returns the open directory (owned by the caller). Throws Error:
///   not_found  a component does not exist (and is not to be created), or is not a directory;
///   denied     a component refused access, or the path goes through a symbolic link that is not
///              trusted (the message names the link and says to give the real path), or the
///              last component itself is a symbolic link and `use` is write_into;
///   io         anything else, or more than 40 links followed.
EnvFd open_directory_path(Env& env, const std::string& path, PathUse use, CreateMissing create = CreateMissing::no,
                          unsigned mode = 0755);

/// Opens `relative` ("a/b/c"; empty: a new handle on `dir_fd` itself) below the open directory
/// `dir_fd`, never following any symbolic link, for `use` (write_into: a handle to list and
/// write into; look_up: one to look names up in). Returns the descriptor or -errno (-ELOOP or
/// -ENOTDIR where a link or a non-directory is in the way, -EINVAL for a ".." component), like
/// the Env calls.
int open_directory_below(Env& env, int dir_fd, std::string_view relative, PathUse use = PathUse::write_into);

/// Reads the target of the symbolic link `name` in `dir_fd` whatever its length (`size_hint`:
/// its lstat size, 0 when unknown). Returns 0 and fills `target`, or the errno.
int read_link_target(Env& env, int dir_fd, const char* name, std::size_t size_hint, std::string& target);

}  // namespace mybackup
