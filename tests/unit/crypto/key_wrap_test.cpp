#include "mybackup/crypto/key_wrap.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "common/planted_keys.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::error_message;
using testing::files_under;
using testing::parse_json_object;
using testing::plant_wrapped_key;
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

/// Plans, then unlocks (the warnings are checked by the tests that expect some).
MasterKey unlock(const Backend& backend, const std::string& passphrase) {
  return unlock_with_passphrase(plan_unlock(backend), passphrase);
}

/// True if some line of `lines` contains every one of `parts`.
bool some_line_has(const std::vector<std::string>& lines, const std::vector<std::string>& parts) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& line) {
    return std::all_of(parts.begin(), parts.end(), [&](const std::string& part) { return line.find(part) != std::string::npos; });
  });
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---------------------------------------------------------------- one wrapped key

TEST(KeyWrap, round_trip) {
  const MasterKey key = MasterKey::generate();
  const WrappedKey wrapped = wrap(key);
  EXPECT_EQ(unwrap_master_key(wrapped.text, kPassphrase).bytes, key.bytes);
}

TEST(KeyWrap, production_parameters_work_within_openssl_memory_limit) {
  // N = 2^17, r = 8 (OWASP's scrypt recommendation) needs 128 MiB + 1 KiB: more than OpenSSL's
  // default limit (32 MiB), so this proves the explicit limit is passed.
  const MasterKey key = MasterKey::generate();
  const ScryptParams production;
  EXPECT_EQ(production.n, 131072U);
  EXPECT_EQ(production.r, 8U);
  EXPECT_EQ(production.p, 1U);
  EXPECT_TRUE(production.acceptable());
  const WrappedKey wrapped = wrap_master_key(key, kPassphrase, production, details());
  EXPECT_EQ(unwrap_master_key(wrapped.text, kPassphrase).bytes, key.bytes);
  EXPECT_EQ(member(wrapped.text, "N"), "131072");
  EXPECT_EQ(production.memory(), 128U * 8U * (131072U + 1U));
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
      {with_member(text, "N", "-16"), "N negative"},
      {with_member(text, "N", "16.5"), "N fractional"},
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

TEST(KeyWrap, refused_parameters_are_corrupt_before_any_derivation) {
  const std::string text = wrap(MasterKey::generate()).text;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with_member(text, "N", "3"), "N must be a power of two"},
      {with_member(text, "N", "1"), "N must be a power of two"},
      {with_member(text, "N", "1099511627776"), "N must be a power of two from 2 to 1048576"},
      {with_member(text, "r", "0"), "r must be from 1 to 32"},
      {with_member(text, "r", "100000"), "r must be from 1 to 32"},
      {with_member(text, "p", "0"), "p from 1 to 16"},
      // Within the old limits (1 GiB), now over the cap: three of these took seconds each.
      {with_member(text, "N", "1048576"), "1024 MiB of memory, over this program's cap of 256 MiB"},
      {with_member(with_member(text, "N", "131072"), "p", "5"), "5 times the default work, over this program's cap of 4"},
  };
  for (const auto& [changed, why] : cases) {
    const auto start = std::chrono::steady_clock::now();
    const std::string message = error_message([&changed = changed] { unwrap_master_key(changed, kPassphrase); });
    EXPECT_LT(seconds_since(start), 0.5) << why << ": refused before deriving anything";
    EXPECT_EQ(error_kind([&changed = changed] { unwrap_master_key(changed, kPassphrase); }), ErrorKind::corrupt) << why;
    EXPECT_NE(message.find(why), std::string::npos) << message;
    EXPECT_NE(message.find(wrapped_key_id(changed)), std::string::npos) << message;
    // Described as stored (a listing shows what the file asks for).
    EXPECT_NO_THROW(describe_wrapped_key(changed)) << why;
  }
}

TEST(KeyWrap, damage_messages_quote_nothing_from_the_file) {
  // The file may come from anyone who can write to the destination; its text ends up on a terminal.
  const std::string text = wrap(MasterKey::generate()).text;
  const std::string escape = "\x1b]0;owned\x07";
  for (const std::string& changed : {"{\"format\": \"" + escape + "\"", with_member(text, "kdf", "\"" + escape + "\""),
                                     with_member(text, "version", "\"" + escape + "\""), std::string("[\"") + escape + "\"]x"}) {
    const std::string message = error_message([&] { describe_wrapped_key(changed); });
    EXPECT_EQ(message.find("owned"), std::string::npos) << message;
    EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
  }
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
  EXPECT_EQ(error_kind([&] { wrap_master_key(key, kPassphrase, ScryptParams{std::uint64_t{1} << 19, 8, 1}, details()); }),
            ErrorKind::usage);
  EXPECT_EQ(error_kind([&] { wrap_master_key(key, kPassphrase, kCheap, details("two\nlines")); }), ErrorKind::usage);
}

TEST(KeyWrap, scrypt_parameter_bounds) {
  const std::uint64_t k17 = std::uint64_t{1} << 17;
  EXPECT_EQ(ScryptParams{}.work(), k17 * 8U);
  EXPECT_EQ(kMaxScryptWork, 4 * ScryptParams{}.work());
  EXPECT_EQ(kMaxScryptMemory, 256U << 20U);
  EXPECT_TRUE((ScryptParams{2, 1, 1}.acceptable()));
  EXPECT_TRUE((ScryptParams{2 * k17, 8, 1}.acceptable()));  // 128 * r * N = 256 MiB, twice the default work
  EXPECT_TRUE((ScryptParams{k17, 8, 4}.acceptable()));      // 128 MiB, four times the default work
  EXPECT_TRUE((ScryptParams{8 * k17, 1, 1}.acceptable()));  // N = 2^20 with r = 1: 128 MiB
  EXPECT_EQ((ScryptParams{std::uint64_t{1} << 20, 8, 1}.memory()), 128U * 8U * ((1U << 20) + 1U));
  EXPECT_FALSE((ScryptParams{4 * k17, 8, 1}.acceptable()));  // 512 MiB
  EXPECT_FALSE((ScryptParams{k17, 16, 3}.acceptable()));     // 256 MiB, six times the work
  EXPECT_FALSE((ScryptParams{k17, 8, 5}.acceptable()));      // five times the work
  EXPECT_FALSE((ScryptParams{std::uint64_t{1} << 20, 16, 1}.acceptable()));  // 2 GiB
  EXPECT_FALSE((ScryptParams{std::uint64_t{1} << 21, 1, 1}.acceptable()));   // N over 2^20
  EXPECT_FALSE((ScryptParams{0, 8, 1}.acceptable()));
  EXPECT_FALSE((ScryptParams{48, 8, 1}.acceptable()));
  EXPECT_FALSE((ScryptParams{16, 33, 1}.acceptable()));
  EXPECT_FALSE((ScryptParams{16, 8, 17}.acceptable()));
  EXPECT_EQ(ScryptParams{}.refusal(), "");
  EXPECT_EQ((ScryptParams{4 * k17, 8, 1}.refusal()),
            "scrypt N=524288, r=8, p=1 needs 512 MiB of memory, over this program's cap of 256 MiB");
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

  EXPECT_EQ(unlock(*backend, "first passphrase").bytes, key.bytes);
  EXPECT_EQ(unlock(*backend, "second passphrase").bytes, key.bytes);
  EXPECT_EQ(error_kind([&] { unlock(*backend, "third passphrase"); }), ErrorKind::wrong_key);
  const std::string message = error_message([&] { unlock(*backend, "third passphrase"); });
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
  EXPECT_EQ(error_kind([&] { unlock(*backend, kPassphrase); }), ErrorKind::not_found);
  EXPECT_NE(error_message([&] { unlock(*backend, kPassphrase); }).find("--key-file"), std::string::npos);
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
  EXPECT_EQ(error_kind([&] { unlock(*backend, "first passphrase"); }), ErrorKind::wrong_key);
  EXPECT_EQ(unlock(*backend, "second passphrase").bytes, key.bytes);

  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, b.id, LastKey::refuse); }), ErrorKind::usage);
  EXPECT_NE(error_message([&] { remove_wrapped_key(*backend, b.id, LastKey::refuse); }).find("--force"), std::string::npos);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"keys/" + b.id + ".json"});

  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, a.id, LastKey::allow); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, "../mybackup-repo", LastKey::allow); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, b.id.substr(0, 8), LastKey::allow); }), ErrorKind::not_found);

  remove_wrapped_key(*backend, b.id, LastKey::allow);
  EXPECT_TRUE(list_wrapped_keys(*backend).empty());
  EXPECT_EQ(error_kind([&] { unlock(*backend, "second passphrase"); }), ErrorKind::not_found);
}

TEST(WrappedKeys, damaged_and_stray_files_do_not_hide_good_keys) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey good = wrap(key);
  add_wrapped_key(*backend, good);
  const std::string damaged_text = "{\"format\": \"mybackup-wrapped-key\"";
  const std::string damaged_id = wrapped_key_id(damaged_text);
  backend->put("keys/0123456789abcdef.json", as_bytes(damaged_text), Overwrite::no);
  backend->put("keys/README.txt", as_bytes("not a key"), Overwrite::no);

  const std::vector<WrappedKeyInfo> keys = list_wrapped_keys(*backend);
  ASSERT_EQ(keys.size(), 2U);
  const auto& bad = keys[0].id == damaged_id ? keys[0] : keys[1];
  EXPECT_EQ(bad.id, damaged_id);  // from its content, not its name
  EXPECT_EQ(bad.object, "keys/0123456789abcdef.json");
  EXPECT_TRUE(bad.damaged);
  EXPECT_NE(bad.problem.find(dir / "keys/0123456789abcdef.json"), std::string::npos) << bad.problem;
  EXPECT_NE(bad.problem.find("damaged"), std::string::npos) << bad.problem;
  EXPECT_NE(bad.problem.find("key remove " + damaged_id), std::string::npos) << bad.problem;
  const auto& fine = keys[0].id == damaged_id ? keys[1] : keys[0];
  EXPECT_EQ(fine.problem, "");
  EXPECT_EQ(unlock(*backend, kPassphrase).bytes, key.bytes);
  EXPECT_EQ(error_kind([&] { unlock(*backend, "wrong"); }), ErrorKind::wrong_key);
  const UnlockPlan plan = plan_unlock(*backend);
  EXPECT_EQ(plan.files, 2U);
  ASSERT_EQ(plan.keys.size(), 1U);
  EXPECT_EQ(plan.warnings, std::vector<std::string>{bad.problem});

  // A damaged key does not count as another way in: removing the good one is the last one.
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, good.id, LastKey::refuse); }), ErrorKind::usage);
  remove_wrapped_key(*backend, good.id, LastKey::allow);
  // With only damaged ones left, unlocking says so; the damaged one goes without --force.
  EXPECT_EQ(error_kind([&] { unlock(*backend, kPassphrase); }), ErrorKind::corrupt);
  EXPECT_NE(error_message([&] { unlock(*backend, kPassphrase); }).find("see the warnings"), std::string::npos);
  remove_wrapped_key(*backend, damaged_id, LastKey::refuse);
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
  EXPECT_EQ(unlock(*destination, "second passphrase").bytes, key.bytes);
  EXPECT_TRUE(move_wrapped_keys(*home, *destination).empty());

  // A different file under the same name at the destination: ours stays pending, theirs untouched.
  const WrappedKey c = wrap(key, "third passphrase");
  add_wrapped_key(*home, c);
  destination->put(wrapped_key_object(c.id), as_bytes("something else"), Overwrite::no);
  EXPECT_TRUE(move_wrapped_keys(*home, *destination).empty());
  EXPECT_EQ(list_wrapped_keys(*home).size(), 1U);
  EXPECT_EQ(read_text_file(dir / ("dest/keys/" + c.id + ".json")), "something else");
}

// ---------------------------------------------------------------- a hostile destination (issue 11, item 9)

// Three planted keys of a high cost, within the caps, used to be tried before the real one: each
// cost a full derivation (0.01 s became 7 s). Cheapest first, the real key is tried first.
TEST(UnlockAttack, planted_expensive_keys_are_tried_after_the_real_one) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey real = wrap(key);
  add_wrapped_key(*backend, real);
  // 2^14 x 8 (16 MiB) stands for "dear": far dearer than kCheap, cheap enough for a unit test.
  const ScryptParams dear{std::uint64_t{1} << 14, 8, 1};
  std::vector<std::string> planted;
  for (int i = 0; i < 3; ++i) {
    planted.push_back(plant_wrapped_key(*backend, dear, real.id));  // first in name order
  }
  const UnlockPlan plan = plan_unlock(*backend);
  EXPECT_TRUE(plan.warnings.empty()) << plan.warnings.front();  // within the caps: nothing to report
  ASSERT_EQ(plan.keys.size(), 4U);
  EXPECT_EQ(plan.keys[0].id, real.id);
  for (std::size_t i = 1; i < plan.keys.size(); ++i) {
    EXPECT_NE(std::find(planted.begin(), planted.end(), plan.keys[i].id), planted.end());
  }

  // Timed against one planted derivation on this machine, so a loaded machine does not matter:
  // the unlock must not have paid for one.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(error_kind([&] { unwrap_master_key(plan.keys[1].text, kPassphrase); }), ErrorKind::wrong_key);
  const double one_dear = seconds_since(start);
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(unlock_with_passphrase(plan, kPassphrase).bytes, key.bytes);
  EXPECT_LT(seconds_since(start), one_dear / 2) << "one planted derivation takes " << one_dear << " s";
}

TEST(UnlockAttack, over_cap_keys_are_named_and_never_derived) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey real = wrap(key);
  add_wrapped_key(*backend, real);
  const std::string huge = plant_wrapped_key(*backend, ScryptParams{std::uint64_t{1} << 20, 8, 1}, real.id);  // 1 GiB
  const std::string dear = plant_wrapped_key(*backend, ScryptParams{std::uint64_t{1} << 17, 8, 8}, real.id);  // 8x the work

  const UnlockPlan plan = plan_unlock(*backend);
  ASSERT_EQ(plan.keys.size(), 1U);
  EXPECT_EQ(plan.keys[0].id, real.id);
  ASSERT_EQ(plan.warnings.size(), 2U);
  EXPECT_TRUE(some_line_has(plan.warnings, {dir / ("keys/" + huge + ".json"), "1024 MiB", "cap of 256 MiB", "key remove " + huge}));
  EXPECT_TRUE(some_line_has(plan.warnings, {dir / ("keys/" + dear + ".json"), "8 times the default work", "cap of 4"}));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(plan, "wrong"); }), ErrorKind::wrong_key);
  EXPECT_LT(seconds_since(start), 0.5) << "an over-cap key was derived";
  const std::string message = error_message([&] { unlock_with_passphrase(plan, "wrong"); });
  EXPECT_NE(message.find("none of the 1 wrapped key tried"), std::string::npos) << message;
  EXPECT_NE(message.find("2 more not tried: see the warnings"), std::string::npos) << message;

  // key list says the same.
  const std::vector<WrappedKeyInfo> keys = list_wrapped_keys(*backend);
  ASSERT_EQ(keys.size(), 3U);
  for (const WrappedKeyInfo& info : keys) {
    EXPECT_EQ(info.problem.empty(), info.id == real.id) << info.id << ": " << info.problem;
    EXPECT_FALSE(info.damaged);
  }
  // Only over-cap keys left: nothing can be tried, and it says why.
  remove_wrapped_key(*backend, real.id, LastKey::allow);
  EXPECT_EQ(error_kind([&] { unlock(*backend, kPassphrase); }), ErrorKind::corrupt);
}

TEST(UnlockAttack, at_most_16_files_are_read_and_the_rest_reported_in_one_line) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey real = wrap(key);
  add_wrapped_key(*backend, real);
  for (std::size_t i = 0; i < kMaxWrappedKeysPerUnlock + 4; ++i) {
    plant_wrapped_key(*backend, ScryptParams{2, 1, 1}, real.id);  // all before the real key in name order
  }
  const UnlockPlan plan = plan_unlock(*backend);
  EXPECT_EQ(plan.files, kMaxWrappedKeysPerUnlock + 5);
  EXPECT_EQ(plan.keys.size(), kMaxWrappedKeysPerUnlock);
  ASSERT_EQ(plan.warnings.size(), 1U);
  EXPECT_NE(plan.warnings[0].find("5 more wrapped key files in " + dir / "keys"), std::string::npos) << plan.warnings[0];
  EXPECT_NE(plan.warnings[0].find("at most 16 per unlock"), std::string::npos) << plan.warnings[0];
  EXPECT_EQ(std::count_if(plan.keys.begin(), plan.keys.end(), [&](const UnlockCandidate& c) { return c.id == real.id; }), 0);
  // The real key was beyond the cap: the failure says some were not tried, and why to look.
  const std::string message = error_message([&] { unlock_with_passphrase(plan, kPassphrase); });
  EXPECT_NE(message.find("5 more not tried: see the warnings"), std::string::npos) << message;
  // key list is not capped: it shows every file so they can be removed.
  EXPECT_EQ(list_wrapped_keys(*backend).size(), kMaxWrappedKeysPerUnlock + 5);
}

TEST(UnlockAttack, the_budget_leaves_out_only_keys_dearer_than_the_default) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const ScryptParams four_times{std::uint64_t{1} << 17, 8, 4};  // within the caps
  for (int i = 0; i < 5; ++i) {
    plant_wrapped_key(*backend, four_times);
  }
  const ScryptParams default_cost;
  for (std::size_t i = 0; i < kMaxWrappedKeysPerUnlock - 5; ++i) {
    plant_wrapped_key(*backend, default_cost);
  }
  // 11 default-cost keys (11 of the budget's 16), then four-times keys while they fit: one (15).
  const UnlockPlan plan = plan_unlock(*backend);
  ASSERT_EQ(plan.keys.size(), 12U);
  for (std::size_t i = 0; i < 11; ++i) {
    EXPECT_EQ(plan.keys[i].params.work(), default_cost.work());
  }
  EXPECT_EQ(plan.keys[11].params.work(), four_times.work());
  ASSERT_EQ(plan.warnings.size(), 4U);
  EXPECT_TRUE(some_line_has(plan.warnings, {"is not tried", "budget of 16 default-cost tries"}));
  for (const std::string& warning : plan.warnings) {
    EXPECT_NE(warning.find("N=131072, r=8, p=4"), std::string::npos) << warning;
  }
}

TEST(UnlockAttack, a_renamed_key_keeps_its_id_and_is_reported_not_tried) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey real = wrap(key, kPassphrase, "mine");
  const WrappedKey other = wrap(key, "second passphrase", "other");
  add_wrapped_key(*backend, real);
  add_wrapped_key(*backend, other);
  // Renamed: to a name of no key, and the other key's file replaced by a copy of this one.
  const std::string renamed = "keys/00000000000000aa.json";
  backend->put(renamed, as_bytes(real.text), Overwrite::no);
  backend->remove(wrapped_key_object(real.id));
  backend->put(wrapped_key_object(other.id), as_bytes(real.text), Overwrite::yes);

  const std::vector<WrappedKeyInfo> keys = list_wrapped_keys(*backend);
  ASSERT_EQ(keys.size(), 2U);
  for (const WrappedKeyInfo& info : keys) {
    EXPECT_EQ(info.id, real.id) << info.object;  // neither name gives it another id
    EXPECT_EQ(info.label, "mine");
    EXPECT_NE(info.problem.find("does not match its content, whose id is " + real.id), std::string::npos) << info.problem;
    EXPECT_NE(info.problem.find(dir / info.object), std::string::npos) << info.problem;
  }
  EXPECT_NE(keys[0].object, keys[1].object);
  // Never tried under a name that is not its own; reported instead.
  const UnlockPlan plan = plan_unlock(*backend);
  EXPECT_TRUE(plan.keys.empty());
  EXPECT_EQ(plan.warnings.size(), 2U);
  EXPECT_EQ(error_kind([&] { unlock_with_passphrase(plan, kPassphrase); }), ErrorKind::corrupt);
  EXPECT_TRUE(wrapped_key_texts(*backend).empty());  // nor copied to a secondary

  // The names are not ids: removing "the other key" by its old id finds nothing; removing this
  // key's id removes every copy of it (a key removed must leave no file that still opens).
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, other.id, LastKey::refuse); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { remove_wrapped_key(*backend, "00000000000000aa", LastKey::refuse); }), ErrorKind::not_found);
  remove_wrapped_key(*backend, real.id, LastKey::refuse);  // no usable copy: not "the last key"
  EXPECT_TRUE(files_under(dir.path()).empty());
}

TEST(UnlockAttack, remove_takes_every_copy_of_a_key) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const MasterKey key = MasterKey::generate();
  const WrappedKey a = wrap(key, "first passphrase");
  const WrappedKey b = wrap(key, "second passphrase");
  add_wrapped_key(*backend, a);
  add_wrapped_key(*backend, b);
  backend->put("keys/00000000000000aa.json", as_bytes(a.text), Overwrite::no);  // a copy under another name
  remove_wrapped_key(*backend, a.id, LastKey::refuse);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"keys/" + b.id + ".json"});
  EXPECT_EQ(error_kind([&] { unlock(*backend, "first passphrase"); }), ErrorKind::wrong_key);
}

}  // namespace
}  // namespace mybackup
