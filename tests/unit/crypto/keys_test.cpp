#include "mybackup/crypto/keys.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::error_message;
using testing::read_text_file;
using testing::TempDir;
using testing::write_text_file;

MasterKey fixed_key() {
  MasterKey key;
  for (std::size_t i = 0; i < key.bytes.size(); ++i) {
    key.bytes[i] = static_cast<std::uint8_t>(0xa0 + i);
  }
  return key;
}

/// The lines of a text, without their newlines.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    lines.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    start = end == std::string::npos ? text.size() : end + 1;
  }
  return lines;
}

/// Index of the line holding the 64 hex digits of the key.
std::size_t key_line(const std::vector<std::string>& lines) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].size() == 64) {
      return i;
    }
  }
  return lines.size();
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) {
    text += line + "\n";
  }
  return text;
}

void expect_damaged(const std::string& path, const std::string& why) {
  EXPECT_EQ(error_kind([&] { load_key_file(path); }), ErrorKind::crypto) << why;
  const std::string message = error_message([&] { load_key_file(path); });
  EXPECT_NE(message.find(path), std::string::npos) << why << ": " << message;
}

TEST(Keys, save_then_load_round_trip) {
  TempDir dir;
  const MasterKey key = MasterKey::generate();
  save_key_file(dir / "key", key);
  EXPECT_EQ(load_key_file(dir / "key").bytes, key.bytes);
  const MasterKey fixed = fixed_key();
  save_key_file(dir / "fixed", fixed);
  EXPECT_EQ(load_key_file(dir / "fixed").bytes, fixed.bytes);
}

TEST(Keys, file_format_is_as_documented) {
  TempDir dir;
  const MasterKey key = fixed_key();
  save_key_file(dir / "key", key);
  const std::vector<std::string> lines = lines_of(read_text_file(dir / "key"));
  std::vector<std::string> fields;
  for (const std::string& line : lines) {
    if (!line.empty() && line[0] != '#') {
      fields.push_back(line);
    }
  }
  ASSERT_EQ(fields.size(), 3U);
  EXPECT_EQ(fields[0], "mybackup-key-v1");
  EXPECT_EQ(fields[1], to_hex(key.bytes));
  const Digest digest = Sha256::hash(key.bytes);
  EXPECT_EQ(fields[2], to_hex(ByteView(digest.data(), 4)));
}

TEST(Keys, key_file_has_mode_0600) {
  TempDir dir;
  save_key_file(dir / "key", MasterKey::generate());
  struct stat info {};
  ASSERT_EQ(::stat((dir / "key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600U);
}

TEST(Keys, save_onto_an_existing_file_is_exists_and_keeps_it) {
  TempDir dir;
  const MasterKey first = MasterKey::generate();
  save_key_file(dir / "key", first);
  const std::string before = read_text_file(dir / "key");
  EXPECT_EQ(error_kind([&] { save_key_file(dir / "key", MasterKey::generate()); }), ErrorKind::exists);
  EXPECT_EQ(read_text_file(dir / "key"), before);
  EXPECT_EQ(load_key_file(dir / "key").bytes, first.bytes);
  EXPECT_TRUE(testing::temporaries_under(dir.path()).empty());
}

TEST(Keys, load_of_a_missing_file_is_crypto_and_says_missing) {
  TempDir dir;
  EXPECT_EQ(error_kind([&] { load_key_file(dir / "key"); }), ErrorKind::crypto);
  const std::string message = error_message([&] { load_key_file(dir / "key"); });
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find(dir / "key"), std::string::npos) << message;
}

TEST(Keys, load_of_an_unreadable_path_is_crypto) {
  TempDir dir;
  EXPECT_EQ(error_kind([&] { load_key_file(dir.path()); }), ErrorKind::crypto);  // a directory
}

TEST(Keys, a_changed_digit_is_a_checksum_mismatch) {
  TempDir dir;
  save_key_file(dir / "key", fixed_key());
  std::vector<std::string> lines = lines_of(read_text_file(dir / "key"));
  const std::size_t at = key_line(lines);
  ASSERT_LT(at, lines.size());
  for (const std::size_t digit : {std::size_t{0}, std::size_t{31}, std::size_t{63}}) {
    std::vector<std::string> changed = lines;
    changed[at][digit] = changed[at][digit] == '0' ? '1' : '0';
    write_text_file(dir / "damaged", join_lines(changed));
    expect_damaged(dir / "damaged", "digit " + std::to_string(digit));
    const std::string message = error_message([&] { load_key_file(dir / "damaged"); });
    EXPECT_NE(message.find("checksum"), std::string::npos) << message;
    // The message never shows the key.
    EXPECT_EQ(message.find(lines[at]), std::string::npos);
    EXPECT_EQ(message.find(changed[at]), std::string::npos);
  }
  // A changed checksum digit is caught the same way.
  std::vector<std::string> changed = lines;
  changed[at + 1][0] = changed[at + 1][0] == '0' ? '1' : '0';
  write_text_file(dir / "damaged", join_lines(changed));
  expect_damaged(dir / "damaged", "checksum digit");
}

TEST(Keys, damaged_files_are_crypto) {
  TempDir dir;
  save_key_file(dir / "key", fixed_key());
  const std::string good = read_text_file(dir / "key");
  const std::vector<std::string> lines = lines_of(good);
  const std::size_t at = key_line(lines);
  ASSERT_LT(at, lines.size());

  // Truncated at every length (the whole file minus its final newline still loads).
  for (std::size_t length = 0; length + 1 < good.size(); ++length) {
    write_text_file(dir / "damaged", good.substr(0, length));
    EXPECT_EQ(error_kind([&] { load_key_file(dir / "damaged"); }), ErrorKind::crypto) << "length " << length;
  }
  write_text_file(dir / "damaged", good.substr(0, good.size() - 1));
  EXPECT_EQ(load_key_file(dir / "damaged").bytes, fixed_key().bytes);

  std::vector<std::string> wrong_magic = lines;
  wrong_magic[at - 1] = "mybackup-key-v2";
  write_text_file(dir / "damaged", join_lines(wrong_magic));
  expect_damaged(dir / "damaged", "wrong magic");

  std::vector<std::string> not_hex = lines;
  not_hex[at][10] = 'g';
  write_text_file(dir / "damaged", join_lines(not_hex));
  expect_damaged(dir / "damaged", "not hex");

  std::vector<std::string> short_key = lines;
  short_key[at].pop_back();
  write_text_file(dir / "damaged", join_lines(short_key));
  expect_damaged(dir / "damaged", "63 digits");

  std::vector<std::string> extra_line = lines;
  extra_line.push_back("something else");
  write_text_file(dir / "damaged", join_lines(extra_line));
  expect_damaged(dir / "damaged", "extra line");

  write_text_file(dir / "damaged", "");
  expect_damaged(dir / "damaged", "empty");
}

TEST(Keys, comments_blank_lines_and_crlf_are_tolerated) {
  TempDir dir;
  save_key_file(dir / "key", fixed_key());
  const std::vector<std::string> lines = lines_of(read_text_file(dir / "key"));
  std::string edited = "# copied from my password manager\n\n";
  for (const std::string& line : lines) {
    edited += line + "\r\n";
  }
  write_text_file(dir / "edited", edited);
  EXPECT_EQ(load_key_file(dir / "edited").bytes, fixed_key().bytes);
}

TEST(Keys, derive_is_deterministic) {
  const MasterKey key = fixed_key();
  const KeySet a = KeySet::derive(key);
  const KeySet b = KeySet::derive(key);
  EXPECT_EQ(a.enc_key, b.enc_key);
  EXPECT_EQ(a.id_key, b.id_key);
  EXPECT_EQ(a.gear_seed, b.gear_seed);
  EXPECT_EQ(a.check_key, b.check_key);
  // And matches the documented HKDF construction.
  const Bytes expected_enc = hkdf_sha256(key.bytes, as_bytes("mybackup-v1"), as_bytes("mybackup enc"), 32);
  EXPECT_EQ(Bytes(a.enc_key.begin(), a.enc_key.end()), expected_enc);
  const Bytes expected_id = hkdf_sha256(key.bytes, as_bytes("mybackup-v1"), as_bytes("mybackup id"), 32);
  EXPECT_EQ(Bytes(a.id_key.begin(), a.id_key.end()), expected_id);
}

TEST(Keys, subkeys_differ_from_each_other_and_from_the_master_key) {
  const MasterKey key = fixed_key();
  const KeySet keys = KeySet::derive(key);
  const std::set<std::string> distinct = {to_hex(key.bytes), to_hex(keys.enc_key), to_hex(keys.id_key),
                                          to_hex(keys.gear_seed), to_hex(keys.check_key)};
  EXPECT_EQ(distinct.size(), 5U);
  // Another master key gives other subkeys.
  const KeySet other = KeySet::derive(MasterKey::generate());
  EXPECT_NE(other.enc_key, keys.enc_key);
  EXPECT_NE(other.id_key, keys.id_key);
  EXPECT_NE(other.gear_seed, keys.gear_seed);
  EXPECT_NE(other.check_key, keys.check_key);
}

TEST(Keys, generated_keys_are_random) {
  EXPECT_NE(MasterKey::generate().bytes, MasterKey::generate().bytes);
  EXPECT_NE(MasterKey::generate().bytes, MasterKey{}.bytes);
}

}  // namespace
}  // namespace mybackup
