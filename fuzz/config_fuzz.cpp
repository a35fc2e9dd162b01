// config.yaml: parse_config (home/config.hpp) on any text.
#include <string>

#include "fuzz_support.hpp"
#include "mybackup/home/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mybackup::parse_config(text, "config.yaml");
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::config});
  }
  return 0;
}
