// backup_schedules.txt: ScheduleBook::parse (legacy/schedule_book.hpp), then the promise that a
// book written by serialize() reads back as the same schedules.
#include <string>

#include "fuzz_support.hpp"
#include "mybackup/legacy/schedule_book.hpp"

namespace {
bool same_schedules(const mybackup::ScheduleBook& a, const mybackup::ScheduleBook& b) {
  const std::vector<mybackup::Schedule> left = a.schedules();
  const std::vector<mybackup::Schedule> right = b.schedules();
  if (left.size() != right.size()) {
    return false;
  }
  for (std::size_t i = 0; i < left.size(); ++i) {
    if (left[i].line() != right[i].line() || left[i].path != right[i].path) {
      return false;
    }
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  mybackup::ScheduleBook book;
  try {
    book = mybackup::ScheduleBook::parse(text, "backup_schedules.txt");
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::config});
    return 0;
  }
  const mybackup::ScheduleBook again = mybackup::ScheduleBook::parse(book.serialize(), "serialized");
  mybackup::fuzz::check(same_schedules(book, again), "a serialized schedule book reads back the same");
  for (const mybackup::Schedule& schedule : book.schedules()) {
    mybackup::fuzz::check(mybackup::parse_schedule(schedule.line()).line() == schedule.line(),
                          "a schedule's canonical line parses to itself");
  }
  return 0;
}
