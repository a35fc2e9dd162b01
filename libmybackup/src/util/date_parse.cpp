#include "mybackup/util/date_parse.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;
constexpr std::int64_t kLastNs = kNsPerSecond - 1;
constexpr std::int64_t kSecondsPerDay = 86'400;

constexpr std::string_view kAcceptedForms =
    "accepted: YYYY-MM-DD (end of that day), YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS (local time, "
    "a space may replace T), or either followed by Z, +HH:MM, -HH:MM, +HHMM or -HHMM, with an "
    "optional .fraction after the seconds";

[[noreturn]] void reject(std::string_view text, std::string_view reason) {
  std::string message = "invalid date \"";
  for (const char c : text) {
    // Control characters would break the one-line message.
    const auto byte = static_cast<unsigned char>(c);
    message += (byte < 0x20 || byte == 0x7f) ? '?' : c;
  }
  message += "\": ";
  message += reason;
  message += "; ";
  message += kAcceptedForms;
  throw Error(ErrorKind::usage, message);
}

/// Reads fixed-width fields left to right.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool at_end() const { return pos_ == text_.size(); }

  bool accept(char c) {
    if (!at_end() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  /// Exactly `count` decimal digits, or nothing (and nothing consumed).
  std::optional<int> digits(std::size_t count) {
    if (text_.size() - pos_ < count) {
      return std::nullopt;
    }
    int value = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const char c = text_[pos_ + i];
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
      value = value * 10 + (c - '0');
    }
    pos_ += count;
    return value;
  }

  /// How many decimal digits follow.
  std::size_t digit_run() const {
    std::size_t end = pos_;
    while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') {
      ++end;
    }
    return end - pos_;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

enum class Precision { day, minute, second, exact };

struct Parsed {
  std::chrono::year_month_day date;
  int hour = 0;
  int minute = 0;
  int second = 0;
  std::int64_t fraction_ns = 0;
  Precision precision = Precision::day;
  std::optional<std::int64_t> offset_seconds;  // east of UTC; absent for local time
};

Parsed parse_fields(std::string_view text) {
  constexpr std::string_view kLayout = "not a recognised date layout";
  Cursor in(text);
  Parsed out;

  const auto year = in.digits(4);
  if (!year || !in.accept('-')) {
    reject(text, kLayout);
  }
  const auto month = in.digits(2);
  if (!month || !in.accept('-')) {
    reject(text, kLayout);
  }
  const auto day = in.digits(2);
  if (!day) {
    reject(text, kLayout);
  }
  if (*month < 1 || *month > 12) {
    reject(text, "month must be 01-12");
  }
  out.date = std::chrono::year{*year} / std::chrono::month{static_cast<unsigned>(*month)} /
             std::chrono::day{static_cast<unsigned>(*day)};
  if (!out.date.ok()) {
    reject(text, "that month has no such day");
  }
  if (in.at_end()) {
    return out;
  }

  if (!in.accept('T') && !in.accept(' ')) {
    reject(text, kLayout);
  }
  const auto hour = in.digits(2);
  if (!hour || !in.accept(':')) {
    reject(text, kLayout);
  }
  const auto minute = in.digits(2);
  if (!minute) {
    reject(text, kLayout);
  }
  out.precision = Precision::minute;
  if (in.accept(':')) {
    const auto second = in.digits(2);
    if (!second) {
      reject(text, kLayout);
    }
    out.second = *second;
    out.precision = Precision::second;
    if (in.accept('.')) {
      const std::size_t count = in.digit_run();
      if (count < 1 || count > 9) {
        reject(text, "a fraction of a second has 1 to 9 digits");
      }
      out.fraction_ns = *in.digits(count);
      for (std::size_t i = count; i < 9; ++i) {
        out.fraction_ns *= 10;
      }
      out.precision = Precision::exact;
    }
  }
  out.hour = *hour;
  out.minute = *minute;
  if (out.hour > 23) {
    reject(text, "hour must be 00-23");
  }
  if (out.minute > 59) {
    reject(text, "minute must be 00-59");
  }
  if (out.second > 59) {
    reject(text, "second must be 00-59");
  }
  if (in.at_end()) {
    if (out.precision == Precision::exact) {
      // A local instant to the nanosecond is rarely meant; the accepted forms keep fractions to
      // offsets, where the instant is unambiguous.
      reject(text, "a fraction needs an offset (Z, +HH:MM or -HH:MM)");
    }
    return out;
  }

  if (in.accept('Z')) {
    out.offset_seconds = 0;
  } else {
    const bool east = in.accept('+');
    if (!east && !in.accept('-')) {
      reject(text, kLayout);
    }
    const auto offset_hours = in.digits(2);
    in.accept(':');  // +HH:MM and +HHMM are both ISO 8601
    const auto offset_minutes = in.digits(2);
    if (!offset_hours || !offset_minutes) {
      reject(text, kLayout);
    }
    if (*offset_hours > 23 || *offset_minutes > 59) {
      reject(text, "offset must be at most 23:59");
    }
    const std::int64_t size = *offset_hours * 3600 + *offset_minutes * 60;
    out.offset_seconds = east ? size : -size;
  }
  if (!in.at_end()) {
    reject(text, "unexpected characters after the offset");
  }
  return out;
}

/// The local clock's offset from UTC, in seconds, at Unix second `at`.
std::int64_t utc_offset_at(std::int64_t at) {
  const auto seconds = static_cast<std::time_t>(at);
  std::tm parts{};
  if (localtime_r(&seconds, &parts) == nullptr) {
    return 0;  // unreachable for years 0000-9999 with a 64-bit time_t
  }
  return parts.tm_gmtoff;
}

/// What the local clock read at Unix second `at`, as seconds on a UTC-like scale.
std::int64_t local_reading(std::int64_t at) { return at + utc_offset_at(at); }

/// The last Unix second at which the local clock read less than `reading` (a reading as from
/// local_reading). mktime cannot do this: in a repeated hour glibc's answer depends on what earlier
/// calls converted, and for skipped times it answers with a moment the clock read later.
std::int64_t last_second_before(std::int64_t reading) {
  // Every offset in use within two days of the moment (a zone changes offset far less often);
  // offsets stay under a day, so the answer lies in reach of these.
  std::vector<std::int64_t> offsets;
  for (std::int64_t hour = -48; hour <= 48; ++hour) {
    const std::int64_t offset = utc_offset_at(reading + hour * 3600);
    if (std::find(offsets.begin(), offsets.end(), offset) == offsets.end()) {
      offsets.push_back(offset);
    }
  }

  // Usually the clock read `reading - 1` at some instant; when the clocks went back over it, it
  // read it twice and the later one is the end.
  std::optional<std::int64_t> best;
  for (const std::int64_t offset : offsets) {
    const std::int64_t candidate = reading - 1 - offset;
    if (local_reading(candidate) == reading - 1 && (!best || candidate > *best)) {
      best = candidate;
    }
  }
  if (best) {
    return *best;
  }

  // The clocks jumped forward over `reading - 1`: the end is the last second before the jump.
  // The local reading only rises in between, so a binary search finds it.
  const auto [min_offset, max_offset] = std::minmax_element(offsets.begin(), offsets.end());
  std::int64_t below = reading - 1 - *max_offset;  // reads less than `reading`
  std::int64_t at_or_above = reading - *min_offset;  // reads `reading` or more
  while (at_or_above - below > 1) {
    const std::int64_t middle = below + (at_or_above - below) / 2;
    if (local_reading(middle) < reading) {
      below = middle;
    } else {
      at_or_above = middle;
    }
  }
  return below;
}

/// seconds * 10^9 + nanoseconds, or nothing if that does not fit in 64 bits.
std::optional<std::int64_t> to_unix_ns(std::int64_t seconds, std::int64_t nanoseconds) {
  // Before 1970 borrow a second first, so the product fits whenever the sum does.
  if (seconds < 0) {
    ++seconds;
    nanoseconds -= kNsPerSecond;
  }
  std::int64_t product = 0;
  std::int64_t sum = 0;
  if (__builtin_mul_overflow(seconds, kNsPerSecond, &product) || __builtin_add_overflow(product, nanoseconds, &sum)) {
    return std::nullopt;
  }
  return sum;
}

}  // namespace

std::int64_t parse_restore_date(std::string_view text) {
  const Parsed parsed = parse_fields(text);

  // The fields as seconds on a UTC-like scale (no zone applied yet).
  const std::int64_t days = std::chrono::sys_days(parsed.date).time_since_epoch().count();
  const std::int64_t reading = days * kSecondsPerDay + parsed.hour * 3600 + parsed.minute * 60 + parsed.second;

  std::int64_t last_second = 0;
  std::int64_t nanoseconds = kLastNs;
  if (parsed.offset_seconds) {
    last_second = reading - *parsed.offset_seconds;
    if (parsed.precision == Precision::minute) {
      last_second += 59;
    } else if (parsed.precision == Precision::exact) {
      nanoseconds = parsed.fraction_ns;
    }
  } else {
    const std::int64_t length = parsed.precision == Precision::day      ? kSecondsPerDay
                                : parsed.precision == Precision::minute ? 60
                                                                        : 1;
    ::tzset();  // localtime_r need not notice a changed TZ on its own
    last_second = last_second_before(reading + length);
  }

  const auto result = to_unix_ns(last_second, nanoseconds);
  if (!result) {
    reject(text, "outside what 64-bit nanoseconds can hold (1677-09-21 to 2262-04-11 UTC)");
  }
  return *result;
}

}  // namespace mybackup
