#include "mybackup/engine/change_detection.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "fault_env.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::FaultEnv;
using testing::TempDir;

// ---- plan_changes

ScanEntry file_entry(const std::string& path, std::uint64_t size = 10, std::int64_t mtime_ns = 1000, std::uint64_t inode = 7,
               std::uint32_t mode = 0644) {
  ScanEntry entry;
  entry.path = path;
  entry.type = EntryType::file;
  entry.mode = mode;
  entry.size = size;
  entry.mtime_ns = mtime_ns;
  entry.inode = inode;
  return entry;
}

ScanEntry directory_entry(const std::string& path, std::int64_t mtime_ns = 1000, std::uint32_t mode = 0755,
                    std::uint64_t inode = 3) {
  ScanEntry entry = file_entry(path, 0, mtime_ns, inode, mode);
  entry.type = EntryType::directory;
  return entry;
}

ScanEntry symlink_entry(const std::string& path, const std::string& target, std::int64_t mtime_ns = 1000,
                  std::uint32_t mode = 0777) {
  ScanEntry entry = file_entry(path, target.size(), mtime_ns, 9, mode);
  entry.type = EntryType::symlink;
  entry.link_target = target;
  return entry;
}

/// The latest version the catalog would hold after recording `entry` as version `number`.
LatestVersion recorded(const ScanEntry& entry, std::uint32_t number = 1) {
  LatestVersion version;
  version.number = number;
  version.type = entry.type;
  version.size = entry.size;
  version.mtime_ns = entry.mtime_ns;
  version.mode = entry.mode;
  version.inode = entry.inode;
  version.link_target = entry.link_target;
  version.meta_recorded = true;
  version.uid = entry.meta.uid;
  version.gid = entry.meta.gid;
  version.ctime_ns = entry.meta.ctime_ns;
  return version;
}

LatestVersion deletion_marker(std::uint32_t number) {
  LatestVersion version;
  version.number = number;
  version.type = EntryType::deleted;
  return version;
}

using Call = std::tuple<FileAction, EntryType, std::string, std::uint64_t>;

/// One plan_changes call with everything it produced.
struct Planned {
  ChangePlan plan;
  RunStats stats;
  std::vector<Call> calls;
};

Planned plan(const std::vector<ScanEntry>& entries, const std::unordered_map<std::string, LatestVersion>& latest,
             const std::vector<ScanProblem>& problems = {}) {
  ScanResult scan;
  scan.entries = entries;
  scan.problems = problems;
  Planned planned;
  plan_changes(scan, latest, planned.plan, planned.stats,
               [&planned](FileAction action, EntryType type, const std::string& path, std::uint64_t size,
                          const std::string& note) {
                 EXPECT_EQ(note, "");
                 planned.calls.emplace_back(action, type, path, size);
               });
  return planned;
}

/// Nothing planned, counted (but unchanged files and scanned bytes) or reported.
void expect_nothing_planned(const Planned& planned) {
  EXPECT_TRUE(planned.plan.reads.empty());
  EXPECT_TRUE(planned.plan.direct.empty());
  EXPECT_TRUE(planned.calls.empty());
  EXPECT_EQ(planned.stats.files_new, 0U);
  EXPECT_EQ(planned.stats.files_changed, 0U);
  EXPECT_EQ(planned.stats.files_deleted, 0U);
}

TEST(PlanChanges, EverythingIsNewInAnEmptyCatalog) {
  const Planned planned = plan({directory_entry("/r"), file_entry("/r/a", 25), symlink_entry("/r/l", "a"), directory_entry("/r/d")}, {});

  ASSERT_EQ(planned.plan.reads.size(), 1U);
  EXPECT_EQ(planned.plan.reads[0].entry.path, "/r/a");
  EXPECT_EQ(planned.plan.reads[0].number, 1U);
  EXPECT_EQ(planned.plan.reads[0].action, FileAction::added);
  // In path order, whatever the order of the scan given.
  ASSERT_EQ(planned.plan.direct.size(), 3U);
  EXPECT_EQ(planned.plan.direct[0].path, "/r");
  EXPECT_EQ(planned.plan.direct[0].type, EntryType::directory);
  EXPECT_EQ(planned.plan.direct[1].path, "/r/d");
  EXPECT_EQ(planned.plan.direct[2].path, "/r/l");
  EXPECT_EQ(planned.plan.direct[2].type, EntryType::symlink);
  EXPECT_EQ(planned.plan.direct[2].link_target, "a");
  EXPECT_EQ(planned.plan.direct[2].size, 1U);
  EXPECT_EQ(planned.plan.direct[2].mtime_ns, 1000);
  EXPECT_EQ(planned.plan.direct[2].inode, 9U);
  EXPECT_TRUE(planned.plan.direct[2].chunks.empty());
  for (const ManifestVersion& version : planned.plan.direct) {
    EXPECT_EQ(version.number, 1U) << version.path;
  }
  // The file is counted by the caller once read; directories are never counted.
  EXPECT_EQ(planned.stats.files_new, 1U);
  EXPECT_EQ(planned.stats.files_changed, 0U);
  EXPECT_EQ(planned.stats.files_unchanged, 0U);
  EXPECT_EQ(planned.stats.bytes_scanned, 25U);
  const std::vector<Call> expected = {{FileAction::added, EntryType::directory, "/r", 0},
                                      {FileAction::added, EntryType::directory, "/r/d", 0},
                                      {FileAction::added, EntryType::symlink, "/r/l", 1}};
  EXPECT_EQ(planned.calls, expected);
}

TEST(PlanChanges, AnEntryAsRecordedIsUnchangedAndNotRead) {
  const std::vector<ScanEntry> entries = {directory_entry("/r"), file_entry("/r/a", 25), symlink_entry("/r/l", "a")};
  std::unordered_map<std::string, LatestVersion> latest;
  for (const ScanEntry& entry : entries) {
    latest[entry.path] = recorded(entry, 4);
  }
  const Planned planned = plan(entries, latest);

  expect_nothing_planned(planned);
  EXPECT_EQ(planned.stats.files_unchanged, 2U);  // the file and the link, not the directory
  EXPECT_EQ(planned.stats.bytes_scanned, 25U);   // an unchanged file is still scanned
}

TEST(PlanChanges, AFileChangesWithItsMtimeSizeInodeOrMode) {
  const ScanEntry before = file_entry("/r/a", 10, 1000, 7, 0644);
  const std::vector<std::pair<std::string, ScanEntry>> cases = {
      {"mtime", file_entry("/r/a", 10, 1001, 7, 0644)},
      {"size", file_entry("/r/a", 11, 1000, 7, 0644)},
      {"inode", file_entry("/r/a", 10, 1000, 8, 0644)},
      {"mode", file_entry("/r/a", 10, 1000, 7, 0600)},
  };
  for (const auto& [what, after] : cases) {
    const Planned planned = plan({after}, {{"/r/a", recorded(before, 3)}});
    ASSERT_EQ(planned.plan.reads.size(), 1U) << what;
    EXPECT_EQ(planned.plan.reads[0].number, 4U) << what;
    EXPECT_EQ(planned.plan.reads[0].action, FileAction::changed) << what;
    EXPECT_EQ(planned.plan.reads[0].entry.size, after.size) << what;
    EXPECT_TRUE(planned.plan.direct.empty()) << what;
    EXPECT_EQ(planned.stats.files_changed, 0U) << what;  // counted once read
    EXPECT_EQ(planned.stats.files_unchanged, 0U) << what;
    EXPECT_TRUE(planned.calls.empty()) << what;  // reported once read
  }
}

TEST(PlanChanges, AnOwnerGroupOrCtimeChangeOrMetadataNeverRecordedIsAChange) {
  const ScanEntry before = file_entry("/r/a");
  ScanEntry owner = before;
  owner.meta.uid = 1001;
  ScanEntry group = before;
  group.meta.gid = 1001;
  ScanEntry ctime = before;
  ctime.meta.ctime_ns = 5;  // a chmod, a new link or a new extended attribute
  for (const ScanEntry& after : {owner, group, ctime}) {
    const Planned planned = plan({after}, {{"/r/a", recorded(before, 3)}});
    ASSERT_EQ(planned.plan.reads.size(), 1U);
    EXPECT_EQ(planned.plan.reads[0].action, FileAction::changed);
  }
  // A version from a manifest older than format 3: recorded again, once, with its metadata.
  LatestVersion old_format = recorded(before, 3);
  old_format.meta_recorded = false;
  const Planned planned = plan({before}, {{"/r/a", old_format}});
  ASSERT_EQ(planned.plan.reads.size(), 1U);
  EXPECT_EQ(planned.plan.reads[0].action, FileAction::changed);
}

TEST(PlanChanges, ADirectoryChangesWithItsMtimeOrModeOnly) {
  const ScanEntry before = directory_entry("/r", 1000, 0755, 3);
  ScanEntry other_inode = directory_entry("/r", 1000, 0755, 4);
  other_inode.size = 4096;
  expect_nothing_planned(plan({other_inode}, {{"/r", recorded(before)}}));

  for (const ScanEntry& after : {directory_entry("/r", 2000, 0755, 3), directory_entry("/r", 1000, 0700, 3)}) {
    const Planned planned = plan({after}, {{"/r", recorded(before, 2)}});
    ASSERT_EQ(planned.plan.direct.size(), 1U);
    EXPECT_EQ(planned.plan.direct[0].number, 3U);
    EXPECT_EQ(planned.plan.direct[0].mode, after.mode);
    EXPECT_EQ(planned.plan.direct[0].mtime_ns, after.mtime_ns);
    EXPECT_EQ(planned.stats.files_changed, 0U);  // directories are not counted
    EXPECT_EQ(planned.calls, (std::vector<Call>{{FileAction::changed, EntryType::directory, "/r", 0}}));
  }
}

TEST(PlanChanges, ASymlinkChangesWithItsTargetOrMtimeButNotItsMode) {
  const ScanEntry before = symlink_entry("/r/l", "a", 1000, 0777);
  expect_nothing_planned(plan({symlink_entry("/r/l", "a", 1000, 0755)}, {{"/r/l", recorded(before)}}));

  for (const ScanEntry& after : {symlink_entry("/r/l", "b", 1000), symlink_entry("/r/l", "a", 1001)}) {
    const Planned planned = plan({after}, {{"/r/l", recorded(before)}});
    ASSERT_EQ(planned.plan.direct.size(), 1U);
    EXPECT_EQ(planned.plan.direct[0].number, 2U);
    EXPECT_EQ(planned.plan.direct[0].link_target, after.link_target);
    EXPECT_EQ(planned.stats.files_changed, 1U);
    EXPECT_EQ(planned.calls, (std::vector<Call>{{FileAction::changed, EntryType::symlink, "/r/l", 1}}));
  }
}

TEST(PlanChanges, AChangeOfTypeIsANewVersionOfTheNewType) {
  // Same mode and mtime on both sides: only the type differs.
  const ScanEntry as_file = file_entry("/r/x", 0, 1000, 3, 0755);
  const ScanEntry as_directory = directory_entry("/r/x", 1000, 0755, 3);
  const ScanEntry as_symlink = symlink_entry("/r/x", "t", 1000, 0755);

  const Planned file_to_directory = plan({as_directory}, {{"/r/x", recorded(as_file, 1)}});
  ASSERT_EQ(file_to_directory.plan.direct.size(), 1U);
  EXPECT_EQ(file_to_directory.plan.direct[0].type, EntryType::directory);
  EXPECT_EQ(file_to_directory.plan.direct[0].number, 2U);
  EXPECT_EQ(file_to_directory.calls, (std::vector<Call>{{FileAction::changed, EntryType::directory, "/r/x", 0}}));

  const Planned directory_to_symlink = plan({as_symlink}, {{"/r/x", recorded(as_directory, 2)}});
  ASSERT_EQ(directory_to_symlink.plan.direct.size(), 1U);
  EXPECT_EQ(directory_to_symlink.plan.direct[0].type, EntryType::symlink);
  EXPECT_EQ(directory_to_symlink.plan.direct[0].number, 3U);
  EXPECT_EQ(directory_to_symlink.stats.files_changed, 1U);

  const Planned symlink_to_file = plan({as_file}, {{"/r/x", recorded(as_symlink, 3)}});
  ASSERT_EQ(symlink_to_file.plan.reads.size(), 1U);
  EXPECT_EQ(symlink_to_file.plan.reads[0].number, 4U);
  EXPECT_EQ(symlink_to_file.plan.reads[0].action, FileAction::changed);
  EXPECT_TRUE(symlink_to_file.plan.direct.empty());

  const Planned file_to_symlink = plan({as_symlink}, {{"/r/x", recorded(as_file, 1)}});
  ASSERT_EQ(file_to_symlink.plan.direct.size(), 1U);
  EXPECT_EQ(file_to_symlink.plan.direct[0].type, EntryType::symlink);
}

TEST(PlanChanges, WhatTheScanNoLongerFindsGetsADeletionMarker) {
  const ScanEntry root = directory_entry("/r");
  const Planned planned = plan({root}, {{"/r", recorded(root)},
                                        {"/r/gone.txt", recorded(file_entry("/r/gone.txt", 42), 2)},
                                        {"/r/gone-dir", recorded(directory_entry("/r/gone-dir"), 1)},
                                        {"/r/gone-link", recorded(symlink_entry("/r/gone-link", "x"), 5)}});

  std::set<std::tuple<std::string, EntryType, std::uint32_t>> markers;
  for (const ManifestVersion& version : planned.plan.direct) {
    markers.emplace(version.path, version.type, version.number);
  }
  const std::set<std::tuple<std::string, EntryType, std::uint32_t>> expected = {
      {"/r/gone.txt", EntryType::deleted, 3}, {"/r/gone-dir", EntryType::deleted, 2}, {"/r/gone-link", EntryType::deleted, 6}};
  EXPECT_EQ(markers, expected);
  EXPECT_EQ(planned.stats.files_deleted, 2U);  // not the directory
  // Reported with the type and size of the latest version.
  const std::set<Call> calls(planned.calls.begin(), planned.calls.end());
  const std::set<Call> expected_calls = {{FileAction::deleted, EntryType::file, "/r/gone.txt", 42},
                                         {FileAction::deleted, EntryType::directory, "/r/gone-dir", 0},
                                         {FileAction::deleted, EntryType::symlink, "/r/gone-link", 1}};
  EXPECT_EQ(calls, expected_calls);
}

TEST(PlanChanges, ADeletionIsRecordedOnce) {
  const ScanEntry root = directory_entry("/r");
  expect_nothing_planned(plan({root}, {{"/r", recorded(root)}, {"/r/gone.txt", deletion_marker(2)}}));
}

TEST(PlanChanges, APathThatComesBackIsNewAndContinuesItsHistory) {
  const Planned planned = plan({file_entry("/r/back.txt"), symlink_entry("/r/back-link", "x")},
                               {{"/r/back.txt", deletion_marker(2)}, {"/r/back-link", deletion_marker(4)}});
  ASSERT_EQ(planned.plan.reads.size(), 1U);
  EXPECT_EQ(planned.plan.reads[0].number, 3U);
  EXPECT_EQ(planned.plan.reads[0].action, FileAction::added);
  ASSERT_EQ(planned.plan.direct.size(), 1U);
  EXPECT_EQ(planned.plan.direct[0].number, 5U);
  EXPECT_EQ(planned.stats.files_new, 1U);
  EXPECT_EQ(planned.calls, (std::vector<Call>{{FileAction::added, EntryType::symlink, "/r/back-link", 1}}));
}

TEST(PlanChanges, WhatLiesUnderAnUnreadablePathKeepsItsHistory) {
  const ScanEntry root = directory_entry("/r");
  const Planned planned = plan({root},
                               {{"/r", recorded(root)},
                                {"/r/locked", recorded(directory_entry("/r/locked"))},
                                {"/r/locked/inside.txt", recorded(file_entry("/r/locked/inside.txt"))},
                                {"/r/locked-not", recorded(file_entry("/r/locked-not"))}},  // shares a prefix only
                               {{"/r/locked", "cannot open directory: Permission denied"}});
  ASSERT_EQ(planned.plan.direct.size(), 1U);
  EXPECT_EQ(planned.plan.direct[0].path, "/r/locked-not");
  EXPECT_EQ(planned.plan.direct[0].type, EntryType::deleted);
  EXPECT_EQ(planned.stats.files_deleted, 1U);
}

TEST(PlanChanges, AppendsToThePlanAndTheCounts) {
  ChangePlan plan_so_far;
  RunStats stats;
  ScanResult first;
  first.entries = {file_entry("/a/1", 5)};
  ScanResult second;
  second.entries = {file_entry("/b/1", 6), symlink_entry("/b/l", "1")};
  plan_changes(first, {}, plan_so_far, stats, nullptr);  // on_file is optional
  plan_changes(second, {}, plan_so_far, stats, nullptr);
  ASSERT_EQ(plan_so_far.reads.size(), 2U);
  EXPECT_EQ(plan_so_far.reads[0].entry.path, "/a/1");
  EXPECT_EQ(plan_so_far.reads[1].entry.path, "/b/1");
  EXPECT_EQ(plan_so_far.direct.size(), 1U);
  EXPECT_EQ(stats.bytes_scanned, 11U);
  EXPECT_EQ(stats.files_new, 1U);
}

// ---- ContentReader

class ReadContent : public ::testing::Test {
 protected:
  ReadContent() : chunker_(small_chunks(), make_gear_table(testing::to_bytes(std::string(32, 'g')))) {}

  static ChunkerParams small_chunks() {
    ChunkerParams params;
    params.min_size = 1024;
    params.avg_size = 4096;
    params.max_size = 16384;
    return params;
  }

  std::string write(const std::string& name, const Bytes& data) {
    const std::string path = dir_ / name;
    testing::write_text_file(path, std::string(as_text(data)));
    return path;
  }

  /// What the scan would hand over for `path` now (its inode and device, if it exists).
  static FileToRead to_read(const std::string& path, std::uint32_t number = 1) {
    FileToRead file;
    file.entry.path = path;
    file.number = number;
    struct stat info {};
    if (::lstat(path.c_str(), &info) == 0) {
      file.entry.inode = info.st_ino;
      file.entry.meta.device = info.st_dev;
    }
    return file;
  }

  /// Reads `path` through `env`, collecting every chunk handed out.
  ReadResult read(Env& env, const std::string& path, ManifestVersion& version, std::vector<Bytes>* chunks = nullptr,
                  const ContentReader::StopCheck& stopped = [] { return false; }) {
    return read_as_scanned(env, to_read(path, 5), version, chunks, stopped);
  }

  /// Reads `file` as a scan found it (maybe before the file changed).
  ReadResult read_as_scanned(Env& env, const FileToRead& file, ManifestVersion& version,
                             std::vector<Bytes>* chunks = nullptr,
                             const ContentReader::StopCheck& stopped = [] { return false; }) {
    ContentReader reader(env, chunker_, id_key_);
    return reader.read(
        file, version,
        [&](const ChunkId& id, ByteView chunk) {
          EXPECT_EQ(id, HmacSha256::mac(id_key_, chunk));
          if (chunks != nullptr) {
            chunks->emplace_back(chunk.begin(), chunk.end());
          }
        },
        stopped);
  }

  TempDir dir_{"change_detection_test_"};
  Chunker chunker_;
  Digest id_key_ = Sha256::hash(testing::to_bytes("id key"));
  FaultEnv env_;
};

TEST_F(ReadContent, AFileBecomesItsChunkIdsAndHash) {
  const Bytes data = testing::random_data(100'000, 4);
  const std::string path = write("data.bin", data);
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);

  ManifestVersion version;
  std::vector<Bytes> chunks;
  const ReadResult result = read(Env::default_env(), path, version, &chunks);

  ASSERT_EQ(result.outcome, ReadOutcome::read) << result.problem;
  EXPECT_EQ(result.problem, "");
  EXPECT_EQ(version.path, path);
  EXPECT_EQ(version.type, EntryType::file);
  EXPECT_EQ(version.number, 5U);
  EXPECT_EQ(version.mode, 0640U);
  EXPECT_EQ(version.mtime_ns, static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec);
  EXPECT_EQ(version.inode, static_cast<std::uint64_t>(info.st_ino));
  EXPECT_EQ(version.size, data.size());
  EXPECT_EQ(version.sha256, Sha256::hash(data));
  // The chunks cover the file in order, within the chunker's bounds, and the ids are theirs.
  ASSERT_GE(chunks.size(), 6U);  // 100 KB at most 16 KiB a chunk
  ASSERT_EQ(version.chunks.size(), chunks.size());
  Bytes joined;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_LE(chunks[i].size(), 16384U);
    if (i + 1 < chunks.size()) {
      EXPECT_GE(chunks[i].size(), 1024U);
    }
    EXPECT_EQ(version.chunks[i], HmacSha256::mac(id_key_, chunks[i]));
    joined.insert(joined.end(), chunks[i].begin(), chunks[i].end());
  }
  EXPECT_TRUE(joined == data);
}

TEST_F(ReadContent, AnEmptyFileHasNoChunk) {
  ManifestVersion version;
  const ReadResult result = read(Env::default_env(), write("empty", {}), version);
  ASSERT_EQ(result.outcome, ReadOutcome::read) << result.problem;
  EXPECT_TRUE(version.chunks.empty());
  EXPECT_EQ(version.size, 0U);
  EXPECT_EQ(version.sha256, Sha256::hash({}));
}

TEST_F(ReadContent, ShortReadsGiveTheSameChunks) {
  const std::string path = write("data.bin", testing::random_data(60'000, 5));
  ManifestVersion whole;
  ASSERT_EQ(read(Env::default_env(), path, whole).outcome, ReadOutcome::read);
  env_.short_reads("*/data.bin", 777);
  ManifestVersion in_pieces;
  ASSERT_EQ(read(env_, path, in_pieces).outcome, ReadOutcome::read);
  EXPECT_EQ(in_pieces.chunks, whole.chunks);
  EXPECT_EQ(in_pieces.sha256, whole.sha256);
}

TEST_F(ReadContent, AFileThatChangesWhileReadIsReportedSoAndReadsNextTime) {
  const std::string path = write("busy.bin", testing::random_data(50'000, 6));
  env_.change_while_read("*/busy.bin", 1);
  ManifestVersion version;
  const ReadResult changing = read(env_, path, version);
  EXPECT_EQ(changing.outcome, ReadOutcome::changed_while_read);
  EXPECT_EQ(changing.problem, "changed while being read");
  EXPECT_TRUE(version.chunks.empty());  // left as it was

  const ReadResult again = read(env_, path, version);
  EXPECT_EQ(again.outcome, ReadOutcome::read) << again.problem;
  EXPECT_EQ(version.sha256, Sha256::hash(testing::to_bytes(testing::read_text_file(path))));
}

TEST_F(ReadContent, UnreadableFilesAreProblemsNotErrors) {
  ManifestVersion version;
  const ReadResult vanished = read(env_, dir_ / "missing", version);
  EXPECT_EQ(vanished.outcome, ReadOutcome::unreadable);
  EXPECT_EQ(vanished.problem, "vanished before it could be read");

  const std::string subdirectory = dir_ / "sub";
  ASSERT_EQ(::mkdir(subdirectory.c_str(), 0755), 0);
  const ReadResult not_a_file = read(env_, subdirectory, version);
  EXPECT_EQ(not_a_file.outcome, ReadOutcome::unreadable);
  EXPECT_EQ(not_a_file.problem, "is no longer a regular file");

  const std::string link = dir_ / "link";
  ASSERT_EQ(::symlink("missing", link.c_str()), 0);
  const ReadResult a_link = read(env_, link, version);  // never followed
  EXPECT_EQ(a_link.outcome, ReadOutcome::unreadable);
  EXPECT_EQ(a_link.problem, "was replaced by a symbolic link since the scan (not followed)");

  const std::string path = write("bad.bin", testing::random_data(40'000, 7));
  env_.fail(FaultEnv::Op::read, "*/bad.bin", 2, EIO);
  const ReadResult bad = read(env_, path, version);
  EXPECT_EQ(bad.outcome, ReadOutcome::unreadable);
  EXPECT_EQ(bad.problem, "cannot read: Input/output error");
  EXPECT_EQ(version.path, "");  // nothing was filled in
}

// Attack test (issue 11, item 12): what is read must be what the scan saw, even when someone
// swaps the file, or a folder above it, between the scan and the read.
TEST_F(ReadContent, AFileReplacedAfterTheScanIsNotRead) {
  const std::string path = write("note.txt", testing::to_bytes("what the scan saw"));
  const FileToRead scanned = to_read(path);
  const std::string other = write("other.txt", testing::to_bytes("someone else's file"));
  ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);
  ManifestVersion version;
  const ReadResult result = read_as_scanned(env_, scanned, version);
  EXPECT_EQ(result.outcome, ReadOutcome::unreadable);
  EXPECT_EQ(result.problem, "was replaced by another file between the scan and the read (the next backup reads it)");
  EXPECT_EQ(version.path, "");
}

TEST_F(ReadContent, AFolderSwappedForAnotherUsersLinkIsNotFollowed) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "only root can make a link another user owns";
  }
  // The user's folder holds a file when scanned; they then replace the folder by a link to a
  // folder of root's holding a file of the same name.
  ASSERT_EQ(::mkdir((dir_ / "user").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir_ / "secret").c_str(), 0700), 0);
  const std::string path = write("user/key", testing::to_bytes("the user's own"));
  const FileToRead scanned = to_read(path);
  ASSERT_NO_FATAL_FAILURE(testing::write_text_file(dir_ / "secret/key", "root's secret"));
  ASSERT_EQ(::rename((dir_ / "user").c_str(), (dir_ / "moved").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "secret").c_str(), (dir_ / "user").c_str()), 0);
  ASSERT_EQ(::lchown((dir_ / "user").c_str(), 65534, 65534), 0);
  ManifestVersion version;
  std::vector<Bytes> chunks;
  const ReadResult result = read_as_scanned(env_, scanned, version, &chunks);
  EXPECT_EQ(result.outcome, ReadOutcome::unreadable);
  EXPECT_NE(result.problem.find("does not follow it"), std::string::npos) << result.problem;
  EXPECT_TRUE(chunks.empty()) << "not one byte of root's file was read";
}

// One reader keeps folders open between files and steps down from them without following any
// link: a folder swapped for a link below one it holds open is not followed either, and a link
// it may follow (root's own, in root's folder) is still followed, by the whole walk.
TEST_F(ReadContent, AReaderThatKeepsFoldersOpenFollowsNoNewLinkBelowThem) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "only root can make a link another user owns";
  }
  for (const char* folder : {"tree", "tree/a", "tree/b", "tree/user", "secret", "real"}) {
    ASSERT_EQ(::mkdir((dir_ / folder).c_str(), 0755), 0) << folder;
  }
  ASSERT_EQ(::chmod((dir_ / "secret").c_str(), 0700), 0);
  const FileToRead first = to_read(write("tree/a/one", testing::to_bytes("one")));
  const FileToRead second = to_read(write("tree/b/two", testing::to_bytes("two")));
  const FileToRead users = to_read(write("tree/user/key", testing::to_bytes("the user's own")));
  ASSERT_NO_FATAL_FAILURE(testing::write_text_file(dir_ / "secret/key", "root's secret"));
  const FileToRead trusted = to_read(write("real/three", testing::to_bytes("three")));
  ASSERT_EQ(::symlink((dir_ / "real").c_str(), (dir_ / "tree/root-link").c_str()), 0);
  FileToRead through_trusted = trusted;
  through_trusted.entry.path = dir_ / "tree/root-link/three";

  ContentReader reader(env_, chunker_, id_key_);
  std::vector<Bytes> chunks;
  const auto read_one = [&](const FileToRead& file) {
    ManifestVersion version;
    chunks.clear();
    return reader.read(
        file, version, [&](const ChunkId&, ByteView chunk) { chunks.emplace_back(chunk.begin(), chunk.end()); },
        [] { return false; });
  };
  ASSERT_EQ(read_one(first).outcome, ReadOutcome::read);
  ASSERT_EQ(read_one(second).outcome, ReadOutcome::read);  // "tree" is now held open

  ASSERT_EQ(::rename((dir_ / "tree/user").c_str(), (dir_ / "moved").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "secret").c_str(), (dir_ / "tree/user").c_str()), 0);
  ASSERT_EQ(::lchown((dir_ / "tree/user").c_str(), 65534, 65534), 0);
  const ReadResult swapped = read_one(users);
  EXPECT_EQ(swapped.outcome, ReadOutcome::unreadable);
  EXPECT_NE(swapped.problem.find("does not follow it"), std::string::npos) << swapped.problem;
  EXPECT_TRUE(chunks.empty()) << "not one byte of root's file was read";

  const ReadResult followed = read_one(through_trusted);
  EXPECT_EQ(followed.outcome, ReadOutcome::read) << followed.problem;
  ASSERT_EQ(chunks.size(), 1U);
  EXPECT_EQ(chunks[0], testing::to_bytes("three"));
}

TEST_F(ReadContent, AStopAbandonsTheFile) {
  const std::string path = write("data.bin", testing::random_data(100'000, 8));
  ManifestVersion version;
  std::vector<Bytes> chunks;
  int polls = 0;
  const ReadResult result = read(Env::default_env(), path, version, &chunks, [&polls] { return ++polls > 2; });
  EXPECT_EQ(result.outcome, ReadOutcome::stopped);
  EXPECT_EQ(chunks.size(), 2U);  // polled before each chunk
  EXPECT_TRUE(version.chunks.empty());
}

}  // namespace
}  // namespace mybackup
