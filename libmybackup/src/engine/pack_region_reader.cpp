#include "mybackup/engine/pack_region_reader.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

struct Region {
  std::uint64_t offset = 0;
  std::uint64_t end = 0;
  std::uint64_t uses_left = 0;  // announced chunk reads not served yet
  std::shared_ptr<const Bytes> data;
  std::uint64_t last_used = 0;
  bool loading = false;
  bool failed = false;  // its chunks are read one by one
};

}  // namespace

struct PackRegionReader::State {
  const Repository& repository;
  PackRegionLimits limits;
  std::mutex mutex;
  std::condition_variable loaded;
  std::unordered_map<std::string, std::vector<Region>> packs;  // regions sorted by offset
  std::uint64_t held = 0;
  std::uint64_t tick = 0;
  std::atomic<std::uint64_t> reads{0};
  std::thread prefetcher;    // one region read ahead at a time; joined by the destructor
  bool prefetching = false;  // guarded by mutex

  State(const Repository& repository_, PackRegionLimits limits_) : repository(repository_), limits(limits_) {}

  /// The region of `pack` holding the blob `entry`, or nullptr. REQUIRES: mutex held.
  Region* find(const std::string& pack, const PackEntry& entry) {
    const auto found = packs.find(pack);
    if (found == packs.end()) {
      return nullptr;
    }
    std::vector<Region>& regions = found->second;
    auto after = std::upper_bound(regions.begin(), regions.end(), std::uint64_t{entry.offset},
                                  [](std::uint64_t offset, const Region& region) { return offset < region.offset; });
    if (after == regions.begin()) {
      return nullptr;
    }
    Region& region = *std::prev(after);
    return std::uint64_t{entry.offset} + entry.length <= region.end ? &region : nullptr;
  }

  void release(Region& region) {
    if (region.data) {
      held -= region.data->size();
      region.data.reset();
    }
  }

  /// Drops least recently used regions (other than `keep`) until the budget holds. REQUIRES: mutex held.
  void evict(const Region& keep) {
    while (held > limits.cache_budget) {
      Region* oldest = nullptr;
      for (auto& [name, regions] : packs) {
        for (Region& region : regions) {
          if (region.data && &region != &keep && (oldest == nullptr || region.last_used < oldest->last_used)) {
            oldest = &region;
          }
        }
      }
      if (oldest == nullptr) {
        return;
      }
      release(*oldest);
    }
  }

  /// Reads `region` of `pack` into memory (or marks it failed), with the mutex released during the
  /// read. REQUIRES: `lock` holds the mutex and region.loading was set by the caller.
  void load(std::unique_lock<std::mutex>& lock, const std::string& pack, Region& region) {
    const std::uint64_t offset = region.offset;
    const std::uint64_t length = region.end - region.offset;
    lock.unlock();
    std::shared_ptr<const Bytes> data;
    try {
      ++reads;
      data = std::make_shared<const Bytes>(repository.read_pack_region(pack, offset, length));
    } catch (const Error&) {
      data.reset();  // each chunk is then read on its own, with the fallback
    }
    lock.lock();
    region.loading = false;
    region.failed = !data;
    if (data) {
      region.data = std::move(data);
      held += region.data->size();
      evict(region);
    }
    loaded.notify_all();
  }

  /// Starts reading the region after `region` of `pack` in the background, so that it is there
  /// when the workers reach it (restores follow the order the backup packed in). REQUIRES: mutex held.
  void prefetch_after(const std::string& pack, const Region& region) {
    std::vector<Region>& regions = packs.at(pack);
    const auto next = static_cast<std::size_t>(&region - regions.data()) + 1;
    if (next >= regions.size()) {
      return;
    }
    Region& upcoming = regions[next];
    if (prefetching || upcoming.data || upcoming.loading || upcoming.failed || upcoming.uses_left == 0 ||
        held + (upcoming.end - upcoming.offset) > limits.cache_budget) {
      return;
    }
    if (prefetcher.joinable()) {
      prefetcher.join();  // finished: `prefetching` is false
    }
    upcoming.loading = true;
    prefetching = true;
    prefetcher = std::thread([this, &name = packs.find(pack)->first, &upcoming] {
      std::unique_lock lock(mutex);
      load(lock, name, upcoming);
      prefetching = false;
    });
  }

  Bytes read_alone(const std::string& pack, const PackEntry& entry) {
    ++reads;
    return repository.read_chunk(pack, entry);
  }
};

PackRegionReader::PackRegionReader(const Repository& repository, const std::vector<ChunkLocation>& needed,
                                   PackRegionLimits limits)
    : state_(std::make_unique<State>(repository, limits)) {
  std::unordered_map<std::string, std::vector<const PackEntry*>> by_pack;
  for (const ChunkLocation& chunk : needed) {
    by_pack[chunk.pack].push_back(&chunk.entry);
  }
  for (auto& [pack, entries] : by_pack) {
    std::sort(entries.begin(), entries.end(), [](const PackEntry* a, const PackEntry* b) { return a->offset < b->offset; });
    std::vector<Region>& regions = state_->packs[pack];
    for (const PackEntry* entry : entries) {
      const std::uint64_t start = entry->offset;
      const std::uint64_t end = start + entry->length;
      if (!regions.empty() && start >= regions.back().offset && start <= regions.back().end + limits.max_gap &&
          std::max(end, regions.back().end) - regions.back().offset <= limits.max_region) {
        regions.back().end = std::max(regions.back().end, end);
      } else {
        regions.push_back(Region{start, end, 0, nullptr, 0, false, false});
      }
      ++regions.back().uses_left;
    }
  }
}

PackRegionReader::~PackRegionReader() {
  if (state_->prefetcher.joinable()) {
    state_->prefetcher.join();
  }
}

std::uint64_t PackRegionReader::reads() const { return state_->reads.load(); }

Bytes PackRegionReader::read_chunk(const std::string& pack, const PackEntry& entry) {
  State& state = *state_;
  std::unique_lock lock(state.mutex);
  Region* region = state.find(pack, entry);
  if (region == nullptr) {
    lock.unlock();
    return state.read_alone(pack, entry);
  }
  while (region->loading) {
    state.loaded.wait(lock);
  }
  if (!region->data && !region->failed) {
    region->loading = true;
    state.load(lock, pack, *region);
  }
  state.prefetch_after(pack, *region);
  std::shared_ptr<const Bytes> data = region->data;
  const std::uint64_t base = region->offset;
  region->last_used = ++state.tick;
  if (region->uses_left > 0 && --region->uses_left == 0) {
    state.release(*region);  // its last announced chunk: no one needs it any more
  }
  lock.unlock();
  if (!data) {
    return state.read_alone(pack, entry);
  }
  try {
    return state.repository.open_chunk(pack, entry, ByteView(data->data() + (entry.offset - base), entry.length));
  } catch (const Error&) {
    return state.read_alone(pack, entry);  // damaged here: the single read may find a good copy
  }
}

}  // namespace mybackup
