#include "mybackup/util/display_text.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <random>
#include <string>

namespace mybackup {
namespace {

using namespace std::string_literals;

/// The inverse of display_text, written from its documented table (not from its code): a round
/// trip proves the escapes are unambiguous. Returns "<bad escape>" on an escape it does not know.
std::string undo(const std::string& shown) {
  std::string text;
  for (std::size_t i = 0; i < shown.size(); ++i) {
    if (shown[i] != '\\') {
      text += shown[i];
      continue;
    }
    const char kind = i + 1 < shown.size() ? shown[i + 1] : '\0';
    if (kind == '\\' || kind == 't' || kind == 'n' || kind == 'r') {
      text += kind == '\\' ? '\\' : kind == 't' ? '\t' : kind == 'n' ? '\n' : '\r';
      i += 1;
    } else if (kind == 'x' && i + 3 < shown.size()) {
      text += static_cast<char>(std::stoul(shown.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else if (kind == 'u' && i + 5 < shown.size()) {
      const unsigned long code_point = std::stoul(shown.substr(i + 2, 4), nullptr, 16);
      if (code_point < 0x800) {
        text += static_cast<char>(0xc0 | (code_point >> 6));
      } else {
        text += static_cast<char>(0xe0 | (code_point >> 12));
        text += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
      }
      text += static_cast<char>(0x80 | (code_point & 0x3f));
      i += 5;
    } else {
      return "<bad escape>";
    }
  }
  return text;
}

/// True if `text` is valid UTF-8 (nlohmann's strict serializer throws otherwise).
bool valid_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

/// The problems of `shown` as display output: a byte below 0x20 or DEL, a C1 control, a bidi
/// control or a line separator (searched as their UTF-8 bytes), invalid UTF-8. "" if none.
std::string unsafe_part(const std::string& shown) {
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const auto byte = static_cast<std::uint8_t>(shown[i]);
    if (byte < 0x20 || byte == 0x7f) {
      return "control byte at " + std::to_string(i);
    }
    const auto next = i + 1 < shown.size() ? static_cast<std::uint8_t>(shown[i + 1]) : 0;
    const auto third = i + 2 < shown.size() ? static_cast<std::uint8_t>(shown[i + 2]) : 0;
    if (byte == 0xc2 && next >= 0x80 && next <= 0x9f) {
      return "C1 control at " + std::to_string(i);
    }
    if ((byte == 0xd8 && next == 0x9c) ||
        (byte == 0xe2 && next == 0x80 && (third == 0x8e || third == 0x8f || (third >= 0xa8 && third <= 0xae))) ||
        (byte == 0xe2 && next == 0x81 && third >= 0xa6 && third <= 0xa9)) {
      return "bidi control or line separator at " + std::to_string(i);
    }
  }
  return valid_utf8(shown) ? "" : "invalid UTF-8";
}

TEST(DisplayText, KeepsPrintableAsciiAsItIs) {
  EXPECT_EQ(display_text(""), "");
  EXPECT_EQ(display_text("/home/me/Documents/report 2026 (final).pdf"), "/home/me/Documents/report 2026 (final).pdf");
  EXPECT_EQ(display_text("~!@#$%^&*()_+{}|:\"<>?`-=[];',./"), "~!@#$%^&*()_+{}|:\"<>?`-=[];',./");
}

TEST(DisplayText, KeepsPrintableUnicodeAsItIs) {
  for (const std::string& text : {"Élève à l'école, ça coûte 3 €"s, "写真/東京タワー.jpg"s, "😀 party 🎉.png"s,
                                 "e\xcc\x81"s /* e + combining acute */, "\xef\xbf\xbd"s /* U+FFFD itself */,
                                 "\xf4\x8f\xbf\xbf"s /* U+10FFFF, the last code point */, "\xc2\xa0nbsp"s}) {
    EXPECT_EQ(display_text(text), text);
  }
}

TEST(DisplayText, EscapesBackslashSoEscapesAreUnambiguous) {
  EXPECT_EQ(display_text("C:\\temp"), "C:\\\\temp");
  EXPECT_EQ(display_text("\\x1b"), "\\\\x1b");  // the text "\x1b", not an ESC
  EXPECT_NE(display_text("\\x1b"), display_text("\x1b"));
}

TEST(DisplayText, EscapesC0ControlsAndDel) {
  EXPECT_EQ(display_text("a\tb\nc\rd"), "a\\tb\\nc\\rd");
  EXPECT_EQ(display_text("\x1b[2J\x1b]0;owned\x07"), "\\x1b[2J\\x1b]0;owned\\x07");
  EXPECT_EQ(display_text("nul\0here"s), "nul\\x00here");
  EXPECT_EQ(display_text("\x7f\x1f\x01\x0b\x0c\x08"), "\\x7f\\x1f\\x01\\x0b\\x0c\\x08");
  for (int byte = 0; byte < 0x20; ++byte) {
    const std::string shown = display_text(std::string(1, static_cast<char>(byte)));
    EXPECT_EQ(shown[0], '\\') << byte;
    EXPECT_EQ(undo(shown), std::string(1, static_cast<char>(byte))) << byte;
  }
}

TEST(DisplayText, EscapesC1Controls) {
  EXPECT_EQ(display_text("\xc2\x9b" "2J"), "\\u009b2J");  // CSI
  EXPECT_EQ(display_text("\xc2\x80\xc2\x85\xc2\x9f"), "\\u0080\\u0085\\u009f");
  EXPECT_EQ(display_text("\xc2\xa0"), "\xc2\xa0");  // U+00A0, the first after them, is printable
}

TEST(DisplayText, EscapesBidiControlsAndLineSeparators) {
  // "invoice_\u202Efdp.exe" shows as "invoice_exe.pdf" on a bidi-aware terminal.
  EXPECT_EQ(display_text("invoice_\xe2\x80\xae" "fdp.exe"), "invoice_\\u202efdp.exe");
  EXPECT_EQ(display_text("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad"), "\\u202a\\u202b\\u202c\\u202d");
  EXPECT_EQ(display_text("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9"), "\\u2066\\u2067\\u2068\\u2069");
  EXPECT_EQ(display_text("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c"), "\\u200e\\u200f\\u061c");
  EXPECT_EQ(display_text("a\xe2\x80\xa8" "b\xe2\x80\xa9"), "a\\u2028b\\u2029");
  EXPECT_EQ(display_text("\xe2\x80\x94 \xe2\x81\xaa"), "\xe2\x80\x94 \xe2\x81\xaa");  // neighbours stay: an em dash, U+206A
}

TEST(DisplayText, EscapesInvalidUtf8BytePerByte) {
  EXPECT_EQ(display_text("caf\xe9.txt"), "caf\\xe9.txt");                     // Latin-1, not UTF-8
  EXPECT_EQ(display_text("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(display_text("\x80x"), "\\x80x");                                 // a lone continuation byte
  EXPECT_EQ(display_text("\xe6\x97"), "\\xe6\\x97");                          // truncated at the end
  EXPECT_EQ(display_text("\xe6\x97" "a"), "\\xe6\\x97a");                     // truncated in the middle
  EXPECT_EQ(display_text("\xc0\xaf"), "\\xc0\\xaf");                          // overlong '/'
  EXPECT_EQ(display_text("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");                 // overlong '/'
  EXPECT_EQ(display_text("\xf0\x80\x80\xaf"), "\\xf0\\x80\\x80\\xaf");        // overlong '/'
  EXPECT_EQ(display_text("\xc1\x9b"), "\\xc1\\x9b");                          // overlong ESC-like
  EXPECT_EQ(display_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");                 // a surrogate (U+D800)
  EXPECT_EQ(display_text("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");        // U+110000
  EXPECT_EQ(display_text("\xf5\x80\x80\x80"), "\\xf5\\x80\\x80\\x80");
  EXPECT_EQ(display_text("\xe2\x80\xae"), "\\u202e");                         // valid, for contrast
  EXPECT_EQ(display_text("\xe2\x80"), "\\xe2\\x80");                          // its truncated form
}

TEST(DisplayText, RandomBytesComeOutSafeAndRoundTrip) {
  std::mt19937 random(20260115);  // fixed: a failure replays
  // Biased towards the interesting bytes, so multi-byte sequences (valid or not) are frequent.
  const std::string interesting = "\x00\x07\x09\x0a\x0d\x1b\x5c\x7f\x80\x9b\xa0\xae\xbf\xc0\xc2\xd8\xe2\xed\xef\xf0\xf4\xff"s;
  std::uniform_int_distribution<int> any_byte(0, 255);
  std::uniform_int_distribution<std::size_t> pick(0, interesting.size() - 1);
  std::uniform_int_distribution<int> length(0, 40);
  std::uniform_int_distribution<int> coin(0, 2);
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    for (int n = length(random); n > 0; --n) {
      text += coin(random) == 0 ? interesting[pick(random)] : static_cast<char>(any_byte(random));
    }
    const std::string shown = display_text(text);
    ASSERT_EQ(unsafe_part(shown), "") << "input " << nlohmann::json(text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    ASSERT_EQ(undo(shown), text);
  }
}

TEST(DisplayText, EveryCodePointComesOutSafeAndRoundTrips) {
  for (std::uint32_t c = 0; c <= 0x10ffff; c += c < 0x3000 ? 1 : 97) {
    if (c >= 0xd800 && c <= 0xdfff) {
      continue;
    }
    std::string text;
    if (c < 0x80) {
      text += static_cast<char>(c);
    } else if (c < 0x800) {
      text += {static_cast<char>(0xc0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3f))};
    } else if (c < 0x10000) {
      text += {static_cast<char>(0xe0 | (c >> 12)), static_cast<char>(0x80 | ((c >> 6) & 0x3f)),
               static_cast<char>(0x80 | (c & 0x3f))};
    } else {
      text += {static_cast<char>(0xf0 | (c >> 18)), static_cast<char>(0x80 | ((c >> 12) & 0x3f)),
               static_cast<char>(0x80 | ((c >> 6) & 0x3f)), static_cast<char>(0x80 | (c & 0x3f))};
    }
    const std::string shown = display_text(text);
    ASSERT_EQ(unsafe_part(shown), "") << std::hex << c;
    ASSERT_EQ(undo(shown), text) << std::hex << c;
  }
}

}  // namespace
}  // namespace mybackup
