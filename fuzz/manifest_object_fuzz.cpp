// A stored manifest, snapshots/<seq>-<run id>.enc: Repository::read_manifest
// (repository/repository.hpp) with the seeds' key. The 4-byte size prefix is outside the
// authenticated blob, so the seeds (real manifests) let the fuzzer reach decompression with any
// declared size; the rest mostly stops at authentication.
#include <memory>

#include "fuzz_support.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"

namespace {
/// The seeds' repository (manifests are sealed under a name-bound id, not a repository id).
struct Fixture : mybackup::fuzz::MemoryRepository {
  std::string key = mybackup::object_names::manifest(1, "0123456789abcdef");
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  fixture.backend->put(fixture.key, mybackup::ByteView(data, size), mybackup::Overwrite::yes);
  try {
    fixture.repository->read_manifest(fixture.key);
  } catch (const mybackup::Error& error) {
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
  }
  return 0;
}
