#pragma once
// decode_manifest for a manifest that comes in pieces and may be too large to hold: its packs
// and versions go to a ManifestSpool as they are decoded (Manifest::spooled), the rest (the
// run's fields, a clean's removals and deleted packs, the configuration) is held.
//
// Memory: the bytes of one unfinished record, and the spool's buffers. Not thread-safe.

#include <cstdint>
#include <memory>
#include <string>

#include "mybackup/format/manifest.hpp"

namespace mybackup {

class ManifestDecoder {
 public:
  /// `size`: the whole encoding's length (the manifest object declares it). The spool's
  /// unnamed files go in `spool_directory` (see ManifestSpool). Error(io) if they cannot.
  ManifestDecoder(std::uint64_t size, const std::string& spool_directory);
  ~ManifestDecoder();
  ManifestDecoder(const ManifestDecoder&) = delete;
  ManifestDecoder& operator=(const ManifestDecoder&) = delete;

  /// Decodes what `piece` completes. Error(corrupt) for a malformed record or more bytes than
  /// `size`; Error(io) or Error(no_space) if the spool cannot be written.
  void add(ByteView piece);

  /// The manifest, its packs and versions spooled. Error(corrupt) if the encoding is
  /// incomplete or shorter than `size`. The decoder is spent.
  Manifest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mybackup
