// keys/<id>.json: describe_wrapped_key and unwrap_master_key (crypto/key_wrap.hpp) with the
// seeds' passphrase, so that a well-formed key opens.
//
// unwrap_master_key runs scrypt with the cost the file names. The parser accepts up to
// ScryptParams::acceptable() (N = 2^20, r = 32 within 1 GiB, p = 16): seconds to minutes per
// call, which would stall the fuzzer without telling it anything about parsing. So the harness
// unwraps only keys whose cost is at most kMaxFuzzCost (N * r * p), and checks that a key whose
// parameters acceptable() refuses is refused by unwrap_master_key before any derivation.
#include <string_view>

#include "fuzz_support.hpp"
#include "mybackup/crypto/key_wrap.hpp"

namespace {
constexpr std::uint64_t kMaxFuzzCost = 1024;
constexpr std::string_view kPassphrase = "fuzz passphrase";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  mybackup::WrappedKeyInfo info;
  try {
    info = mybackup::describe_wrapped_key(text);
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
    return 0;
  }
  // A key over the caps is described (so `key list` shows it), but never unwrapped: the
  // refusal comes before any derivation, so trying it is cheap.
  if (!info.params.acceptable()) {
    try {
      mybackup::unwrap_master_key(text, kPassphrase);
      mybackup::fuzz::check(false, "a key with refused scrypt parameters is never unwrapped");
    } catch (const mybackup::Error& error) {
      mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
    }
    return 0;
  }
  if (info.params.n * info.params.r * info.params.p > kMaxFuzzCost) {
    return 0;
  }
  try {
    const mybackup::MasterKey key = mybackup::unwrap_master_key(text, kPassphrase);
    mybackup::fuzz::check(key.bytes == mybackup::fuzz::test_key().bytes, "an unwrapped key is the one sealed");
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt, mybackup::ErrorKind::wrong_key});
  }
  return 0;
}
