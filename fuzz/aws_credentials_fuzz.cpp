// ~/.aws/credentials (storage/aws_credentials.hpp): any text is read without throwing, and a
// profile found has both keys.
#include <string_view>

#include "fuzz_support.hpp"
#include "mybackup/storage/aws_credentials.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* profile : {"default", "backup"}) {
    const auto found = mybackup::parse_aws_credentials_file(text, profile);
    mybackup::fuzz::check(!found || (!found->access_key_id.empty() && !found->secret_access_key.empty()),
                          "a profile found has both keys");
  }
  return 0;
}
