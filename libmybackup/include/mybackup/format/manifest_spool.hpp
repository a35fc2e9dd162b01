#pragma once
// The packs and versions of a run being made, kept in two unnamed temporary files instead of
// memory: a backup of millions of files adds them one by one, and the manifest, the catalog and
// the report read them back one at a time (Manifest::spooled).
//
// The files are created with O_TMPFILE (mode 0600) in the directory given, never have a name,
// and vanish with the spool (or the process). They hold paths and chunk ids in the clear, like
// the catalog: the directory should be the home's.
//
// Not thread-safe: the caller serializes add() calls; reading must not overlap adding.

#include <cstdint>
#include <string>

#include "mybackup/format/manifest.hpp"

namespace mybackup {

class ManifestSpool final : public ManifestRecords {
 public:
  /// Error(io) if the directory cannot hold the temporary files.
  explicit ManifestSpool(const std::string& directory);
  ~ManifestSpool() override;
  ManifestSpool(const ManifestSpool&) = delete;
  ManifestSpool& operator=(const ManifestSpool&) = delete;

  /// Appends one record. Error(no_space) or Error(io) if it cannot be written.
  void add(const ManifestPack& pack);
  void add(const ManifestVersion& version);

  std::uint64_t pack_count() const override { return packs_.count; }
  std::uint64_t version_count() const override { return versions_.count; }
  const std::string& directory() const override { return directory_; }
  /// Blobs in all the packs added.
  std::uint64_t blob_count() const { return blob_count_; }
  void for_each_pack(const std::function<void(const ManifestPack&)>& visit) const override;
  void for_each_version(const std::function<void(const ManifestVersion&)>& visit) const override;

 private:
  /// One temporary file of length-prefixed records, written through a buffer.
  struct File {
    int fd = -1;
    std::uint64_t count = 0;
    Bytes buffer;  // records not yet written
  };
  void append(File& file, const Bytes& record);
  void flush(File& file) const;
  void read_back(File& file, const std::function<void(ByteView record)>& visit) const;

  std::string directory_;
  mutable File packs_;
  mutable File versions_;
  std::uint64_t blob_count_ = 0;
  Bytes record_;  // scratch
};

}  // namespace mybackup
