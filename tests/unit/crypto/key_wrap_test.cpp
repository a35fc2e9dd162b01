#include "mybackup/crypto/key_wrap.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::error_message;
using testing::files_under;
using testing::parse_json_object;
using testing::read_text_file;
using testing::TempDir;
using testing::write_text_file;

// Low cost, so the suite stays fast: 128 * 8 * 16 bytes of memory.
const ScryptParams kCheap{16, 8, 1};
const std::string kPassphrase = "correct horse battery staple";

WrapDetails details(const std::string& label = "test") { return WrapDetails{"2026-11-21T13:43:00Z", "testhost", label}; }

WrappedKey wrap(const MasterKey& key, const std::string& passphrase = kPassphrase, const std::string& label = "test") {
  return wrap_master_key(key, passphrase, kCheap, details(label));
}

/// `text` with the value of the JSON member `name` replaced by `value` (raw JSON).
std::string with_member(const std::string& text, const std::string& name, const std::string& value) {
  const std::string quoted = "\"" + name + "\": ";
  const auto at = text.find(quoted);
  EXPECT_NE(at, std::string::npos) << name << " in " << text;
  const auto start = at + quoted.size();
  const auto end = text.find_first_of(",\n}", start);
  std::string changed = text;
  changed.replace(start, end - start, value);
  return changed;
}

/// The value of member `name` as text: a string decoded, anything else as its JSON.
std::string member(const std::string& text, const std::string& name) {
  const nlohmann::json value = parse_json_object(text).at(name);
  return value.is_string() ? value.get<std::string>() : value.dump();
}

/// A hex string with its first digit changed.
std::string flip_first_digit(const std::string& hex) { return (hex[0] == '0' ? "1" : "0") + hex.substr(1); }

// ---------------------------------------------------------------- one wrapped key

TEST(KeyWrap, round_trip) {
  const MasterKey key = MasterKey::generate();
  const WrappedKey wrapped = wrap(key);
  EXPECT_EQ(unwrap_master_key(wrapped.text, kPassphrase).bytes, key.bytes);
}

TEST(KeyWrap, production_parameters_work_within_openssl_memory_limit) {
  // N = 2^15, r = 8 needs 32 MiB + 1 KiB: more than OpenSSL's default limit, so this proves the
  // explicit limit is passed.
  const MasterKey key = MasterKey::generate();
  const ScryptParams production;
  EXPECT_EQ(production.n, 32768U);
  EXPECT_EQ(production.r, 8U);
  EXPECT_EQ(production.p, 1U);
  EXPECT_TRUE(production.acceptable());
  const WrappedKey wrapped = wrap_master_key(key, kPassphrase, production, details());
  EXPECT_EQ(unwrap_master_key(wrapped.text, kPassphrase).bytes, key.bytes);
  EXPECT_EQ(member(wrapped.text, "N"), "32768");
}

TEST(KeyWrap, format_is_as_documented) {
  const MasterKey key = MasterKey::generate();
  const WrappedKey wrapped = wrap(key, kPassphrase, "offsite \"safe\"");
  const auto members = parse_json_object(wrapped.text);  // strict JSON
  EXPECT_EQ(members.at("format"), "mybackup-wrapped-key");
  EXPECT_EQ(members.at("version"), 1);
  EXPECT_EQ(members.at("kdf"), "scrypt");
  EXPECT_EQ(members.at("N"), 16);
  EXPECT_EQ(members.at("r"), 8);
  EXPECT_EQ(members.at("p"), 1);
  EXPECT_EQ(members.at("salt").get<std::string>().size(), 32U);
  EXPECT_EQ(members.at("nonce").get<std::string>().size(), 24U);
  EXPECT_EQ(members.at("sealed").get<std::string>().size(), 96U);
  EXPECT_EQ(members.at("created"), "2026-11-21T13:43:00Z");
  EXPECT_EQ(members.at("host"), "testhost");
  EXPECT_EQ(members.at("label"), "offsite \"safe\"");
  EXPECT_EQ(members.size(), 12U);
  EXPECT_EQ(wrapped.id, to_hex(Sha256::hash(as_bytes(wrapped.text))).substr(0, 16));
  EXPECT_EQ(wrapped_key_object(wrapped.id), "keys/" + wrapped.id + ".json");
  // The key itself is nowhere in the clear.
  EXPECT_EQ(wrapped.text.find(to_hex(key.bytes)), std::string::npos);

  const WrappedKeyInfo info = describe_wrapped_key(wrapped.text);
  EXPECT_EQ(info.id, wrapped.id);
  EXPECT_EQ(info.created, "2026-11-21T13:43:00Z");
  EXPECT_EQ(info.host, "testhost");
  EXPECT_EQ(info.label, "offsite \"safe\"");
  EXPECT_EQ(info.params.n, 16U);
  EXPECT_FALSE(info.damaged);
}

TEST(KeyWrap, same_key_and_passphrase_wrap_differently_each_time) {
  const MasterKey key = MasterKey::generate();
  const WrappedKey a = wrap(key);
  const WrappedKey b = wrap(key);
  EXPECT_NE(a.id, b.id);
  EXPECT_NE(member(a.text, "salt"), member(b.text, "salt"));
  EXPECT_NE(member(a.text, "nonce"), member(b.text, "nonce"));
}

TEST(KeyWrap, wrong_passphrase_is_wrong_key_and_names_no_secret) {
  const MasterKey key = MasterKey::generate();
  const WrappedKey wrapped = wrap(key);
  EXPECT_EQ(error_kind([&] { unwrap_master_key(wrapped.text, "Correct horse battery staple"); }), ErrorKind::wrong_key);
  EXPECT_EQ(error_kind([&] { unwrap_master_key(wrapped.text, ""); }), ErrorKind::wrong_key);
  const std::string message = error_message([&] { unwrap_master_key(wrapped.text, "guess-123"); });
  EXPECT_NE(message.find(wrapped.id), std::string::npos) << message;
  EXPECT_EQ(message.find("guess-123"), std::string::npos) << message;
  EXPECT_EQ(message.find(to_hex(key.bytes)), std::string::npos) << message;
}

TEST(KeyWrap, tampered_authenticated_fields_are_wrong_key) {
  const MasterKey key = MasterKey::generate();
  const std::string text = wrap(key).text;
  const auto expect_wrong_key = [&](const std::string& changed, const std::string& why) {
    EXPECT_EQ(error_kind([&] { unwrap_master_key(changed, kPassphrase); }), ErrorKind::wrong_key) << why;
  };
  expect_wrong_key(with_member(text, "salt", "\"" + flip_first_digit(member(text, "salt")) + "\""), "salt");
  expect_wrong_key(with_member(text, "nonce", "\"" + flip_first_digit(member(text, "nonce")) + "\""), "nonce");
  expect_wrong_key(with_member(text, "sealed", "\"" + flip_first_digit(member(text, "sealed")) + "\""), "sealed");
  const std::string sealed = member(text, "sealed");
  expect_wrong_key(with_member(text, "sealed", "\"" + sealed.substr(0, 94) + (sealed[94] == '0' ? "1" : "0") + sealed[95] + "\""),
                   "tag");
  expect_wrong_key(with_member(text, "N", "32"), "N");
  expect_wrong_key(with_member(text, "r", "4"), "r");
  expect_wrong_key(with_member(text, "p", "2"), "p");
}

TEST(KeyWrap, damaged_structure_is_corrupt) {
  const std::string text = wrap(MasterKey::generate()).text;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {"not json at all {", "garbage"},
      {"[1, 2]", "an array"},
      {text.substr(0, text.size() / 2), "cut short"},
      {with_member(text, "format", "\"mybackup-key\""), "other format"},
      {with_member(text, "version", "2"), "future version"},
      {with_member(text, "kdf", "\"argon2\""), "other kdf"},
      {with_member(text, "N", "3"), "N not a power of two"},
      {with_member(text, "N", "1"), "N too small"},
      {with_member(text, "N", "1099511627776"), "N = 2^40: gigabytes of memory"},
      {with_member(text, "N", "-16"), "N negative"},
      {with_member(text, "r", "0"), "r zero"},
      {with_member(text, "r", "100000"), "r huge"},
      {with_member(text, "p", "0"), "p zero"},
      {with_member(text, "N", "\"many\""), "N not a number"},
      {with_member(text, "salt", "\"00ff\""), "short salt"},
      {with_member(text, "salt", "\"zz" + member(text, "salt").substr(2) + "\""), "salt not hex"},
      {with_member(text, "nonce", "\"00\""), "short nonce"},
      {with_member(text, "sealed", "\"" + member(text, "sealed").substr(0, 64) + "\""), "sealed without tag"},
      {with_member(text, "sealed", "\"" + member(text, "sealed").substr(1) + "\""), "odd hex"},
  };
  for (const auto& [changed, why] : cases) {
    // Init-captures: clang before 16 cannot capture a structured binding (C++20 allows it).
    EXPECT_EQ(error_kind([&changed = changed] { unwrap_master_key(changed, kPassphrase); }), ErrorKind::corrupt)
        << why;
    EXPECT_EQ(error_kind([&changed = changed] { describe_wrapped_key(changed); }), ErrorKind::corrupt) << why;
  }
  // A missing field.
  std::string no_salt = text;
  const auto at = no_salt.find("\"salt\"");
  no_salt.erase(at, no_salt.find('\n', at) - at + 1);
  EXPECT_EQ(error_kind([&] { unwrap_master_key(no_salt, kPassphrase); }), ErrorKind::corrupt);
}

TEST(KeyWrap, any_changed_character_is_caught_or_harmless) {
  // Every single-character change either fails with wrong_key or corrupt, or (in the descriptive
  // fields) still opens the very same key. Nothing crashes, nothing else is thrown.
  const MasterKey key = MasterKey::generate();
  const std::string text = wrap(key).text;
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string changed = text;
    changed[i] = changed[i] == '7' ? '8' : '7';
    try {
      EXPECT_EQ(unwrap_master_key(changed, kPassphrase).bytes, key.bytes) << "position " << i;
    } catch (const Error& error) {
      EXPECT_TRUE(error.kind() == ErrorKind::wrong_key || error.kind() == ErrorKind::corrupt)
          << "position " << i << ": " << to_string(error.kind()) << ": " << error.what();
    }
  }
}

TEST(KeyWrap, bad_requests_are_usage_errors) {
  const MasterKey key = MasterKey::generate();
  EXPECT_EQ(error_kind([&] { wrap_master_key(key, "", kCheap, details()); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([&] { wrap_master_key(key, kPassphrase, ScryptParams{12, 8, 1}, details()); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([&] { wrap_master_key(key, kPassphrase, ScryptParams{std::uint64_t{1} << 21, 8, 1}, details()); }),
            ErrorKind::usage);
  EXPECT_EQ(error_kind([&] { wrap_master_key(key, kPassphrase, kCheap, details("two\nlines")); }), ErrorKind::usage);
}

TEST(KeyWrap, scrypt_parameter_bounds) {
  EXPECT_TRUE((ScryptParams{2, 1, 1}.acceptable()));
  EXPECT_TRUE((ScryptParams{std::uint64_t{1} << 20, 8, 1}.acceptable()));  // 128 * r * N = 1 GiB
  EXPECT_EQ((ScryptParams{std::uint64_t{1} << 20, 8, 1}.memory()), 128U * 8U * ((1U << 20) + 1U));
  EXPECT_FALSE((ScryptParams{std::uint64_t{1} << 20, 16, 1}.acceptable()));  // 2 GiB
  EXPECT_FALSE((ScryptParams{0, 8, 1}.acceptable()));
  EXPECT_FALSE((ScryptParams{48, 8, 1}.acceptable()));
  EXPECT_FALSE((ScryptParams{16, 33, 1}.acceptable()));
  EXPECT_FALSE((ScryptParams{16, 8, 17}.acceptable()));
}

// ---------------------------------------------------------------- wrapped keys in a backend

TEST(WrappedKeys, several_passphrases_unlock_the_same_master_key) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey a = wrap(key, "first passphrase", "a");
  const WrappedKey b = wrap(key, "second passphrase", "b");
  add_wrapped_key(*backend, a);
  add_wrapped_key(*backend, b);
  EXPECT_EQ(files_under(dir.path()), (std::vector<std::string>{"keys/" + std::min(a.id, b.id) + ".json",
                                                                "keys/" + std::max(a.id, b.id) + ".json"}));
  EXPECT_EQ(read_text_file(dir / ("keys/" + a.id + ".json")), a.text);

  EXPECT_EQ(unlock_with_passphrase(*backend, "first passphrase").bytes, key.bytes);
  EXPECT_EQ(unlock_with_passphrase(*backend, "second passphrase").bytes, key.bytes);
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(*backend, "third passphrase"); }), ErrorKind::wrong_key);
  const std::string message = error_message([&] { unlock_with_passphrase(*backend, "third passphrase"); });
  EXPECT_NE(message.find("2 wrapped keys"), std::string::npos) << message;
  EXPECT_NE(message.find("--key-file"), std::string::npos) << message;
  EXPECT_EQ(message.find("third passphrase"), std::string::npos) << message;

  const std::vector<WrappedKeyInfo> keys = list_wrapped_keys(*backend);
  ASSERT_EQ(keys.size(), 2U);
  EXPECT_EQ(keys[0].id, std::min(a.id, b.id));  // same creation time: by id
  EXPECT_EQ(keys[0].host, "testhost");
  EXPECT_EQ(keys[0].label, keys[0].id == a.id ? "a" : "b");
}

TEST(WrappedKeys, no_wrapped_keys_is_not_found_with_a_hint) {
  TempDir dir;
  auto backend = make_local_backend(dir / "absent");
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(*backend, kPassphrase); }), ErrorKind::not_found);
  EXPECT_NE(error_message([&] { unlock_with_passphrase(*backend, kPassphrase); }).find("--key-file"), std::string::npos);
  EXPECT_TRUE(list_wrapped_keys(*backend).empty());
}

TEST(WrappedKeys, adding_the_same_key_twice_is_harmless) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const WrappedKey wrapped = wrap(MasterKey::generate());
  add_wrapped_key(*backend, wrapped);
  add_wrapped_key(*backend, wrapped);
  EXPECT_EQ(list_wrapped_keys(*backend).size(), 1U);
  // A key whose id does not match its text is refused.
  WrappedKey forged = wrapped;
  forged.text += " ";
  EXPECT_EQ(error_kind([&] { add_wrapped_key(*backend, forged); }), ErrorKind::usage);
  // A different file under that name is reported, not overwritten.
  write_text_file(dir / ("keys/" + wrapped.id + ".json"), "changed");
  EXPECT_EQ(error_kind([&] { add_wrapped_key(*backend, wrapped); }), ErrorKind::corrupt);
  EXPECT_EQ(read_text_file(dir / ("keys/" + wrapped.id + ".json")), "changed");
}

TEST(WrappedKeys, remove_refuses_the_last_key_unless_allowed) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey a = wrap(key, "first passphrase");
  const WrappedKey b = wrap(key, "second passphrase");
  add_wrapped_key(*backend, a);
  add_wrapped_key(*backend, b);

  remove_wrapped_key(*backend, a.id, LastKey::refuse);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"keys/" + b.id + ".json"});
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(*backend, "first passphrase"); }), ErrorKind::wrong_key);
  EXPECT_EQ(unlock_with_passphrase(*backend, "second passphrase").bytes, key.bytes);

  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, b.id, LastKey::refuse); }), ErrorKind::usage);
  EXPECT_NE(error_message([&] { remove_wrapped_key(*backend, b.id, LastKey::refuse); }).find("--force"), std::string::npos);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"keys/" + b.id + ".json"});

  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, a.id, LastKey::allow); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, "../mybackup-repo", LastKey::allow); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, b.id.substr(0, 8), LastKey::allow); }), ErrorKind::not_found);

  remove_wrapped_key(*backend, b.id, LastKey::allow);
  EXPECT_TRUE(list_wrapped_keys(*backend).empty());
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(*backend, "second passphrase"); }), ErrorKind::not_found);
}

TEST(WrappedKeys, damaged_and_stray_files_do_not_hide_good_keys) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey good = wrap(key);
  add_wrapped_key(*backend, good);
  const std::string damaged_id = "0123456789abcdef";
  backend->put("keys/" + damaged_id + ".json", as_bytes("{\"format\": \"mybackup-wrapped-key\""), Overwrite::no);
  backend->put("keys/README.txt", as_bytes("not a key"), Overwrite::no);

  const std::vector<WrappedKeyInfo> keys = list_wrapped_keys(*backend);
  ASSERT_EQ(keys.size(), 2U);
  const auto& bad = keys[0].id == damaged_id ? keys[0] : keys[1];
  EXPECT_EQ(bad.id, damaged_id);
  EXPECT_TRUE(bad.damaged);
  EXPECT_EQ(unlock_with_passphrase(*backend, kPassphrase).bytes, key.bytes);
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(*backend, "wrong"); }), ErrorKind::wrong_key);

  // A damaged key can be removed; with only damaged ones left, unlocking says so.
  remove_wrapped_key(*backend, good.id, LastKey::refuse);
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(*backend, kPassphrase); }), ErrorKind::corrupt);
  remove_wrapped_key(*backend, damaged_id, LastKey::allow);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"keys/README.txt"});
}

TEST(WrappedKeys, pending_keys_move_to_the_destination_once) {
  TempDir dir;
  auto home = make_local_backend(dir / "home", 0600);
  auto destination = make_local_backend(dir / "dest");
  const MasterKey key = MasterKey::generate();
  const WrappedKey a = wrap(key, "first passphrase");
  const WrappedKey b = wrap(key, "second passphrase");
  add_wrapped_key(*home, a);
  add_wrapped_key(*home, b);
  struct stat info {};
  ASSERT_EQ(::stat((dir / ("home/keys/" + a.id + ".json")).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600U);
  ASSERT_EQ(::stat((dir / "home/keys").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700U);

  add_wrapped_key(*destination, a);  // already there (an earlier move cut short)
  std::vector<std::string> moved = move_wrapped_keys(*home, *destination);
  std::sort(moved.begin(), moved.end());
  EXPECT_EQ(moved, (std::vector<std::string>{std::min(a.id, b.id), std::max(a.id, b.id)}));
  EXPECT_TRUE(list_wrapped_keys(*home).empty());
  EXPECT_EQ(list_wrapped_keys(*destination).size(), 2U);
  EXPECT_EQ(read_text_file(dir / ("dest/keys/" + b.id + ".json")), b.text);
  EXPECT_EQ(unlock_with_passphrase(*destination, "second passphrase").bytes, key.bytes);
  EXPECT_TRUE(move_wrapped_keys(*home, *destination).empty());

  // A different file under the same name at the destination: ours stays pending, theirs untouched.
  const WrappedKey c = wrap(key, "third passphrase");
  add_wrapped_key(*home, c);
  destination->put(wrapped_key_object(c.id), as_bytes("something else"), Overwrite::no);
  EXPECT_TRUE(move_wrapped_keys(*home, *destination).empty());
  EXPECT_EQ(list_wrapped_keys(*home).size(), 1U);
  EXPECT_EQ(read_text_file(dir / ("dest/keys/" + c.id + ".json")), "something else");
}

}  // namespace
}  // namespace mybackup
