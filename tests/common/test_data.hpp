#pragma once
// Deterministic test data, shared by the unit tests (test_util.hpp) and the end-to-end tests
// (cli_harness.hpp). Header-only, standard library only.
//
// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014)
// gives 8 bytes per step: hundreds of MB/s even in the sanitized debug build, where std::mt19937
// drawn byte by byte manages a few dozen. A seed always gives the same bytes, and a shorter run is
// a prefix of a longer one, so a test can regenerate what it wrote to compare.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace mybackup::testing {

enum class Compressibility {
  incompressible,  // uniform bytes: zstd cannot shrink them
  compressible,    // letters 'a'..'d' at random: zstd shrinks them about 4:1, and they still
                   // hold enough entropy for content-defined chunking to find its cut points
};

/// A stream of test bytes; fill() continues where the previous call stopped.
class TestDataGenerator {
 public:
  explicit TestDataGenerator(std::uint64_t seed, Compressibility kind = Compressibility::incompressible)
      : state_(seed), kind_(kind) {}

  void fill(std::span<std::uint8_t> out) {
    std::size_t i = 0;
    while (i < out.size() && left_ > 0) {  // what the last word of the previous call left over
      out[i++] = take_byte();
    }
    while (out.size() - i >= 8) {
      std::uint64_t word = next_word();
      for (int b = 0; b < 8; ++b, word >>= 8) {
        out[i++] = shape(static_cast<std::uint8_t>(word));
      }
    }
    if (i < out.size()) {
      word_ = next_word();
      left_ = 8;
      while (i < out.size() && left_ > 0) {  // fewer than 8 remain: always true, but says so to the compiler
        out[i++] = take_byte();
      }
    }
  }

 private:
  std::uint64_t next_word() {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint8_t shape(std::uint8_t byte) const {
    return kind_ == Compressibility::incompressible ? byte : static_cast<std::uint8_t>('a' + (byte & 3));
  }
  std::uint8_t take_byte() {
    const auto byte = static_cast<std::uint8_t>(word_ >> (8 * (8 - left_)));
    --left_;
    return shape(byte);
  }

  std::uint64_t state_;
  Compressibility kind_;
  std::uint64_t word_ = 0;  // the word being consumed byte by byte
  int left_ = 0;            // its bytes not yet used
};

/// `size` bytes of test data from `seed`.
inline std::vector<std::uint8_t> test_data(std::size_t size, std::uint64_t seed,
                                           Compressibility kind = Compressibility::incompressible) {
  std::vector<std::uint8_t> out(size);
  TestDataGenerator(seed, kind).fill(out);
  return out;
}

}  // namespace mybackup::testing
