#include "mybackup/repository/repository.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "mybackup/util/clock.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {
constexpr const char* kMarkerKey = "mybackup-repo.json";
constexpr const char* kFormatName = "mybackup";
constexpr int kManifestCompressionLevel = 3;

std::string key_check(const KeySet& keys, const std::string& repository_id) {
  return to_hex(HmacSha256::mac(keys.check_key, as_bytes("mybackup repository " + repository_id)));
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
      {"pack_target_size", static_cast<std::uint64_t>(kPackTargetSize)},
      {"key_check", key_check(keys, info.id)},
  };
  return marker.dump(2) + "\n";
}

RepositoryInfo decode_marker(const Bytes& raw, const KeySet& keys, const std::string& location) {
  const std::string where = location + "/" + kMarkerKey;
  RepositoryInfo info;
  std::string check;
  try {
    const nlohmann::json root = nlohmann::json::parse(as_text(raw));
    if (!root.is_object() || root.value("format", "") != kFormatName) {
      throw Error(ErrorKind::mismatch, where + " is not a mybackup repository marker");
    }
    info.version = root.at("version").get<int>();
    info.id = root.at("id").get<std::string>();
    const nlohmann::json& chunker = root.at("chunker");
    info.chunker.min_size = chunker.at("min_size").get<std::uint32_t>();
    info.chunker.avg_size = chunker.at("avg_size").get<std::uint32_t>();
    info.chunker.max_size = chunker.at("max_size").get<std::uint32_t>();
    check = root.at("key_check").get<std::string>();
  } catch (const nlohmann::json::exception& error) {
    throw Error(ErrorKind::corrupt, where + " is damaged: " + error.what());
  }
  if (info.version != kRepositoryFormatVersion) {
    throw Error(ErrorKind::corrupt, where + ": repository format version " + std::to_string(info.version) +
                                        " is not supported by this mybackup (it reads version " +
                                        std::to_string(kRepositoryFormatVersion) + ")");
  }
  try {
    info.chunker.validate();
  } catch (const Error& error) {
    // Impossible parameters in a stored marker mean a damaged marker, not a usage error.
    throw Error(ErrorKind::corrupt, where + " is damaged: " + error.what());
  }
  if (check != key_check(keys, info.id)) {
    throw Error(ErrorKind::wrong_key, "destination " + location +
                                          " was created with a different key: use that repository's key, or choose another destination");
  }
  return info;
}

std::string manifest_blob_name(const std::string& key) { return "manifest " + key.substr(key.rfind('/') + 1); }
}  // namespace

Repository::Repository(std::unique_ptr<Backend> backend, KeySet keys, RepositoryInfo info)
    : backend_(std::move(backend)), keys_(std::move(keys)), info_(std::move(info)) {}

std::unique_ptr<Repository> Repository::open(std::unique_ptr<Backend> backend, const MasterKey& key,
                                             CreateIfMissing create) {
  KeySet keys = KeySet::derive(key);
  const std::string location = backend->location();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (backend->size(kMarkerKey)) {
      RepositoryInfo info = decode_marker(backend->get(kMarkerKey), keys, location);
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
    info.created_ns = system_clock().now_ns();
    try {
      backend->put(kMarkerKey, as_bytes(encode_marker(info, keys)), Overwrite::no);
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

std::string Repository::pack_key(const std::string& pack_name) {
  return "data/" + pack_name.substr(0, 2) + "/" + pack_name + ".enc";
}

std::string Repository::pack_name(const std::string& key) {
  // data/ + 2 hex + / + 64 hex + .enc
  constexpr std::size_t kNameStart = 8;
  if (key.size() != kNameStart + 64 + 4 || key.compare(0, 5, "data/") != 0 || key[7] != '/' ||
      key.compare(key.size() - 4, 4, ".enc") != 0 || key.compare(5, 2, key, kNameStart, 2) != 0) {
    return "";
  }
  const std::string name = key.substr(kNameStart, 64);
  if (name.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return "";
  }
  return name;
}

std::vector<std::string> Repository::pack_names() const {
  std::vector<std::string> names;
  for (const std::string& key : backend_->list("data")) {
    if (std::string name = pack_name(key); !name.empty()) {
      names.push_back(std::move(name));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string Repository::manifest_key(std::uint64_t seq, const std::string& run_id) {
  char number[32];
  std::snprintf(number, sizeof number, "%010llu", static_cast<unsigned long long>(seq));
  return std::string("snapshots/") + number + "-" + run_id + ".enc";
}

std::uint64_t Repository::manifest_seq(const std::string& key) {
  const std::string prefix = "snapshots/";
  if (key.rfind(prefix, 0) != 0 || key.size() < prefix.size() + 11 || key[prefix.size() + 10] != '-' ||
      key.size() < 4 || key.compare(key.size() - 4, 4, ".enc") != 0) {
    return 0;
  }
  std::uint64_t seq = 0;
  for (std::size_t i = prefix.size(); i < prefix.size() + 10; ++i) {
    if (key[i] < '0' || key[i] > '9') {
      return 0;
    }
    seq = seq * 10 + static_cast<std::uint64_t>(key[i] - '0');
  }
  return seq;
}

void Repository::put_pack(const FinishedPack& pack) {
  try {
    backend_->put(pack_key(pack.name), pack.bytes, Overwrite::no);
  } catch (const Error& error) {
    // Same name means same bytes: an identical pack already stored is success.
    if (error.kind() != ErrorKind::exists) {
      throw;
    }
  }
}

ChunkId Repository::chunk_id(ByteView data) const { return HmacSha256::mac(keys_.id_key, data); }

std::string Repository::marker_key() { return kMarkerKey; }

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
    if (error.kind() != ErrorKind::not_found && error.kind() != ErrorKind::corrupt && error.kind() != ErrorKind::crypto) {
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

Bytes Repository::read_chunk_here(const std::string& pack_name, const PackEntry& where) const {
  const Bytes blob = backend_->get_range(pack_key(pack_name), where.offset, where.length);
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

std::string Repository::put_manifest(const Manifest& manifest) {
  const std::string key = manifest_key(manifest.seq, manifest.run_id);
  const Bytes plain = encode_manifest(manifest);
  Compressor compressor(kManifestCompressionLevel);
  Bytes compressed;
  const bool shrunk = compressor.compress(plain, compressed);
  Bytes sealed;
  const ChunkId id = Sha256::hash(as_bytes(manifest_blob_name(key)));
  seal_blob(keys_.enc_key, id, shrunk ? kBlobCompressed : 0, shrunk ? ByteView(compressed) : ByteView(plain), sealed);
  // The raw size is needed to decompress; it travels as a 4-byte prefix before the blob.
  Bytes object;
  object.resize(4);
  const auto size = static_cast<std::uint32_t>(plain.size());
  for (int i = 0; i < 4; ++i) {
    object[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(size >> (8 * i));
  }
  object.insert(object.end(), sealed.begin(), sealed.end());
  backend_->put(key, object, Overwrite::no);
  return key;
}

std::vector<std::string> Repository::manifest_keys() const {
  std::vector<std::string> keys;
  for (std::string& key : backend_->list("snapshots")) {
    if (manifest_seq(key) != 0) {
      keys.push_back(std::move(key));
    }
  }
  // Zero-padded sequence numbers sort correctly as text.
  std::sort(keys.begin(), keys.end());
  return keys;
}

Manifest Repository::read_manifest(const std::string& key) const {
  const Bytes object = backend_->get(key);
  if (object.size() < 4) {
    throw Error(ErrorKind::corrupt, "manifest " + key + " is truncated");
  }
  std::uint32_t size = 0;
  for (int i = 0; i < 4; ++i) {
    size |= static_cast<std::uint32_t>(object[static_cast<std::size_t>(i)]) << (8 * i);
  }
  const ChunkId id = Sha256::hash(as_bytes(manifest_blob_name(key)));
  std::uint8_t flags = 0;
  Bytes payload = open_blob(keys_.enc_key, id, ByteView(object).subspan(4), flags);
  const Bytes plain = (flags & kBlobCompressed) != 0 ? decompress(payload, size) : std::move(payload);
  return decode_manifest(plain);
}

std::uint64_t Repository::next_manifest_seq() const {
  const std::vector<std::string> keys = manifest_keys();
  return keys.empty() ? 1 : manifest_seq(keys.back()) + 1;
}

}  // namespace mybackup
