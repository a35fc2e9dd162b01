#pragma once
// What a version records of a file beyond its type, mode, size, time and content: who owns it,
// which other names link to it, which device it is, and its extended attributes (POSIX ACLs are
// extended attributes too). Read at backup time, written back at restore time.

#include <sys/stat.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mybackup {

/// One extended attribute: its full name ("user.comment", "system.posix_acl_access") and value.
struct ExtendedAttribute {
  std::string name;
  std::string value;

  bool operator==(const ExtendedAttribute&) const = default;
};

struct FileMetadata {
  /// False for versions recorded before mybackup kept metadata (manifest format 1 and 2): then
  /// nothing below is known, and a restore leaves the owner to whoever restores.
  bool recorded = false;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string owner;          // the user name of uid at backup time ("" if it had none)
  std::string group;          // the group name of gid at backup time ("" if it had none)
  std::int64_t ctime_ns = 0;  // inode change time: moves with owner, mode, links and attributes
  std::uint64_t device = 0;   // st_dev: with the inode, what makes two names one file (hard links)
  std::uint32_t links = 1;    // st_nlink
  std::uint64_t rdev = 0;     // the device number of a character or block device, else 0
  std::vector<ExtendedAttribute> xattrs;  // sorted by name

  bool operator==(const FileMetadata&) const = default;
};

/// Nanoseconds since 1970 of a file time, saturated for times hundreds of years away.
std::int64_t time_ns(const struct timespec& time);

/// What `st` tells of the metadata (recorded; no names, no attributes). `device_node`: keep
/// st_rdev (character and block devices).
FileMetadata stat_metadata(const struct stat& st, bool device_node);

/// The process's cache of user and group names (see OwnerNames).
class OwnerNames;
OwnerNames& system_owner_names();

/// Which extended attributes are recorded and restored: `user.*` and the POSIX ACLs
/// (`system.posix_acl_access`, `system.posix_acl_default`) always; `trusted.*` and `security.*`
/// (capabilities, SELinux labels) only when `privileged` (root), who alone can set them back.
bool xattr_wanted(std::string_view name, bool privileged);

/// The attributes as one byte string (a count, then each name and value, length-prefixed), as the
/// manifest and the catalog store them; decode_xattrs throws Error(corrupt) on malformed input.
std::string encode_xattrs(const std::vector<ExtendedAttribute>& xattrs);
std::vector<ExtendedAttribute> decode_xattrs(std::string_view encoded);

/// Caps on what one file may carry (Linux allows 64 KiB per value): beyond them the file's
/// attributes are refused as a problem rather than read into memory.
inline constexpr std::size_t kMaxXattrValue = 64 * 1024;
inline constexpr std::size_t kMaxXattrTotal = 1024 * 1024;

/// Reads the wanted extended attributes of the open file `fd` into `out`, sorted by name.
/// Returns 0, or the errno that stopped it (E2BIG past the caps). A filesystem without extended
/// attributes (ENOTSUP) gives 0 and none.
int read_xattrs(int fd, bool privileged, std::vector<ExtendedAttribute>& out);

/// True when this process may give files away and set every attribute (effective uid 0).
bool running_as_root();

/// User and group names, from the system's databases (getpwuid_r and friends), cached.
/// Thread-safe: one instance may serve every restore worker.
class OwnerNames {
 public:
  std::string user_name(std::uint32_t uid);
  std::string group_name(std::uint32_t gid);
  /// The id a name has on this system, or nullopt.
  std::optional<std::uint32_t> user_id(const std::string& name);
  std::optional<std::uint32_t> group_id(const std::string& name);

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint32_t, std::string> users_;
  std::unordered_map<std::uint32_t, std::string> groups_;
  std::unordered_map<std::string, std::optional<std::uint32_t>> user_ids_;
  std::unordered_map<std::string, std::optional<std::uint32_t>> group_ids_;
};

/// The owner a restore gives a file: the recorded names where this system knows them (a
/// restore on another machine maps "alice" to its own alice), else the recorded ids.
struct RestoredOwner {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};
RestoredOwner owner_to_restore(const FileMetadata& meta, OwnerNames& names);

}  // namespace mybackup
