#include "mybackup/format/chunker.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <string>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr std::uint32_t kMinMinSize = 64;
constexpr std::uint32_t kMaxMaxSize = 64 * 1024 * 1024;

// Bit p of the gear hash depends on the last p + 1 bytes, so the hash covers a 64-byte window.
constexpr std::size_t kWindow = 64;

// The masks use bits 16..63 only: low bits depend on just the last few bytes, which would make
// cut points on low-entropy data depend on tiny, often repeated byte patterns.
constexpr unsigned kLowestMaskBit = 16;
constexpr unsigned kMaskSpan = 64 - kLowestMaskBit;

// Positions of `count` one-bits spread evenly from bit 63 downwards over kMaskSpan bits.
std::uint64_t spread_mask(unsigned count) {
  std::uint64_t mask = 0;
  for (unsigned i = 0; i < count; ++i) {
    mask |= std::uint64_t{1} << (63 - i * kMaskSpan / count);
  }
  return mask;
}

// Keeps `count` of the one-bits of `mask`, spread evenly among them. The large mask is taken
// from the small one so that every small-mask hit is also a large-mask hit: then an edit that
// only lengthens a chunk (moving a cut past avg_size) cannot make its old cut point disappear.
std::uint64_t subset_mask(std::uint64_t mask, unsigned count) {
  const unsigned total = static_cast<unsigned>(std::popcount(mask));
  std::array<std::uint64_t, 64> bits_high_to_low{};
  unsigned found = 0;
  for (int bit = 63; bit >= 0; --bit) {
    const std::uint64_t one = std::uint64_t{1} << bit;
    if ((mask & one) != 0) {
      bits_high_to_low[found++] = one;
    }
  }
  std::uint64_t subset = 0;
  for (unsigned i = 0; i < count; ++i) {
    subset |= bits_high_to_low[i * total / count];
  }
  return subset;
}

}  // namespace

void ChunkerParams::validate() const {
  if (min_size < kMinMinSize) {
    throw Error(ErrorKind::usage, "chunker min_size must be at least 64 bytes (got " +
                                      std::to_string(min_size) + ")");
  }
  if (!std::has_single_bit(avg_size)) {
    throw Error(ErrorKind::usage, "chunker avg_size must be a power of two (got " +
                                      std::to_string(avg_size) + ")");
  }
  if (min_size >= avg_size) {
    throw Error(ErrorKind::usage, "chunker min_size (" + std::to_string(min_size) +
                                      ") must be less than avg_size (" +
                                      std::to_string(avg_size) + ")");
  }
  if (avg_size >= max_size) {
    throw Error(ErrorKind::usage, "chunker max_size (" + std::to_string(max_size) +
                                      ") must be greater than avg_size (" +
                                      std::to_string(avg_size) + ")");
  }
  if (max_size > kMaxMaxSize) {
    throw Error(ErrorKind::usage, "chunker max_size must be at most 64 MiB (got " +
                                      std::to_string(max_size) + ")");
  }
}

GearTable make_gear_table(ByteView seed) {
  static constexpr std::string_view kInfo = "mybackup fastcdc gear";
  GearTable gear{};
  const Bytes material = hkdf_sha256(seed, ByteView{}, as_bytes(kInfo), gear.size() * 8);
  for (std::size_t i = 0; i < gear.size(); ++i) {
    // Explicit little-endian so the table (and thus every cut point) is the same on any host.
    std::uint64_t value = 0;
    for (std::size_t b = 0; b < 8; ++b) {
      value |= std::uint64_t{material[8 * i + b]} << (8 * b);
    }
    gear[i] = value;
  }
  return gear;
}

Chunker::Chunker(const ChunkerParams& params, const GearTable& gear)
    : params_(params), gear_(gear), mask_small_(0), mask_large_(0) {
  params_.validate();
  // validate() bounds avg_size to [128, 32 MiB], so bits is in [7, 25] and both counts fit.
  const auto bits = static_cast<unsigned>(std::countr_zero(params_.avg_size));
  mask_small_ = spread_mask(bits + 2);
  mask_large_ = subset_mask(mask_small_, bits - 2);
}

std::size_t Chunker::next_cut(ByteView data, bool at_end) const {
  const std::size_t size = data.size();
  const std::size_t limit = std::min<std::size_t>(size, params_.max_size);
  const std::uint8_t* const bytes = data.data();
  const std::uint64_t* const gear = gear_.data();
  const std::uint64_t mask_small = mask_small_;
  const std::uint64_t mask_large = mask_large_;

  // A chunk ending with byte i has length i + 1, so the first testable byte is min_size - 1.
  // The window before it is hashed untested so every test sees a full 64-byte window: a cut
  // then depends on the content around it, not on where the chunk began.
  std::size_t i = params_.min_size - kWindow;
  std::uint64_t hash = 0;
  const std::size_t warm_end = std::min<std::size_t>(limit, params_.min_size - 1);
  for (; i < warm_end; ++i) {
    hash = (hash << 1) + gear[bytes[i]];
  }
  const std::size_t small_end = std::min<std::size_t>(limit, params_.avg_size - 1);
  for (; i < small_end; ++i) {
    hash = (hash << 1) + gear[bytes[i]];
    if ((hash & mask_small) == 0) {
      return i + 1;
    }
  }
  for (; i < limit; ++i) {
    hash = (hash << 1) + gear[bytes[i]];
    if ((hash & mask_large) == 0) {
      return i + 1;
    }
  }

  if (size >= params_.max_size) {
    return params_.max_size;
  }
  return at_end ? size : 0;
}

}  // namespace mybackup
