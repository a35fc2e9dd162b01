#include "mybackup/repository/object_names.hpp"

#include <algorithm>
#include <cstdio>

#include "mybackup/util/error.hpp"

namespace mybackup::object_names {

namespace {

constexpr std::size_t kPackNameDigits = 64;
constexpr std::size_t kSeqDigits = 10;
constexpr std::size_t kLockIdDigits = 16;
constexpr std::size_t kKeyIdDigits = 16;
constexpr std::size_t kMaxRunIdDigits = 64;

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The part of `object` between `prefix` and `suffix`, or nullopt if it does not have both.
std::optional<std::string> between(const std::string& object, const std::string& prefix, const std::string& suffix) {
  if (object.size() < prefix.size() + suffix.size() || !starts_with(object, prefix) || !ends_with(object, suffix)) {
    return std::nullopt;
  }
  return object.substr(prefix.size(), object.size() - prefix.size() - suffix.size());
}

void require(bool condition, const std::string& what) {
  if (!condition) {
    throw Error(ErrorKind::usage, "invalid " + what + " (a bug in the caller)");
  }
}

}  // namespace

bool is_lower_hex(const std::string& text, std::size_t length) {
  return !text.empty() && (length == 0 || text.size() == length) &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string pack(const std::string& pack_name) {
  require(is_lower_hex(pack_name, kPackNameDigits), "pack name '" + pack_name + "'");
  return std::string(kPacks) + "/" + pack_name.substr(0, 2) + "/" + pack_name + ".enc";
}

std::optional<std::string> parse_pack(const std::string& object) {
  // data/ + 2 hex + / + 64 hex + .enc, the two hex digits being the name's first two
  const auto middle = between(object, std::string(kPacks) + "/", ".enc");
  if (!middle || middle->size() != 3 + kPackNameDigits || (*middle)[2] != '/') {
    return std::nullopt;
  }
  std::string name = middle->substr(3);
  if (!is_lower_hex(name, kPackNameDigits) || middle->compare(0, 2, name, 0, 2) != 0) {
    return std::nullopt;
  }
  return name;
}

std::string manifest(std::uint64_t seq, const std::string& run_id) {
  require(seq >= 1 && seq <= 9'999'999'999ULL, "manifest sequence number " + std::to_string(seq));
  require(is_lower_hex(run_id) && run_id.size() <= kMaxRunIdDigits, "run id '" + run_id + "'");
  char number[32];
  std::snprintf(number, sizeof number, "%010llu", static_cast<unsigned long long>(seq));
  return std::string(kManifests) + "/" + number + "-" + run_id + ".enc";
}

std::optional<std::uint64_t> parse_manifest(const std::string& object) {
  const auto middle = between(object, std::string(kManifests) + "/", ".enc");
  if (!middle || middle->size() < kSeqDigits + 2 || (*middle)[kSeqDigits] != '-') {
    return std::nullopt;
  }
  const std::string run_id = middle->substr(kSeqDigits + 1);
  if (!is_lower_hex(run_id) || run_id.size() > kMaxRunIdDigits) {
    return std::nullopt;
  }
  std::uint64_t seq = 0;
  for (std::size_t i = 0; i < kSeqDigits; ++i) {
    const char c = (*middle)[i];
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    seq = seq * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (seq == 0) {
    return std::nullopt;
  }
  return seq;
}

std::string lock(const std::string& lock_id) {
  require(is_lower_hex(lock_id, kLockIdDigits), "lock id '" + lock_id + "'");
  return std::string(kLocks) + "/" + lock_id + ".json";
}

bool is_lock(const std::string& object) {
  const auto id = between(object, std::string(kLocks) + "/", ".json");
  return id && is_lower_hex(*id, kLockIdDigits);
}

std::string wrapped_key(const std::string& key_id) {
  require(is_lower_hex(key_id, kKeyIdDigits), "wrapped key id '" + key_id + "'");
  return std::string(kKeys) + "/" + key_id + ".json";
}

std::optional<std::string> parse_wrapped_key(const std::string& object) {
  auto id = between(object, std::string(kKeys) + "/", ".json");
  if (!id || !is_lower_hex(*id, kKeyIdDigits)) {
    return std::nullopt;
  }
  return id;
}

}  // namespace mybackup::object_names
