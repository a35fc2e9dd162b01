// A pack header's entries as read_pack_header (format/pack.hpp) decodes them once authenticated.
// The input is blobs:u16le header: the harness seals `header` with the seeds' key behind
// `blobs` zero bytes, so the fuzzer works on the entry grammar and the bounds checks without a
// MAC in the way. Every entry returned must lie within the blobs.
#include <array>

#include "fuzz_support.hpp"
#include "mybackup/format/pack.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const mybackup::KeySet keys = mybackup::KeySet::derive(mybackup::fuzz::test_key());
  if (size < 2) {
    return 0;
  }
  const std::size_t blobs = data[0] | (std::size_t{data[1]} << 8);
  mybackup::Bytes pack(blobs, 0);
  const std::string_view magic = "MBKH";
  pack.insert(pack.end(), magic.begin(), magic.end());
  const mybackup::AeadNonce nonce{};
  pack.insert(pack.end(), nonce.begin(), nonce.end());
  mybackup::aes256gcm_seal_append(keys.enc_key, nonce, mybackup::ByteView(data + 2, size - 2),
                                  mybackup::as_bytes(magic), pack);
  const std::size_t sealed = pack.size() - blobs;
  for (int i = 0; i < 4; ++i) {
    pack.push_back(static_cast<std::uint8_t>(sealed >> (8 * i)));
  }
  try {
    for (const mybackup::PackEntry& entry : mybackup::read_pack_header(keys.enc_key, pack)) {
      mybackup::fuzz::check(std::uint64_t{entry.offset} + entry.length <= blobs, "every entry lies within the blobs");
    }
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
  }
  return 0;
}
