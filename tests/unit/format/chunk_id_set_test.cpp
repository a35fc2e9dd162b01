#include "mybackup/format/chunk_id_set.hpp"

#include <gtest/gtest.h>

#include <random>
#include <unordered_set>

#include "mybackup/catalog/catalog.hpp"

namespace mybackup {
namespace {

ChunkId random_id(std::mt19937_64& random) {
  ChunkId id{};
  for (std::uint8_t& byte : id) {
    byte = static_cast<std::uint8_t>(random());
  }
  return id;
}

TEST(CompactChunkIdSet, AgreesWithAStandardSetThroughSeveralGrowths) {
  std::mt19937_64 random(7);
  CompactChunkIdSet compact;
  ChunkIdSet reference;
  std::vector<ChunkId> inserted;
  for (int i = 0; i < 200000; ++i) {
    // Every third insertion repeats an id already in: it must say so.
    const ChunkId id = (i % 3 == 2) ? inserted[random() % inserted.size()] : random_id(random);
    EXPECT_EQ(compact.insert(id), reference.insert(id).second) << i;
    inserted.push_back(id);
  }
  EXPECT_EQ(compact.size(), reference.size());
  for (const ChunkId& id : inserted) {
    ASSERT_TRUE(compact.contains(id));
  }
  for (int i = 0; i < 10000; ++i) {
    const ChunkId other = random_id(random);
    EXPECT_EQ(compact.contains(other), reference.count(other) != 0);
  }
}

TEST(CompactChunkIdSet, IdsSharingTheirFirstBytesStayDistinct) {
  // The table is keyed by the first eight bytes: ids equal there must still be told apart.
  CompactChunkIdSet set;
  ChunkId a{};
  ChunkId b{};
  b[31] = 1;
  EXPECT_TRUE(set.insert(a));
  EXPECT_FALSE(set.contains(b));
  EXPECT_TRUE(set.insert(b));
  EXPECT_FALSE(set.insert(a));
  EXPECT_TRUE(set.contains(a));
  EXPECT_TRUE(set.contains(b));
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace mybackup
