#include "mybackup/crypto/crypto.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {
namespace {

Bytes repeat(std::uint8_t value, std::size_t count) {
  return Bytes(count, value);
}

// first, first+1, ..., last
Bytes sequence(std::uint8_t first, std::uint8_t last) {
  Bytes bytes;
  for (unsigned value = first; value <= last; ++value) {
    bytes.push_back(static_cast<std::uint8_t>(value));
  }
  return bytes;
}

template <std::size_t N>
std::array<std::uint8_t, N> to_array(std::string_view hex) {
  const Bytes bytes = from_hex(hex);
  std::array<std::uint8_t, N> array{};
  EXPECT_EQ(bytes.size(), N);
  std::copy_n(bytes.begin(), std::min(N, bytes.size()), array.begin());
  return array;
}

// Runs `fn` and checks it throws Error(`kind`) with `message` (or any message if empty).
template <typename Fn>
void expect_error_kind(ErrorKind kind, Fn fn, const std::string& message = "") {
  try {
    fn();
    ADD_FAILURE() << "expected Error(" << to_string(kind) << ")";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), kind);
    if (!message.empty()) {
      EXPECT_EQ(std::string(error.what()), message);
    }
  }
}

// A failure of the crypto library or of key material: Error(crypto).
template <typename Fn>
void expect_crypto_error(Fn fn, const std::string& message = "") {
  expect_error_kind(ErrorKind::crypto, fn, message);
}

// Data that fails authentication is damaged data: Error(corrupt).
template <typename Fn>
void expect_auth_failure(Fn fn, const std::string& message = "") {
  expect_error_kind(ErrorKind::corrupt, fn, message);
}

const std::string kAuthFailed = "authentication failed (wrong key or damaged data)";

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-2 appendix B)

TEST(Sha256Test, Abc) {
  EXPECT_EQ(to_hex(Sha256::hash(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockMessage) {
  EXPECT_EQ(
      to_hex(Sha256::hash(as_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, Empty) {
  const std::string expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  EXPECT_EQ(to_hex(Sha256::hash({})), expected);
  Sha256 streaming;
  streaming.update({});
  EXPECT_EQ(to_hex(streaming.finish()), expected);
}

TEST(Sha256Test, MillionAInUnevenPieces) {
  const std::string a_block(1'000'000, 'a');
  const ByteView all = as_bytes(a_block);
  Sha256 streaming;
  std::size_t done = 0;
  std::size_t piece = 1;
  while (done < all.size()) {
    const std::size_t size = std::min(piece, all.size() - done);
    streaming.update(all.subspan(done, size));
    done += size;
    piece = piece * 7 % 9973 + 1;  // wanders between 1 and ~10k bytes, rarely block-aligned
  }
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(to_hex(streaming.finish()), expected);
  EXPECT_EQ(to_hex(Sha256::hash(all)), expected);
}

TEST(Sha256Test, MovedObjectKeepsState) {
  Sha256 first;
  first.update(as_bytes("ab"));
  Sha256 second = std::move(first);
  second.update(as_bytes("c"));
  EXPECT_EQ(second.finish(), Sha256::hash(as_bytes("abc")));
}

// ---------------------------------------------------------------------------------------------
// HMAC-SHA256 (RFC 4231)

struct HmacVector {
  const char* name;
  Bytes key;
  Bytes data;
  const char* mac;
};

Bytes text(std::string_view value) {
  const ByteView view = as_bytes(value);
  return {view.begin(), view.end()};
}

std::vector<HmacVector> hmac_vectors() {
  return {
      {"case1", repeat(0x0b, 20), text("Hi There"),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"case2", text("Jefe"), text("what do ya want for nothing?"),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {"case3", repeat(0xaa, 20), repeat(0xdd, 50),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {"case4", sequence(0x01, 0x19), repeat(0xcd, 50),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {"case6", repeat(0xaa, 131), text("Test Using Larger Than Block-Size Key - Hash Key First"),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {"case7", repeat(0xaa, 131),
       text("This is a test using a larger than block-size key and a larger than block-size data. "
            "The key needs to be hashed before being used by the HMAC algorithm."),
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
}

TEST(HmacSha256Test, Rfc4231OneShot) {
  for (const HmacVector& vector : hmac_vectors()) {
    EXPECT_EQ(to_hex(HmacSha256::mac(vector.key, vector.data)), vector.mac) << vector.name;
  }
}

TEST(HmacSha256Test, ReusedObjectGivesIndependentResults) {
  // Same key for cases 6 and 7: one object, several calls in varying order.
  const std::vector<HmacVector> vectors = hmac_vectors();
  const HmacVector& case6 = vectors[4];
  const HmacVector& case7 = vectors[5];
  const HmacSha256 hmac(case6.key);
  EXPECT_EQ(to_hex(hmac.mac(case6.data)), case6.mac);
  EXPECT_EQ(to_hex(hmac.mac(case7.data)), case7.mac);
  EXPECT_EQ(to_hex(hmac.mac(case7.data)), case7.mac);
  EXPECT_EQ(to_hex(hmac.mac(case6.data)), case6.mac);

  HmacSha256 moved = HmacSha256(vectors[0].key);
  HmacSha256 target(as_bytes("other key"));
  target = std::move(moved);
  EXPECT_EQ(to_hex(target.mac(vectors[0].data)), vectors[0].mac);
}

TEST(HmacSha256Test, EmptyKeyAndData) {
  // HMAC-SHA256("", ""), as computed by Python's hmac module and `openssl mac`.
  const std::string expected = "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
  EXPECT_EQ(to_hex(HmacSha256::mac({}, {})), expected);
  const HmacSha256 hmac{ByteView{}};
  EXPECT_EQ(to_hex(hmac.mac({})), expected);
  EXPECT_EQ(to_hex(hmac.mac({})), expected);
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256 (RFC 5869 appendix A)

TEST(HkdfSha256Test, Rfc5869Case1) {
  const Bytes okm = hkdf_sha256(repeat(0x0b, 22), sequence(0x00, 0x0c), sequence(0xf0, 0xf9), 42);
  EXPECT_EQ(to_hex(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(HkdfSha256Test, Rfc5869Case2LongInputs) {
  const Bytes okm = hkdf_sha256(sequence(0x00, 0x4f), sequence(0x60, 0xaf), sequence(0xb0, 0xff), 82);
  EXPECT_EQ(to_hex(okm),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
            "cc30c58179ec3e87c14c01d5c1f3434f1d87");
}

TEST(HkdfSha256Test, Rfc5869Case3EmptySaltAndInfo) {
  const Bytes okm = hkdf_sha256(repeat(0x0b, 22), {}, {}, 42);
  EXPECT_EQ(to_hex(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

// RFC 7914, section 12 (test vectors 2 and 3).
TEST(ScryptTest, Rfc7914Vectors) {
  Bytes out(64);
  scrypt("password", as_bytes("NaCl"), 1024, 8, 16, std::uint64_t{64} << 20, out);
  EXPECT_EQ(to_hex(out),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
            "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
  scrypt("pleaseletmein", as_bytes("SodiumChloride"), 16384, 8, 1, std::uint64_t{64} << 20, out);
  EXPECT_EQ(to_hex(out),
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
            "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
}

TEST(ScryptTest, RefusesTooLittleMemoryAndBadParameters) {
  Bytes out(32);
  // N = 2^14, r = 8 needs 16 MiB.
  expect_crypto_error([&] { scrypt("pw", as_bytes("salt"), 16384, 8, 1, std::uint64_t{1} << 20, out); });
  expect_crypto_error([&] { scrypt("pw", as_bytes("salt"), 1000, 8, 1, std::uint64_t{64} << 20, out); });  // not 2^k
}

TEST(HkdfSha256Test, LengthLimits) {
  EXPECT_TRUE(hkdf_sha256(repeat(0x0b, 22), {}, {}, 0).empty());
  const Bytes longest = hkdf_sha256(repeat(0x0b, 22), {}, {}, 8160);
  EXPECT_EQ(longest.size(), 8160U);
  // A shorter output is a prefix of a longer one with the same inputs.
  EXPECT_TRUE(std::equal(longest.begin(), longest.begin() + 42,
                         hkdf_sha256(repeat(0x0b, 22), {}, {}, 42).begin()));
  expect_crypto_error([] { hkdf_sha256(repeat(0x0b, 22), {}, {}, 8161); });
}

// ---------------------------------------------------------------------------------------------
// AES-256-GCM (McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16)

struct GcmVector {
  const char* name;
  const char* key;
  const char* nonce;
  const char* plaintext;
  const char* aad;
  const char* ciphertext;
  const char* tag;
};

constexpr const char* kZeroKey = "0000000000000000000000000000000000000000000000000000000000000000";
constexpr const char* kKey15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr const char* kNonce15 = "cafebabefacedbaddecaf888";

const GcmVector kGcmVectors[] = {
    {"case13", kZeroKey, "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case14", kZeroKey, "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case15", kKey15, kNonce15,
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"case16", kKey15, kNonce15,
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

TEST(Aes256GcmTest, KnownAnswers) {
  for (const GcmVector& vector : kGcmVectors) {
    const AeadKey key = to_array<kAeadKeySize>(vector.key);
    const AeadNonce nonce = to_array<kAeadNonceSize>(vector.nonce);
    const Bytes plaintext = from_hex(vector.plaintext);
    const Bytes aad = from_hex(vector.aad);

    const Bytes sealed = aes256gcm_seal(key, nonce, plaintext, aad);
    ASSERT_EQ(sealed.size(), plaintext.size() + kAeadTagSize) << vector.name;
    const ByteView sealed_view(sealed);
    EXPECT_EQ(to_hex(sealed_view.first(plaintext.size())), vector.ciphertext) << vector.name;
    EXPECT_EQ(to_hex(sealed_view.last(kAeadTagSize)), vector.tag) << vector.name;

    EXPECT_EQ(aes256gcm_open(key, nonce, sealed, aad), plaintext) << vector.name;
  }
}

class Aes256GcmTamperTest : public ::testing::Test {
 protected:
  const GcmVector& vector = kGcmVectors[3];
  const AeadKey key = to_array<kAeadKeySize>(vector.key);
  const AeadNonce nonce = to_array<kAeadNonceSize>(vector.nonce);
  const Bytes plaintext = from_hex(vector.plaintext);
  const Bytes aad = from_hex(vector.aad);
  const Bytes sealed = aes256gcm_seal(key, nonce, plaintext, aad);
};

TEST_F(Aes256GcmTamperTest, RejectsFlippedCiphertextBit) {
  Bytes damaged = sealed;
  damaged[7] ^= 0x10;
  expect_auth_failure([&] { aes256gcm_open(key, nonce, damaged, aad); }, kAuthFailed);
}

TEST_F(Aes256GcmTamperTest, RejectsFlippedTagBit) {
  Bytes damaged = sealed;
  damaged.back() ^= 0x01;
  expect_auth_failure([&] { aes256gcm_open(key, nonce, damaged, aad); }, kAuthFailed);
}

TEST_F(Aes256GcmTamperTest, RejectsWrongAad) {
  Bytes wrong_aad = aad;
  wrong_aad[0] ^= 0x80;
  expect_auth_failure([&] { aes256gcm_open(key, nonce, sealed, wrong_aad); }, kAuthFailed);
  expect_auth_failure([&] { aes256gcm_open(key, nonce, sealed, {}); }, kAuthFailed);
}

TEST_F(Aes256GcmTamperTest, RejectsWrongKeyAndNonce) {
  AeadKey wrong_key = key;
  wrong_key[31] ^= 0x01;
  expect_auth_failure([&] { aes256gcm_open(wrong_key, nonce, sealed, aad); }, kAuthFailed);
  AeadNonce wrong_nonce = nonce;
  wrong_nonce[0] ^= 0x01;
  expect_auth_failure([&] { aes256gcm_open(key, wrong_nonce, sealed, aad); }, kAuthFailed);
}

TEST_F(Aes256GcmTamperTest, RejectsTruncatedInput) {
  const ByteView view(sealed);
  expect_auth_failure([&] { aes256gcm_open(key, nonce, view.first(kAeadTagSize - 1), aad); });
  expect_auth_failure([&] { aes256gcm_open(key, nonce, {}, aad); });
  // Exactly a tag long but not the right tag: an authentication failure.
  expect_auth_failure([&] { aes256gcm_open(key, nonce, view.last(kAeadTagSize), aad); },
                      kAuthFailed);
  // Dropping the last ciphertext byte.
  Bytes shortened(view.begin(), view.end());
  shortened.erase(shortened.begin() + static_cast<std::ptrdiff_t>(plaintext.size()) - 1);
  expect_auth_failure([&] { aes256gcm_open(key, nonce, shortened, aad); }, kAuthFailed);
}

TEST(Aes256GcmTest, SealAppendAppends) {
  const GcmVector& vector = kGcmVectors[3];
  const AeadKey key = to_array<kAeadKeySize>(vector.key);
  const AeadNonce nonce = to_array<kAeadNonceSize>(vector.nonce);
  const Bytes plaintext = from_hex(vector.plaintext);
  const Bytes aad = from_hex(vector.aad);

  const Bytes header = text("HEADER");
  Bytes out = header;
  aes256gcm_seal_append(key, nonce, plaintext, aad, out);
  const Bytes sealed = aes256gcm_seal(key, nonce, plaintext, aad);
  ASSERT_EQ(out.size(), header.size() + sealed.size());
  EXPECT_TRUE(std::equal(header.begin(), header.end(), out.begin()));
  EXPECT_TRUE(std::equal(sealed.begin(), sealed.end(), out.begin() + 6));
  EXPECT_EQ(to_hex(ByteView(out).last(kAeadTagSize)), vector.tag);

  // A second record lands after the first; an empty plaintext still adds a tag.
  aes256gcm_seal_append(key, nonce, {}, {}, out);
  ASSERT_EQ(out.size(), header.size() + sealed.size() + kAeadTagSize);
  EXPECT_TRUE(aes256gcm_open(key, nonce, ByteView(out).last(kAeadTagSize), {}).empty());
}

TEST(Aes256GcmTest, RoundTripLargeRandom) {
  AeadKey key{};
  AeadNonce nonce{};
  random_bytes(key);
  random_bytes(nonce);
  Bytes plaintext(1 << 20);
  random_bytes(plaintext);
  const Bytes aad = text("chunk 42");
  const Bytes sealed = aes256gcm_seal(key, nonce, plaintext, aad);
  EXPECT_EQ(aes256gcm_open(key, nonce, sealed, aad), plaintext);
}

// ---------------------------------------------------------------------------------------------
// Randomness, wiping, hex

TEST(RandomBytesTest, OutputsDiffer) {
  Bytes first(32);
  Bytes second(32);
  random_bytes(first);
  random_bytes(second);
  EXPECT_NE(first, second);
  EXPECT_NE(first, Bytes(32, 0));
  random_bytes({});  // no-op
}

TEST(SecureWipeTest, ZeroesMemory) {
  Bytes secret = text("not really a secret");
  secure_wipe(secret);
  EXPECT_EQ(secret, Bytes(secret.size(), 0));
  secure_wipe({});
}

TEST(HexTest, RoundTrip) {
  const Bytes all = sequence(0x00, 0xff);
  const std::string hex = to_hex(all);
  EXPECT_EQ(hex.size(), 512U);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(504), "fcfdfeff");
  EXPECT_EQ(from_hex(hex), all);
  EXPECT_EQ(from_hex("ABCDEF"), from_hex("abcdef"));
  EXPECT_TRUE(from_hex("").empty());
}

TEST(HexTest, RejectsBadInput) {
  for (const char* bad : {"abc", "0g", "zz", " 00", "0x00", "-1"}) {
    try {
      from_hex(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::corrupt) << bad;
    }
  }
}

}  // namespace
}  // namespace mybackup
