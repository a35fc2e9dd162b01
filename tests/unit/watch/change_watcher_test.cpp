// ChangeWatcher with real inotify on a temporary directory.

#include "mybackup/watch/change_watcher.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::TempDir;

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

/// Waits up to `timeout_ms` in total for a change; what the last wait returned.
std::vector<std::size_t> changes_within(ChangeWatcher& watcher, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<std::size_t> changed = watcher.wait(50);
    if (!changed.empty()) {
      return changed;
    }
  }
  return {};
}

TEST(ChangeWatcher, ReportsAChangedFileUnderItsSource) {
  TempDir a("watch_a_");
  TempDir b("watch_b_");
  std::filesystem::create_directories(b / "deep/er");
  ChangeWatcher watcher({{a.path(), {}}, {b.path(), {}}});
  EXPECT_TRUE(watcher.complete());
  EXPECT_EQ(watcher.watch_count(), 4u);  // a, b, b/deep, b/deep/er
  EXPECT_TRUE(watcher.wait(0).empty());

  write(b / "deep/er/file.txt", "hello");
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{1});
  EXPECT_TRUE(changes_within(watcher, 100).empty());  // all drained

  write(a / "x", "1");
  write(b / "y", "2");
  std::vector<std::size_t> both = changes_within(watcher, 2000);
  if (both.size() == 1) {  // the second write may land after the first read
    const std::vector<std::size_t> more = changes_within(watcher, 500);
    both.insert(both.end(), more.begin(), more.end());
  }
  EXPECT_EQ(both, (std::vector<std::size_t>{0, 1}));
}

TEST(ChangeWatcher, WatchesDirectoriesCreatedAfterTheStart) {
  TempDir a("watch_a_");
  ChangeWatcher watcher({{a.path(), {}}});
  std::filesystem::create_directories(a / "new");
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{0});
  EXPECT_EQ(watcher.watch_count(), 2u);
  EXPECT_TRUE(changes_within(watcher, 100).empty());

  write(a / "new/inside.txt", "data");  // only seen through the new watch
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{0});
}

TEST(ChangeWatcher, WatchesATreeMovedInFromOutside) {
  TempDir a("watch_a_");
  TempDir outside("watch_outside_");
  std::filesystem::create_directories(outside / "tree/deeper");
  ChangeWatcher watcher({{a.path(), {}}});
  std::filesystem::rename(outside / "tree", a / "tree");
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{0});
  EXPECT_EQ(watcher.watch_count(), 3u);  // a, a/tree, a/tree/deeper
  EXPECT_TRUE(changes_within(watcher, 100).empty());
  write(a / "tree/deeper/file", "x");
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{0});
}

TEST(ChangeWatcher, IgnoresExcludedPaths) {
  TempDir a("watch_a_");
  std::filesystem::create_directories(a / "build");
  ChangeWatcher watcher({{a.path(), {"*.tmp", "build/"}}});
  EXPECT_EQ(watcher.watch_count(), 1u);  // build/ is not watched

  write(a / "draft.tmp", "x");
  write(a / "build/out.o", "x");
  std::filesystem::create_directories(a / "build/sub");
  EXPECT_TRUE(changes_within(watcher, 300).empty());

  write(a / "kept.txt", "x");
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{0});
}

TEST(ChangeWatcher, ASingleFileSourceIsWatchedByName) {
  TempDir a("watch_a_");
  write(a / "notes.txt", "v1");
  ChangeWatcher watcher({{a / "notes.txt", {}}});
  write(a / "other.txt", "x");
  EXPECT_TRUE(changes_within(watcher, 300).empty());
  write(a / "notes.txt", "v2");
  EXPECT_EQ(changes_within(watcher, 2000), std::vector<std::size_t>{0});
}

TEST(ChangeWatcher, AMissingSourceIsNotWatched) {
  TempDir a("watch_a_");
  ChangeWatcher watcher({{a / "absent", {}}});
  EXPECT_EQ(watcher.watch_count(), 0u);
  EXPECT_TRUE(watcher.complete());
  EXPECT_TRUE(watcher.wait(0).empty());
}

}  // namespace
}  // namespace mybackup
