#include "mybackup/format/pack.hpp"

#include <algorithm>
#include <cstring>

#include "util/binary_io.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {
constexpr std::string_view kBlobMagic = "MBK1";
constexpr std::string_view kHeaderMagic = "MBKH";
constexpr std::uint8_t kHeaderVersion = 1;
constexpr std::size_t kEntrySize = 32 + 4 + 4 + 4 + 1;

AeadNonce fresh_nonce() {
  AeadNonce nonce{};
  random_bytes(nonce);
  return nonce;
}

std::array<std::uint8_t, 4 + 1 + 32> blob_associated_data(std::uint8_t flags, const ChunkId& id) {
  std::array<std::uint8_t, 4 + 1 + 32> ad{};
  std::memcpy(ad.data(), kBlobMagic.data(), 4);
  ad[4] = flags;
  std::memcpy(ad.data() + 5, id.data(), id.size());
  return ad;
}

/// The flags and nonce of a blob's header (its first kBlobHeaderSize bytes, magic first).
/// Error(corrupt) naming `id` if `blob` is shorter than `least` or the magic is wrong.
AeadNonce read_blob_header(ByteView blob, std::size_t least, const ChunkId& id, std::uint8_t& flags) {
  if (blob.size() < least || std::memcmp(blob.data(), kBlobMagic.data(), 4) != 0) {
    throw Error(ErrorKind::corrupt, "blob " + to_hex(id) + " is malformed");
  }
  flags = blob[4];
  AeadNonce nonce{};
  std::memcpy(nonce.data(), blob.data() + 5, nonce.size());
  return nonce;
}

[[noreturn]] void blob_failed_authentication(const ChunkId& id) {
  throw Error(ErrorKind::corrupt, "blob " + to_hex(id) + " failed authentication (damaged data or wrong key)");
}
}  // namespace

void seal_blob(const AeadKey& key, const ChunkId& id, std::uint8_t flags, ByteView payload, Bytes& out) {
  seal_blob_with_nonce(key, id, flags, fresh_nonce(), payload, out);
}

void seal_blob_with_nonce(const AeadKey& key, const ChunkId& id, std::uint8_t flags, const AeadNonce& nonce,
                          ByteView payload, Bytes& out) {
  out.reserve(out.size() + payload.size() + kBlobOverhead);
  out.insert(out.end(), kBlobMagic.begin(), kBlobMagic.end());
  out.push_back(flags);
  out.insert(out.end(), nonce.begin(), nonce.end());
  aes256gcm_seal_append(key, nonce, payload, blob_associated_data(flags, id), out);
}

BlobSealer::BlobSealer(const AeadKey& key, const ChunkId& id, std::uint8_t flags, Bytes& out)
    : BlobSealer(key, id, flags, fresh_nonce(), out) {}

BlobSealer::BlobSealer(const AeadKey& key, const ChunkId& id, std::uint8_t flags, const AeadNonce& nonce, Bytes& out)
    : sealer_(key, nonce, blob_associated_data(flags, id)) {
  out.insert(out.end(), kBlobMagic.begin(), kBlobMagic.end());
  out.push_back(flags);
  out.insert(out.end(), nonce.begin(), nonce.end());
}

BlobOpener::BlobOpener(const AeadKey& key, const ChunkId& id, ByteView header) : id_(id) {
  if (header.size() > kBlobHeaderSize) {
    throw Error(ErrorKind::corrupt, "blob " + to_hex(id) + " is malformed");
  }
  const AeadNonce nonce = read_blob_header(header, kBlobHeaderSize, id, flags_);
  opener_ = std::make_unique<Aes256GcmOpener>(key, nonce, blob_associated_data(flags_, id));
}

void BlobOpener::finish(ByteView tag) {
  try {
    opener_->finish(tag);
  } catch (const Error&) {
    blob_failed_authentication(id_);
  }
}

Bytes open_blob(const AeadKey& key, const ChunkId& id, ByteView blob, std::uint8_t& flags) {
  const AeadNonce nonce = read_blob_header(blob, kBlobOverhead, id, flags);
  try {
    return aes256gcm_open(key, nonce, blob.subspan(kBlobHeaderSize), blob_associated_data(flags, id));
  } catch (const Error&) {
    blob_failed_authentication(id);
  }
}

const PackEntry& PackBuilder::add(const ChunkId& id, ByteView blob, std::uint32_t raw_length, std::uint8_t flags) {
  PackEntry entry;
  entry.id = id;
  entry.offset = static_cast<std::uint32_t>(bytes_.size());
  entry.length = static_cast<std::uint32_t>(blob.size());
  entry.raw_length = raw_length;
  entry.flags = flags;
  if (bytes_.empty() && bytes_.capacity() < buffer_capacity(target_size_)) {
    // One allocation per pack instead of a doubling series (which would also peak at 2x), with
    // room for the header too: a pack of small files lists ten thousand blobs, and growing the
    // buffer for it copied the whole pack into new pages. Pages never written cost nothing.
    bytes_.reserve(std::max(buffer_capacity(target_size_), blob.size() + 64 * 1024));
  }
  bytes_.insert(bytes_.end(), blob.begin(), blob.end());
  entries_.push_back(entry);
  return entries_.back();
}

FinishedPack PackBuilder::finish(const AeadKey& key) { return finish_with_nonce(key, fresh_nonce()); }

FinishedPack PackBuilder::finish_with_nonce(const AeadKey& key, const AeadNonce& header_nonce) {
  Bytes header;
  binary::Writer writer(header);
  writer.u8(kHeaderVersion);
  writer.u32(static_cast<std::uint32_t>(entries_.size()));
  for (const PackEntry& entry : entries_) {
    writer.raw(entry.id);
    writer.u32(entry.offset);
    writer.u32(entry.length);
    writer.u32(entry.raw_length);
    writer.u8(entry.flags);
  }
  const std::size_t header_start = bytes_.size();
  bytes_.insert(bytes_.end(), kHeaderMagic.begin(), kHeaderMagic.end());
  bytes_.insert(bytes_.end(), header_nonce.begin(), header_nonce.end());
  aes256gcm_seal_append(key, header_nonce, header, as_bytes(kHeaderMagic), bytes_);
  binary::Writer(bytes_).u32(static_cast<std::uint32_t>(bytes_.size() - header_start));

  FinishedPack pack;
  const Digest digest = Sha256::hash(bytes_);
  pack.name = to_hex(digest);
  pack.bytes = std::move(bytes_);
  pack.entries = std::move(entries_);
  bytes_.clear();
  entries_.clear();
  return pack;
}

std::vector<PackEntry> read_pack_header(const AeadKey& key, ByteView pack) {
  const auto corrupt = [] { return Error(ErrorKind::corrupt, "pack header is malformed"); };
  if (pack.size() < 4) {
    throw corrupt();
  }
  const std::uint32_t header_size = binary::Reader(pack.subspan(pack.size() - 4), "pack header").u32();
  if (header_size < 4 + kAeadNonceSize + kAeadTagSize || header_size > pack.size() - 4) {
    throw corrupt();
  }
  const std::size_t header_start = pack.size() - 4 - header_size;
  const ByteView sealed = pack.subspan(header_start, header_size);
  if (std::memcmp(sealed.data(), kHeaderMagic.data(), 4) != 0) {
    throw corrupt();
  }
  AeadNonce nonce{};
  std::memcpy(nonce.data(), sealed.data() + 4, nonce.size());
  const Bytes header = aes256gcm_open(key, nonce, sealed.subspan(4 + nonce.size()), as_bytes(kHeaderMagic));

  binary::Reader reader(header, "pack header");
  if (reader.u8() != kHeaderVersion) {
    throw Error(ErrorKind::corrupt, "pack header has an unknown version");
  }
  const std::uint32_t count = reader.u32();
  if (count > reader.remaining() / kEntrySize) {
    throw corrupt();
  }
  std::vector<PackEntry> entries(count);
  for (PackEntry& entry : entries) {
    const ByteView id = reader.raw(32);
    std::memcpy(entry.id.data(), id.data(), id.size());
    entry.offset = reader.u32();
    entry.length = reader.u32();
    entry.raw_length = reader.u32();
    entry.flags = reader.u8();
    if (static_cast<std::uint64_t>(entry.offset) + entry.length > header_start) {
      throw corrupt();
    }
  }
  return entries;
}

}  // namespace mybackup
