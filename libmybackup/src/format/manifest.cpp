#include "mybackup/format/manifest.hpp"

#include <cstring>

#include "format/manifest_parser.hpp"
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

ManifestParser::ManifestParser(std::uint64_t size, Manifest& manifest, std::function<void(ManifestPack&&)> on_pack,
                               std::function<void(ManifestVersion&&)> on_version)
    : size_(size), manifest_(manifest), on_pack_(std::move(on_pack)), on_version_(std::move(on_version)) {}

std::uint64_t ManifestParser::count(binary::Reader& r, std::uint64_t min_item_size) const {
  const std::uint64_t value = r.varint();
  if (value > size_ / min_item_size) {
    r.fail();
  }
  return value;
}

void ManifestParser::step(binary::Reader& r) {
  switch (part_) {
    case Part::header: {
      if (std::memcmp(r.raw(4).data(), kMagic.data(), 4) != 0) {
        r.fail();
      }
      const std::uint8_t format = r.u8();
      if (format < kOldestReadableVersion || format > kVersion) {
        throw Error(ErrorKind::corrupt, "manifest has an unknown format version (a newer mybackup wrote it?)");
      }
      Manifest header;
      const std::uint8_t kind = r.u8();
      if (kind != static_cast<std::uint8_t>(RunKind::backup) && kind != static_cast<std::uint8_t>(RunKind::clean)) {
        r.fail();
      }
      header.kind = static_cast<RunKind>(kind);
      header.seq = r.varint();
      header.run_id = r.string();
      header.host = r.string();
      header.started_ns = r.svarint();
      header.finished_ns = r.svarint();
      for (std::uint64_t i = count(r, 1); i > 0; --i) {
        header.sources.push_back(r.string());
      }
      manifest_.kind = header.kind;
      manifest_.seq = header.seq;
      manifest_.run_id = std::move(header.run_id);
      manifest_.host = std::move(header.host);
      manifest_.started_ns = header.started_ns;
      manifest_.finished_ns = header.finished_ns;
      manifest_.sources = std::move(header.sources);
      format_ = format;
      part_ = Part::pack_count;
      break;
    }
    case Part::pack_count:
      left_ = count(r, 34);
      part_ = Part::packs;
      break;
    case Part::packs:
      on_pack_(read_pack(r));
      --left_;
      break;
    case Part::version_count:
      left_ = count(r, 8);
      part_ = Part::versions;
      break;
    case Part::versions:
      on_version_(read_version(r, format_));
      --left_;
      break;
    case Part::removal_count:
      left_ = count(r, 2);
      part_ = Part::removals;
      break;
    case Part::removals: {
      ManifestRemoval removal;
      removal.path = r.string();
      removal.number = static_cast<std::uint32_t>(r.varint());
      manifest_.removed.push_back(std::move(removal));
      --left_;
      break;
    }
    case Part::deleted_count:
      left_ = count(r, 32);
      part_ = Part::deleted;
      break;
    case Part::deleted:
      manifest_.deleted_packs.push_back(to_hex(r.raw(32)));
      --left_;
      break;
    case Part::config:
      manifest_.config = r.string();
      part_ = Part::done;
      break;
    case Part::done:
      r.fail();  // bytes after the end
  }
  skip_empty_lists();
}

void ManifestParser::skip_empty_lists() {
  for (;;) {
    if (left_ != 0) {
      return;
    }
    if (part_ == Part::packs) {
      part_ = Part::version_count;
    } else if (part_ == Part::versions) {
      part_ = format_ >= 2 ? Part::removal_count : Part::done;  // format 1 ends with the versions
    } else if (part_ == Part::removals) {
      part_ = Part::deleted_count;
    } else if (part_ == Part::deleted) {
      part_ = Part::config;
    } else {
      return;
    }
  }
}

Manifest decode_manifest(ByteView data) {
  Manifest manifest;
  ManifestParser parser(
      data.size(), manifest, [&manifest](ManifestPack&& pack) { manifest.packs.push_back(std::move(pack)); },
      [&manifest](ManifestVersion&& version) { manifest.versions.push_back(std::move(version)); });
  binary::Reader r(data, "manifest");
  while (!parser.done()) {
    parser.step(r);
  }
  if (r.remaining() != 0) {
    r.fail();
  }
  return manifest;
}

}  // namespace mybackup
