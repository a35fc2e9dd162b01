#pragma once
// Time comes through this seam so tests can run scheduling and date logic without sleeping.
// Env (env.hpp) is a Clock too: the environment's time and its files are one seam, and
// system_clock() is the default Env.

#include <cstdint>
#include <string>

namespace mybackup {

class Clock {
 public:
  virtual ~Clock() = default;
  /// Nanoseconds since the Unix epoch (UTC).
  virtual std::int64_t now_ns() const = 0;
};

/// The real clock (CLOCK_REALTIME): Env::default_env(). Thread-safe.
const Clock& system_clock();

/// The seconds from `started_ns` to `finished_ns` (a run's duration, as reports show it).
double seconds_between(std::int64_t started_ns, std::int64_t finished_ns);

/// "2026-11-21T12:34:56Z" for a Unix time in nanoseconds.
std::string format_utc(std::int64_t unix_ns);
/// "2026-11-21T12:34:56.123456789Z": exact, so it can be given back to `restore --date`.
std::string format_utc_exact(std::int64_t unix_ns);
/// "2026-11-21 13:34:56" in the local time zone.
std::string format_local(std::int64_t unix_ns);

}  // namespace mybackup
