#include "mybackup/util/display_text.hpp"

#include <cstdint>

namespace mybackup {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

/// The well-formed UTF-8 sequence starting at `text[at]`: its length (1 to 4) and code point, or
/// length 0 if the bytes there are not one (RFC 3629, table 3-7 of the Unicode standard: no
/// overlong forms, no surrogates, nothing above U+10FFFF).
struct Decoded {
  std::size_t length = 0;
  std::uint32_t code_point = 0;
};

Decoded decode(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[at + i]); };
  const std::uint8_t lead = byte(0);
  if (lead < 0x80) {
    return {1, lead};
  }
  std::size_t length = 0;
  std::uint8_t second_low = 0x80;
  std::uint8_t second_high = 0xbf;
  std::uint32_t code_point = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    code_point = lead & 0x1fU;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    code_point = lead & 0x0fU;
    second_low = lead == 0xe0 ? 0xa0 : 0x80;   // below: overlong
    second_high = lead == 0xed ? 0x9f : 0xbf;  // above: surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    code_point = lead & 0x07U;
    second_low = lead == 0xf0 ? 0x90 : 0x80;   // below: overlong
    second_high = lead == 0xf4 ? 0x8f : 0xbf;  // above: beyond U+10FFFF
  } else {
    return {};  // a continuation byte, an overlong lead (C0, C1) or F5-FF
  }
  if (text.size() - at < length || byte(1) < second_low || byte(1) > second_high) {
    return {};
  }
  code_point = (code_point << 6) | (byte(1) & 0x3fU);
  for (std::size_t i = 2; i < length; ++i) {
    if ((byte(i) & 0xc0U) != 0x80) {
      return {};
    }
    code_point = (code_point << 6) | (byte(i) & 0x3fU);
  }
  return {length, code_point};
}

/// Valid characters that still must not reach a terminal or a log line as they are.
bool hidden_control(std::uint32_t code_point) {
  return (code_point >= 0x80 && code_point <= 0x9f) ||  // C1 controls (0x9b is a CSI on some terminals)
         code_point == 0x061c || code_point == 0x200e || code_point == 0x200f ||  // bidi marks
         (code_point >= 0x202a && code_point <= 0x202e) ||  // bidi embeddings and overrides
         (code_point >= 0x2066 && code_point <= 0x2069) ||  // bidi isolates
         code_point == 0x2028 || code_point == 0x2029;      // line and paragraph separators
}

void append_byte_escape(std::string& out, std::uint8_t byte) {
  out += "\\x";
  out += kHexDigits[byte >> 4];
  out += kHexDigits[byte & 0x0f];
}

void append_code_point_escape(std::string& out, std::uint32_t code_point) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) {
    out += kHexDigits[(code_point >> shift) & 0x0fU];
  }
}

}  // namespace

std::string display_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const Decoded decoded = decode(text, at);
    if (decoded.length == 0) {
      append_byte_escape(out, static_cast<std::uint8_t>(text[at]));
      ++at;
      continue;
    }
    const std::uint32_t c = decoded.code_point;
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      append_byte_escape(out, static_cast<std::uint8_t>(c));
    } else if (hidden_control(c)) {
      append_code_point_escape(out, c);
    } else {
      out.append(text, at, decoded.length);
    }
    at += decoded.length;
  }
  return out;
}

}  // namespace mybackup
