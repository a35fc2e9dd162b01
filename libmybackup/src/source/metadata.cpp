#include "mybackup/source/metadata.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "util/binary_io.hpp"

namespace mybackup {

namespace {

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

/// getpwuid_r and friends want a caller's buffer; 16 KiB fits any sane entry.
constexpr std::size_t kNameBuffer = 16 * 1024;

}  // namespace

std::int64_t time_ns(const struct timespec& time) {
  constexpr std::int64_t kNsPerSecond = 1'000'000'000;
  const std::int64_t seconds = time.tv_sec;
  if (seconds > std::numeric_limits<std::int64_t>::max() / kNsPerSecond - 1) {
    return std::numeric_limits<std::int64_t>::max();
  }
  if (seconds < std::numeric_limits<std::int64_t>::min() / kNsPerSecond + 1) {
    return std::numeric_limits<std::int64_t>::min();
  }
  return seconds * kNsPerSecond + time.tv_nsec;
}

FileMetadata stat_metadata(const struct stat& st, bool device_node) {
  FileMetadata meta;
  meta.recorded = true;
  meta.uid = st.st_uid;
  meta.gid = st.st_gid;
  meta.ctime_ns = time_ns(st.st_ctim);
  meta.device = static_cast<std::uint64_t>(st.st_dev);
  meta.links = static_cast<std::uint32_t>(st.st_nlink);
  meta.rdev = device_node ? static_cast<std::uint64_t>(st.st_rdev) : 0;
  return meta;
}

OwnerNames& system_owner_names() {
  static OwnerNames names;
  return names;
}

bool xattr_wanted(std::string_view name, bool privileged) {
  if (starts_with(name, "user.") || name == "system.posix_acl_access" || name == "system.posix_acl_default") {
    return true;
  }
  return privileged && (starts_with(name, "trusted.") || starts_with(name, "security."));
}

std::string encode_xattrs(const std::vector<ExtendedAttribute>& xattrs) {
  if (xattrs.empty()) {
    return "";
  }
  Bytes out;
  binary::Writer writer(out);
  writer.varint(xattrs.size());
  for (const ExtendedAttribute& attribute : xattrs) {
    writer.string(attribute.name);
    writer.string(attribute.value);
  }
  return std::string(as_text(out));
}

std::vector<ExtendedAttribute> decode_xattrs(std::string_view encoded) {
  std::vector<ExtendedAttribute> xattrs;
  if (encoded.empty()) {
    return xattrs;
  }
  binary::Reader reader(as_bytes(encoded), "extended attributes");
  xattrs.resize(reader.count(2));
  for (ExtendedAttribute& attribute : xattrs) {
    attribute.name = reader.string();
    attribute.value = reader.string();
  }
  if (reader.remaining() != 0) {
    reader.fail();
  }
  return xattrs;
}

int read_xattrs(int fd, bool privileged, std::vector<ExtendedAttribute>& out) {
  out.clear();
  std::string names;
  for (;;) {
    const ssize_t size = ::flistxattr(fd, nullptr, 0);
    if (size < 0) {
      return errno == ENOTSUP ? 0 : errno;
    }
    if (size == 0) {
      return 0;
    }
    if (static_cast<std::size_t>(size) > kMaxXattrTotal) {
      return E2BIG;
    }
    names.resize(static_cast<std::size_t>(size));
    const ssize_t listed = ::flistxattr(fd, names.data(), names.size());
    if (listed >= 0) {
      names.resize(static_cast<std::size_t>(listed));
      break;
    }
    if (errno != ERANGE) {
      return errno;
    }
    // The list grew between the two calls: ask again.
  }
  std::size_t total = 0;
  for (std::size_t start = 0; start < names.size();) {
    const std::size_t end = names.find('\0', start);
    const std::string name = names.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? names.size() : end + 1;
    if (name.empty() || !xattr_wanted(name, privileged)) {
      continue;
    }
    std::string value(kMaxXattrValue, '\0');
    const ssize_t length = ::fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (length < 0) {
      if (errno == ENODATA) {
        continue;  // removed since the listing
      }
      return errno == ERANGE ? E2BIG : errno;
    }
    value.resize(static_cast<std::size_t>(length));
    total += name.size() + value.size();
    if (total > kMaxXattrTotal) {
      return E2BIG;
    }
    out.push_back({name, std::move(value)});
  }
  std::sort(out.begin(), out.end(), [](const ExtendedAttribute& a, const ExtendedAttribute& b) { return a.name < b.name; });
  return 0;
}

bool running_as_root() { return ::geteuid() == 0; }

namespace {

/// The cached answer for `key`, asking `lookup(buffer)` the first time.
template <typename Key, typename Value, typename Lookup>
Value cached(std::mutex& mutex, std::unordered_map<Key, Value>& cache, const Key& key, Lookup lookup) {
  std::lock_guard lock(mutex);
  const auto found = cache.find(key);
  if (found != cache.end()) {
    return found->second;
  }
  std::string buffer(kNameBuffer, '\0');
  return cache.emplace(key, lookup(buffer)).first->second;
}

}  // namespace

std::string OwnerNames::user_name(std::uint32_t uid) {
  return cached(mutex_, users_, uid, [uid](std::string& buffer) {
    passwd entry{};
    passwd* result = nullptr;
    const bool known = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &result) == 0 && result != nullptr;
    return known ? std::string(result->pw_name) : std::string();
  });
}

std::string OwnerNames::group_name(std::uint32_t gid) {
  return cached(mutex_, groups_, gid, [gid](std::string& buffer) {
    group entry{};
    group* result = nullptr;
    const bool known = ::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &result) == 0 && result != nullptr;
    return known ? std::string(result->gr_name) : std::string();
  });
}

std::optional<std::uint32_t> OwnerNames::user_id(const std::string& name) {
  return cached(mutex_, user_ids_, name, [&name](std::string& buffer) -> std::optional<std::uint32_t> {
    passwd entry{};
    passwd* result = nullptr;
    const bool known = !name.empty() &&
                       ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &result) == 0 && result != nullptr;
    return known ? std::optional<std::uint32_t>(result->pw_uid) : std::nullopt;
  });
}

std::optional<std::uint32_t> OwnerNames::group_id(const std::string& name) {
  return cached(mutex_, group_ids_, name, [&name](std::string& buffer) -> std::optional<std::uint32_t> {
    group entry{};
    group* result = nullptr;
    const bool known = !name.empty() &&
                       ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &result) == 0 && result != nullptr;
    return known ? std::optional<std::uint32_t>(result->gr_gid) : std::nullopt;
  });
}

RestoredOwner owner_to_restore(const FileMetadata& meta, OwnerNames& names) {
  RestoredOwner owner;
  owner.uid = names.user_id(meta.owner).value_or(meta.uid);
  owner.gid = names.group_id(meta.group).value_or(meta.gid);
  return owner;
}

}  // namespace mybackup
