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
  const std::string* pack = nullptr;  // its key in State::chunks
  std::uint64_t offset = 0;
  std::uint64_t end = 0;
  std::uint64_t uses_left = 0;  // announced chunk reads not served yet
  std::shared_ptr<const Bytes> data;
  std::uint64_t last_used = 0;
  bool loading = false;
  bool failed = false;  // its chunks are read one by one

  std::uint64_t size() const { return end - offset; }
  /// Worth reading ahead: still needed, and neither there nor on its way.
  bool awaited() const { return uses_left > 0 && !data && !loading && !failed; }
};

}  // namespace

struct PackRegionReader::State {
  const Repository& repository;
  PackRegionLimits limits;
  std::mutex mutex;
  std::condition_variable loaded;  // a region finished loading
  std::condition_variable room;    // bytes were released, or the reader stops
  /// Every region once, in the order the workers first need it; fixed after construction.
  std::vector<Region> regions;
  /// pack -> offset of an announced chunk -> its region in `regions`.
  std::unordered_map<std::string, std::unordered_map<std::uint64_t, std::size_t>> chunks;
  std::size_t next_ahead = 0;             // the first of `regions` not yet considered for reading ahead
  std::uint64_t held = 0;                 // bytes of regions in memory
  std::uint64_t in_flight = 0;            // bytes of regions being read ahead
  std::uint64_t tick = 0;
  bool stopping = false;
  std::atomic<std::uint64_t> reads{0};
  std::vector<std::thread> readers_ahead;  // joined by the destructor

  State(const Repository& repository_, PackRegionLimits limits_) : repository(repository_), limits(limits_) {}

  /// The region announced for the blob `entry` of `pack`, or nullptr.
  Region* find(const std::string& pack, const PackEntry& entry) {
    const auto in_pack = chunks.find(pack);
    if (in_pack == chunks.end()) {
      return nullptr;
    }
    const auto found = in_pack->second.find(entry.offset);
    if (found == in_pack->second.end()) {
      return nullptr;
    }
    Region& region = regions[found->second];
    return region.offset <= entry.offset && std::uint64_t{entry.offset} + entry.length <= region.end ? &region : nullptr;
  }

  /// REQUIRES: mutex held.
  void release(Region& region) {
    if (region.data) {
      held -= region.data->size();
      region.data.reset();
      room.notify_all();
    }
  }

  /// Drops least recently used regions (other than `keep`) until the budget holds. REQUIRES: mutex held.
  void evict(const Region& keep) {
    while (held > limits.cache_budget) {
      Region* oldest = nullptr;
      for (Region& region : regions) {
        if (region.data && &region != &keep && (oldest == nullptr || region.last_used < oldest->last_used)) {
          oldest = &region;
        }
      }
      if (oldest == nullptr) {
        return;
      }
      release(*oldest);
    }
  }

  /// Reads `region` into memory (or marks it failed), with the mutex released during the read.
  /// REQUIRES: `lock` holds the mutex and region.loading was set by the caller.
  void load(std::unique_lock<std::mutex>& lock, Region& region) {
    const std::uint64_t offset = region.offset;
    const std::uint64_t length = region.size();
    lock.unlock();
    std::shared_ptr<const Bytes> data;
    try {
      ++reads;
      data = std::make_shared<const Bytes>(repository.read_pack_region(*region.pack, offset, length));
    } catch (const Error&) {
      data.reset();  // each chunk is then read on its own, with the fallback
    }
    lock.lock();
    region.loading = false;
    region.failed = !data;
    if (data) {
      region.data = std::move(data);
      region.last_used = ++tick;  // read ahead: as recent as a use, so the budget keeps it
      held += region.data->size();
      evict(region);
    }
    loaded.notify_all();
  }

  /// One read-ahead thread: reads the next awaited region while the bytes held and in flight
  /// leave room for it.
  void read_ahead() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      while (next_ahead < regions.size() && !regions[next_ahead].awaited()) {
        ++next_ahead;
      }
      if (next_ahead == regions.size()) {
        return;
      }
      Region& next = regions[next_ahead];
      const std::uint64_t size = next.size();
      if (held + in_flight > 0 && held + in_flight + size > limits.cache_budget) {
        room.wait(lock);
        continue;
      }
      ++next_ahead;
      next.loading = true;
      in_flight += size;
      load(lock, next);
      in_flight -= size;
    }
  }

  Bytes read_alone(const std::string& pack, const PackEntry& entry) {
    ++reads;
    return repository.read_chunk(pack, entry);
  }
};

PackRegionReader::PackRegionReader(const Repository& repository, const std::vector<ChunkLocation>& needed,
                                   PackRegionLimits limits)
    : state_(std::make_unique<State>(repository, limits)) {
  State& state = *state_;
  // Regions in the order of need: a chunk joins the last region of its pack when it lies in it
  // or at most max_gap after it, within max_region. Chunks of a pack that are needed far apart in
  // time (a large file whose chunks the backup interleaved with those of small files) land in
  // different regions, so that no region must be held, or read again, from one need to the next.
  std::unordered_map<std::string, std::size_t> last_region_of_pack;
  for (const ChunkLocation& chunk : needed) {
    const auto in_pack = state.chunks.try_emplace(chunk.pack).first;
    const std::uint64_t start = chunk.entry.offset;
    const std::uint64_t end = start + chunk.entry.length;
    const auto known = in_pack->second.find(start);
    if (known != in_pack->second.end()) {
      ++state.regions[known->second].uses_left;  // needed again (deduplicated data)
      continue;
    }
    const auto last = last_region_of_pack.find(chunk.pack);
    std::size_t index = state.regions.size();
    if (last != last_region_of_pack.end()) {
      Region& region = state.regions[last->second];
      if (start >= region.offset && start <= region.end + limits.max_gap && std::max(end, region.end) - region.offset <= limits.max_region) {
        region.end = std::max(region.end, end);
        index = last->second;
      }
    }
    if (index == state.regions.size()) {
      state.regions.push_back(Region{&in_pack->first, start, end, 0, nullptr, 0, false, false});
      last_region_of_pack[chunk.pack] = index;
    }
    ++state.regions[index].uses_left;
    in_pack->second.emplace(start, index);
  }
  const std::size_t threads = std::min<std::size_t>(limits.read_ahead, state.regions.size());
  for (std::size_t i = 0; i < threads; ++i) {
    state.readers_ahead.emplace_back([&state] { state.read_ahead(); });
  }
}

PackRegionReader::~PackRegionReader() {
  {
    const std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->room.notify_all();
  for (std::thread& thread : state_->readers_ahead) {
    thread.join();
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
    state.load(lock, *region);
  }
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
