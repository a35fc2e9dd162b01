#include "mybackup/legacy/tar_archiver.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include "mybackup/util/bytes.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "util/unique_fd.hpp"

namespace mybackup {

namespace {

constexpr std::size_t kBlock = 1024 * 1024;  // read size, and how often should_stop is asked

struct ArchiveDeleter {
  void operator()(archive* handle) const { archive_write_free(handle); }
};
struct EntryDeleter {
  void operator()(archive_entry* entry) const { archive_entry_free(entry); }
};
struct ResolverDeleter {
  void operator()(archive_entry_linkresolver* resolver) const { archive_entry_linkresolver_free(resolver); }
};
using EntryPtr = std::unique_ptr<archive_entry, EntryDeleter>;

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// One archive being written: the libarchive handle over the temporary file, and the counts.
class TarWriter {
 public:
  TarWriter(int fd, std::string archive_path, const std::function<bool()>& should_stop, const struct stat& skip_dir)
      : archive_path_(std::move(archive_path)), should_stop_(should_stop), skip_dir_(skip_dir) {
    handle_.reset(archive_write_new());
    resolver_.reset(archive_entry_linkresolver_new());
    if (!handle_ || !resolver_) {
      throw Error(ErrorKind::io, "cannot start the archive " + archive_path_ + ": out of memory");
    }
    check(archive_write_set_format_pax(handle_.get()));
    archive_entry_linkresolver_set_strategy(resolver_.get(), archive_format(handle_.get()));
    check(archive_write_open_fd(handle_.get(), fd));
  }

  /// Adds `path` (stored as `name`) and, for a directory, everything below it.
  void add(const std::string& path, const std::string& name, bool follow) {
    stop_point();
    struct stat info {};
    if ((follow ? ::stat(path.c_str(), &info) : ::lstat(path.c_str(), &info)) != 0) {
      if (errno == ENOENT && !follow) {
        result_.problems.push_back(path + ": vanished while archiving");
        return;
      }
      if (errno == ENOENT) {
        throw Error(ErrorKind::not_found, "the source " + path + " does not exist: create it, or change the schedule");
      }
      result_.problems.push_back(path + ": " + std::strerror(errno));
      return;
    }
    if (S_ISDIR(info.st_mode) && info.st_dev == skip_dir_.st_dev && info.st_ino == skip_dir_.st_ino) {
      return;  // the archive directory itself (and the temporary file being written in it)
    }
    if (S_ISSOCK(info.st_mode)) {
      result_.problems.push_back(path + ": a socket, which tar cannot hold");
      return;
    }
    if (S_ISREG(info.st_mode)) {
      add_file(path, name);
      return;
    }
    EntryPtr entry(archive_entry_new());
    archive_entry_copy_pathname(entry.get(), name.c_str());
    archive_entry_copy_stat(entry.get(), &info);
    if (S_ISLNK(info.st_mode)) {
      // st_size is the target's length, except on some filesystems that report 0.
      std::string target(static_cast<std::size_t>(info.st_size > 0 ? info.st_size : 4095) + 1, '\0');
      const ssize_t length = ::readlink(path.c_str(), target.data(), target.size());
      if (length < 0 || static_cast<std::size_t>(length) >= target.size()) {
        result_.problems.push_back(path + ": cannot read the link" + (length < 0 ? std::string(": ") + std::strerror(errno) : ""));
        return;
      }
      target.resize(static_cast<std::size_t>(length));
      archive_entry_copy_symlink(entry.get(), target.c_str());
      ++result_.symlinks;
    } else if (S_ISDIR(info.st_mode)) {
      ++result_.directories;
    } else {
      ++result_.others;
    }
    if (!name.empty()) {  // the source "/" has no entry of its own, only its children
      write_header(entry.get());
    }
    if (S_ISDIR(info.st_mode)) {
      add_children(path, name);
    }
  }

  /// Ends the archive (trailer, padding). The caller syncs and renames the file.
  ArchiveResult finish() {
    check(archive_write_close(handle_.get()));
    return result_;
  }

 private:
  void add_children(const std::string& path, const std::string& name) {
    std::unique_ptr<DIR, int (*)(DIR*)> directory(::opendir(path.c_str()), &::closedir);
    if (!directory) {
      result_.problems.push_back(path + ": cannot list: " + std::strerror(errno));
      return;
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* item = ::readdir(directory.get())) {
      const std::string child = item->d_name;
      if (child != "." && child != "..") {
        names.push_back(child);
      }
    }
    directory.reset();
    std::sort(names.begin(), names.end());  // the same tree gives the same archive
    for (const std::string& child : names) {
      add(join_path(path, child), name.empty() ? child : name + "/" + child, false);
    }
  }

  void add_file(const std::string& path, const std::string& name) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
      result_.problems.push_back(path + ": cannot read: " + std::strerror(errno));
      return;
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
      result_.problems.push_back(path + ": changed while archiving");
      return;
    }
    EntryPtr entry(archive_entry_new());
    archive_entry_copy_pathname(entry.get(), name.c_str());
    archive_entry_copy_stat(entry.get(), &info);
    archive_entry* resolved = entry.get();
    archive_entry* spare = nullptr;
    archive_entry_linkify(resolver_.get(), &resolved, &spare);  // the tar strategy keeps `entry` as ours
    ++result_.files;
    write_header(entry.get());
    if (archive_entry_hardlink(entry.get()) != nullptr) {
      return;  // a further link to a file already stored: no body
    }
    std::uint64_t remaining = static_cast<std::uint64_t>(info.st_size);
    buffer_.resize(kBlock);
    while (remaining > 0) {
      stop_point();
      const ssize_t n = ::read(fd.get(), buffer_.data(), static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kBlock)));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        // Shrunk or unreadable: the entry keeps its announced size, libarchive pads it with zeros.
        result_.problems.push_back(path + (n < 0 ? ": read error: " + std::string(std::strerror(errno))
                                                 : ": shrank while archiving (the end is zero-filled)"));
        break;
      }
      if (archive_write_data(handle_.get(), buffer_.data(), static_cast<std::size_t>(n)) < 0) {
        fail();
      }
      remaining -= static_cast<std::uint64_t>(n);
    }
    check(archive_write_finish_entry(handle_.get()));
  }

  void write_header(archive_entry* entry) {
    const int rc = archive_write_header(handle_.get(), entry);
    if (rc == ARCHIVE_FATAL) {
      fail();
    }
    if (rc == ARCHIVE_FAILED) {
      result_.problems.push_back(std::string(archive_entry_pathname(entry)) + ": " + error_text());
    }
  }

  void stop_point() const {
    if (should_stop_ && should_stop_()) {
      throw Error(ErrorKind::interrupted, "archive " + archive_path_ + " interrupted by a stop request: nothing was replaced");
    }
  }

  std::string error_text() const {
    const char* text = archive_error_string(handle_.get());
    return text != nullptr ? text : "unknown libarchive error";
  }

  void check(int rc) {
    if (rc < ARCHIVE_WARN) {
      fail();
    }
  }

  [[noreturn]] void fail() {
    const int errnum = archive_errno(handle_.get());
    if (errnum == ENOSPC || errnum == EDQUOT) {
      throw_system_error(errnum, "cannot write " + archive_path_);
    }
    throw Error(ErrorKind::io, "cannot write " + archive_path_ + ": " + error_text());
  }

  std::string archive_path_;
  const std::function<bool()>& should_stop_;
  struct stat skip_dir_;
  std::unique_ptr<archive, ArchiveDeleter> handle_;
  std::unique_ptr<archive_entry_linkresolver, ResolverDeleter> resolver_;
  std::vector<char> buffer_;
  ArchiveResult result_;
};

}  // namespace

TarArchiver::TarArchiver(std::string archive_directory) : directory_(std::move(archive_directory)) {}

std::string TarArchiver::archive_path(const std::string& name) const { return join_path(directory_, name + ".tar"); }

ArchiveResult TarArchiver::write(const std::string& source, const std::string& name,
                                 const std::function<bool()>& should_stop) const {
  struct stat source_info {};
  if (::stat(source.c_str(), &source_info) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      throw Error(ErrorKind::not_found, "the source " + source + " of '" + name +
                                            "' does not exist: create it, or change the schedule");
    }
    throw_system_error(errno, "cannot read the source " + source + " of '" + name + "'");
  }
  make_directories(directory_, 0700);
  struct stat directory_info {};
  if (::stat(directory_.c_str(), &directory_info) != 0) {
    throw_system_error(errno, "cannot open the archive directory " + directory_);
  }

  const std::string final_path = archive_path(name);
  std::array<std::uint8_t, 6> random{};
  random_bytes(random);
  const std::string temporary = join_path(directory_, ".tmp-" + name + "-" + to_hex(random) + ".tar");
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    throw_system_error(errno, "cannot create an archive in " + directory_);
  }
  try {
    ArchiveResult result;
    {
      TarWriter writer(fd.get(), final_path, should_stop, directory_info);
      writer.add(source, source == "/" ? "" : base_name(source), true);
      result = writer.finish();
    }
    if (::fsync(fd.get()) != 0) {
      throw_system_error(errno, "cannot sync " + temporary);
    }
    struct stat written {};
    if (::fstat(fd.get(), &written) != 0) {
      throw_system_error(errno, "cannot stat " + temporary);
    }
    if (fd.close_checked() != 0) {
      throw_system_error(errno, "cannot close " + temporary);
    }
    if (::rename(temporary.c_str(), final_path.c_str()) != 0) {
      throw_system_error(errno, "cannot rename the archive into " + final_path);
    }
    sync_directory(directory_);
    result.archive_path = final_path;
    result.bytes = static_cast<std::uint64_t>(written.st_size);
    return result;
  } catch (...) {
    ::unlink(temporary.c_str());
    throw;
  }
}

std::vector<ArchiveInfo> list_archives(const std::string& archive_directory) {
  std::vector<ArchiveInfo> archives;
  std::unique_ptr<DIR, int (*)(DIR*)> directory(::opendir(archive_directory.c_str()), &::closedir);
  if (!directory) {
    if (errno == ENOENT) {
      return archives;
    }
    throw_system_error(errno, "cannot list the archive directory " + archive_directory);
  }
  while (const dirent* item = ::readdir(directory.get())) {
    const std::string name = item->d_name;
    if (name.empty() || name.front() == '.' || name.size() <= 4 || name.compare(name.size() - 4, 4, ".tar") != 0) {
      continue;
    }
    struct stat info {};
    if (::stat(join_path(archive_directory, name).c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
      continue;
    }
    archives.push_back({name, static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec,
                        static_cast<std::uint64_t>(info.st_size)});
  }
  std::sort(archives.begin(), archives.end(), [](const ArchiveInfo& a, const ArchiveInfo& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.file_name < b.file_name;
  });
  return archives;
}

}  // namespace mybackup
