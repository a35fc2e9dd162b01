#pragma once
// The environment: the one door to the operating system for the code that reads sources (the
// scanner, the backup's file reads), writes restores, keeps time (the writer lock's refresher,
// run timestamps), and tells who this process is (the writer lock's identity). As LevelDB's Env,
// so tests can wrap it and inject faults (EIO, short reads, a file changing while read, a full
// disk, lost unsynced data) that a real filesystem cannot produce on demand.
//
// The calls are thin: each one is at most one virtual call per system call, works on file
// descriptors, and copies nothing. Conventions shared by every method:
//  - a result >= 0 is success (0, a descriptor, or a byte count); a failure returns the negated
//    errno (-ENOENT, -EACCES, ...), never throws, and leaves the global errno unspecified;
//  - EINTR is retried inside the call and never returned;
//  - `dir_fd` is a directory descriptor from open_directory() or AT_FDCWD; `path` is relative
//    to it (or absolute), `name` is a single component inside it;
//  - descriptors returned are close-on-exec and owned by the caller, who gives them back with
//    close() (EnvFd does that).
// Thread safety: the default Env is stateless and safe to use from any number of threads at
// once (the backup pipeline reads files on one thread per core). Implementations must be too.

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/clock.hpp"

namespace mybackup {

enum class FollowLinks { no, yes };

/// Who this process is, as far as a writer lock on a shared destination can tell
/// (repository/lock.hpp). A field the system does not tell is empty or 0: unknown, never equal.
struct ProcessIdentity {
  std::string host;              // the host name ("unknown" if gethostname fails)
  long pid = 0;                  // in this process's pid namespace
  std::string boot_id;           // /proc/sys/kernel/random/boot_id: new at every boot of the kernel
  std::uint64_t pid_ns = 0;      // inode of /proc/self/ns/pid: whose pids `pid` is one of
  std::int64_t boot_started_ns = 0;  // when this boot began (now_ns() less the time since boot)
};

/// This machine's host name ("unknown" if it cannot be read).
std::string host_name();

/// Called by Env::list_directory for each member: its name (never "." or "..") and its
/// dirent type (DT_REG, DT_DIR, DT_LNK, ... or DT_UNKNOWN when the filesystem does not say).
using DirectoryVisitor = std::function<void(const char* name, unsigned char type)>;

class Env : public Clock {
 public:
  /// The real operating system (and CLOCK_REALTIME). Lives for the whole program.
  static Env& default_env();
  /// `env`, or the default Env when it is nullptr (the convention of every options struct).
  static Env& or_default(Env* env) { return env != nullptr ? *env : default_env(); }

  ~Env() override = default;

  // ---- time

  /// Nanoseconds since the Unix epoch (UTC), from Clock.
  std::int64_t now_ns() const override = 0;

  /// Blocks on `condition` (whose mutex `lock` holds) until it is notified, `timeout` has passed
  /// (measured on a monotonic clock by the default Env), or a spurious wake-up. Returns
  /// std::cv_status::timeout only when the timeout passed; callers recheck their condition.
  virtual std::cv_status wait_for(std::condition_variable& condition, std::unique_lock<std::mutex>& lock,
                                  std::chrono::nanoseconds timeout) = 0;

  // ---- this process

  /// Who this process is: host, pid, boot, pid namespace. Reads a few files under /proc (the
  /// default Env): call it once and keep the result.
  virtual ProcessIdentity process_identity() = 0;

  /// Whether a process `pid` of this pid namespace exists (kill(pid, 0) succeeds or is refused
  /// with EPERM). A pid <= 0 never does.
  virtual bool process_exists(long pid) = 0;

  // ---- reading (sources, and files already at a restore's target)

  /// Opens a regular file read-only without following a symbolic link in its last component
  /// (-ELOOP then), never blocking (a fifo opens at once: check the type with stat_fd) and,
  /// where the caller may (owner or root), without updating its access time.
  /// Returns the descriptor or -errno (-ENOENT, -EACCES, -ELOOP, ...).
  virtual int open_for_reading(int dir_fd, const char* path) = 0;

  /// Opens a directory for listing and as a `dir_fd` for the calls below. FollowLinks::no fails
  /// with -ELOOP (or -ENOTDIR) when the last component is a symbolic link (or not a directory).
  virtual int open_directory(int dir_fd, const char* path, FollowLinks follow) = 0;

  /// Opens a directory only to look names up in it (O_PATH): search permission is enough (a
  /// 0711 folder above a home). The handle serves as `dir_fd` for the calls that open, stat,
  /// read links or make directories, but cannot be listed, synced or changed. Never follows a
  /// link at the last component (-ENOTDIR or -ELOOP there).
  virtual int open_directory_for_lookup(int dir_fd, const char* path) = 0;

  /// Closes a descriptor from this Env. Returns 0 or -errno (a deferred write error, -EIO).
  virtual int close(int fd) = 0;

  /// Reads up to `size` bytes at the current offset into `buffer`. Returns the count (0 at end
  /// of file; fewer than asked is not an error) or -errno (-EIO).
  virtual std::int64_t read(int fd, void* buffer, std::size_t size) = 0;

  /// fstat(2): the metadata of an open descriptor. Returns 0 or -errno.
  virtual int stat_fd(int fd, struct stat& info) = 0;

  /// lstat(2) relative to `dir_fd`: a symbolic link is described, not followed. 0 or -errno.
  virtual int stat_at(int dir_fd, const char* path, struct stat& info) = 0;

  /// readlink(2) relative to `dir_fd` into `buffer` (not NUL-terminated). Returns the length of
  /// the target or -errno (-EINVAL if it is not a symbolic link). A result equal to `size` may
  /// mean the target was cut: call again with a larger buffer.
  virtual std::int64_t read_link_at(int dir_fd, const char* path, char* buffer, std::size_t size) = 0;

  /// Calls `visit` for every member of the directory `dir_fd` (from its current position, which
  /// is the start for a fresh descriptor). The descriptor stays open and usable as a `dir_fd`,
  /// also from inside `visit`. Returns 0, or -errno if listing failed part way (the members
  /// visited so far were real).
  virtual int list_directory(int dir_fd, const DirectoryVisitor& visit) = 0;

  // ---- writing (restores)

  /// Creates a new file `name` in `dir_fd` for writing (O_CREAT | O_EXCL, never through a
  /// symbolic link) with permission bits `mode`. Returns the descriptor or -errno (-EEXIST,
  /// -EACCES, -ENOSPC, -EROFS, ...).
  virtual int create_file_at(int dir_fd, const char* name, unsigned mode) = 0;

  /// Creates a file without a name in `dir_fd`'s filesystem (O_TMPFILE) for writing, with
  /// permission bits `mode`: it vanishes if closed, or the process dies, before it is named.
  /// Returns the descriptor, -EOPNOTSUPP when the filesystem or kernel has no such files, or the
  /// other -errno of create_file_at.
  virtual int create_unnamed_file_at(int dir_fd, unsigned mode) = 0;

  /// Gives the file `fd` made by create_unnamed_file_at the name `name` in `dir_fd`, never
  /// replacing anything there (-EEXIST). 0 or -errno; -EOPNOTSUPP when this process cannot name
  /// such a file (neither privileged for linkat's AT_EMPTY_PATH nor with /proc mounted).
  virtual int name_unnamed_file_at(int fd, int dir_fd, const char* name) = 0;

  /// Writes up to `size` bytes at the current offset. Returns the count written (possibly fewer
  /// than asked) or -errno (-ENOSPC, -EDQUOT, -EIO).
  virtual std::int64_t write(int fd, const void* data, std::size_t size) = 0;

  /// Writes all of `data`, retrying short writes. Returns 0 or -errno.
  int write_all(int fd, ByteView data);

  /// Turns direct I/O (O_DIRECT) on or off for the open file `fd`: its writes then go to the
  /// device past the page cache, and must be aligned (util/direct_write's DirectWriter does
  /// that). 0 or -errno (-EINVAL where the filesystem has no direct I/O).
  virtual int set_direct_io(int fd, bool on) = 0;

  /// fsync(2): the file's data and metadata are durable when it returns 0. Else -errno.
  virtual int sync(int fd) = 0;

  /// syncfs(2): everything written on the filesystem holding `fd` is durable when it returns 0
  /// (files, renames, directories). Else -errno.
  virtual int sync_filesystem(int fd) = 0;

  /// mkdir(2) of `name` in `dir_fd` with `mode` (less the umask). 0 or -errno (-EEXIST, ...).
  virtual int make_directory_at(int dir_fd, const char* name, unsigned mode) = 0;

  /// Creates the symbolic link `name` in `dir_fd` pointing to `target`. 0 or -errno.
  virtual int symlink_at(const char* target, int dir_fd, const char* name) = 0;

  /// Renames `from` to `to`, both in `dir_fd`, atomically replacing `to`. 0 or -errno.
  virtual int rename_at(int dir_fd, const char* from, const char* to) = 0;

  /// Removes the file or symbolic link `name` from `dir_fd`. 0 or -errno.
  virtual int unlink_at(int dir_fd, const char* name) = 0;

  /// fchmod(2): sets the permission bits (07777) of an open file or directory. 0 or -errno.
  virtual int set_mode(int fd, unsigned mode) = 0;

  /// Sets the access and modification times of an open file or directory to `mtime_ns`
  /// (nanoseconds since the epoch, may be negative). 0 or -errno.
  virtual int set_times(int fd, std::int64_t mtime_ns) = 0;

  /// Like set_times for `name` in `dir_fd`, without following a symbolic link (the link's own
  /// times are set). 0 or -errno.
  virtual int set_times_at(int dir_fd, const char* name, std::int64_t mtime_ns) = 0;

  /// fchown(2): gives an open file or directory to `uid` and `gid`. 0 or -errno (-EPERM when a
  /// caller other than root gives a file away). Clears setuid and setgid: set the mode after.
  virtual int set_owner(int fd, std::uint32_t uid, std::uint32_t gid) = 0;

  /// Like set_owner for `name` in `dir_fd`, never following a symbolic link (the link's own
  /// owner is set). 0 or -errno.
  virtual int set_owner_at(int dir_fd, const char* name, std::uint32_t uid, std::uint32_t gid) = 0;

  /// mknodat(2): creates the fifo (`mode` S_IFIFO | permission bits) or character or block device
  /// (S_IFCHR, S_IFBLK: root only) `name` in `dir_fd`, with device number `device`; the umask
  /// applies. 0 or -errno (-EEXIST, -EPERM).
  virtual int make_node_at(int dir_fd, const char* name, unsigned mode, std::uint64_t device) = 0;

  /// linkat(2) without following links: makes `to` in `to_dir` another name of the file `from` in
  /// `from_dir`. 0 or -errno (-EXDEV across filesystems, -EPERM, -EMLINK).
  virtual int link_at(int from_dir, const char* from, int to_dir, const char* to) = 0;

  /// fsetxattr(2): sets one extended attribute of an open file or directory. 0 or -errno
  /// (-ENOTSUP where the filesystem has none, -EPERM for a namespace the caller may not set).
  virtual int set_xattr(int fd, const std::string& name, const std::string& value) = 0;
};

/// Forwards every call to another Env: derive from it and override only what a test changes
/// (LevelDB's EnvWrapper). Thread-safe if the target is.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env& target) : target_(target) {}
  Env& target() const { return target_; }

  std::int64_t now_ns() const override { return target_.now_ns(); }
  std::cv_status wait_for(std::condition_variable& condition, std::unique_lock<std::mutex>& lock,
                          std::chrono::nanoseconds timeout) override {
    return target_.wait_for(condition, lock, timeout);
  }
  ProcessIdentity process_identity() override { return target_.process_identity(); }
  bool process_exists(long pid) override { return target_.process_exists(pid); }
  int open_for_reading(int dir_fd, const char* path) override { return target_.open_for_reading(dir_fd, path); }
  int open_directory(int dir_fd, const char* path, FollowLinks follow) override {
    return target_.open_directory(dir_fd, path, follow);
  }
  int open_directory_for_lookup(int dir_fd, const char* path) override {
    return target_.open_directory_for_lookup(dir_fd, path);
  }
  int close(int fd) override { return target_.close(fd); }
  std::int64_t read(int fd, void* buffer, std::size_t size) override { return target_.read(fd, buffer, size); }
  int stat_fd(int fd, struct stat& info) override { return target_.stat_fd(fd, info); }
  int stat_at(int dir_fd, const char* path, struct stat& info) override { return target_.stat_at(dir_fd, path, info); }
  std::int64_t read_link_at(int dir_fd, const char* path, char* buffer, std::size_t size) override {
    return target_.read_link_at(dir_fd, path, buffer, size);
  }
  int list_directory(int dir_fd, const DirectoryVisitor& visit) override { return target_.list_directory(dir_fd, visit); }
  int create_file_at(int dir_fd, const char* name, unsigned mode) override {
    return target_.create_file_at(dir_fd, name, mode);
  }
  std::int64_t write(int fd, const void* data, std::size_t size) override { return target_.write(fd, data, size); }
  int set_direct_io(int fd, bool on) override { return target_.set_direct_io(fd, on); }
  int sync(int fd) override { return target_.sync(fd); }
  int sync_filesystem(int fd) override { return target_.sync_filesystem(fd); }
  int make_directory_at(int dir_fd, const char* name, unsigned mode) override {
    return target_.make_directory_at(dir_fd, name, mode);
  }
  int create_unnamed_file_at(int dir_fd, unsigned mode) override { return target_.create_unnamed_file_at(dir_fd, mode); }
  int name_unnamed_file_at(int fd, int dir_fd, const char* name) override {
    return target_.name_unnamed_file_at(fd, dir_fd, name);
  }
  int symlink_at(const char* target, int dir_fd, const char* name) override {
    return target_.symlink_at(target, dir_fd, name);
  }
  int rename_at(int dir_fd, const char* from, const char* to) override { return target_.rename_at(dir_fd, from, to); }
  int unlink_at(int dir_fd, const char* name) override { return target_.unlink_at(dir_fd, name); }
  int set_mode(int fd, unsigned mode) override { return target_.set_mode(fd, mode); }
  int set_times(int fd, std::int64_t mtime_ns) override { return target_.set_times(fd, mtime_ns); }
  int set_times_at(int dir_fd, const char* name, std::int64_t mtime_ns) override {
    return target_.set_times_at(dir_fd, name, mtime_ns);
  }
  int set_owner(int fd, std::uint32_t uid, std::uint32_t gid) override { return target_.set_owner(fd, uid, gid); }
  int set_owner_at(int dir_fd, const char* name, std::uint32_t uid, std::uint32_t gid) override {
    return target_.set_owner_at(dir_fd, name, uid, gid);
  }
  int make_node_at(int dir_fd, const char* name, unsigned mode, std::uint64_t device) override {
    return target_.make_node_at(dir_fd, name, mode, device);
  }
  int link_at(int from_dir, const char* from, int to_dir, const char* to) override {
    return target_.link_at(from_dir, from, to_dir, to);
  }
  int set_xattr(int fd, const std::string& name, const std::string& value) override {
    return target_.set_xattr(fd, name, value);
  }

 private:
  Env& target_;
};

/// Owns a descriptor opened through an Env and closes it through that Env when it leaves scope
/// (or on reset()). Movable, not copyable. Given a failed open's result (-errno) it owns
/// nothing: valid() is false and get() returns that -errno.
class EnvFd {
 public:
  EnvFd() = default;
  EnvFd(Env& env, int fd) : env_(&env), fd_(fd) {}
  ~EnvFd() { reset(); }
  EnvFd(EnvFd&& other) noexcept : env_(other.env_), fd_(other.fd_) { other.fd_ = -1; }
  EnvFd& operator=(EnvFd&& other) noexcept {
    if (this != &other) {
      reset();
      env_ = other.env_;
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  EnvFd(const EnvFd&) = delete;
  EnvFd& operator=(const EnvFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  /// Gives the descriptor to the caller, who closes it.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) {
      env_->close(fd_);
    }
    fd_ = -1;
  }

 private:
  Env* env_ = nullptr;
  int fd_ = -1;
};

}  // namespace mybackup
