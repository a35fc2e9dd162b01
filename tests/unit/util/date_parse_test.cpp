#include "mybackup/util/date_parse.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::error_message;

constexpr std::int64_t kLast = 999'999'999;

/// Unix nanoseconds of "YYYY-MM-DDTHH:MM:SS" read as UTC, plus `nanoseconds`. Computed apart from
/// the code under test.
std::int64_t utc(const char* text, std::int64_t nanoseconds) {
  int year = 0;
  unsigned month = 0;
  unsigned day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (std::sscanf(text, "%d-%u-%uT%d:%d:%d", &year, &month, &day, &hour, &minute, &second) != 6) {
    ADD_FAILURE() << "bad expectation " << text;
    return 0;
  }
  const auto date = std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day};
  const std::int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  std::int64_t seconds = ((days * 24 + hour) * 60 + minute) * 60 + second;
  if (seconds < 0) {  // keeps the product in range near the lower end of int64
    ++seconds;
    nanoseconds -= 1'000'000'000;
  }
  return seconds * 1'000'000'000 + nanoseconds;
}

struct Case {
  const char* input;
  const char* expected_utc;  // YYYY-MM-DDTHH:MM:SS
  std::int64_t expected_ns;  // added to expected_utc
};

/// Every test runs in a chosen zone (Europe/Paris unless it says otherwise) and puts TZ back after.
class DateParse : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* old = std::getenv("TZ")) {
      saved_tz_ = old;
    }
    use_zone("Europe/Paris");
  }

  void TearDown() override {
    if (saved_tz_) {
      ::setenv("TZ", saved_tz_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }

  static void use_zone(const std::string& zone) {
    // Without the zone file glibc silently uses UTC and every expectation below fails obscurely.
    EXPECT_TRUE(std::filesystem::exists("/usr/share/zoneinfo/" + zone))
        << "time zone " << zone << " is not installed (Debian package tzdata)";
    ::setenv("TZ", zone.c_str(), 1);
    ::tzset();
  }

  static void expect_cases(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      SCOPED_TRACE(c.input);
      const auto outcome =
          error_kind([&] { EXPECT_EQ(parse_restore_date(c.input), utc(c.expected_utc, c.expected_ns)); });
      EXPECT_FALSE(outcome) << outcome;
    }
  }

 private:
  std::optional<std::string> saved_tz_;
};

TEST_F(DateParse, local_forms_name_the_end_of_the_day_minute_or_second) {
  expect_cases({
      {"2026-01-15", "2026-01-15T22:59:59", kLast},  // CET, UTC+1
      {"2026-07-01", "2026-07-01T21:59:59", kLast},  // CEST, UTC+2
      {"2026-07-01T10:30", "2026-07-01T08:30:59", kLast},
      {"2026-07-01 10:30", "2026-07-01T08:30:59", kLast},
      {"2026-07-01T10:30:15", "2026-07-01T08:30:15", kLast},
      {"2026-07-01 10:30:15", "2026-07-01T08:30:15", kLast},
      {"2026-01-15T00:00", "2026-01-14T23:00:59", kLast},
      {"2026-12-31T23:59:59", "2026-12-31T22:59:59", kLast},
      {"2024-02-29", "2024-02-29T22:59:59", kLast},
      {"2000-02-29T12:00", "2000-02-29T11:00:59", kLast},
  });
}

TEST_F(DateParse, daylight_saving_days_in_paris) {
  expect_cases({
      // 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST (01:00Z); the day has 23 hours.
      {"2026-03-28", "2026-03-28T22:59:59", kLast},
      {"2026-03-29", "2026-03-29T21:59:59", kLast},
      {"2026-03-29T01:59", "2026-03-29T00:59:59", kLast},
      // Skipped minutes end just before the jump: the clock never read later before 03:00.
      {"2026-03-29T02:00", "2026-03-29T00:59:59", kLast},
      {"2026-03-29T02:30", "2026-03-29T00:59:59", kLast},
      {"2026-03-29T02:59:59", "2026-03-29T00:59:59", kLast},
      {"2026-03-29T03:00", "2026-03-29T01:00:59", kLast},
      // 2026-10-25: clocks fall back from 03:00 CEST to 02:00 CET (01:00Z); the day has 25 hours.
      {"2026-10-24", "2026-10-24T21:59:59", kLast},
      {"2026-10-25", "2026-10-25T22:59:59", kLast},
      {"2026-10-25T01:59", "2026-10-24T23:59:59", kLast},
      // Repeated minutes end at their second occurrence (CET).
      {"2026-10-25T02:00", "2026-10-25T01:00:59", kLast},
      {"2026-10-25T02:30", "2026-10-25T01:30:59", kLast},
      {"2026-10-25T02:59:59", "2026-10-25T01:59:59", kLast},
      {"2026-10-25T03:00", "2026-10-25T02:00:59", kLast},
  });
}

TEST_F(DateParse, repeated_hour_does_not_depend_on_earlier_calls) {
  // glibc's mktime answers this from whatever it converted last; the parser must not.
  const std::int64_t expected = utc("2026-10-25T01:30:59", kLast);
  for (const char* before : {"2026-07-01T12:00", "2026-01-01T12:00", "2026-10-25T02:30"}) {
    SCOPED_TRACE(before);
    parse_restore_date(before);
    EXPECT_EQ(parse_restore_date("2026-10-25T02:30"), expected);
  }
}

TEST_F(DateParse, other_zones) {
  use_zone("UTC");
  expect_cases({
      {"2026-01-15", "2026-01-15T23:59:59", kLast},
      {"2026-01-15T10:00", "2026-01-15T10:00:59", kLast},
  });
  use_zone("America/New_York");  // DST starts 2026-03-08 02:00 EST -> 03:00 EDT
  expect_cases({
      {"2026-01-15", "2026-01-16T04:59:59", kLast},
      {"2026-03-08", "2026-03-09T03:59:59", kLast},
      {"2026-03-08T02:30", "2026-03-08T06:59:59", kLast},
  });
  use_zone("Asia/Kolkata");  // UTC+05:30, no DST
  expect_cases({
      {"2026-01-15T10:00", "2026-01-15T04:30:59", kLast},
  });
}

const std::vector<Case> kOffsetCases = {
    {"2026-01-15T10:00:00Z", "2026-01-15T10:00:00", kLast},
    {"2026-01-15T10:00Z", "2026-01-15T10:00:59", kLast},
    {"2026-01-15 10:00:00Z", "2026-01-15T10:00:00", kLast},
    {"2026-01-15T10:00:00+05:30", "2026-01-15T04:30:00", kLast},
    {"2026-01-15T10:00+0530", "2026-01-15T04:30:59", kLast},
    {"2026-01-15T10:00:00-0800", "2026-01-15T18:00:00", kLast},
    {"2026-01-15T10:00:00-08:00", "2026-01-15T18:00:00", kLast},
    {"2026-01-15T10:00:00-00:00", "2026-01-15T10:00:00", kLast},
    {"2026-01-15T10:00:00+23:59", "2026-01-14T10:01:00", kLast},
    {"2026-01-15T00:30:00+01:00", "2026-01-14T23:30:00", kLast},
    // A fraction names exactly that instant.
    {"2026-01-15T10:00:00.5Z", "2026-01-15T10:00:00", 500'000'000},
    {"2026-01-15T10:00:00.0Z", "2026-01-15T10:00:00", 0},
    {"2026-01-15T10:00:00.123456789+01:00", "2026-01-15T09:00:00", 123'456'789},
    {"2026-01-15 10:00:00.000001-0800", "2026-01-15T18:00:00", 1'000},
    // The whole range of 64-bit nanoseconds, both ends.
    {"2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16", 854'775'807},
    {"1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:43", 145'224'192},
    {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00", kLast},
    {"1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59", 500'000'000},
};

TEST_F(DateParse, offsets_are_exact_and_ignore_the_zone) {
  for (const char* zone : {"Europe/Paris", "UTC", "America/New_York"}) {
    SCOPED_TRACE(zone);
    use_zone(zone);
    expect_cases(kOffsetCases);
  }
}

TEST_F(DateParse, invalid_input_is_a_usage_error_that_quotes_it) {
  const char* const invalid[] = {
      "",
      "yesterday",
      "2026-13-01",
      "2026-00-10",
      "2026-04-31",
      "2026-01-00",
      "2025-02-29",
      "1900-02-29",
      "2026-01-15T24:00",
      "2026-01-15T10:60",
      "2026-01-15T10:00:60",
      "2026-01-15T10:00+25:00",
      "2026-01-15T10:00+05:60",
      "2026-01-15T10:00+05",
      "2026-01-15T10:00+5:30",
      "2026-01-15x",
      "2026-1-5",
      "2026-01-5",
      "26-01-15",
      "2026/01/15",
      "20260115",
      " 2026-01-15",
      "2026-01-15 ",
      "2026-01-15T",
      "2026-01-15T10",
      "2026-01-15T10:0",
      "2026-01-15t10:00",
      "2026-01-15T10:00:00z",
      "2026-01-15T10:00:00Zx",
      "2026-01-15T10:00:00+01:00 ",
      "2026-01-15T10:00:00.5",  // a fraction needs an offset
      "2026-01-15T10:00:00.Z",
      "2026-01-15T10:00:00.1234567890Z",
      "2026-01-15T10:00.5Z",
      "2026-01-15T10:00:00,5Z",
      "2262-04-12",  // past the end of 64-bit nanoseconds
      "1677-09-20",
      "2262-04-11T23:47:16.854775808Z",
      "1677-09-21T00:12:43.145224191Z",
  };
  for (const char* input : invalid) {
    SCOPED_TRACE(input);
    const auto outcome = error_kind([&] { parse_restore_date(input); });
    EXPECT_EQ(outcome, ErrorKind::usage);
    EXPECT_NE(outcome.message().find("\"" + std::string(input) + "\""), std::string::npos) << outcome;
    EXPECT_NE(outcome.message().find("YYYY-MM-DD"), std::string::npos) << outcome;
    EXPECT_EQ(outcome.message().find('\n'), std::string::npos) << outcome;
  }
}

TEST_F(DateParse, message_stays_on_one_line) {
  const std::string message = error_message([] { parse_restore_date("2026-01-15\nrm -rf"); });
  EXPECT_FALSE(message.empty());
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace
}  // namespace mybackup
