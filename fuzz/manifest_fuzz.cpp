// A manifest's encoding as decode_manifest (format/manifest.hpp) reads it once the blob has been
// authenticated and decompressed: the fuzzer works on the grammar without a MAC in the way.
// A decoded manifest must encode to bytes that decode and encode to the same bytes again.
#include "fuzz_support.hpp"
#include "mybackup/format/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mybackup::Manifest manifest;
  try {
    manifest = mybackup::decode_manifest(mybackup::ByteView(data, size));
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
    return 0;
  }
  const mybackup::Bytes encoded = mybackup::encode_manifest(manifest);
  mybackup::fuzz::check(mybackup::encode_manifest(mybackup::decode_manifest(encoded)) == encoded,
                        "a decoded manifest encodes and decodes to itself");
  return 0;
}
