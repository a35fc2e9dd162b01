#pragma once
// The --date argument of `mybackup restore`: which moment the user means.
//
// The caller restores the newest version finished at or before the returned instant. A date names
// a whole day, minute or second, and everything finished during that named period counts as "at or
// before" it, so the result is the period's last nanosecond:
//
//   2026-11-21                      the end of that day, local time        23:59:59.999999999
//   2026-11-21T13:45                the end of that minute, local time     13:45:59.999999999
//   2026-11-21T13:45:30             the end of that second, local time     13:45:30.999999999
//   2026-11-21T13:45Z               the same with an offset instead of local time:
//   2026-11-21T13:45:30+05:30         Z, +HH:MM, -HH:MM, +HHMM or -HHMM
//   2026-11-21T13:45:30.25-0800     a fraction (after seconds, offset required): exactly that instant
//
// A space may replace the 'T'. Every field has exactly the digits shown; the fraction has 1 to 9.
// Hours are 00-23, minutes and seconds 00-59, offsets at most 23:59 either way.
//
// Local time is the zone named by the TZ environment variable at the time of the call (or the
// system's zone). The result is the last instant at which the local clock read the named period or
// earlier, which settles the daylight-saving changes without guessing:
//   - a day is all of it, 23 or 25 hours included;
//   - a minute the clocks skipped (02:30 when they jump from 02:00 to 03:00) ends just before the
//     jump, since the clock never read a later time before 03:00;
//   - a minute the clocks repeat (02:30 when they fall back from 03:00 to 02:00) ends at its
//     second occurrence.
// An offset is plain arithmetic and does not depend on the zone.

#include <cstdint>
#include <string_view>

namespace mybackup {

/// Unix nanoseconds (UTC) of the end of the period `text` names, per the forms above. Reads no
/// clock: the result depends only on `text` and the time zone.
/// Throws Error(usage), a one-line message quoting `text` and listing the accepted forms, for
/// anything else: other layouts, trailing characters, a field out of range (month 13, April 31,
/// February 29 outside a leap year, hour 24, minute 60, offset +25:00), or a moment outside what
/// 64-bit nanoseconds can hold (1677-09-21 to 2262-04-11 UTC).
std::int64_t parse_restore_date(std::string_view text);

}  // namespace mybackup
