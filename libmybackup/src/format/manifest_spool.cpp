#include "mybackup/format/manifest_spool.hpp"

#include <unistd.h>

#include <cerrno>

#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

constexpr std::size_t kBufferSize = 1024 * 1024;
constexpr std::size_t kLengthPrefix = 4;

}  // namespace

ManifestSpool::ManifestSpool(const std::string& directory) : directory_(directory) {
  packs_.fd = open_unnamed_file(directory);
  try {
    versions_.fd = open_unnamed_file(directory);
  } catch (...) {
    ::close(packs_.fd);
    throw;
  }
}

ManifestSpool::~ManifestSpool() {
  ::close(packs_.fd);
  ::close(versions_.fd);
}

void ManifestSpool::add(const ManifestPack& pack) {
  record_.clear();
  encode_pack_record(pack, record_);
  append(packs_, record_);
  blob_count_ += pack.blobs.size();
}

void ManifestSpool::add(const ManifestVersion& version) {
  record_.clear();
  encode_version_record(version, record_);
  append(versions_, record_);
}

void ManifestSpool::append(File& file, const Bytes& record) {
  if (record.size() > UINT32_MAX) {
    throw Error(ErrorKind::usage, "a manifest record over 4 GiB");
  }
  const auto length = static_cast<std::uint32_t>(record.size());
  for (std::size_t i = 0; i < kLengthPrefix; ++i) {
    file.buffer.push_back(static_cast<std::uint8_t>(length >> (8 * i)));
  }
  file.buffer.insert(file.buffer.end(), record.begin(), record.end());
  ++file.count;
  if (file.buffer.size() >= kBufferSize) {
    flush(file);
  }
}

void ManifestSpool::flush(File& file) const {
  write_all(file.fd, file.buffer, "the run's temporary list of files in " + directory_);
  file.buffer.clear();
}

void ManifestSpool::read_back(File& file, const std::function<void(ByteView)>& visit) const {
  flush(file);
  Bytes window;
  std::size_t start = 0;
  std::uint64_t offset = 0;
  std::uint64_t seen = 0;
  Bytes block(kBufferSize);
  bool at_end = false;
  const auto fill = [&](std::size_t wanted) {
    // Keeps `wanted` bytes from `start` in the window, reading on as needed.
    while (!at_end && window.size() - start < wanted) {
      if (start > 0) {
        window.erase(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(start));
        start = 0;
      }
      const std::size_t n =
          read_some_at(file.fd, block.data(), block.size(), offset, "back the run's temporary list of files in " + directory_);
      at_end = n == 0;
      offset += n;
      window.insert(window.end(), block.begin(), block.begin() + static_cast<std::ptrdiff_t>(n));
    }
    return window.size() - start >= wanted;
  };
  while (seen < file.count) {
    if (!fill(kLengthPrefix)) {
      break;
    }
    std::uint32_t length = 0;
    for (std::size_t i = 0; i < kLengthPrefix; ++i) {
      length |= static_cast<std::uint32_t>(window[start + i]) << (8 * i);
    }
    if (!fill(kLengthPrefix + length)) {
      break;
    }
    visit(ByteView(window.data() + start + kLengthPrefix, length));
    start += kLengthPrefix + length;
    ++seen;
  }
  if (seen != file.count) {
    throw Error(ErrorKind::io, "the run's temporary list of files in " + directory_ + " is shorter than written");
  }
}

void ManifestSpool::for_each_pack(const std::function<void(const ManifestPack&)>& visit) const {
  read_back(packs_, [&](ByteView record) { visit(decode_pack_record(record)); });
}

void ManifestSpool::for_each_version(const std::function<void(const ManifestVersion&)>& visit) const {
  read_back(versions_, [&](ByteView record) { visit(decode_version_record(record)); });
}

}  // namespace mybackup
