// The SFTP Backend (sftp_backend.hpp): objects as files below a folder of an SSH server, reached
// through a small pool of connections (sftp_connection.hpp).

#include "mybackup/storage/sftp_backend.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "storage/sftp_connection.hpp"

namespace mybackup {

namespace {

using sftp::Attributes;
using sftp::Connection;
using sftp::Status;

constexpr std::size_t kMaxConnections = 8;
constexpr int kMaxListingDepth = 16;
constexpr std::size_t kMaxListingEntries = 5'000'000;
constexpr std::uint32_t kFileMode = 0600;
constexpr std::uint32_t kFolderMode = 0700;
const std::string kTemporaryPrefix = ".tmp-";

std::string parent_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string leaf_of(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

/// A name a listing may report: one segment of a valid object name. Temporaries, "." and ".."
/// start with a dot, which no object name does.
bool is_object_segment(const std::string& name) {
  return !name.empty() && name[0] != '.' && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

ErrorKind kind_of(Status status) {
  switch (status) {
    case Status::no_such_file:
    case Status::no_such_path:
      return ErrorKind::not_found;
    case Status::permission_denied:
    case Status::write_protect:
      return ErrorKind::denied;
    case Status::no_connection:
    case Status::connection_lost:
      return ErrorKind::transient;
    case Status::no_space_on_filesystem:
    case Status::quota_exceeded:
      return ErrorKind::no_space;
    default:
      return ErrorKind::io;
  }
}

std::string describe(Status status, const std::string& server_message) {
  if (!server_message.empty()) {
    return server_message;
  }
  switch (status) {
    case Status::no_such_file:
      return "No such file";
    case Status::permission_denied:
      return "Permission denied";
    case Status::op_unsupported:
      return "Operation unsupported";
    default:
      return "SFTP status " + std::to_string(static_cast<std::uint32_t>(status));
  }
}

/// Where to log in, from the URL; the path on the server, from its path.
sftp::Endpoint endpoint_of(const RemoteUrl& url) {
  sftp::Endpoint endpoint;
  endpoint.host = url.host;
  endpoint.port = url.port != 0 ? url.port : 22;
  endpoint.user = url.user;
  endpoint.identity = url.option("identity");
  endpoint.known_hosts = url.option("known_hosts");
  RemoteUrl bare = url;
  bare.options.clear();
  endpoint.location = bare.text();
  return endpoint;
}

/// "/~/rel" is relative to the login folder ("rel"), anything else absolute.
std::string root_of(const RemoteUrl& url) {
  if (url.path == "/~") {
    return ".";
  }
  if (url.path.rfind("/~/", 0) == 0) {
    return url.path.substr(3);
  }
  return url.path;
}

/// A temporary name next to `path`, unique across processes, threads and hosts sharing the folder.
std::string temporary_path_for(const std::string& path) {
  std::uint8_t noise[8];
  random_bytes(noise);
  const std::size_t thread = std::hash<std::thread::id>{}(std::this_thread::get_id()) % 1'000'000;
  return parent_of(path) + "/" + kTemporaryPrefix + leaf_of(path) + "." + std::to_string(::getpid()) + "-" +
         std::to_string(thread) + "-" + to_hex(noise);
}

class SftpBackend final : public Backend {
 public:
  explicit SftpBackend(const RemoteUrl& url) : endpoint_(endpoint_of(url)), root_(root_of(url)) {}

  std::string location() const override { return endpoint_.location; }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    const std::string path = path_of(name);
    Lease connection = lease();
    const std::string temporary = temporary_path_for(path);
    write_temporary(*connection, temporary, data, name);
    try {
      if (overwrite == Overwrite::yes) {
        replace_with(*connection, temporary, path, name);
      } else {
        link_new(*connection, temporary, path, name);
      }
    } catch (...) {
      remove_quietly(*connection, temporary);
      throw;
    }
  }

  Bytes get(const std::string& name, std::uint64_t max_size) const override {
    const std::string path = path_of(name);
    Lease connection = lease();
    check_bound(object_size(*connection, path, name), max_size, name);
    OpenObject object(*this, *connection, path, name);
    check_bound(object.size, max_size, name);  // it may have been swapped since the lstat
    return read_bytes(*connection, object, 0, object.size, name);
  }

  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    const std::string path = path_of(name);
    Lease connection = lease();
    object_size(*connection, path, name);  // a link or a special file is refused before it is opened
    OpenObject object(*this, *connection, path, name);
    if (offset > object.size || length > object.size - offset) {
      throw Error(ErrorKind::corrupt, where(name) + " is shorter than expected (truncated?)");
    }
    return read_bytes(*connection, object, offset, length, name);
  }

  std::optional<std::uint64_t> size(const std::string& name) const override {
    const std::string path = path_of(name);
    Lease connection = lease();
    Attributes attributes;
    const Status status = connection->lstat(path, attributes);
    if (status == Status::no_such_file) {
      return std::nullopt;
    }
    return checked_object_size(*connection, status, attributes, name);
  }

  std::vector<ObjectInfo> list(const std::string& prefix) const override {
    if (!prefix.empty()) {
      check_object_name(prefix);
    }
    Lease connection = lease();
    std::vector<ObjectInfo> objects;
    std::size_t entries = 0;
    if (prefix.empty()) {
      list_folder(*connection, root_, "", 0, objects, entries);  // the root may be a link: the user chose it
    } else {
      Attributes attributes;
      const std::string folder = root_ + "/" + prefix;
      const Status status = connection->lstat(folder, attributes);
      if (status == Status::ok && attributes.is_directory()) {
        list_folder(*connection, folder, prefix + "/", 0, objects, entries);
      } else if (status != Status::ok && status != Status::no_such_file) {
        throw_status(*connection, status, "cannot list " + where(prefix));
      }  // a link or a file in the place of a folder holds no objects
    }
    std::sort(objects.begin(), objects.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return objects;
  }

  bool empty() const override {
    Lease connection = lease();
    std::string handle;
    const Status status = connection->opendir(root_, handle);
    if (status == Status::no_such_file) {
      return true;
    }
    if (status != Status::ok) {
      throw_status(*connection, status, "cannot list " + endpoint_.location);
    }
    HandleCloser closer(*connection, handle);
    for (;;) {
      std::vector<sftp::DirectoryEntry> entries;
      const Status read = connection->readdir(handle, entries);
      if (read == Status::end_of_file) {
        return true;
      }
      if (read != Status::ok) {
        throw_status(*connection, read, "cannot list " + endpoint_.location);
      }
      for (const sftp::DirectoryEntry& entry : entries) {
        // A temporary left by a failed put() is not a stored object (list() skips it too).
        if (entry.name != "." && entry.name != ".." && entry.name.rfind(kTemporaryPrefix, 0) != 0) {
          return false;
        }
      }
    }
  }

  void remove(const std::string& name) override {
    const std::string path = path_of(name);
    Lease connection = lease();
    const Status status = connection->remove(path);
    if (status == Status::ok || status == Status::no_such_file) {
      return;
    }
    Attributes attributes;
    if (connection->lstat(path, attributes) == Status::ok && attributes.is_directory()) {
      throw Error(ErrorKind::corrupt, where(name) + " is a directory, not a stored object: left as it is");
    }
    throw_status(*connection, status, "cannot delete " + where(name));
  }

 private:
  /// A connection borrowed from the pool for one call; back to the pool when done, unless it broke.
  class Lease {
   public:
    Lease(const SftpBackend& owner, std::unique_ptr<Connection> connection)
        : owner_(owner), connection_(std::move(connection)) {}
    ~Lease() { owner_.give_back(std::move(connection_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection& operator*() const { return *connection_; }
    Connection* operator->() const { return connection_.get(); }

   private:
    const SftpBackend& owner_;
    std::unique_ptr<Connection> connection_;
  };

  /// Closes a remote handle at the end of a scope, unless the connection broke meanwhile.
  class HandleCloser {
   public:
    HandleCloser(Connection& connection, std::string handle) : connection_(connection), handle_(std::move(handle)) {}
    ~HandleCloser() {
      if (!connection_.broken()) {
        try {
          connection_.close(handle_);
        } catch (const Error&) {
          // The connection is now broken() and will be dropped; the server frees the handle.
        }
      }
    }
    HandleCloser(const HandleCloser&) = delete;
    HandleCloser& operator=(const HandleCloser&) = delete;

   private:
    Connection& connection_;
    std::string handle_;
  };

  /// An object opened for reading: refused unless the handle is a regular file.
  struct OpenObject {
    OpenObject(const SftpBackend& backend, Connection& connection, const std::string& path, const std::string& name) {
      const Status status = connection.open(path, sftp::open_read, 0, handle);
      if (status != Status::ok) {
        backend.throw_status(connection, status, "cannot open " + backend.where(name));
      }
      closer.emplace(connection, handle);
      Attributes attributes;
      const Status stat_status = connection.fstat(handle, attributes);
      size = backend.checked_object_size(connection, stat_status, attributes, name);
    }
    std::string handle;
    std::optional<HandleCloser> closer;
    std::uint64_t size = 0;
  };

  Lease lease() const {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxConnections; });
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(connection));
    }
    ++open_;
    lock.unlock();
    try {
      return Lease(*this, std::make_unique<Connection>(endpoint_));
    } catch (...) {
      give_back(nullptr);
      throw;
    }
  }

  /// A healthy connection goes back to the pool. A broken one is dropped, and so are the idle
  /// ones: what broke it (a restarted server, a lost network) has likely broken them too.
  void give_back(std::unique_ptr<Connection> connection) const {
    std::vector<std::unique_ptr<Connection>> dropped;
    {
      std::lock_guard lock(mutex_);
      if (connection && !connection->broken()) {
        idle_.push_back(std::move(connection));
      } else {
        dropped.swap(idle_);
        open_ -= 1 + dropped.size();
      }
    }
    freed_.notify_all();
    // `dropped` and `connection` are closed here, outside the lock.
  }

  std::string path_of(const std::string& name) const {
    check_object_name(name);
    return root_ + "/" + name;
  }

  std::string where(const std::string& name) const { return endpoint_.location + "/" + name; }

  [[noreturn]] void throw_status(const Connection& connection, Status status, const std::string& what) const {
    throw Error(kind_of(status), what + ": " + describe(status, connection.last_message()));
  }

  /// The size of a stored object from its attributes, refusing what is not a regular file.
  std::uint64_t checked_object_size(const Connection& connection, Status status, const Attributes& attributes,
                                    const std::string& name) const {
    if (status != Status::ok) {
      throw_status(connection, status, "cannot stat " + where(name));
    }
    if (!attributes.permissions || !attributes.size) {
      throw Error(ErrorKind::io, "cannot stat " + where(name) + ": the server did not say what it is");
    }
    if (S_ISLNK(*attributes.permissions)) {
      throw Error(ErrorKind::corrupt, where(name) + " is a symbolic link, not a stored object (never followed)");
    }
    if (!attributes.is_regular()) {
      throw Error(ErrorKind::corrupt, where(name) + " is not a regular file, so not a stored object");
    }
    return *attributes.size;
  }

  std::uint64_t object_size(Connection& connection, const std::string& path, const std::string& name) const {
    Attributes attributes;
    const Status status = connection.lstat(path, attributes);
    return checked_object_size(connection, status, attributes, name);
  }

  void check_bound(std::uint64_t size, std::uint64_t max_size, const std::string& name) const {
    if (size > max_size) {
      throw Error(ErrorKind::corrupt, where(name) + " is " + std::to_string(size) + " bytes, more than the " +
                                          std::to_string(max_size) + " such an object can have (damaged or planted)");
    }
  }

  Bytes read_bytes(Connection& connection, const OpenObject& object, std::uint64_t offset, std::uint64_t length,
                   const std::string& name) const {
    Bytes data(length);
    const Status status = connection.read_exactly(object.handle, offset, length, data.data());
    if (status == Status::end_of_file) {
      throw Error(ErrorKind::corrupt, where(name) + " is shorter than expected (truncated?)");
    }
    if (status != Status::ok) {
      throw_status(connection, status, "cannot read " + where(name));
    }
    return data;
  }

  /// Writes `data` to a new file at `temporary` (creating the folders above it), synced when the
  /// server can. On failure nothing is left behind, as far as the connection allows.
  void write_temporary(Connection& connection, const std::string& temporary, ByteView data, const std::string& name) {
    const std::uint32_t flags = sftp::open_write | sftp::open_create | sftp::open_exclusive;
    std::string handle;
    Status status = connection.open(temporary, flags, kFileMode, handle);
    if (status == Status::no_such_file) {
      make_folders(connection, parent_of(temporary), name);
      status = connection.open(temporary, flags, kFileMode, handle);
    }
    if (status != Status::ok) {
      throw_status(connection, status, "cannot store " + where(name));
    }
    try {
      status = connection.write_all(handle, data);
      if (status == Status::ok && connection.supports("fsync@openssh.com")) {
        status = connection.fsync(handle);
      }
      const Status closed = connection.close(handle);
      if (status == Status::ok) {
        status = closed;
      }
      if (status != Status::ok) {
        throw_status(connection, status, "cannot store " + where(name));
      }
    } catch (...) {
      remove_quietly(connection, temporary);
      throw;
    }
  }

  /// Creates `folder` and the missing ones above it. Something else in its place: Error(corrupt).
  void make_folders(Connection& connection, const std::string& folder, const std::string& name) {
    Status status = connection.mkdir(folder, kFolderMode);
    if (status == Status::no_such_file && folder != "/" && folder != ".") {
      make_folders(connection, parent_of(folder), name);
      status = connection.mkdir(folder, kFolderMode);
    }
    if (status == Status::ok) {
      return;
    }
    // OpenSSH answers a plain failure for a folder that exists (made by another writer, say).
    Attributes attributes;
    const Status lstat_status = connection.lstat(folder, attributes);
    if (lstat_status == Status::ok && attributes.is_directory()) {
      return;
    }
    if (lstat_status == Status::ok) {
      throw Error(ErrorKind::corrupt, "cannot store " + where(name) + ": " + folder +
                                          " on the server is a link or a file where the repository has a folder");
    }
    throw_status(connection, status, "cannot create folder " + folder + " for " + where(name));
  }

  /// Create-if-absent: the link or the v3 rename fails if the name is taken.
  void link_new(Connection& connection, const std::string& temporary, const std::string& path, const std::string& name) {
    Status status = Status::failure;
    if (connection.supports("hardlink@openssh.com")) {
      status = connection.two_path_extension("hardlink@openssh.com", temporary, path);
      if (status == Status::ok) {
        remove_quietly(connection, temporary);
        return;
      }
      refuse_if_taken(connection, path, name);
      // A file system without hard links (some network mounts): the plain rename below.
    }
    const Status renamed = connection.rename(temporary, path);
    if (renamed == Status::ok) {
      return;
    }
    refuse_if_taken(connection, path, name);
    throw_status(connection, status == Status::failure ? renamed : status, "cannot store " + where(name));
  }

  void refuse_if_taken(Connection& connection, const std::string& path, const std::string& name) const {
    Attributes attributes;
    if (connection.lstat(path, attributes) == Status::ok) {
      throw Error(ErrorKind::exists, where(name) + " already exists (the stored object is untouched)");
    }
  }

  void replace_with(Connection& connection, const std::string& temporary, const std::string& path, const std::string& name) {
    Status status = Status::ok;
    if (connection.supports("posix-rename@openssh.com")) {
      status = connection.two_path_extension("posix-rename@openssh.com", temporary, path);
    } else {
      status = connection.rename(temporary, path);
      Attributes attributes;
      if (status != Status::ok && connection.lstat(path, attributes) == Status::ok && attributes.is_regular()) {
        connection.remove(path);  // not atomic: see the header
        status = connection.rename(temporary, path);
      }
    }
    if (status != Status::ok) {
      throw_status(connection, status, "cannot store " + where(name));
    }
  }

  static void remove_quietly(Connection& connection, const std::string& path) {
    if (connection.broken()) {
      return;
    }
    try {
      connection.remove(path);
    } catch (const Error&) {
      // Broken now, and dropped; a temporary is never listed.
    }
  }

  /// Adds the objects below `folder` (named `name_prefix` + …) to `out`, links never followed.
  void list_folder(Connection& connection, const std::string& folder, const std::string& name_prefix, int depth,
                   std::vector<ObjectInfo>& out, std::size_t& entries) const {
    if (depth > kMaxListingDepth) {
      throw Error(ErrorKind::corrupt, "cannot list " + where(name_prefix) + ": folders nest deeper than " +
                                          std::to_string(kMaxListingDepth) + " levels (planted?)");
    }
    std::string handle;
    const Status status = connection.opendir(folder, handle);
    if (status == Status::no_such_file) {
      return;
    }
    if (status != Status::ok) {
      throw_status(connection, status, "cannot list " + where(name_prefix));
    }
    std::vector<std::string> folders;
    {
      HandleCloser closer(connection, handle);
      for (;;) {
        std::vector<sftp::DirectoryEntry> batch;
        const Status read = connection.readdir(handle, batch);
        if (read == Status::end_of_file) {
          break;
        }
        if (read != Status::ok) {
          throw_status(connection, read, "cannot list " + where(name_prefix));
        }
        entries += batch.size();
        if (entries > kMaxListingEntries) {
          throw Error(ErrorKind::corrupt, "cannot list " + endpoint_.location + ": more than " +
                                              std::to_string(kMaxListingEntries) + " entries (planted?)");
        }
        for (const sftp::DirectoryEntry& entry : batch) {
          if (!is_object_segment(entry.name)) {
            continue;
          }
          if (entry.attributes.is_directory()) {
            folders.push_back(entry.name);
          } else if (entry.attributes.is_regular() && entry.attributes.size) {
            out.push_back({name_prefix + entry.name, *entry.attributes.size});
          }
          // Links, FIFOs, sockets and devices are not objects: never listed, never followed.
        }
      }
    }
    for (const std::string& child : folders) {
      list_folder(connection, folder + "/" + child, name_prefix + child + "/", depth + 1, out, entries);
    }
  }

  sftp::Endpoint endpoint_;
  std::string root_;  // on the server: "/abs/path", or relative to the login folder ("rel", ".")
  mutable std::mutex mutex_;
  mutable std::condition_variable freed_;
  mutable std::vector<std::unique_ptr<Connection>> idle_;
  mutable std::size_t open_ = 0;  // idle and leased
};

}  // namespace

std::vector<std::string> sftp_url_options() { return {"identity", "known_hosts"}; }

void check_sftp_url(const RemoteUrl& url) {
  if (url.path.empty()) {
    throw Error(ErrorKind::usage, "destination " + url.text() + " has no path: write sftp://host/absolute/path or " +
                                      "sftp://host/~/path (below the login folder)");
  }
}

std::unique_ptr<Backend> make_sftp_backend(const RemoteUrl& url) {
  check_sftp_url(url);
  return std::make_unique<SftpBackend>(url);
}

}  // namespace mybackup
