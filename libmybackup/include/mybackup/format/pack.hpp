#pragma once
// Blobs and packs: how chunks are stored on the destination (docs/format.md has the full grammar).
//
//   blob        := "MBK1" flags:u8 nonce:12 ciphertext tag:16
//                  AES-256-GCM under enc_key; associated data = "MBK1" flags id:32, so a blob
//                  copied under another id, or with its flags changed, fails authentication.
//                  flags bit 0: the plaintext is a zstd frame (else the chunk is stored raw).
//   pack        := blob* header_blob header_size:u32le
//   header_blob := "MBKH" nonce:12 AES-256-GCM(enc_key, header, ad = "MBKH") tag:16
//   header      := version:u8(=1) count:u32le entry*
//   entry       := id:32 offset:u32le length:u32le raw_length:u32le flags:u8
// A pack's name is the lowercase hex SHA-256 of its bytes, so anyone can check it without the key.

#include <cstdint>
#include <string>
#include <vector>

#include "mybackup/util/bytes.hpp"
#include "mybackup/crypto/crypto.hpp"

namespace mybackup {

using ChunkId = Digest;

constexpr std::uint8_t kBlobCompressed = 0x01;
constexpr std::size_t kBlobOverhead = 4 + 1 + kAeadNonceSize + kAeadTagSize;
/// The part of that before the payload: magic, flags, nonce.
constexpr std::size_t kBlobHeaderSize = 4 + 1 + kAeadNonceSize;
/// The pack target size of a repository created without options (RepositoryOptions): writers
/// close a pack before a blob would take it past its repository's target size.
constexpr std::uint32_t kDefaultPackTargetSize = 16 * 1024 * 1024;

/// Encrypts one chunk's stored form (`payload`: compressed or raw bytes) and appends the blob to `out`.
/// Each call draws a fresh random nonce.
void seal_blob(const AeadKey& key, const ChunkId& id, std::uint8_t flags, ByteView payload, Bytes& out);

/// seal_blob with a nonce chosen by the caller. It exists only to reproduce the test vectors of
/// docs/format.md (tests/unit/format/format_vectors_test.cpp): a nonce used twice under one key
/// breaks AES-GCM, so everything that writes to a repository calls seal_blob.
void seal_blob_with_nonce(const AeadKey& key, const ChunkId& id, std::uint8_t flags, const AeadNonce& nonce,
                          ByteView payload, Bytes& out);

/// seal_blob given the payload in pieces (a manifest too large to hold): the constructor appends
/// the blob's header to `out`, update() the encrypted payload as it comes, finish() the tag. The
/// result is the same format as seal_blob's, with a fresh random nonce. Not thread-safe.
class BlobSealer {
 public:
  BlobSealer(const AeadKey& key, const ChunkId& id, std::uint8_t flags, Bytes& out);
  void update(ByteView payload, Bytes& out) { sealer_.update(payload, out); }
  void finish(Bytes& out) { sealer_.finish(out); }

 private:
  BlobSealer(const AeadKey& key, const ChunkId& id, std::uint8_t flags, const AeadNonce& nonce, Bytes& out);
  Aes256GcmSealer sealer_;
};

/// open_blob given the blob in pieces: the constructor reads the header (the first
/// kBlobHeaderSize bytes), update() decrypts the payload as it comes (appending to `out`),
/// finish() takes the last kAeadTagSize bytes and authenticates. Nothing update() gave may be
/// used before finish() returns. Error(corrupt) for a malformed header or a failed
/// authentication (naming `id`). Not thread-safe.
class BlobOpener {
 public:
  BlobOpener(const AeadKey& key, const ChunkId& id, ByteView header);
  std::uint8_t flags() const { return flags_; }
  void update(ByteView ciphertext, Bytes& out) { opener_->update(ciphertext, out); }
  void finish(ByteView tag);

 private:
  ChunkId id_;
  std::uint8_t flags_ = 0;
  std::unique_ptr<Aes256GcmOpener> opener_;
};

/// Authenticates and decrypts a blob; returns its payload and sets `flags`.
/// Error(corrupt) if the framing is wrong, Error(crypto) if authentication fails.
Bytes open_blob(const AeadKey& key, const ChunkId& id, ByteView blob, std::uint8_t& flags);

/// Bytes a pack adds after its blobs for `entries` entries: the sealed header and its length.
constexpr std::size_t pack_trailer_size(std::size_t entries) {
  return 4 + kAeadNonceSize + (1 + 4 + entries * (32 + 4 + 4 + 4 + 1)) + kAeadTagSize + 4;
}

/// True if a blob of `blob_size` bytes may join a pack whose blobs take `pack_bytes` so far: the
/// pack stays within `target_size`, or it is empty (an oversized blob gets a pack of its own).
constexpr bool pack_fits(std::size_t pack_bytes, std::size_t blob_size, std::size_t target_size) {
  return pack_bytes == 0 || pack_bytes + blob_size <= target_size;
}

/// Where one blob sits inside a pack.
struct PackEntry {
  ChunkId id{};
  std::uint32_t offset = 0;
  std::uint32_t length = 0;      // of the blob, overhead included
  std::uint32_t raw_length = 0;  // of the chunk before compression
  std::uint8_t flags = 0;

  bool operator==(const PackEntry&) const = default;
};

struct FinishedPack {
  std::string name;  // hex SHA-256 of `bytes`
  Bytes bytes;
  std::vector<PackEntry> entries;
};

/// Assembles a pack in memory.
class PackBuilder {
 public:
  /// A builder for packs of about `target_size` bytes (the repository's pack target size).
  explicit PackBuilder(std::size_t target_size) : target_size_(target_size) {}

  /// The capacity a pack's buffer gets at its first blob: the blobs, and room for a header
  /// listing thousands of small ones. A pool keeping pack buffers for reuse must keep this much.
  static std::size_t buffer_capacity(std::size_t target_size) { return target_size + target_size / 8 + 64 * 1024; }

  /// Appends a sealed blob; returns its entry, as the header will list it. REQUIRES: the pack
  /// stays below 4 GiB. Callers close a pack before a blob would take it past the target size
  /// (see fits()), so packs stay near that size.
  const PackEntry& add(const ChunkId& id, ByteView blob, std::uint32_t raw_length, std::uint8_t flags);
  std::size_t size() const { return bytes_.size(); }
  /// pack_fits() for this pack and its target size.
  bool fits(std::size_t blob_size) const { return pack_fits(bytes_.size(), blob_size, target_size_); }
  bool empty() const { return entries_.empty(); }
  /// Gives the builder an empty buffer whose capacity the next pack reuses (saves allocating
  /// and page-faulting a whole pack's worth of memory per pack). REQUIRES: empty().
  void reuse(Bytes&& buffer) {
    buffer.clear();
    bytes_ = std::move(buffer);
  }
  /// Appends the encrypted header (under a fresh random nonce) and returns the pack; the builder
  /// is empty again afterwards.
  FinishedPack finish(const AeadKey& key);
  /// finish() with the header's nonce chosen by the caller: only for the test vectors of
  /// docs/format.md, like seal_blob_with_nonce.
  FinishedPack finish_with_nonce(const AeadKey& key, const AeadNonce& header_nonce);

 private:
  std::size_t target_size_;
  Bytes bytes_;
  std::vector<PackEntry> entries_;
};

/// Reads the header of a whole pack and checks that every entry lies before the header.
/// Error(corrupt) if the structure is wrong, Error(crypto) if authentication fails.
std::vector<PackEntry> read_pack_header(const AeadKey& key, ByteView pack);

}  // namespace mybackup
