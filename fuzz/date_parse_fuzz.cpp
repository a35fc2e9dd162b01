// restore --date: parse_restore_date (util/date_parse.hpp) on any text, in a zone with daylight
// saving time so that skipped and repeated local minutes are reached.
#include <cstdlib>
#include <string_view>

#include "fuzz_support.hpp"
#include "mybackup/util/date_parse.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("TZ", "Europe/Paris", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    mybackup::parse_restore_date(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::usage});
  }
  return 0;
}
