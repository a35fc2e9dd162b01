#pragma once
// The manifest's encoding read one part at a time (internal to format/): the fields before the
// packs, each pack, each version, each removal, each deleted pack, the configuration. Whole
// buffers (decode_manifest) and streams (ManifestDecoder) share it.

#include <cstdint>
#include <functional>

#include "mybackup/format/manifest.hpp"
#include "util/binary_io.hpp"

namespace mybackup {

class ManifestParser {
 public:
  /// Packs and versions go to the two sinks, the rest into `manifest`. `size` is the whole
  /// encoding's length: no count may promise more items than it can hold.
  ManifestParser(std::uint64_t size, Manifest& manifest, std::function<void(ManifestPack&&)> on_pack,
                 std::function<void(ManifestVersion&&)> on_version);

  bool done() const { return part_ == Part::done; }

  /// Decodes the next part from `r`. On an error nothing has changed, so a stream's decoder may
  /// call again with more bytes when r.short_of_data(). Error(corrupt) for a malformed part.
  void step(binary::Reader& r);

 private:
  enum class Part { header, pack_count, packs, version_count, versions, removal_count, removals, deleted_count, deleted, config, done };
  std::uint64_t count(binary::Reader& r, std::uint64_t min_item_size) const;
  void skip_empty_lists();

  std::uint64_t size_;
  Manifest& manifest_;
  std::function<void(ManifestPack&&)> on_pack_;
  std::function<void(ManifestVersion&&)> on_version_;
  Part part_ = Part::header;
  std::uint8_t format_ = 0;
  std::uint64_t left_ = 0;  // items left in the current list
};

}  // namespace mybackup
