#pragma once
// Byte buffers and the small helpers to move between bytes and text.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mybackup {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
inline std::string_view as_text(ByteView bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// Lower-case hexadecimal.
std::string to_hex(ByteView bytes);
/// Parses hexadecimal (either case). Throws Error(corrupt) on odd length or a non-hex digit.
Bytes from_hex(std::string_view hex);

}  // namespace mybackup
