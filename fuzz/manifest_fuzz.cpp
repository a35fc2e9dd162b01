// A manifest's encoding as decode_manifest (format/manifest.hpp) reads it once the blob has been
// authenticated and decompressed: the fuzzer works on the grammar without a MAC in the way.
// A decoded manifest must encode to bytes that decode and encode to the same bytes again, and
// the streaming decoder (format/manifest_decoder.hpp), given the same bytes in pieces whose size
// the first byte picks, must agree with the whole decoder: the same manifest, or corrupt.
#include <algorithm>

#include "fuzz_support.hpp"
#include "mybackup/format/manifest.hpp"
#include "mybackup/format/manifest_decoder.hpp"
#include "mybackup/util/fs.hpp"

namespace {
std::optional<mybackup::Bytes> decode_streamed(mybackup::ByteView input, std::size_t piece) {
  try {
    mybackup::ManifestDecoder decoder(input.size(), mybackup::temporary_directory());
    for (std::size_t at = 0; at < input.size(); at += piece) {
      decoder.add(input.subspan(at, std::min(piece, input.size() - at)));
    }
    return mybackup::encode_manifest(decoder.finish());
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
    return std::nullopt;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const mybackup::ByteView input(data, size);
  const std::size_t piece = size == 0 ? 1 : 1 + data[0] % 64;
  const std::optional<mybackup::Bytes> streamed = decode_streamed(input, piece);
  mybackup::Manifest manifest;
  try {
    manifest = mybackup::decode_manifest(input);
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
    mybackup::fuzz::check(!streamed.has_value(), "the streaming decoder accepts what the whole decoder refuses");
    return 0;
  }
  const mybackup::Bytes encoded = mybackup::encode_manifest(manifest);
  mybackup::fuzz::check(streamed.has_value() && *streamed == encoded, "the streaming decoder disagrees with the whole decoder");
  mybackup::fuzz::check(mybackup::encode_manifest(mybackup::decode_manifest(encoded)) == encoded,
                        "a decoded manifest encodes and decodes to itself");
  return 0;
}
