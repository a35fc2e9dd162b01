#include "mybackup/source/scanner.hpp"

#include "mybackup/util/error.hpp"

#include <gtest/gtest.h>

#include "fault_env.hpp"
#include "test_util.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mybackup {
namespace {

// A fresh directory under /tmp, removed at the end unless the test failed (kept for inspection).
using testing::TempDir;
using testing::FaultEnv;

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

void make_dir(const std::string& path) { ASSERT_EQ(mkdir(path.c_str(), 0755), 0) << path; }

void make_symlink(const std::string& target, const std::string& path) {
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0) << path;
}

std::vector<std::string> paths_of(const ScanResult& result) {
  std::vector<std::string> paths;
  for (const ScanEntry& entry : result.entries) {
    paths.push_back(entry.path);
  }
  return paths;
}

const ScanEntry* find_entry(const ScanResult& result, const std::string& path) {
  for (const ScanEntry& entry : result.entries) {
    if (entry.path == path) {
      return &entry;
    }
  }
  return nullptr;
}

TEST(ScanTree, RecordsFilesEmptyAndNestedDirectories) {
  TempDir dir("scanner_test_");
  write_file(dir / "a.txt", "hello");
  make_dir(dir / "empty");
  make_dir(dir / "nested");
  make_dir(dir / "nested/sub");
  write_file(dir / "nested/sub/deep.txt", "0123456789");

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher());

  EXPECT_TRUE(result.problems.empty());
  const std::vector<std::string> expected = {dir.path(), dir / "a.txt", dir / "empty", dir / "nested",
                                             dir / "nested/sub", dir / "nested/sub/deep.txt"};
  EXPECT_EQ(paths_of(result), expected);

  const ScanEntry* root = find_entry(result, dir.path());
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->type, EntryType::directory);
  EXPECT_EQ(root->size, 0u);

  const ScanEntry* file = find_entry(result, dir / "a.txt");
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->type, EntryType::file);
  EXPECT_EQ(file->size, 5u);
  EXPECT_TRUE(file->link_target.empty());

  const ScanEntry* deep = find_entry(result, dir / "nested/sub/deep.txt");
  ASSERT_NE(deep, nullptr);
  EXPECT_EQ(deep->size, 10u);

  const ScanEntry* empty = find_entry(result, dir / "empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->type, EntryType::directory);
}

TEST(ScanTree, RecordsSymlinksWithoutFollowingThem) {
  TempDir dir("scanner_test_");
  make_dir(dir / "target");
  write_file(dir / "target/inside.txt", "x");
  make_symlink("target", dir / "link_dir");
  make_symlink("does-not-exist", dir / "dangling");
  make_symlink("target/inside.txt", dir / "link_file");

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher());

  EXPECT_TRUE(result.problems.empty());
  const std::vector<std::string> expected = {dir.path(),        dir / "dangling", dir / "link_dir",
                                             dir / "link_file", dir / "target",   dir / "target/inside.txt"};
  EXPECT_EQ(paths_of(result), expected);  // nothing below link_dir

  const ScanEntry* link_dir = find_entry(result, dir / "link_dir");
  ASSERT_NE(link_dir, nullptr);
  EXPECT_EQ(link_dir->type, EntryType::symlink);
  EXPECT_EQ(link_dir->link_target, "target");
  EXPECT_EQ(link_dir->size, 6u);

  const ScanEntry* dangling = find_entry(result, dir / "dangling");
  ASSERT_NE(dangling, nullptr);
  EXPECT_EQ(dangling->type, EntryType::symlink);
  EXPECT_EQ(dangling->link_target, "does-not-exist");
  EXPECT_EQ(dangling->size, 14u);

  const ScanEntry* link_file = find_entry(result, dir / "link_file");
  ASSERT_NE(link_file, nullptr);
  EXPECT_EQ(link_file->type, EntryType::symlink);
  EXPECT_EQ(link_file->link_target, "target/inside.txt");
}

// A fifo is recorded (restore makes it again); a socket is skipped silently (its program makes it
// again), so neither makes the backup partial.
TEST(ScanTree, RecordsFifosAndSkipsSocketsSilently) {
  TempDir dir("scanner_test_");
  write_file(dir / "regular", "r");
  ASSERT_EQ(mkfifo((dir / "pipe").c_str(), 0644), 0);
  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string socket_path = dir / "sock";
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  ASSERT_EQ(bind(sock, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  close(sock);

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher());

  const std::vector<std::string> expected = {dir.path(), dir / "pipe", dir / "regular"};
  EXPECT_EQ(paths_of(result), expected);
  EXPECT_TRUE(result.problems.empty());
  ASSERT_EQ(result.entries.size(), 3u);
  EXPECT_EQ(result.entries[1].type, EntryType::fifo);
  EXPECT_EQ(result.entries[1].meta.uid, ::geteuid());
  EXPECT_GT(result.entries[1].meta.ctime_ns, 0);
}

// Attack test (issue 11, item 12): a source reached through a link another user placed is never
// read as if it were the source.
TEST(ScanTree, ASourceBehindAnotherUsersLinkIsRefused) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "only root can make a link another user owns";
  }
  TempDir dir("scanner_test_");
  ASSERT_EQ(mkdir((dir / "secret").c_str(), 0700), 0);
  write_file(dir / "secret/key", "root's");
  ASSERT_EQ(symlink((dir / "secret").c_str(), (dir / "theirs").c_str()), 0);
  ASSERT_EQ(lchown((dir / "theirs").c_str(), 65534, 65534), 0);
  const Error error = testing::catch_error([&] { scan_tree(dir / "theirs/key", ExcludeMatcher()); });
  EXPECT_EQ(error.kind(), ErrorKind::denied);
  EXPECT_NE(std::string(error.what()).find("does not follow it"), std::string::npos) << error.what();

  // Our own link above the source is followed (a home behind /home -> /srv/home still works).
  ASSERT_EQ(symlink((dir / "secret").c_str(), (dir / "ours").c_str()), 0);
  const ScanResult result = scan_tree(dir / "ours/key", ExcludeMatcher());
  ASSERT_EQ(result.entries.size(), 1u);
  EXPECT_EQ(result.entries[0].path, dir / "ours/key");
}

TEST(ScanTree, UnreadableDirectoryIsAProblemAndStillListed) {
  TempDir dir("scanner_test_");
  make_dir(dir / "locked");
  write_file(dir / "locked/secret", "s");
  write_file(dir / "visible", "v");
  FaultEnv env;  // EACCES even for root, who could read a mode 000 directory
  env.deny(dir / "locked");

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher(), &env);

  const std::vector<std::string> expected = {dir.path(), dir / "locked", dir / "visible"};
  EXPECT_EQ(paths_of(result), expected);
  ASSERT_EQ(result.problems.size(), 1u);
  EXPECT_EQ(result.problems[0].path, dir / "locked");
  EXPECT_EQ(result.problems[0].reason, "cannot open directory: Permission denied");
}

TEST(ScanTree, AnUnreadableRootIsDenied) {
  TempDir dir("scanner_test_");
  FaultEnv env;
  env.deny(dir.path());

  const testing::ErrorOutcome outcome = testing::error_kind([&] { scan_tree(dir.path(), ExcludeMatcher(), &env); });

  EXPECT_EQ(outcome, ErrorKind::denied) << outcome;
}

TEST(ScanTree, ADirectoryWithAnIoErrorIsAProblemOfThatScanOnly) {
  TempDir dir("scanner_test_");
  make_dir(dir / "sub");
  write_file(dir / "sub/a", "a");
  FaultEnv env;
  env.fail(FaultEnv::Op::open, dir / "sub", 1, EIO);  // a failing disk

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher(), &env);

  const std::vector<std::string> expected = {dir.path(), dir / "sub"};
  EXPECT_EQ(paths_of(result), expected);
  ASSERT_EQ(result.problems.size(), 1u);
  EXPECT_EQ(result.problems[0].path, dir / "sub");
  EXPECT_EQ(result.problems[0].reason, "cannot open directory: Input/output error");

  // The fault was for the first open only: the next scan sees everything.
  const ScanResult again = scan_tree(dir.path(), ExcludeMatcher(), &env);
  EXPECT_TRUE(again.problems.empty());
  EXPECT_EQ(again.entries.size(), 3u);
}

TEST(ScanTree, EntriesAreSortedByPath) {
  TempDir dir("scanner_test_");
  for (const char* name : {"b", "a.txt", "B", "a-b", "_x", "z"}) {
    write_file(dir / name, "");
  }
  make_dir(dir / "a");
  write_file(dir / "a/b", "");
  make_dir(dir / "a/c");

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher());

  const std::vector<std::string> paths = paths_of(result);
  EXPECT_TRUE(std::is_sorted(paths.begin(), paths.end()));
  const std::vector<std::string> expected = {dir.path(),   dir / "B",   dir / "_x",  dir / "a",   dir / "a-b",
                                             dir / "a.txt", dir / "a/b", dir / "a/c", dir / "b", dir / "z"};
  EXPECT_EQ(paths, expected);
}

TEST(ScanTree, RecordsModeMtimeInodeAndDevice) {
  TempDir dir("scanner_test_");
  write_file(dir / "file", "abc");
  make_dir(dir / "sub");
  ASSERT_EQ(chmod((dir / "file").c_str(), 04640), 0);
  ASSERT_EQ(chmod((dir / "sub").c_str(), 0750), 0);
  const timespec times[2] = {{1'600'000'000, 0}, {1'600'000'000, 123'456'789}};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir / "file").c_str(), times, 0), 0);

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher());

  const ScanEntry* file = find_entry(result, dir / "file");
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->mode, 04640u);
  EXPECT_EQ(file->mtime_ns, 1'600'000'000'123'456'789LL);
  struct stat st {};
  ASSERT_EQ(lstat(file->path.c_str(), &st), 0);
  EXPECT_EQ(file->inode, static_cast<std::uint64_t>(st.st_ino));
  EXPECT_EQ(file->meta.device, static_cast<std::uint64_t>(st.st_dev));

  const ScanEntry* sub = find_entry(result, dir / "sub");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->mode, 0750u);
}

TEST(ScanTree, SingleFileRootIsTheOnlyEntry) {
  TempDir dir("scanner_test_");
  write_file(dir / "only.txt", "1234");
  write_file(dir / "other.txt", "");

  const ScanResult result = scan_tree(dir / "only.txt", ExcludeMatcher());

  ASSERT_EQ(result.entries.size(), 1u);
  EXPECT_EQ(result.entries[0].path, dir / "only.txt");
  EXPECT_EQ(result.entries[0].type, EntryType::file);
  EXPECT_EQ(result.entries[0].size, 4u);
  EXPECT_TRUE(result.problems.empty());
}

TEST(ScanTree, RootPathIsNormalized) {
  TempDir dir("scanner_test_");
  make_dir(dir / "sub");
  write_file(dir / "sub/f", "");

  const ScanResult result = scan_tree(dir.path() + "/./sub/", ExcludeMatcher());

  const std::vector<std::string> expected = {dir / "sub", dir / "sub/f"};
  EXPECT_EQ(paths_of(result), expected);
}

TEST(ScanTree, MissingRootThrowsNotFound) {
  TempDir dir("scanner_test_");
  const std::string missing = dir / "missing";
  try {
    scan_tree(missing, ExcludeMatcher());
    FAIL() << "expected Error";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::not_found);
    EXPECT_EQ(std::string(error.what()), "source not found: " + missing);
  }
}

TEST(ScanTree, WalksTreesDeeperThanTheHeldDescriptorLimit) {
  TempDir dir("scanner_test_");
  std::string path = dir.path();
  constexpr int kDepth = 200;
  for (int i = 0; i < kDepth; ++i) {
    path += "/d";
    make_dir(path);
  }
  write_file(path + "/leaf", "leaf");

  const ScanResult result = scan_tree(dir.path(), ExcludeMatcher());

  EXPECT_TRUE(result.problems.empty());
  EXPECT_EQ(result.entries.size(), static_cast<std::size_t>(kDepth + 2));
  EXPECT_NE(find_entry(result, path + "/leaf"), nullptr);
}

TEST(ExcludeMatcher, NamePatternsMatchAtAnyDepth) {
  const ExcludeMatcher matcher({"*.tmp", "~*", ".DS_Store"});
  EXPECT_TRUE(matcher.excluded("a.tmp", false));
  EXPECT_TRUE(matcher.excluded("x/y/b.tmp", false));
  EXPECT_TRUE(matcher.excluded("dir.tmp", true));
  EXPECT_FALSE(matcher.excluded("a.tmpx", false));
  EXPECT_FALSE(matcher.excluded("a.tmp/b", false));
  EXPECT_TRUE(matcher.excluded("~lock", false));
  EXPECT_TRUE(matcher.excluded("dir/~x", false));
  EXPECT_FALSE(matcher.excluded("a~", false));
  EXPECT_TRUE(matcher.excluded(".DS_Store", false));
  EXPECT_TRUE(matcher.excluded("a/b/.DS_Store", false));
  EXPECT_FALSE(matcher.excluded("x.DS_Store", false));
}

TEST(ExcludeMatcher, StarMatchesDotfiles) {
  EXPECT_TRUE(ExcludeMatcher({"*"}).excluded(".hidden", false));
  EXPECT_TRUE(ExcludeMatcher({"*.tmp"}).excluded("a/.hidden.tmp", false));
}

TEST(ExcludeMatcher, TrailingSlashIsDirectoryOnly) {
  const ExcludeMatcher matcher({"build/"});
  EXPECT_TRUE(matcher.excluded("build", true));
  EXPECT_TRUE(matcher.excluded("src/build", true));
  EXPECT_FALSE(matcher.excluded("build", false));
  EXPECT_FALSE(matcher.excluded("src/build", false));
  EXPECT_FALSE(matcher.excluded("builds", true));
}

TEST(ExcludeMatcher, PathPatternsMatchTheRelativePathOnly) {
  const ExcludeMatcher matcher({"docs/*.pdf"});
  EXPECT_TRUE(matcher.excluded("docs/a.pdf", false));
  EXPECT_FALSE(matcher.excluded("docs/sub/a.pdf", false));
  EXPECT_FALSE(matcher.excluded("other/docs/a.pdf", false));
  EXPECT_FALSE(matcher.excluded("a.pdf", false));
  EXPECT_FALSE(matcher.excluded("docs/a.txt", false));
}

TEST(ExcludeMatcher, LeadingDotSlashOrSlashAnchorsAtTheRoot) {
  for (const char* pattern : {"./x", "/x"}) {
    const ExcludeMatcher matcher({pattern});
    EXPECT_TRUE(matcher.excluded("x", false)) << pattern;
    EXPECT_TRUE(matcher.excluded("x", true)) << pattern;
    EXPECT_FALSE(matcher.excluded("sub/x", false)) << pattern;
  }
  const ExcludeMatcher directory({"/build/"});
  EXPECT_TRUE(directory.excluded("build", true));
  EXPECT_FALSE(directory.excluded("build", false));
  EXPECT_FALSE(directory.excluded("a/build", true));
}

TEST(ExcludeMatcher, KeepsPatternsAsWrittenAndIgnoresRootOnlyPatterns) {
  const ExcludeMatcher matcher({"/", "./", "*.o"});
  const std::vector<std::string> expected = {"/", "./", "*.o"};
  EXPECT_EQ(matcher.patterns(), expected);
  EXPECT_FALSE(matcher.excluded("a", true));
  EXPECT_TRUE(matcher.excluded("a.o", false));
  EXPECT_FALSE(ExcludeMatcher().excluded("anything", false));
}

TEST(ScanTree, AppliesExcludes) {
  TempDir dir("scanner_test_");
  write_file(dir / "keep.txt", "");
  write_file(dir / "junk.tmp", "");
  write_file(dir / "~lock", "");
  write_file(dir / ".DS_Store", "");
  make_dir(dir / "build");
  make_dir(dir / "build/obj");
  write_file(dir / "build/obj/a.o", "");
  make_dir(dir / "src");
  write_file(dir / "src/build", "a file named build");
  write_file(dir / "src/old.tmp", "");
  make_dir(dir / "docs");
  write_file(dir / "docs/a.pdf", "");
  make_dir(dir / "docs/sub");
  write_file(dir / "docs/sub/b.pdf", "");
  ASSERT_EQ(mkfifo((dir / "src/pipe.tmp").c_str(), 0644), 0);

  const ExcludeMatcher matcher(split_patterns("*.tmp, ~*, .DS_Store, build/, docs/*.pdf"));
  const ScanResult result = scan_tree(dir.path(), matcher);

  EXPECT_TRUE(result.problems.empty());  // the excluded fifo is not reported
  const std::vector<std::string> expected = {dir.path(),       dir / "docs",     dir / "docs/sub",
                                             dir / "docs/sub/b.pdf", dir / "keep.txt", dir / "src",
                                             dir / "src/build"};
  EXPECT_EQ(paths_of(result), expected);
}

TEST(SplitPatterns, TrimsSpacesAndDropsEmptyItems) {
  const std::vector<std::string> expected = {"*.tmp", "~*", ".DS_Store", "docs/*.pdf"};
  EXPECT_EQ(split_patterns(" *.tmp, ,~*,, .DS_Store ,docs/*.pdf,"), expected);
  EXPECT_TRUE(split_patterns("").empty());
  EXPECT_TRUE(split_patterns(" , ,, ").empty());
  EXPECT_EQ(split_patterns("one"), std::vector<std::string>{"one"});
}

TEST(NormalizePath, RemovesDotsAndRedundantSlashes) {
  EXPECT_EQ(normalize_path("/a/./b/../c/"), "/a/c");
  EXPECT_EQ(normalize_path("//a//b"), "/a/b");
  EXPECT_EQ(normalize_path("/"), "/");
  EXPECT_EQ(normalize_path("/.."), "/");
  EXPECT_EQ(normalize_path("/a/b/../../.."), "/");
  EXPECT_EQ(normalize_path("/a/b/."), "/a/b");
  EXPECT_EQ(normalize_path("/a/..b/c"), "/a/..b/c");
}

TEST(NormalizePath, RelativePathsAreResolvedAgainstTheCurrentDirectory) {
  const std::string cwd = std::filesystem::current_path().lexically_normal().string();
  const std::string prefix = cwd == "/" ? "" : cwd;
  EXPECT_EQ(normalize_path("x/y"), prefix + "/x/y");
  EXPECT_EQ(normalize_path("x/../y/"), prefix + "/y");
  EXPECT_EQ(normalize_path("."), cwd);
}

}  // namespace
}  // namespace mybackup

namespace mybackup {
namespace {

/// Records what a walk delivers, in order; can stop the walk after so many entries.
class RecordingSink final : public ScanSink {
 public:
  explicit RecordingSink(std::size_t stop_after = SIZE_MAX) : stop_after_(stop_after) {}
  void entry(ScanEntry&& entry) override {
    events.push_back(entry.path);
    if (events.size() >= stop_after_) {
      throw Error(ErrorKind::interrupted, "enough");
    }
  }
  void problem(ScanProblem&& problem) override { events.push_back("problem " + problem.path); }
  std::vector<std::string> events;

 private:
  std::size_t stop_after_;
};

TEST(ScanTreeStreaming, DeliversEveryPathInByteOrderWhereDotAndDashSortBeforeSlash) {
  TempDir dir("scanner_test_");
  make_dir(dir / "a");
  write_file(dir / "a/x", "1");
  make_dir(dir / "a/b");
  write_file(dir / "a/b/y", "2");
  write_file(dir / "a.txt", "3");
  make_dir(dir / "a-b");
  write_file(dir / "a-b/z", "4");
  make_dir(dir / "a!");  // a name that is a prefix of another directory's, with '!' < '/'
  make_dir(dir / "a!!");
  write_file(dir / "a!!/w", "5");
  write_file(dir / "b", "6");

  RecordingSink sink;
  scan_tree(dir.path(), ExcludeMatcher(), sink);

  std::vector<std::string> sorted = sink.events;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sink.events, sorted);
  EXPECT_EQ(sink.events.size(), 12u);  // the root and eleven paths
  EXPECT_EQ(sink.events.front(), dir.path());
}

TEST(ScanTreeStreaming, DeliversEntriesWhileItWalksNotAfter) {
  TempDir dir("scanner_test_");
  for (int d = 0; d < 20; ++d) {
    make_dir(dir / ("d" + std::to_string(d)));
    for (int f = 0; f < 20; ++f) {
      write_file(dir / ("d" + std::to_string(d) + "/f" + std::to_string(f)), "x");
    }
  }
  // The sink stops the walk at its fifth entry: a walk that collected the tree first would have
  // listed every directory before delivering anything.
  FaultEnv env;
  RecordingSink sink(5);
  EXPECT_THROW(scan_tree(dir.path(), ExcludeMatcher(), sink, &env), Error);
  EXPECT_EQ(sink.events.size(), 5u);
  EXPECT_LE(env.calls(FaultEnv::Op::open, "*/d*"), 2);  // one or two of the 20 folders opened
}

TEST(ScanTreeStreaming, ReportsAnUnreadableFolderBeforeAnythingThatSortsAfterIt) {
  TempDir dir("scanner_test_");
  make_dir(dir / "locked");
  write_file(dir / "locked/inside", "1");
  write_file(dir / "locked.txt", "2");
  write_file(dir / "m", "3");
  FaultEnv env;  // EACCES even for root
  env.deny(dir / "locked");
  RecordingSink sink;
  scan_tree(dir.path(), ExcludeMatcher(), sink, &env);
  const auto at = [&](const std::string& event) {
    return std::find(sink.events.begin(), sink.events.end(), event) - sink.events.begin();
  };
  EXPECT_LT(at("problem " + (dir / "locked")), at(dir / "m"));
}

}  // namespace
}  // namespace mybackup
