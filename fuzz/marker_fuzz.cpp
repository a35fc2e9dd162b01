// mybackup-repo.json: Repository::open (repository/repository.hpp) of a destination holding the
// input as its marker, with the seeds' key (so a well-formed marker opens).
#include <memory>

#include "fuzz_support.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto backend = std::make_unique<mybackup::fuzz::MemoryBackend>();
  backend->put(mybackup::object_names::kMarker, mybackup::ByteView(data, size), mybackup::Overwrite::no);
  try {
    const auto repository =
        mybackup::Repository::open(std::move(backend), mybackup::fuzz::test_key(), mybackup::CreateIfMissing::no);
    // An opened repository's options are the ones every writer will use: they must be valid.
    repository->info().options().validate();
  } catch (const mybackup::Error& error) {
    // corrupt also when the marker is above object_names::kMaxMarkerSize.
    mybackup::fuzz::expect_kind(error,
                                {mybackup::ErrorKind::corrupt, mybackup::ErrorKind::wrong_key, mybackup::ErrorKind::mismatch});
  }
  return 0;
}
