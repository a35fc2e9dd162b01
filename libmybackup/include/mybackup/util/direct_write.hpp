#pragma once
// Writing large files past the page cache.
//
// A backup writes packs it will not read again soon, and a restore writes files the user reads
// later, if at all: copying them through the page cache costs a fresh page per 4 KiB (the
// largest system-time cost of a backup on a virtual machine, where each new page is a fault in
// the host too) and pushes the user's working set out of memory. Direct I/O (O_DIRECT) hands
// the bytes to the device instead. File systems that refuse it (tmpfs, some FUSE and network
// ones) get ordinary writes: same bytes, same durability rules (the caller still fsyncs).

#include <cstdint>
#include <memory>
#include <string>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/env.hpp"

namespace mybackup {

/// Below this many bytes a file is written through the page cache: the cache costs little there
/// and a small file would pay the device's latency.
inline constexpr std::uint64_t kDirectWriteMinimum = 1024 * 1024;

/// Writes one new file after another, each of at least kDirectWriteMinimum bytes with direct
/// I/O where the file system takes it: the bytes are staged in an aligned buffer of 1 MiB and
/// written a whole buffer at a time; the last partial 4 KiB block goes through the page cache.
/// A smaller file, or one on a file system without direct I/O (or refusing its alignment part
/// way), is written with ordinary writes, straight from the caller's bytes.
///
/// Errors are returned as -errno, like the Env calls; after one, start the next file afresh.
/// Not thread-safe: one writer per thread (it owns a 1 MiB buffer).
class DirectWriter {
 public:
  explicit DirectWriter(Env& env);
  ~DirectWriter();
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  /// Starts writing `fd`, a new empty file open for writing, that is to receive about
  /// `expected_size` bytes (only chooses the way). Forgets any previous file's staged bytes.
  void start(int fd, std::uint64_t expected_size);

  /// Appends `data`. 0 or -errno (-ENOSPC, -EDQUOT, -EIO).
  int add(ByteView data);

  /// Writes what is staged and leaves `fd` without O_DIRECT. 0 or -errno.
  int finish();

 private:
  int write_staged(std::size_t length);
  int leave_direct();

  Env& env_;
  struct FreeAligned {
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t, FreeAligned> buffer_;
  int fd_ = -1;
  bool direct_ = false;
  std::size_t staged_ = 0;
};

/// Writes all of `data` to the new, empty file `fd` with a DirectWriter of this thread (on the
/// default Env). Throws Error(io), or Error(no_space), as "cannot write <what>: <reason>".
void write_all_direct(int fd, ByteView data, const std::string& what);

}  // namespace mybackup
