#include "mybackup/repository/options.hpp"

#include <bit>
#include <string>

#include "mybackup/util/error.hpp"

namespace mybackup {

// Why these bounds:
// - Average chunk size at least 1 KiB: each chunk costs a 33-byte blob overhead, a 45-byte pack
//   header entry, an index entry and a catalog row, about as much as the data below that. 1 KiB
//   still lets a test cut a few KiB file into several chunks.
// - At most 4 MiB, and max_size at most 32 MiB (8 × 4 MiB): every reader thread (one per core)
//   holds a buffer of 2 × max_size, and a compressor a chunk and its compressed copy, so the
//   memory of a backup grows with max_size times the cores.
// - Pack target size at least 4 KiB: below that a pack holds one small chunk, and the repository
//   becomes the file-per-chunk layout packs exist to avoid (a file creation and an fsync per
//   chunk). Tests still get several packs out of a few dozen KiB.
// - At most 64 MiB: a backup holds up to three packs in memory (the one being filled, one waiting,
//   one being stored) and clean, verify and sync read whole packs, so memory grows with it; pack
//   offsets are also 32-bit.

namespace {
std::string size_text(std::uint64_t size) {
  if (size >= 1024 * 1024 && size % (1024 * 1024) == 0) {
    return std::to_string(size / (1024 * 1024)) + " MiB";
  }
  if (size >= 1024 && size % 1024 == 0) {
    return std::to_string(size / 1024) + " KiB";
  }
  return std::to_string(size) + " bytes";
}
}  // namespace

void RepositoryOptions::check_average_chunk_size(std::uint64_t size, std::string_view name) {
  if (size < kMinAverageChunkSize || size > kMaxAverageChunkSize || !std::has_single_bit(size)) {
    throw Error(ErrorKind::usage, std::string(name) + " must be a power of two from " + size_text(kMinAverageChunkSize) +
                                      " to " + size_text(kMaxAverageChunkSize) + " (got " + size_text(size) + ")");
  }
}

void RepositoryOptions::check_pack_target_size(std::uint64_t size, std::string_view name) {
  if (size < kMinPackTargetSize || size > kMaxPackTargetSize) {
    throw Error(ErrorKind::usage, std::string(name) + " must be from " + size_text(kMinPackTargetSize) + " to " +
                                      size_text(kMaxPackTargetSize) + " (got " + size_text(size) + ")");
  }
}

ChunkerParams RepositoryOptions::chunker_for(std::uint64_t average_chunk_size, std::string_view name) {
  check_average_chunk_size(average_chunk_size, name);
  const auto average = static_cast<std::uint32_t>(average_chunk_size);
  return ChunkerParams{average / 2, average, average * 8};
}

void RepositoryOptions::validate() const {
  chunker.validate();
  check_average_chunk_size(chunker.avg_size, "the chunker's avg_size");
  if (chunker.max_size > kMaxChunkSize) {
    throw Error(ErrorKind::usage, "the chunker's max_size must be at most " + size_text(kMaxChunkSize) + " (got " +
                                      size_text(chunker.max_size) + ")");
  }
  check_pack_target_size(pack_target_size);
}

}  // namespace mybackup
