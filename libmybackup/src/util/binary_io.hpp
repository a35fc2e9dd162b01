#pragma once
// Private: little-endian fixed-width integers, LEB128 varints and length-prefixed strings, the
// building blocks of the pack header and manifest encodings (docs/format.md).

#include <cstdint>
#include <string>
#include <string_view>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup::binary {

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void u8(std::uint8_t value) { out_.push_back(value); }
  void u32(std::uint32_t value) {
    for (int i = 0; i < 4; ++i) {
      out_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    }
  }
  void u64(std::uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      out_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    }
  }
  void varint(std::uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<std::uint8_t>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<std::uint8_t>(value));
  }
  /// Signed values as zigzag varints (small magnitudes stay short).
  void svarint(std::int64_t value) {
    varint((static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63));
  }
  void raw(ByteView bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
  void string(std::string_view text) {
    varint(text.size());
    raw(as_bytes(text));
  }

 private:
  Bytes& out_;
};

/// Reads what Writer wrote; any read past the end throws Error(corrupt) naming `what`.
class Reader {
 public:
  Reader(ByteView data, std::string what) : data_(data), what_(std::move(what)) {}
  std::uint8_t u8() { return take(1)[0]; }
  std::uint32_t u32() {
    const ByteView b = take(4);
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      value |= static_cast<std::uint32_t>(b[static_cast<std::size_t>(i)]) << (8 * i);
    }
    return value;
  }
  std::uint64_t u64() {
    const ByteView b = take(8);
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) {
      value |= static_cast<std::uint64_t>(b[static_cast<std::size_t>(i)]) << (8 * i);
    }
    return value;
  }
  std::uint64_t varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const std::uint8_t byte = u8();
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        return value;
      }
    }
    fail();
  }
  std::int64_t svarint() {
    const std::uint64_t zigzag = varint();
    return static_cast<std::int64_t>(zigzag >> 1) ^ -static_cast<std::int64_t>(zigzag & 1);
  }
  ByteView raw(std::size_t size) { return take(size); }
  std::string string() {
    const std::uint64_t size = varint();
    if (size > remaining()) {
      short_of_data_ = true;
      fail();
    }
    return std::string(as_text(take(static_cast<std::size_t>(size))));
  }
  std::size_t remaining() const { return data_.size() - position_; }
  /// A count that must fit in what is left, `min_item_size` bytes per item at least.
  std::size_t count(std::size_t min_item_size) {
    const std::uint64_t value = varint();
    if (min_item_size > 0 && value > remaining() / min_item_size) {
      short_of_data_ = true;
      fail();
    }
    return static_cast<std::size_t>(value);
  }
  /// Bytes read so far.
  std::size_t consumed() const { return position_; }
  /// True once a read failed for want of bytes (more data might have made it succeed), as
  /// opposed to bytes that can never be valid: what a decoder of a stream tells apart.
  bool short_of_data() const { return short_of_data_; }
  [[noreturn]] void fail() const { throw Error(ErrorKind::corrupt, what_ + " is malformed"); }

 private:
  ByteView take(std::size_t size) {
    if (size > remaining()) {
      short_of_data_ = true;
      fail();
    }
    const ByteView piece = data_.subspan(position_, size);
    position_ += size;
    return piece;
  }

  ByteView data_;
  std::size_t position_ = 0;
  std::string what_;
  bool short_of_data_ = false;
};

}  // namespace mybackup::binary
