// A stored pack, data/<2 hex>/<64 hex>.enc, read as verify and restore read it (with the seeds'
// key): Repository::read_pack, read_pack_header (format/pack.hpp), then Repository::read_chunk of
// every entry (open_blob, decompression, the chunk id check).
#include <memory>

#include "fuzz_support.hpp"
#include "mybackup/format/pack.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"

namespace {
using Fixture = mybackup::fuzz::MemoryRepository;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  const mybackup::ByteView input(data, size);
  const std::string name = mybackup::to_hex(mybackup::Sha256::hash(input));
  fixture.backend->put(mybackup::object_names::pack(name), input, mybackup::Overwrite::yes);
  try {
    const mybackup::Bytes pack = fixture.repository->read_pack(name, size);
    for (const mybackup::PackEntry& entry : mybackup::read_pack_header(fixture.repository->keys().enc_key, pack)) {
      try {
        fixture.repository->read_chunk(name, entry);
      } catch (const mybackup::Error& error) {
        mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
      }
    }
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt, mybackup::ErrorKind::crypto});
  }
  fixture.backend->remove(mybackup::object_names::pack(name));
  return 0;
}
