// Another writer's lock file: RepositoryLock (repository/lock.hpp) takes the lock of a
// repository whose locks/ holds the input. It either takes the lock (the other one is stale and
// removed) or fails with Error(locked), naming the holder or the unreadable file.
#include <memory>

#include "fuzz_support.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/object_names.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mybackup::fuzz::MemoryBackend backend;
  const std::string other = mybackup::object_names::lock("00112233445566ff");
  backend.put(other, mybackup::ByteView(data, size), mybackup::Overwrite::no);
  try {
    const mybackup::RepositoryLock lock(backend, "fuzz");
    mybackup::fuzz::check(!backend.size(other), "a lock is taken only once the other one is removed");
  } catch (const mybackup::Error& error) {
    // corrupt: the backend refuses a lock file above object_names::kMaxLockSize.
    mybackup::fuzz::expect_kind(error, {mybackup::ErrorKind::locked, mybackup::ErrorKind::corrupt});
    mybackup::fuzz::check(backend.list(mybackup::object_names::kLocks).size() == 1, "a refused writer leaves no lock");
  }
  return 0;
}
