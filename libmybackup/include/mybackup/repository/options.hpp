#pragma once
// The parameters a repository is created with and keeps for life: its chunker parameters and its
// pack target size. They are recorded in the repository's marker (mybackup-repo.json) when it is
// created and read back from it every time it is opened; every writer uses the repository's
// values, so a repository never mixes two chunkings (which would defeat deduplication).
//
// Bounds (checked when a repository is created, and when a marker is read):
//   average chunk size  a power of two from 1 KiB to 4 MiB (default 1 MiB)
//   min_size, max_size  as ChunkerParams::validate() requires, and max_size at most 32 MiB
//   pack target size    from 4 KiB to 64 MiB (default 16 MiB)
// options.cpp says why.

#include <cstdint>
#include <string_view>

#include "mybackup/format/chunker.hpp"
#include "mybackup/format/pack.hpp"

namespace mybackup {

struct RepositoryOptions {
  static constexpr std::uint32_t kMinAverageChunkSize = 1024;
  static constexpr std::uint32_t kMaxAverageChunkSize = 4 * 1024 * 1024;
  static constexpr std::uint32_t kMaxChunkSize = 32 * 1024 * 1024;
  static constexpr std::uint32_t kMinPackTargetSize = 4 * 1024;
  static constexpr std::uint32_t kMaxPackTargetSize = 64 * 1024 * 1024;

  ChunkerParams chunker;  // 512 KiB / 1 MiB / 8 MiB
  std::uint32_t pack_target_size = kDefaultPackTargetSize;

  /// Chunker parameters for an average chunk size, in the proportions of the defaults:
  /// min_size = average / 2, max_size = 8 × average. Error(usage) as check_average_chunk_size().
  static ChunkerParams chunker_for(std::uint64_t average_chunk_size, std::string_view name = "the average chunk size");

  /// Error(usage) "<name> must be a power of two from 1 KiB to 4 MiB (got <size>)" unless it is.
  static void check_average_chunk_size(std::uint64_t size, std::string_view name = "the average chunk size");
  /// Error(usage) "<name> must be from 4 KiB to 64 MiB (got <size>)" unless it is.
  static void check_pack_target_size(std::uint64_t size, std::string_view name = "the pack target size");

  /// Error(usage) with a one-line message unless every bound above holds.
  void validate() const;

  bool operator==(const RepositoryOptions&) const = default;
};

}  // namespace mybackup
