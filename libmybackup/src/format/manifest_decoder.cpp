#include "mybackup/format/manifest_decoder.hpp"

#include "format/manifest_parser.hpp"
#include "mybackup/format/manifest_spool.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

struct ManifestDecoder::Impl {
  Impl(std::uint64_t encoded_size, const std::string& directory)
      : size(encoded_size),
        spool(std::make_shared<ManifestSpool>(directory)),
        parser(
            encoded_size, manifest, [this](ManifestPack&& pack) { spool->add(pack); },
            [this](ManifestVersion&& version) { spool->add(version); }) {}

  /// Decodes every part `pending` holds whole; with `at_end`, a part cut short is an error.
  void decode(bool at_end) {
    while (!parser.done()) {
      binary::Reader r(ByteView(pending).subspan(position), "manifest");
      try {
        parser.step(r);
      } catch (const Error& error) {
        if (error.kind() == ErrorKind::corrupt && r.short_of_data() && !at_end) {
          break;  // the rest of this part comes with the next piece
        }
        throw;
      }
      position += r.consumed();
    }
    // Decoded bytes go; what is left is less than one record.
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(position));
    position = 0;
  }

  std::uint64_t size;
  std::uint64_t received = 0;
  Manifest manifest;
  std::shared_ptr<ManifestSpool> spool;
  ManifestParser parser;
  Bytes pending;
  std::size_t position = 0;  // in `pending`: the first byte not yet decoded
};

ManifestDecoder::ManifestDecoder(std::uint64_t size, const std::string& spool_directory)
    : impl_(std::make_unique<Impl>(size, spool_directory)) {}

ManifestDecoder::~ManifestDecoder() = default;

void ManifestDecoder::add(ByteView piece) {
  impl_->received += piece.size();
  if (impl_->received > impl_->size || (impl_->parser.done() && !piece.empty())) {
    throw Error(ErrorKind::corrupt, "manifest is malformed");
  }
  impl_->pending.insert(impl_->pending.end(), piece.begin(), piece.end());
  impl_->decode(false);
}

Manifest ManifestDecoder::finish() {
  impl_->decode(true);
  if (!impl_->parser.done() || !impl_->pending.empty() || impl_->received != impl_->size) {
    throw Error(ErrorKind::corrupt, "manifest is malformed");
  }
  Manifest manifest = std::move(impl_->manifest);
  manifest.spooled = impl_->spool;
  return manifest;
}

}  // namespace mybackup
