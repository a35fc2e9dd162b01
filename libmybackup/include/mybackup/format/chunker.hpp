#pragma once
// FastCDC content-defined chunking (Xia et al., USENIX ATC 2016, with normalized chunking).
//
// A cut point depends only on the bytes just before it, so inserting or deleting bytes in the
// middle of a file changes the one or two chunks around the edit and leaves the others identical,
// which is what lets an edited large file deduplicate against its previous version.
//
// Parameters (chosen when a repository is created and recorded in its mybackup-repo.json, see
// repository/options.hpp):
//   min_size  no cut before this many bytes            (default 512 KiB)
//   avg_size  the target mean chunk size, a power of 2 (default 1 MiB)
//   max_size  a cut is forced at this size             (default 8 MiB)
// Normalization level 2: below avg_size the cut mask has 2 more bits than log2(avg_size)
// (harder to cut), above it 2 fewer (easier), which narrows the size distribution.
// The 256-entry gear table is derived from a 32-byte seed, so the chunk boundaries of a
// repository depend on its key and do not reveal which known files it holds.

#include <array>
#include <cstddef>
#include <cstdint>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

struct ChunkerParams {
  std::uint32_t min_size = 512 * 1024;
  std::uint32_t avg_size = 1024 * 1024;
  std::uint32_t max_size = 8 * 1024 * 1024;

  /// Throws Error(usage) unless 64 <= min_size < avg_size < max_size, avg_size is a power of two
  /// and max_size <= 64 MiB.
  void validate() const;

  bool operator==(const ChunkerParams&) const = default;
};

using GearTable = std::array<std::uint64_t, 256>;

/// Derives the gear table from a 32-byte seed (HKDF-SHA256, info "mybackup fastcdc gear").
GearTable make_gear_table(ByteView seed);

/// Stateless cut-point finder.
class Chunker {
 public:
  Chunker(const ChunkerParams& params, const GearTable& gear);

  /// Returns the length of the first chunk of `data`, a value in [1, min(data.size(), max_size)],
  /// or 0 when more data is needed: no cut point was found, `data` is shorter than max_size and
  /// `at_end` is false. With `at_end` true the remainder (up to max_size) is the last chunk.
  /// Returns 0 for empty `data`.
  std::size_t next_cut(ByteView data, bool at_end) const;

  const ChunkerParams& params() const { return params_; }

 private:
  ChunkerParams params_;
  GearTable gear_;
  std::uint64_t mask_small_;  // used below avg_size (more bits set: harder to cut)
  std::uint64_t mask_large_;  // used from avg_size on (fewer bits set: easier to cut)
};

}  // namespace mybackup
