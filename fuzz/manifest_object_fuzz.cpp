// A stored manifest, snapshots/<seq>-<run id>.enc: Repository::read_manifest
// (repository/repository.hpp) with the seeds' key. The 4-byte size prefix is outside the
// authenticated blob, so the seeds (real manifests) let the fuzzer reach decompression with any
// declared size; the rest mostly stops at authentication. Read whole and as a stream (through a
// spool in the temporary directory): both must accept or refuse the same objects.
#include <memory>

#include "fuzz_support.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/util/fs.hpp"

namespace {
/// The seeds' repository (manifests are sealed under a name-bound id, not a repository id).
struct Fixture : mybackup::fuzz::MemoryRepository {
  std::string key = mybackup::object_names::manifest(1, "0123456789abcdef");
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  fixture.backend->put(fixture.key, mybackup::ByteView(data, size), mybackup::Overwrite::yes);
  const auto readable = [](const auto& read) {
    try {
      read();
      return true;
    } catch (const mybackup::Error& error) {
      mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::corrupt});
      return false;
    }
  };
  const bool whole = readable([] { fixture.repository->read_manifest(fixture.key); });
  const bool streamed =
      readable([] { fixture.repository->read_manifest(fixture.key, mybackup::temporary_directory()); });
  mybackup::fuzz::check(whole == streamed, "reading whole and streaming disagree on what is a valid manifest");
  return 0;
}
