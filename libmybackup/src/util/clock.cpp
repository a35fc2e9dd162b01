#include "mybackup/util/clock.hpp"

#include <cstdio>
#include <ctime>

#include "mybackup/util/env.hpp"

namespace mybackup {

namespace {
std::string format_time(std::int64_t unix_ns, bool utc) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm parts{};
  if (utc) {
    gmtime_r(&seconds, &parts);
  } else {
    localtime_r(&seconds, &parts);
  }
  char text[64];
  if (utc) {
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  } else {
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  }
  return text;
}
}  // namespace

const Clock& system_clock() { return Env::default_env(); }

double seconds_between(std::int64_t started_ns, std::int64_t finished_ns) {
  return static_cast<double>(finished_ns - started_ns) / 1e9;
}

std::string format_utc(std::int64_t unix_ns) { return format_time(unix_ns, true); }

std::string format_utc_exact(std::int64_t unix_ns) {
  std::int64_t fraction = unix_ns % 1'000'000'000;
  std::int64_t seconds_ns = unix_ns - fraction;
  if (fraction < 0) {
    fraction += 1'000'000'000;
    seconds_ns -= 1'000'000'000;
  }
  char digits[16];
  std::snprintf(digits, sizeof digits, ".%09lld", static_cast<long long>(fraction));
  std::string text = format_time(seconds_ns, true);
  text.insert(text.size() - 1, digits);  // before the 'Z'
  return text;
}

std::string format_local(std::int64_t unix_ns) { return format_time(unix_ns, false); }

}  // namespace mybackup
