#pragma once
// Every name of a repository's objects is made and parsed here, and nowhere else (as LevelDB's
// filename.h). docs/format.md describes the layout:
//
//   mybackup-repo.json            the marker
//   data/<2 hex>/<64 hex>.enc     a pack, named by the SHA-256 of its bytes
//   snapshots/<seq:010>-<id>.enc  a manifest, <id> the run id (16 lowercase hex digits)
//   locks/<16 hex>.json           a writer's lock
//   keys/<id>.json                a passphrase-wrapped copy of the master key
//
// The parsers accept only names of exactly that shape: anything else found on a destination is
// not one of ours and is ignored by listings.

#include <cstdint>
#include <optional>
#include <string>

namespace mybackup::object_names {

inline constexpr const char* kMarker = "mybackup-repo.json";
inline constexpr const char* kPacks = "data";
inline constexpr const char* kManifests = "snapshots";
inline constexpr const char* kLocks = "locks";
inline constexpr const char* kKeys = "keys";

/// Upper bounds on what a well-formed object of each kind can weigh, checked before reading
/// (packs are bounded by the size the index records instead).
inline constexpr std::uint64_t kMaxMarkerSize = 64 * 1024;
inline constexpr std::uint64_t kMaxLockSize = 64 * 1024;
inline constexpr std::uint64_t kMaxWrappedKeySize = 64 * 1024;
inline constexpr std::uint64_t kMaxManifestSize = std::uint64_t{4} << 30;

/// "data/ab/ab12….enc" for pack "ab12…" (64 lowercase hex digits).
std::string pack(const std::string& pack_name);
/// The pack name in a pack object's name, or nullopt if `object` is not one.
std::optional<std::string> parse_pack(const std::string& object);

/// "snapshots/0000000042-<run id>.enc".
std::string manifest(std::uint64_t seq, const std::string& run_id);
/// The sequence number (>= 1) in a manifest object's name, or nullopt if `object` is not one.
std::optional<std::uint64_t> parse_manifest(const std::string& object);

/// "locks/<id>.json" for a lock id of 16 lowercase hex digits.
std::string lock(const std::string& lock_id);
/// True if `object` is a lock's name.
bool is_lock(const std::string& object);

/// "keys/<id>.json" for a wrapped key id (lowercase hex digits).
std::string wrapped_key(const std::string& key_id);
/// The key id in a wrapped key's name, or nullopt if `object` is not one.
std::optional<std::string> parse_wrapped_key(const std::string& object);

/// True if `text` is `length` lowercase hex digits (any length when `length` is 0, but not empty).
bool is_lower_hex(const std::string& text, std::size_t length = 0);

}  // namespace mybackup::object_names
