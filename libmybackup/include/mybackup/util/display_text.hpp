#pragma once
// Text from outside shown safely: file names from the source, lock holders, key labels, paths and
// messages read from the destination, config values. Any of these may hold escape sequences that
// repaint a terminal, a newline that forges a log line, or bidi controls that disguise a name.
//
// The library keeps and returns such text as it is (names must round-trip to the filesystem and
// the destination); a front end passes every field or line it prints or logs through
// display_text(), once, where it shows it. Escaping twice doubles the backslashes.

#include <string>
#include <string_view>

namespace mybackup {

/// `text` as one line that is safe on a terminal and in a log record, and unambiguous:
///
///   backslash                                   -> \\            (so every escape below is unambiguous)
///   TAB, LF, CR                                 -> \t  \n  \r
///   other C0 controls (ESC, BEL, NUL...), DEL   -> \xHH          (\x1b, \x07, \x00, \x7f)
///   bytes that are not valid UTF-8              -> \xHH, one per byte (\xff; overlong forms and
///                                                  surrogates are invalid too)
///   C1 controls U+0080-U+009F                   -> \uHHHH        (\u009b)
///   bidi controls (U+061C, U+200E, U+200F,
///   U+202A-U+202E, U+2066-U+2069) and the line
///   and paragraph separators U+2028, U+2029     -> \uHHHH        (\u202e)
///
/// Everything else (printable ASCII, accents, CJK, emoji...) is kept byte for byte, so the usual
/// name reads as it is. The result is valid UTF-8 with no byte below 0x20 and no DEL, and distinct
/// inputs give distinct results. Hex digits are lower case. Never throws (but std::bad_alloc).
/// Thread-safe (a pure function).
std::string display_text(std::string_view text);

}  // namespace mybackup
