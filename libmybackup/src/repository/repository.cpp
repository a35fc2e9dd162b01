#include "mybackup/repository/repository.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <unordered_set>

#include "mybackup/util/clock.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/format/manifest_decoder.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "util/binary_io.hpp"
#include "util/unique_fd.hpp"

#include <unistd.h>

namespace mybackup {

namespace {
using object_names::kMarker;
constexpr const char* kFormatName = "mybackup";
constexpr int kManifestCompressionLevel = 3;

std::string key_check(const KeySet& keys, const std::string& repository_id) {
  return to_hex(HmacSha256::mac(keys.check_key, as_bytes("mybackup repository " + repository_id)));
}

/// Authenticates the parameters a writer takes from the marker: without it, anyone who can write
/// to the destination could make every writer cut tiny chunks (more storage, chunk sizes that leak
/// file contents) or huge ones (memory per thread).
std::string parameters_mac(const KeySet& keys, const RepositoryInfo& info) {
  const std::string text = "mybackup repository parameters " + info.id + " " + std::to_string(info.version) + " " +
                           std::to_string(info.chunker.min_size) + " " + std::to_string(info.chunker.avg_size) + " " +
                           std::to_string(info.chunker.max_size) + " " + std::to_string(info.pack_target_size);
  return to_hex(HmacSha256::mac(keys.check_key, as_bytes(text)));
}

std::string encode_marker(const RepositoryInfo& info, const KeySet& keys) {
  const nlohmann::ordered_json marker = {
      {"format", kFormatName},
      {"version", info.version},
      {"id", info.id},
      {"created", format_utc(info.created_ns)},
      {"chunker",
       {{"algorithm", "fastcdc"},
        {"normalization", 2},
        {"min_size", info.chunker.min_size},
        {"avg_size", info.chunker.avg_size},
        {"max_size", info.chunker.max_size},
        {"gear", "hkdf-sha256(master, \"mybackup gear\")"}}},
      {"pack_target_size", info.pack_target_size},
      {"key_check", key_check(keys, info.id)},
      {"parameters_mac", parameters_mac(keys, info)},
  };
  return marker.dump(2) + "\n";
}

/// A size field of the marker: a whole number that fits 32 bits (nlohmann's get<std::uint32_t>
/// would wrap a negative or larger one into something that might pass the bounds).
std::uint32_t marker_size(const nlohmann::json& object, const char* name, const std::string& where) {
  const nlohmann::json& value = object.at(name);
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(ErrorKind::corrupt, where + " is damaged: " + name + " is not a size (" + value.dump() + ")");
  }
  return value.get<std::uint32_t>();
}

RepositoryInfo decode_marker(const Bytes& raw, const KeySet& keys, const std::string& location) {
  const std::string where = location + "/" + kMarker;
  RepositoryInfo info;
  std::string check;
  std::optional<std::string> mac;
  try {
    const nlohmann::json root = nlohmann::json::parse(as_text(raw));
    if (!root.is_object() || root.value("format", "") != kFormatName) {
      throw Error(ErrorKind::mismatch, where + " is not a mybackup repository marker");
    }
    // Compared as JSON: get<int>() of 1e300 is undefined behaviour, and of 2^32 + 1 it would wrap
    // to a supported version.
    const nlohmann::json& version = root.at("version");
    if (!version.is_number_integer() || version != kRepositoryFormatVersion) {
      throw Error(ErrorKind::corrupt, where + ": repository format version " + version.dump() +
                                          " is not supported by this mybackup (it reads version " +
                                          std::to_string(kRepositoryFormatVersion) + ")");
    }
    info.id = root.at("id").get<std::string>();
    const nlohmann::json& chunker = root.at("chunker");
    info.chunker.min_size = marker_size(chunker, "min_size", where);
    info.chunker.avg_size = marker_size(chunker, "avg_size", where);
    info.chunker.max_size = marker_size(chunker, "max_size", where);
    // Absent means the default, the size every pack was written with before repositories
    // could choose it.
    if (root.contains("pack_target_size")) {
      info.pack_target_size = marker_size(root, "pack_target_size", where);
    }
    check = root.at("key_check").get<std::string>();
    if (root.contains("parameters_mac")) {
      mac = root.at("parameters_mac").get<std::string>();
    }
  } catch (const nlohmann::json::exception& error) {
    throw Error(ErrorKind::corrupt, where + " is damaged: " + error.what());
  }
  try {
    info.options().validate();
  } catch (const Error& error) {
    // Impossible parameters in a stored marker mean a damaged marker, not a usage error.
    throw Error(ErrorKind::corrupt, where + " is damaged: " + error.what());
  }
  if (check != key_check(keys, info.id)) {
    throw Error(ErrorKind::wrong_key, "destination " + location +
                                          " was created with a different key: use that repository's key, or choose another destination");
  }
  // Markers written before the parameters were authenticated have no MAC: they are accepted only
  // with the default parameters (every repository had them then), so removing the MAC gains an
  // attacker nothing.
  const bool defaults = info.options() == RepositoryOptions{};
  if (mac ? *mac != parameters_mac(keys, info) : !defaults) {
    throw Error(ErrorKind::corrupt, where + " is damaged: its chunk and pack sizes do not match their authentication code "
                                            "(edited by someone without the key?); restore the marker from the secondary destination or a copy");
  }
  return info;
}

std::string manifest_blob_name(const std::string& key) { return "manifest " + key.substr(key.rfind('/') + 1); }
}  // namespace

Repository::Repository(std::unique_ptr<Backend> backend, KeySet keys, RepositoryInfo info)
    : backend_(std::move(backend)), keys_(std::move(keys)), info_(std::move(info)) {}

std::unique_ptr<Repository> Repository::open(std::unique_ptr<Backend> backend, const MasterKey& key,
                                             CreateIfMissing create, const RepositoryOptions& options) {
  if (create == CreateIfMissing::yes) {
    options.validate();
  }
  KeySet keys = KeySet::derive(key);
  const std::string location = backend->location();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (backend->size(kMarker)) {
      RepositoryInfo info = decode_marker(backend->get(kMarker, object_names::kMaxMarkerSize), keys, location);
      return std::unique_ptr<Repository>(new Repository(std::move(backend), std::move(keys), std::move(info)));
    }
    if (!backend->empty()) {
      throw Error(ErrorKind::mismatch, "destination " + location +
                                           " is not empty and is not a mybackup repository: choose an empty or new directory");
    }
    if (create == CreateIfMissing::no) {
      throw Error(ErrorKind::not_found, "no mybackup repository at " + location);
    }
    RepositoryInfo info;
    std::array<std::uint8_t, 16> id{};
    random_bytes(id);
    info.id = to_hex(id);
    info.chunker = options.chunker;
    info.pack_target_size = options.pack_target_size;
    info.created_ns = system_clock().now_ns();
    try {
      backend->put(kMarker, as_bytes(encode_marker(info, keys)), Overwrite::no);
      return std::unique_ptr<Repository>(new Repository(std::move(backend), std::move(keys), std::move(info)));
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::exists) {
        throw;
      }
      // Another process created it at the same moment: read theirs.
    }
  }
  throw Error(ErrorKind::io, "cannot create the repository marker at " + location);
}

std::unique_ptr<Repository> Repository::open_copy(std::unique_ptr<Backend> backend, const Repository& primary) {
  const Bytes ours = primary.backend_->get(kMarker, object_names::kMaxMarkerSize);
  if (backend->size(kMarker)) {
    if (backend->get(kMarker, object_names::kMaxMarkerSize) != ours) {
      throw Error(ErrorKind::mismatch, "the secondary destination " + backend->location() +
                                           " holds another repository: choose an empty directory for the secondary");
    }
  } else if (!backend->empty()) {
    throw Error(ErrorKind::mismatch, "the secondary destination " + backend->location() +
                                         " is not empty and is not a mybackup repository: choose an empty or new directory");
  } else {
    try {
      backend->put(kMarker, ours, Overwrite::no);
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::exists) {
        throw;
      }
    }
  }
  RepositoryInfo info = decode_marker(backend->get(kMarker, object_names::kMaxMarkerSize), primary.keys_, backend->location());
  return std::unique_ptr<Repository>(new Repository(std::move(backend), primary.keys_, std::move(info)));
}

std::unique_ptr<RepositoryLock> Repository::lock(const std::string& purpose, const LockOptions& options) {
  return std::make_unique<RepositoryLock>(*backend_, purpose, options);
}

std::vector<Repository::StoredPack> Repository::list_packs() const {
  std::vector<StoredPack> packs;
  for (const ObjectInfo& object : backend_->list(object_names::kPacks)) {
    if (std::optional<std::string> name = object_names::parse_pack(object.name)) {
      packs.push_back({std::move(*name), object.size});
    }
  }
  std::sort(packs.begin(), packs.end(), [](const StoredPack& a, const StoredPack& b) { return a.name < b.name; });
  return packs;
}

std::vector<std::string> Repository::pack_names() const {
  std::vector<std::string> names;
  for (StoredPack& pack : list_packs()) {
    names.push_back(std::move(pack.name));
  }
  return names;
}

std::optional<std::uint64_t> Repository::pack_size(const std::string& pack_name) const {
  return backend_->size(object_names::pack(pack_name));
}

Bytes Repository::read_pack(const std::string& pack_name, std::uint64_t max_size, CheckHash check) const {
  Bytes bytes = backend_->get(object_names::pack(pack_name), max_size);
  if (check == CheckHash::yes && to_hex(Sha256::hash(bytes)) != pack_name) {
    throw Error(ErrorKind::corrupt, "pack " + pack_name + " on " + location() + " is damaged: its bytes do not hash to its name");
  }
  return bytes;
}

void Repository::put_pack(const std::string& pack_name, ByteView bytes) {
  if (to_hex(Sha256::hash(bytes)) != pack_name) {
    throw Error(ErrorKind::corrupt, "pack " + pack_name + " to store on " + location() + " does not hash to its name");
  }
  try {
    backend_->put(object_names::pack(pack_name), bytes, Overwrite::no);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::exists) {
      throw;
    }
  }
}

void Repository::delete_pack(const std::string& pack_name) { backend_->remove(object_names::pack(pack_name)); }

void Repository::put_pack(const FinishedPack& pack) {
  try {
    backend_->put(object_names::pack(pack.name), pack.bytes, Overwrite::no);
  } catch (const Error& error) {
    // Same name means same bytes: an identical pack already stored is success.
    if (error.kind() != ErrorKind::exists) {
      throw;
    }
  }
}

ChunkId Repository::chunk_id(ByteView data) const { return HmacSha256::mac(keys_.id_key, data); }

void Repository::set_fallback(std::unique_ptr<Repository> fallback) {
  if (fallback && fallback->info().id != info_.id) {
    throw Error(ErrorKind::mismatch, "the secondary destination " + fallback->location() + " holds another repository (" +
                                         fallback->info().id + ") than " + location() + " (" + info_.id + ")");
  }
  fallback_ = std::move(fallback);
}

std::vector<Repository::FallbackRead> Repository::fallback_reads() const {
  const std::lock_guard<std::mutex> lock(fallback_mutex_);
  std::vector<FallbackRead> reads;
  for (const auto& [pack, reason] : fallback_reads_) {
    reads.push_back({pack, reason});
  }
  return reads;
}

Bytes Repository::read_chunk(const std::string& pack_name, const PackEntry& where) const {
  if (!fallback_) {
    return read_chunk_here(pack_name, where);
  }
  try {
    return read_chunk_here(pack_name, where);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::not_found && error.kind() != ErrorKind::corrupt) {
      throw;
    }
    try {
      Bytes data = fallback_->read_chunk(pack_name, where);
      const std::lock_guard<std::mutex> lock(fallback_mutex_);
      fallback_reads_.emplace(pack_name, error.what());
      return data;
    } catch (const Error&) {
      throw error;  // the primary's problem is the one to report
    }
  }
}

Bytes Repository::read_pack_region(const std::string& pack_name, std::uint64_t offset, std::uint64_t length) const {
  return backend_->get_range(object_names::pack(pack_name), offset, length);
}

Bytes Repository::read_chunk_here(const std::string& pack_name, const PackEntry& where) const {
  const Bytes blob = backend_->get_range(object_names::pack(pack_name), where.offset, where.length);
  return open_chunk(pack_name, where, blob);
}

Bytes Repository::open_chunk(const std::string& pack_name, const PackEntry& where, ByteView blob) const {
  std::uint8_t flags = 0;
  Bytes payload = open_blob(keys_.enc_key, where.id, blob, flags);
  Bytes data = (flags & kBlobCompressed) != 0 ? decompress(payload, where.raw_length) : std::move(payload);
  if (data.size() != where.raw_length || chunk_id(data) != where.id) {
    throw Error(ErrorKind::corrupt, "chunk " + to_hex(where.id) + " in pack " + pack_name + " does not match its id");
  }
  return data;
}

namespace {

/// A manifest with spooled records, built in an unnamed file (`directory`) as it is encoded,
/// compressed (always: it is large) and sealed, 1 MiB at a time: never held in memory, which at
/// a million files would be about 130 MB. Returns the file; `size` is its length.
UniqueFd build_manifest_object(const Manifest& manifest, const AeadKey& key, const ChunkId& id,
                               const std::string& directory, std::uint64_t& size) {
  UniqueFd fd(open_unnamed_file(directory));
  const std::string what = "the manifest being written in " + directory;
  Bytes out(4, 0);  // the raw size, known at the end
  BlobSealer sealer(key, id, kBlobCompressed, out);
  StreamCompressor compressor(kManifestCompressionLevel);
  Bytes compressed;
  std::uint64_t plain_size = 0;
  size = 0;
  const auto drain = [&](bool all) {
    if (!compressed.empty()) {
      sealer.update(compressed, out);
      compressed.clear();
    }
    if (all || out.size() >= 1024 * 1024) {
      write_all(fd.get(), out, what);
      size += out.size();
      out.clear();
    }
  };
  encode_manifest(manifest, [&](ByteView piece) {
    plain_size += piece.size();
    compressor.add(piece, compressed);
    drain(false);
  });
  compressor.finish(compressed);
  drain(false);
  sealer.finish(out);
  drain(true);
  if (plain_size > UINT32_MAX) {
    throw Error(ErrorKind::usage, "this run's manifest would exceed 4 GiB: back up the sources in several runs");
  }
  Bytes raw_size;
  binary::Writer(raw_size).u32(static_cast<std::uint32_t>(plain_size));
  if (::pwrite(fd.get(), raw_size.data(), raw_size.size(), 0) != static_cast<ssize_t>(raw_size.size())) {
    throw_system_error(errno, "cannot write " + what);
  }
  return fd;
}

}  // namespace

std::string Repository::put_manifest(const Manifest& manifest) {
  const std::string key = object_names::manifest(manifest.seq, manifest.run_id);
  const ChunkId id = Sha256::hash(as_bytes(manifest_blob_name(key)));
  if (manifest.spooled) {
    std::uint64_t size = 0;
    const UniqueFd object = build_manifest_object(manifest, keys_.enc_key, id, manifest.spooled->directory(), size);
    backend_->put_file(key, object.get(), size, Overwrite::no);
    return key;
  }
  const Bytes plain = encode_manifest(manifest);
  Compressor compressor(kManifestCompressionLevel);
  Bytes compressed;
  const bool shrunk = compressor.compress(plain, compressed);
  // The raw size is needed to decompress; it travels as a 4-byte prefix before the blob.
  Bytes object;
  binary::Writer(object).u32(static_cast<std::uint32_t>(plain.size()));
  seal_blob(keys_.enc_key, id, shrunk ? kBlobCompressed : 0, shrunk ? ByteView(compressed) : ByteView(plain), object);
  backend_->put(key, object, Overwrite::no);
  return key;
}

std::vector<std::string> Repository::manifest_keys() const {
  std::vector<std::string> keys;
  for (ObjectInfo& object : backend_->list(object_names::kManifests)) {
    if (object_names::parse_manifest(object.name)) {
      keys.push_back(std::move(object.name));
    }
  }
  // Zero-padded sequence numbers sort correctly as text.
  std::sort(keys.begin(), keys.end());
  return keys;
}

namespace {
/// The raw size a manifest object declares in its first 4 bytes (outside the authenticated blob).
std::uint32_t declared_manifest_size(const std::string& key, ByteView object) {
  if (object.size() < 4) {
    throw Error(ErrorKind::corrupt, "manifest " + key + " is truncated");
  }
  return binary::Reader(object, "manifest " + key).u32();
}
}  // namespace

Bytes Repository::open_manifest_object(const std::string& key, ByteView object) const {
  const std::uint32_t size = declared_manifest_size(key, object);
  const ChunkId id = Sha256::hash(as_bytes(manifest_blob_name(key)));
  std::uint8_t flags = 0;
  Bytes payload = open_blob(keys_.enc_key, id, object.subspan(4), flags);
  return (flags & kBlobCompressed) != 0 ? decompress(payload, size) : std::move(payload);
}

namespace {
constexpr std::uint64_t kManifestPiece = 8 << 20;  // one ranged read of a large manifest
}  // namespace

Manifest Repository::read_streamed_manifest(const std::string& key, const std::string& spool_directory) const {
  const std::optional<std::uint64_t> size = backend_->size(key);
  if (!size) {
    throw Error(ErrorKind::not_found, "manifest " + location() + "/" + key + " is missing");
  }
  if (*size > object_names::kMaxManifestSize) {
    throw Error(ErrorKind::corrupt, "manifest " + key + " is larger than any manifest can be");
  }
  if (*size < 4 + kBlobOverhead) {
    throw Error(ErrorKind::corrupt, "manifest " + key + " is truncated");
  }
  // Exactly the bytes asked for, or the object changed under us.
  const auto fetch = [&](std::uint64_t offset, std::uint64_t length) {
    Bytes bytes = backend_->get_range(key, offset, length);
    if (bytes.size() != length) {
      throw Error(ErrorKind::corrupt, "manifest " + key + " changed size while it was read");
    }
    return bytes;
  };
  const Bytes head = fetch(0, 4 + kBlobHeaderSize);
  const std::uint32_t plain_size = declared_manifest_size(key, head);
  const ChunkId id = Sha256::hash(as_bytes(manifest_blob_name(key)));
  BlobOpener opener(keys_.enc_key, id, ByteView(head).subspan(4));
  // Decrypted aside, and used only once the tag at the end has authenticated all of it.
  const UniqueFd decrypted(open_unnamed_file(spool_directory));
  const std::string what = "a manifest's temporary file in " + spool_directory;
  const std::uint64_t end = *size - kAeadTagSize;
  Bytes plain;
  for (std::uint64_t offset = head.size(); offset < end;) {
    const std::uint64_t length = std::min(kManifestPiece, end - offset);
    plain.clear();
    opener.update(fetch(offset, length), plain);
    write_all(decrypted.get(), plain, what);
    offset += length;
  }
  opener.finish(fetch(end, kAeadTagSize));

  // The size prefix is not authenticated: it only steers decompression, which checks it, as
  // open_manifest_object does; a stored manifest is as long as what was decrypted.
  const bool compressed = (opener.flags() & kBlobCompressed) != 0;
  ManifestDecoder decoder(compressed ? plain_size : end - head.size(), spool_directory);
  std::optional<StreamDecompressor> decompressor;
  if (compressed) {
    decompressor.emplace(plain_size);
  }
  const auto decode = [&decoder](ByteView piece) { decoder.add(piece); };
  Bytes piece(1 << 20);
  for (std::uint64_t offset = 0;;) {
    const std::size_t got = read_some_at(decrypted.get(), piece.data(), piece.size(), offset, what);
    if (got == 0) {
      break;
    }
    offset += got;
    const ByteView data(piece.data(), got);
    if (decompressor) {
      decompressor->add(data, decode);
    } else {
      decode(data);
    }
  }
  if (decompressor) {
    decompressor->finish();
  }
  return decoder.finish();
}

Manifest Repository::read_manifest(const std::string& key, const std::string& spool_directory) const {
  Manifest manifest;
  try {
    if (spool_directory.empty()) {
      const Bytes object = backend_->get(key, object_names::kMaxManifestSize);
      manifest = decode_manifest(open_manifest_object(key, object));
    } else {
      manifest = read_streamed_manifest(key, spool_directory);
    }
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::corrupt) {
      throw;
    }
    // Name the file, not the blob id the authentication failure names.
    throw Error(ErrorKind::corrupt, "manifest " + location() + "/" + key +
                                        " is damaged or was not written with this repository's key (" + error.what() + ")");
  }
  if (manifest.seq != object_names::parse_manifest(key)) {
    throw Error(ErrorKind::corrupt, "manifest " + location() + "/" + key + " records sequence number " +
                                        std::to_string(manifest.seq) + ", not the one in its name");
  }
  return manifest;
}

Bytes Repository::read_manifest_object(const std::string& key) const {
  Bytes object = backend_->get(key, object_names::kMaxManifestSize);
  open_manifest_object(key, object);
  return object;
}

void Repository::put_manifest_object(const std::string& key, ByteView object) {
  if (!object_names::parse_manifest(key)) {
    throw Error(ErrorKind::usage, "'" + key + "' is not a manifest name");
  }
  open_manifest_object(key, object);
  backend_->put(key, object, Overwrite::no);
}

std::uint64_t Repository::next_manifest_seq(std::uint64_t known) const {
  const std::vector<std::string> keys = manifest_keys();
  std::uint64_t highest = known;
  for (auto key = keys.rbegin(); key != keys.rend(); ++key) {
    const std::uint64_t seq = object_names::parse_manifest(*key).value_or(0);
    if (seq <= highest) {
      break;  // keys come in sequence order
    }
    try {
      read_manifest_object(*key);
      highest = seq;
    } catch (const Error& error) {
      if (!is_damage(error.kind())) {
        throw;
      }
    }
  }
  // Past the numbers that junk holds right above, so no two files share a number.
  std::unordered_set<std::uint64_t> taken;
  for (const std::string& key : keys) {
    taken.insert(object_names::parse_manifest(key).value_or(0));
  }
  std::uint64_t next = highest + 1;
  while (taken.count(next) != 0) {
    ++next;
  }
  return next;
}

}  // namespace mybackup
