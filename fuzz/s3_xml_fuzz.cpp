// What an S3 server answers: a ListObjectsV2 page and an error body (storage/s3_xml.hpp), read as
// the S3 backend reads them from an untrusted server.
#include <string_view>

#include "fuzz_support.hpp"
#include "mybackup/storage/s3_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const mybackup::S3ListPage page = mybackup::parse_list_objects_v2(text);
    mybackup::fuzz::check(!page.truncated || !page.next_token.empty(), "a truncated page names its next token");
    for (const mybackup::S3ListedObject& object : page.objects) {
      mybackup::fuzz::check(!object.key.empty(), "every listed object has a key");
    }
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
  }
  const mybackup::S3ErrorReply reply = mybackup::parse_s3_error(text);  // never throws
  mybackup::fuzz::check(reply.code.size() <= 64 && reply.message.size() <= 200, "error fields are cut to size");
  for (const char c : reply.message) {
    mybackup::fuzz::check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "messages hold no control characters");
  }
  return 0;
}
