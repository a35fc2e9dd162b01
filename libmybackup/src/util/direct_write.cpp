#include "mybackup/util/direct_write.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

// Direct I/O wants the buffer, the offset and the length aligned to the device's logical block
// (512 bytes or 4 KiB); 4 KiB suits both.
constexpr std::size_t kBlock = 4096;
constexpr std::size_t kStagingSize = 1024 * 1024;

}  // namespace

void DirectWriter::FreeAligned::operator()(std::uint8_t* p) const { std::free(p); }

DirectWriter::DirectWriter(Env& env) : env_(env) {}

DirectWriter::~DirectWriter() = default;

void DirectWriter::start(int fd, std::uint64_t expected_size) {
  fd_ = fd;
  staged_ = 0;
  direct_ = false;
  if (expected_size < kDirectWriteMinimum) {
    return;
  }
  if (!buffer_) {
    // Allocated on first use and kept: a fresh buffer per file would fault its pages in again.
    buffer_.reset(static_cast<std::uint8_t*>(std::aligned_alloc(kBlock, kStagingSize)));
    if (!buffer_) {
      return;  // no memory for the buffer: the ordinary way still works
    }
  }
  direct_ = env_.set_direct_io(fd, true) == 0;
}

int DirectWriter::add(ByteView data) {
  if (!direct_) {
    return env_.write_all(fd_, data);
  }
  while (!data.empty()) {
    const std::size_t take = std::min(kStagingSize - staged_, data.size());
    std::memcpy(buffer_.get() + staged_, data.data(), take);
    staged_ += take;
    data = data.subspan(take);
    if (staged_ == kStagingSize) {
      if (const int rc = write_staged(kStagingSize); rc != 0) {
        return rc;
      }
      if (!direct_) {  // the file system refused part way: the rest the ordinary way
        return env_.write_all(fd_, data);
      }
    }
  }
  return 0;
}

int DirectWriter::finish() {
  if (!direct_) {
    return 0;
  }
  if (const int rc = write_staged(staged_ / kBlock * kBlock); rc != 0) {
    return rc;
  }
  if (!direct_) {
    return 0;  // write_staged wrote everything the ordinary way
  }
  if (const int rc = leave_direct(); rc != 0) {
    return rc;
  }
  const int rc = env_.write_all(fd_, ByteView(buffer_.get(), staged_));
  staged_ = 0;
  return rc;
}

/// Writes the first `length` staged bytes (whole blocks) with direct I/O and keeps the rest
/// staged. Where the file system refuses (EINVAL: no direct I/O for this file after all, or an
/// alignment it does not take) or writes a part that is not whole blocks, leaves direct I/O and
/// writes everything staged the ordinary way.
int DirectWriter::write_staged(std::size_t length) {
  std::size_t done = 0;
  while (done < length) {
    const std::int64_t written = env_.write(fd_, buffer_.get() + done, length - done);
    if (written == -EINVAL || (written > 0 && static_cast<std::size_t>(written) % kBlock != 0)) {
      done += written > 0 ? static_cast<std::size_t>(written) : 0;
      if (const int rc = leave_direct(); rc != 0) {
        return rc;
      }
      const int rc = env_.write_all(fd_, ByteView(buffer_.get() + done, staged_ - done));
      staged_ = 0;
      return rc;
    }
    if (written < 0) {
      return static_cast<int>(written);
    }
    if (written == 0) {
      return -EIO;  // no progress on a non-empty write: never loop forever
    }
    done += static_cast<std::size_t>(written);
  }
  std::memmove(buffer_.get(), buffer_.get() + length, staged_ - length);
  staged_ -= length;
  return 0;
}

int DirectWriter::leave_direct() {
  direct_ = false;
  return env_.set_direct_io(fd_, false);
}

void write_all_direct(int fd, ByteView data, const std::string& what) {
  thread_local DirectWriter writer(Env::default_env());
  writer.start(fd, data.size());
  int rc = writer.add(data);
  if (rc == 0) {
    rc = writer.finish();
  }
  if (rc != 0) {
    throw_system_error(-rc, "cannot write " + what);
  }
}

}  // namespace mybackup
