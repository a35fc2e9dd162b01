#include "mybackup/format/manifest.hpp"

#include <cstring>

#include "util/binary_io.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {
constexpr std::string_view kMagic = "MBKM";
constexpr std::uint8_t kVersion = 3;
constexpr std::uint8_t kOldestReadableVersion = 1;  // 1: no removed / deleted_packs sections; 2: no metadata
constexpr std::uint8_t kEntryTypeLimit = static_cast<std::uint8_t>(EntryType::block_device);

std::uint32_t read_u32(binary::Reader& reader) {
  const std::uint64_t value = reader.varint();
  if (value > UINT32_MAX) {
    reader.fail();
  }
  return static_cast<std::uint32_t>(value);
}

bool is_device(EntryType type) { return type == EntryType::char_device || type == EntryType::block_device; }

template <std::size_t N>
void read_digest(binary::Reader& reader, std::array<std::uint8_t, N>& out) {
  const ByteView raw = reader.raw(N);
  std::memcpy(out.data(), raw.data(), N);
}

void write_pack(binary::Writer& w, const ManifestPack& pack) {
  w.raw(from_hex(pack.name));
  w.varint(pack.size);
  w.varint(pack.blobs.size());
  for (const PackEntry& blob : pack.blobs) {
    w.raw(blob.id);
    w.varint(blob.offset);
    w.varint(blob.length);
    w.varint(blob.raw_length);
    w.u8(blob.flags);
  }
}

void write_version(binary::Writer& w, const ManifestVersion& version) {
  w.string(version.path);
  w.u8(static_cast<std::uint8_t>(version.type));
  w.varint(version.number);
  w.varint(version.mode);
  w.svarint(version.mtime_ns);
  w.varint(version.size);
  w.varint(version.inode);
  if (version.type != EntryType::deleted) {
    // A flag, so a version whose metadata was never read (one carried over from an older
    // format) can never come back as "owned by uid 0".
    w.u8(version.meta.recorded ? 1 : 0);
  }
  if (version.type != EntryType::deleted && version.meta.recorded) {
    const FileMetadata& meta = version.meta;
    w.varint(meta.uid);
    w.varint(meta.gid);
    w.string(meta.owner);
    w.string(meta.group);
    w.svarint(meta.ctime_ns);
    w.varint(meta.device);
    w.varint(meta.links);
    if (is_device(version.type)) {
      w.varint(meta.rdev);
    }
    w.string(encode_xattrs(meta.xattrs));
  }
  if (version.type == EntryType::file) {
    w.raw(version.sha256);
  }
  if (version.type == EntryType::symlink) {
    w.string(version.link_target);
  }
  if (version.type == EntryType::file) {
    w.varint(version.chunks.size());
    for (const ChunkId& id : version.chunks) {
      w.raw(id);
    }
  }
}

ManifestPack read_pack(binary::Reader& r) {
  ManifestPack pack;
  pack.name = to_hex(r.raw(32));
  pack.size = r.varint();
  pack.blobs.resize(r.count(36));
  for (PackEntry& blob : pack.blobs) {
    read_digest(r, blob.id);
    blob.offset = static_cast<std::uint32_t>(r.varint());
    blob.length = static_cast<std::uint32_t>(r.varint());
    blob.raw_length = static_cast<std::uint32_t>(r.varint());
    blob.flags = r.u8();
  }
  return pack;
}

ManifestVersion read_version(binary::Reader& r, std::uint8_t format) {
  ManifestVersion version;
  version.path = r.string();
  const std::uint8_t type = r.u8();
  if (type < 1 || type > (format >= 3 ? kEntryTypeLimit : 4)) {
    r.fail();
  }
  version.type = static_cast<EntryType>(type);
  version.number = static_cast<std::uint32_t>(r.varint());
  version.mode = static_cast<std::uint32_t>(r.varint());
  version.mtime_ns = r.svarint();
  version.size = r.varint();
  version.inode = r.varint();
  const std::uint8_t recorded = (format >= 3 && version.type != EntryType::deleted) ? r.u8() : 0;
  if (recorded > 1) {
    r.fail();
  }
  if (recorded == 1) {
    FileMetadata& meta = version.meta;
    meta.recorded = true;
    meta.uid = read_u32(r);
    meta.gid = read_u32(r);
    meta.owner = r.string();
    meta.group = r.string();
    meta.ctime_ns = r.svarint();
    meta.device = r.varint();
    meta.links = read_u32(r);
    if (is_device(version.type)) {
      meta.rdev = r.varint();
    }
    meta.xattrs = decode_xattrs(r.string());
  }
  if (version.type == EntryType::file) {
    read_digest(r, version.sha256);
  }
  if (version.type == EntryType::symlink) {
    version.link_target = r.string();
  }
  if (version.type == EntryType::file) {
    version.chunks.resize(r.count(32));
    for (ChunkId& id : version.chunks) {
      read_digest(r, id);
    }
  }
  return version;
}

/// One record that must fill `data` exactly (a spool's).
template <typename Read>
auto decode_whole(ByteView data, Read&& read) {
  binary::Reader r(data, "manifest record");
  auto record = read(r);
  if (r.remaining() != 0) {
    r.fail();
  }
  return record;
}

/// Hands `out` to `sink` once it holds about kPiece bytes.
constexpr std::size_t kPiece = 1024 * 1024;
void flush_if_full(Bytes& out, const std::function<void(ByteView)>& sink, bool force = false) {
  if (out.size() >= kPiece || (force && !out.empty())) {
    sink(out);
    out.clear();
  }
}
}  // namespace

namespace {
/// The records held in memory, then those the spool holds (its `each` member).
template <typename Record>
void visit_records(const std::vector<Record>& held, const ManifestRecords* spooled,
                   void (ManifestRecords::*each)(const std::function<void(const Record&)>&) const,
                   const std::function<void(const Record&)>& visit) {
  for (const Record& record : held) {
    visit(record);
  }
  if (spooled != nullptr) {
    (spooled->*each)(visit);
  }
}
}  // namespace

std::uint64_t pack_count(const Manifest& manifest) {
  return manifest.packs.size() + (manifest.spooled ? manifest.spooled->pack_count() : 0);
}

void for_each_pack(const Manifest& manifest, const std::function<void(const ManifestPack&)>& visit) {
  visit_records(manifest.packs, manifest.spooled.get(), &ManifestRecords::for_each_pack, visit);
}

std::uint64_t version_count(const Manifest& manifest) {
  return manifest.versions.size() + (manifest.spooled ? manifest.spooled->version_count() : 0);
}

void for_each_version(const Manifest& manifest, const std::function<void(const ManifestVersion&)>& visit) {
  visit_records(manifest.versions, manifest.spooled.get(), &ManifestRecords::for_each_version, visit);
}

void encode_manifest(const Manifest& manifest, const std::function<void(ByteView)>& sink) {
  Bytes out;
  out.reserve(kPiece + 64 * 1024);
  binary::Writer w(out);
  w.raw(as_bytes(kMagic));
  w.u8(kVersion);
  w.u8(static_cast<std::uint8_t>(manifest.kind));
  w.varint(manifest.seq);
  w.string(manifest.run_id);
  w.string(manifest.host);
  w.svarint(manifest.started_ns);
  w.svarint(manifest.finished_ns);
  w.varint(manifest.sources.size());
  for (const std::string& source : manifest.sources) {
    w.string(source);
  }
  w.varint(pack_count(manifest));
  for_each_pack(manifest, [&](const ManifestPack& pack) {
    write_pack(w, pack);
    flush_if_full(out, sink);
  });
  w.varint(version_count(manifest));
  for_each_version(manifest, [&](const ManifestVersion& version) {
    write_version(w, version);
    flush_if_full(out, sink);
  });
  w.varint(manifest.removed.size());
  for (const ManifestRemoval& removal : manifest.removed) {
    w.string(removal.path);
    w.varint(removal.number);
    flush_if_full(out, sink);
  }
  w.varint(manifest.deleted_packs.size());
  for (const std::string& name : manifest.deleted_packs) {
    w.raw(from_hex(name));
  }
  w.string(manifest.config);
  flush_if_full(out, sink, true);
}

Bytes encode_manifest(const Manifest& manifest) {
  Bytes all;
  encode_manifest(manifest, [&all](ByteView piece) { all.insert(all.end(), piece.begin(), piece.end()); });
  return all;
}

void encode_pack_record(const ManifestPack& pack, Bytes& out) {
  binary::Writer w(out);
  write_pack(w, pack);
}

ManifestPack decode_pack_record(ByteView data) {
  return decode_whole(data, [](binary::Reader& r) { return read_pack(r); });
}

void encode_version_record(const ManifestVersion& version, Bytes& out) {
  binary::Writer w(out);
  write_version(w, version);
}

ManifestVersion decode_version_record(ByteView data) {
  return decode_whole(data, [](binary::Reader& r) { return read_version(r, kVersion); });
}

Manifest decode_manifest(ByteView data) {
  binary::Reader r(data, "manifest");
  if (std::memcmp(r.raw(4).data(), kMagic.data(), 4) != 0) {
    r.fail();
  }
  const std::uint8_t format = r.u8();
  if (format < kOldestReadableVersion || format > kVersion) {
    throw Error(ErrorKind::corrupt, "manifest has an unknown format version (a newer mybackup wrote it?)");
  }
  Manifest manifest;
  const std::uint8_t kind = r.u8();
  if (kind != static_cast<std::uint8_t>(RunKind::backup) && kind != static_cast<std::uint8_t>(RunKind::clean)) {
    r.fail();
  }
  manifest.kind = static_cast<RunKind>(kind);
  manifest.seq = r.varint();
  manifest.run_id = r.string();
  manifest.host = r.string();
  manifest.started_ns = r.svarint();
  manifest.finished_ns = r.svarint();
  manifest.sources.resize(r.count(1));
  for (std::string& source : manifest.sources) {
    source = r.string();
  }
  manifest.packs.resize(r.count(34));
  for (ManifestPack& pack : manifest.packs) {
    pack = read_pack(r);
  }
  manifest.versions.resize(r.count(8));
  for (ManifestVersion& version : manifest.versions) {
    version = read_version(r, format);
  }
  if (format >= 2) {
    manifest.removed.resize(r.count(2));
    for (ManifestRemoval& removal : manifest.removed) {
      removal.path = r.string();
      removal.number = static_cast<std::uint32_t>(r.varint());
    }
    manifest.deleted_packs.resize(r.count(32));
    for (std::string& name : manifest.deleted_packs) {
      name = to_hex(r.raw(32));
    }
    manifest.config = r.string();
  }
  if (r.remaining() != 0) {
    r.fail();
  }
  return manifest;
}

}  // namespace mybackup
