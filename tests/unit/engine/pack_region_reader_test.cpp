// Reading a restore's chunks grouped by pack (engine/pack_region_reader.hpp): regions, reading
// ahead within the memory budget, and falling back to single reads when a region or a chunk in it
// is damaged.

#include "mybackup/engine/pack_region_reader.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "fault_backend.hpp"
#include "mybackup/format/pack.hpp"
#include "mybackup/repository/object_names.hpp"
#include "test_util.hpp"

namespace mybackup::testing {
namespace {

class PackRegions : public ::testing::Test {
 protected:
  /// One pack of `count` chunks of `size` random bytes each; returns their locations.
  std::vector<ChunkLocation> store_pack(int count, std::size_t size) {
    PackBuilder builder(1 << 20);
    for (int i = 0; i < count; ++i) {
      const Bytes data = random_data(size, static_cast<std::uint64_t>(i + 1));
      chunks_.push_back(data);
      const ChunkId id = repository_->chunk_id(data);
      Bytes blob;
      seal_blob(repository_->keys().enc_key, id, 0, data, blob);
      builder.add(id, blob, static_cast<std::uint32_t>(data.size()), 0);
    }
    FinishedPack pack = builder.finish(repository_->keys().enc_key);
    repository_->put_pack(pack);
    std::vector<ChunkLocation> locations;
    for (const PackEntry& entry : pack.entries) {
      locations.push_back({pack.name, entry});
    }
    counting_->reset_counts();
    return locations;
  }

  int range_reads() const { return counting_->calls(FaultInjectingBackend::Op::get_range); }

  void SetUp() override {
    auto counting = std::make_unique<FaultInjectingBackend>(make_local_backend(dir_ / "store"));
    counting_ = counting.get();
    repository_ = Repository::open(std::move(counting), MasterKey::generate(), CreateIfMissing::yes, small_repository_options());
  }

  TempDir dir_;
  FaultInjectingBackend* counting_ = nullptr;
  std::unique_ptr<Repository> repository_;
  std::vector<Bytes> chunks_;
};

TEST_F(PackRegions, NeighboursAreReadTogetherAndEachChunkIsChecked) {
  const std::vector<ChunkLocation> locations = store_pack(50, 1000);
  PackRegionReader reader(*repository_, locations);
  for (std::size_t i = 0; i < locations.size(); ++i) {
    EXPECT_EQ(reader.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]);
  }
  EXPECT_EQ(range_reads(), 1);
  EXPECT_EQ(reader.reads(), 1U);
}

TEST_F(PackRegions, RegionsStopAtTheSizeAndGapLimitsAndUnannouncedChunksAreReadAlone) {
  const std::vector<ChunkLocation> locations = store_pack(40, 1000);
  // Every other chunk, regions of at most ~5 chunks, no gap allowed: each needed chunk is alone.
  std::vector<ChunkLocation> needed;
  for (std::size_t i = 0; i < locations.size(); i += 2) {
    needed.push_back(locations[i]);
  }
  PackRegionReader gapless(*repository_, needed, PackRegionLimits{0, 5000, 1 << 20});
  for (std::size_t i = 0; i < locations.size(); i += 2) {
    EXPECT_EQ(gapless.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]);
  }
  EXPECT_EQ(range_reads(), 20);
  counting_->reset_counts();
  PackRegionReader bounded(*repository_, locations, PackRegionLimits{0, 5000, 1 << 20});
  for (std::size_t i = 0; i < locations.size(); ++i) {
    EXPECT_EQ(bounded.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]);
  }
  EXPECT_GE(range_reads(), 8);   // 40 chunks of ~1 KiB in regions of at most 5000 bytes
  EXPECT_LE(range_reads(), 10);
  EXPECT_EQ(bounded.read_chunk(locations[1].pack, locations[1].entry), chunks_[1]) << "read again once released";
}

TEST_F(PackRegions, ABudgetSmallerThanARegionStillServesEveryChunkFromSeveralThreads) {
  const std::vector<ChunkLocation> locations = store_pack(64, 2000);
  PackRegionReader reader(*repository_, locations, PackRegionLimits{1 << 20, 16 * 1024, 8 * 1024});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = static_cast<std::size_t>(t); i < locations.size(); i += 4) {
        if (reader.read_chunk(locations[i].pack, locations[i].entry) != chunks_[i]) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(wrong.load(), 0);
}

/// Waits up to 10 s for `reader` to have made `count` reads; true if it did.
bool wait_for_reads(const PackRegionReader& reader, std::uint64_t count) {
  for (int i = 0; i < 1000 && reader.reads() < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return reader.reads() >= count;
}

// A large file restored by one worker still has several reads in flight: the regions are read
// ahead, in the order announced, before any worker asks.
TEST_F(PackRegions, RegionsAreReadAheadInTheAnnouncedOrderWithinTheBudget) {
  const std::vector<ChunkLocation> locations = store_pack(40, 1000);
  PackRegionLimits limits{0, 5000, 1 << 20, 3};
  {
    PackRegionReader reader(*repository_, locations, limits);
    ASSERT_TRUE(wait_for_reads(reader, 8)) << reader.reads();  // 40 chunks, at most 4 per region
    const std::uint64_t regions = reader.reads();
    for (std::size_t i = 0; i < locations.size(); ++i) {
      EXPECT_EQ(reader.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]);
    }
    EXPECT_EQ(reader.reads(), regions) << "every chunk came from a region read ahead";
  }
  // A budget of about two regions: the read-ahead stops there until a worker frees one.
  limits.cache_budget = 9000;
  PackRegionReader bounded(*repository_, locations, limits);
  ASSERT_TRUE(wait_for_reads(bounded, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(bounded.reads(), 2U) << "no read past the budget";
  for (std::size_t i = 0; i < locations.size(); ++i) {
    EXPECT_EQ(bounded.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]);
  }
  // No read-ahead: nothing is read before it is asked for.
  limits.read_ahead = 0;
  PackRegionReader on_demand(*repository_, locations, limits);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(on_demand.reads(), 0U);
  EXPECT_EQ(on_demand.read_chunk(locations[39].pack, locations[39].entry), chunks_[39]);
  EXPECT_EQ(on_demand.reads(), 1U);
}

// A file whose restore stops half-way leaves its regions unclaimed: the reader goes on serving
// the others, and its destructor does not wait for the read-ahead to finish the schedule.
TEST_F(PackRegions, ChunksSkippedByAFailedFileNeitherBlockNorLeak) {
  const std::vector<ChunkLocation> locations = store_pack(40, 1000);
  PackRegionReader reader(*repository_, locations, PackRegionLimits{0, 5000, 9000, 2});
  for (std::size_t i = 20; i < locations.size(); ++i) {
    EXPECT_EQ(reader.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]);
  }
}

TEST_F(PackRegions, ADamagedChunkInARegionIsReportedAndItsNeighboursStillRead) {
  const std::vector<ChunkLocation> locations = store_pack(10, 1000);
  const std::string pack_path = dir_ / ("store/" + object_names::pack(locations[0].pack));
  {
    std::fstream file(pack_path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(locations[4].entry.offset + 20));
    file.put('\x5a');
  }
  PackRegionReader reader(*repository_, locations);
  for (std::size_t i = 0; i < locations.size(); ++i) {
    if (i == 4) {
      const ErrorOutcome outcome = error_kind([&] { reader.read_chunk(locations[i].pack, locations[i].entry); });
      EXPECT_TRUE(outcome == ErrorKind::crypto || outcome == ErrorKind::corrupt) << outcome;
    } else {
      EXPECT_EQ(reader.read_chunk(locations[i].pack, locations[i].entry), chunks_[i]) << i;
    }
  }
  // A pack gone: the region read fails and each chunk's own read says not_found.
  ASSERT_EQ(::unlink(pack_path.c_str()), 0);
  PackRegionReader missing(*repository_, locations);
  EXPECT_EQ(error_kind([&] { missing.read_chunk(locations[0].pack, locations[0].entry); }), ErrorKind::not_found);
}

}  // namespace
}  // namespace mybackup::testing
