#include "engine/run_feed.hpp"

#include <utility>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

std::size_t RunEvent::weight() const {
  return sizeof(RunEvent) + blobs.size() * sizeof(PackEntry) + name.size() + version.path.size() +
         version.link_target.size() + version.chunks.size() * sizeof(ChunkId);
}

void RunFeed::apply(RunEvent&& event) {
  switch (event.kind) {
    case RunEvent::Kind::chunks_placed: {
      const std::int64_t row = pack_row(event.pack);
      for (const PackEntry& blob : event.blobs) {
        recorder_.chunk_placed(row, blob);
      }
      if (waiting_.empty()) {
        return;
      }
      for (const PackEntry& blob : event.blobs) {
        auto [first, last] = waiting_.equal_range(blob.id);
        std::vector<ManifestVersion> ready;
        for (auto it = first; it != last; ++it) {
          ready.push_back(std::move(it->second));
        }
        waiting_.erase(first, last);
        for (ManifestVersion& version : ready) {
          offer(std::move(version));
        }
      }
      return;
    }
    case RunEvent::Kind::pack_stored:
      recorder_.pack_stored(pack_row(event.pack), event.name, event.size);
      pack_rows_.erase(event.pack);
      return;
    case RunEvent::Kind::version:
      offer(std::move(event.version));
      return;
  }
}

void RunFeed::finish() const {
  if (!waiting_.empty()) {
    const auto& [chunk, version] = *waiting_.begin();
    throw Error(ErrorKind::corrupt, "the backup recorded " + version.path + " with chunk " + to_hex(chunk) +
                                        ", which it never stored: nothing was recorded");
  }
}

void RunFeed::offer(ManifestVersion&& version) {
  if (!recorder_.add_version(version)) {
    const ChunkId missing = recorder_.missing_chunk();
    waiting_.emplace(missing, std::move(version));
  }
}

std::int64_t RunFeed::pack_row(std::uint64_t pack) {
  const auto [it, added] = pack_rows_.try_emplace(pack, 0);
  if (added) {
    it->second = recorder_.pack_started();
  }
  return it->second;
}

}  // namespace mybackup
