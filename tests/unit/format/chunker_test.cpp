#include "mybackup/format/chunker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

constexpr std::size_t kMiB = 1024 * 1024;

using testing::random_data;

Bytes seed_of(std::uint8_t fill) { return Bytes(32, fill); }

ChunkerParams small_params() {
  ChunkerParams params;
  params.min_size = 2 * 1024;
  params.avg_size = 8 * 1024;
  params.max_size = 64 * 1024;
  return params;
}

// Chunk lengths of the whole buffer, as a reader holding all of it would produce them.
std::vector<std::size_t> chunk_all(const Chunker& chunker, ByteView data) {
  std::vector<std::size_t> lengths;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::size_t cut = chunker.next_cut(data.subspan(pos), true);
    if (cut == 0) {
      ADD_FAILURE() << "next_cut returned 0 with at_end at offset " << pos;
      break;
    }
    lengths.push_back(cut);
    pos += cut;
  }
  return lengths;
}

// Same, but as a streaming reader: the data arrives `step` bytes at a time and next_cut only
// ever sees what has arrived, with at_end set once everything has.
std::vector<std::size_t> chunk_streaming(const Chunker& chunker, ByteView data, std::size_t step) {
  std::vector<std::size_t> lengths;
  std::size_t pos = 0;
  std::size_t available = 0;
  while (pos < data.size()) {
    const bool at_end = available == data.size();
    const std::size_t cut = chunker.next_cut(data.subspan(pos, available - pos), at_end);
    if (cut == 0) {
      if (at_end) {
        ADD_FAILURE() << "next_cut returned 0 with at_end at offset " << pos;
        break;
      }
      available = std::min(data.size(), available + step);
      continue;
    }
    EXPECT_LE(pos + cut, available);
    lengths.push_back(cut);
    pos += cut;
  }
  return lengths;
}

std::vector<std::string_view> chunk_views(ByteView data, const std::vector<std::size_t>& lengths) {
  std::vector<std::string_view> views;
  std::size_t pos = 0;
  for (const std::size_t length : lengths) {
    views.push_back(as_text(data.subspan(pos, length)));
    pos += length;
  }
  return views;
}

void expect_valid_chunking(const ChunkerParams& params, ByteView data,
                           const std::vector<std::size_t>& lengths) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    EXPECT_LE(lengths[i], params.max_size) << "chunk " << i;
    if (i + 1 < lengths.size()) {
      EXPECT_GE(lengths[i], params.min_size) << "chunk " << i;
    } else {
      EXPECT_GE(lengths[i], 1u);
    }
    total += lengths[i];
  }
  EXPECT_EQ(total, data.size());
}

// Inserts 100 bytes in the middle and returns how many chunks of the new chunking do not occur
// (by content) in the old one.
std::size_t new_chunks_after_insert(const Chunker& chunker, const Bytes& original) {
  Bytes edited = original;
  const Bytes inserted = random_data(100, 777);
  edited.insert(edited.begin() + static_cast<std::ptrdiff_t>(original.size() / 2),
                inserted.begin(), inserted.end());

  const auto old_views = chunk_views(original, chunk_all(chunker, original));
  const auto new_lengths = chunk_all(chunker, edited);
  expect_valid_chunking(chunker.params(), edited, new_lengths);
  const std::unordered_set<std::string_view> old_set(old_views.begin(), old_views.end());
  std::size_t missing = 0;
  for (const std::string_view view : chunk_views(edited, new_lengths)) {
    if (!old_set.contains(view)) {
      ++missing;
    }
  }
  return missing;
}

void expect_usage_error(const ChunkerParams& params, std::string_view names) {
  try {
    params.validate();
    ADD_FAILURE() << "validate() accepted min=" << params.min_size << " avg=" << params.avg_size
                  << " max=" << params.max_size;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::usage);
    const std::string message = error.what();
    EXPECT_NE(message.find(names), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(ChunkerParams, AcceptsDefaultsAndBoundaries) {
  EXPECT_NO_THROW(ChunkerParams{}.validate());
  EXPECT_NO_THROW(small_params().validate());
  ChunkerParams tight;
  tight.min_size = 64;
  tight.avg_size = 128;
  tight.max_size = 64 * kMiB;
  EXPECT_NO_THROW(tight.validate());
}

TEST(ChunkerParams, RejectsEachBadValue) {
  ChunkerParams params;
  params.min_size = 63;
  expect_usage_error(params, "min_size");

  params = ChunkerParams{};
  params.min_size = 0;
  expect_usage_error(params, "min_size");

  params = ChunkerParams{};
  params.avg_size = 3 * 512 * 1024;
  expect_usage_error(params, "avg_size");

  params = ChunkerParams{};
  params.avg_size = 0;
  expect_usage_error(params, "avg_size");

  params = ChunkerParams{};
  params.min_size = params.avg_size;
  expect_usage_error(params, "min_size");

  params = ChunkerParams{};
  params.min_size = params.avg_size + 1;
  expect_usage_error(params, "min_size");

  params = ChunkerParams{};
  params.max_size = params.avg_size;
  expect_usage_error(params, "max_size");

  params = ChunkerParams{};
  params.max_size = params.avg_size / 2;
  expect_usage_error(params, "max_size");

  params = ChunkerParams{};
  params.max_size = 64 * kMiB + 1;
  expect_usage_error(params, "max_size");
}

TEST(Chunker, ConstructorRejectsInvalidParams) {
  ChunkerParams params;
  params.avg_size = 1000;
  EXPECT_THROW(Chunker(params, make_gear_table(seed_of(1))), Error);
}

TEST(Chunker, GearTableIsLittleEndianHkdfOutput) {
  const Bytes seed = seed_of(7);
  const GearTable gear = make_gear_table(seed);
  const Bytes material = hkdf_sha256(seed, ByteView{}, as_bytes("mybackup fastcdc gear"), 2048);
  for (const std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{255}}) {
    std::uint64_t expected = 0;
    for (std::size_t b = 0; b < 8; ++b) {
      expected |= std::uint64_t{material[8 * i + b]} << (8 * b);
    }
    EXPECT_EQ(gear[i], expected) << "entry " << i;
  }
  EXPECT_EQ(make_gear_table(seed), gear);
  EXPECT_NE(make_gear_table(seed_of(8)), gear);
}

TEST(Chunker, EdgeCases) {
  const ChunkerParams params = small_params();
  const Chunker chunker(params, make_gear_table(seed_of(1)));
  EXPECT_EQ(chunker.next_cut(ByteView{}, true), 0u);
  EXPECT_EQ(chunker.next_cut(ByteView{}, false), 0u);

  const Bytes short_data = random_data(params.min_size - 1, 1);
  EXPECT_EQ(chunker.next_cut(short_data, true), short_data.size());
  EXPECT_EQ(chunker.next_cut(short_data, false), 0u);

  const Bytes one_byte = random_data(1, 2);
  EXPECT_EQ(chunker.next_cut(one_byte, true), 1u);
  EXPECT_EQ(chunker.next_cut(one_byte, false), 0u);

  // No cut is possible in constant data once the hash settles (or always at min_size), so at
  // least max_size bytes must yield a cut even without at_end.
  const Bytes zeros(params.max_size * 3, 0);
  const std::size_t cut = chunker.next_cut(zeros, false);
  EXPECT_GE(cut, params.min_size);
  EXPECT_LE(cut, params.max_size);
}

TEST(Chunker, ChunksAreWithinBoundsAndCoverTheInput) {
  for (const ChunkerParams& params : {ChunkerParams{}, small_params()}) {
    const Chunker chunker(params, make_gear_table(seed_of(1)));
    const Bytes data = random_data(20 * kMiB + 12345, 3);
    const auto lengths = chunk_all(chunker, data);
    expect_valid_chunking(params, data, lengths);
    EXPECT_GT(lengths.size(), 1u);

    // Concatenating the chunks gives back the input.
    std::string joined;
    for (const std::string_view view : chunk_views(data, lengths)) {
      joined.append(view);
    }
    EXPECT_TRUE(joined == as_text(data));

    // Low-entropy inputs still respect the bounds.
    const Bytes zeros(5 * params.max_size + 17, 0);
    expect_valid_chunking(params, zeros, chunk_all(chunker, zeros));
    Bytes pattern(5 * params.max_size + 17);
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      pattern[i] = static_cast<std::uint8_t>(i % 7);
    }
    expect_valid_chunking(params, pattern, chunk_all(chunker, pattern));
  }
}

TEST(Chunker, IsDeterministicAndDependsOnTheSeed) {
  const ChunkerParams params = small_params();
  const Bytes data = random_data(4 * kMiB, 4);
  const Chunker first(params, make_gear_table(seed_of(1)));
  const Chunker again(params, make_gear_table(seed_of(1)));
  const Chunker other(params, make_gear_table(seed_of(2)));
  const auto lengths = chunk_all(first, data);
  EXPECT_EQ(chunk_all(first, data), lengths);
  EXPECT_EQ(chunk_all(again, data), lengths);
  EXPECT_NE(chunk_all(other, data), lengths);
}

TEST(Chunker, StreamingGivesTheSameCutsAsOneCall) {
  {
    const ChunkerParams params = small_params();
    const Chunker chunker(params, make_gear_table(seed_of(1)));
    const Bytes data = random_data(3 * kMiB + 999, 5);
    const auto expected = chunk_all(chunker, data);
    for (const std::size_t step : {std::size_t{4093}, std::size_t{65536}, std::size_t{100000}}) {
      EXPECT_EQ(chunk_streaming(chunker, data, step), expected) << "step " << step;
    }
  }
  {
    // Byte-at-a-time growth on tiny parameters catches off-by-one errors at every boundary.
    ChunkerParams params;
    params.min_size = 64;
    params.avg_size = 256;
    params.max_size = 1024;
    const Chunker chunker(params, make_gear_table(seed_of(1)));
    const Bytes data = random_data(256 * 1024 + 3, 6);
    EXPECT_EQ(chunk_streaming(chunker, data, 1), chunk_all(chunker, data));
  }
  {
    const Chunker chunker(ChunkerParams{}, make_gear_table(seed_of(1)));
    const Bytes data = random_data(24 * kMiB, 7);
    EXPECT_EQ(chunk_streaming(chunker, data, 256 * 1024), chunk_all(chunker, data));
  }
}

TEST(Chunker, MeanChunkSizeIsNearAvgSize) {
  const Bytes data = random_data(64 * kMiB, 8);
  for (const ChunkerParams& params : {ChunkerParams{}, small_params()}) {
    const Chunker chunker(params, make_gear_table(seed_of(1)));
    const auto lengths = chunk_all(chunker, data);
    const double mean = static_cast<double>(data.size()) / static_cast<double>(lengths.size());
    EXPECT_GE(mean, params.avg_size / 2.0) << "avg_size " << params.avg_size;
    EXPECT_LE(mean, params.avg_size * 2.0) << "avg_size " << params.avg_size;
  }
}

TEST(Chunker, InsertionChangesAtMostTwoChunks) {
  const Chunker chunker(ChunkerParams{}, make_gear_table(seed_of(1)));
  const Bytes data = random_data(50 * kMiB, 9);
  EXPECT_LE(new_chunks_after_insert(chunker, data), 2u);
}

TEST(Chunker, InsertionChangesAtMostTwoChunksWithSmallParams) {
  const Chunker chunker(small_params(), make_gear_table(seed_of(1)));
  const Bytes data = random_data(4 * kMiB, 10);
  EXPECT_LE(new_chunks_after_insert(chunker, data), 2u);
}

}  // namespace
}  // namespace mybackup
