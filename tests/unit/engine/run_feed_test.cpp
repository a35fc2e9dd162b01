// The pipeline's feed to the catalog: versions that arrive before their chunks are placed wait
// for them, whatever the order; one whose chunk never comes fails the run by name.

#include "engine/run_feed.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::TempDir;

ChunkId chunk(std::uint8_t n) {
  ChunkId id{};
  id.fill(n);
  return id;
}

ManifestVersion file(const std::string& path, std::vector<ChunkId> chunks) {
  ManifestVersion version;
  version.path = path;
  version.type = EntryType::file;
  version.number = 1;
  version.mode = 0644;
  version.size = 10 * chunks.size();
  version.sha256 = Sha256::hash(as_bytes(path));
  version.chunks = std::move(chunks);
  return version;
}

RunEvent version_event(ManifestVersion version) {
  RunEvent event;
  event.kind = RunEvent::Kind::version;
  event.version = std::move(version);
  return event;
}

RunEvent placed(std::uint64_t pack, std::vector<std::uint8_t> chunks) {
  RunEvent event;
  event.kind = RunEvent::Kind::chunks_placed;
  event.pack = pack;
  for (const std::uint8_t n : chunks) {
    PackEntry entry;
    entry.id = chunk(n);
    entry.offset = 100U * n;
    entry.length = 40;
    entry.raw_length = 10;
    event.blobs.push_back(entry);
  }
  return event;
}

RunEvent stored(std::uint64_t pack) {
  RunEvent event;
  event.kind = RunEvent::Kind::pack_stored;
  event.pack = pack;
  event.name = to_hex(Sha256::hash(as_bytes("pack " + std::to_string(pack))));
  event.size = 4096;
  return event;
}

Manifest manifest_of(std::uint64_t seq) {
  Manifest manifest;
  manifest.seq = seq;
  manifest.started_ns = 1000;
  manifest.finished_ns = 2000;
  manifest.sources = {"/r"};
  return manifest;
}

TEST(RunFeed, VersionsWaitForTheirChunksInAnyOrder) {
  TempDir dir("run_feed_");
  Catalog catalog(dir / "backups.db");
  RunRecorder recorder(catalog);
  RunFeed feed(recorder);
  feed.apply(version_event(file("/r/a", {chunk(1), chunk(2)})));  // both still being compressed
  feed.apply(version_event(file("/r/b", {chunk(2)})));            // a duplicate of a's second
  feed.apply(version_event(file("/r/empty", {})));                // no chunk: recorded at once
  EXPECT_EQ(feed.waiting(), 2u);
  feed.apply(placed(1, {2}));
  EXPECT_EQ(feed.waiting(), 1u);  // b is in; a now waits for chunk 1
  feed.apply(placed(1, {3}));
  EXPECT_EQ(feed.waiting(), 1u);
  feed.apply(stored(1));
  feed.apply(placed(2, {1}));  // in the next pack
  EXPECT_EQ(feed.waiting(), 0u);
  feed.apply(version_event(file("/r/c", {chunk(3), chunk(1)})));
  EXPECT_EQ(feed.waiting(), 0u);
  feed.apply(stored(2));
  feed.finish();
  recorder.finish(manifest_of(1), "snapshots/0000000001-x.enc", RunStats{});

  for (const std::string path : {"/r/a", "/r/b", "/r/c", "/r/empty"}) {
    ASSERT_EQ(catalog.versions_of(path).size(), 1u) << path;
  }
  const std::vector<ChunkLocation> a = catalog.chunks_of(catalog.versions_of("/r/a")[0].id);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].entry.id, chunk(1));
  EXPECT_EQ(a[0].pack, stored(2).name);
  EXPECT_EQ(a[1].entry.id, chunk(2));
  EXPECT_EQ(a[1].pack, stored(1).name);
  EXPECT_EQ(catalog.versions_of("/r/c")[0].stored_size, 80u);
  EXPECT_EQ(catalog.packs_in_use().size(), 2u);
  EXPECT_EQ(catalog.summary().chunks, 3u);
}

TEST(RunFeed, AVersionWhoseChunkNeverCameFailsTheRunByName) {
  TempDir dir("run_feed_");
  Catalog catalog(dir / "backups.db");
  {
    RunRecorder recorder(catalog);
    RunFeed feed(recorder);
    feed.apply(version_event(file("/r/fine", {chunk(1)})));
    feed.apply(version_event(file("/r/orphan", {chunk(1), chunk(9)})));
    feed.apply(placed(1, {1}));
    feed.apply(stored(1));
    EXPECT_EQ(feed.waiting(), 1u);
    const Error error = testing::catch_error([&] { feed.finish(); });
    EXPECT_EQ(error.kind(), ErrorKind::corrupt);
    EXPECT_NE(std::string(error.what()).find("/r/orphan"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(to_hex(chunk(9))), std::string::npos) << error.what();
  }
  EXPECT_TRUE(catalog.versions_of("/r/fine").empty());  // the run was not committed
  EXPECT_EQ(catalog.summary().runs, 0u);
}

}  // namespace
}  // namespace mybackup
