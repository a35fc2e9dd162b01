#include "mybackup/engine/restore.hpp"

#include "mybackup/storage/backend.hpp"
#include "mybackup/engine/backup.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"

#include <gtest/gtest.h>

#include "fault_backend.hpp"
#include "fault_env.hpp"
#include "test_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mybackup {
namespace {

using testing::FaultEnv;
using testing::names_of;
using testing::TempDir;

// The fixture's repository cuts chunks of 32 KiB .. 512 KiB (64 KiB on average) and closes packs
// at 256 KiB, so a quarter MiB gives several chunks and 768 KiB a dozen, over several packs.
constexpr std::size_t kBigSize = 768 * 1024 + 4321;
constexpr std::size_t kMultiChunkSize = 256 * 1024 + 99;

RepositoryOptions fixture_options() {
  RepositoryOptions options;
  options.chunker = RepositoryOptions::chunker_for(64 * 1024);
  options.pack_target_size = 256 * 1024;
  return options;
}
constexpr std::int64_t kEndOfTime = std::numeric_limits<std::int64_t>::max();
constexpr const char* kTemporaryPrefix = ".mybackup-restore-";

// ---- files

void make_dir(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << path;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;  // regardless of the umask
}

void make_symlink(const std::string& target, const std::string& path) {
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path;
}

void write_file(const std::string& path, const std::string& content, mode_t mode = 0644) {
  testing::write_text_file(path, content);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

void write_random(const std::string& path, std::size_t size, std::uint32_t seed, mode_t mode = 0644) {
  const Bytes data = testing::random_data(size, seed);
  write_file(path, std::string(as_text(data)), mode);
}

/// Sets the modification time (never following a symlink) to `seconds` plus `nanoseconds`.
void set_mtime(const std::string& path, std::int64_t seconds, long nanoseconds) {
  const timespec times[2] = {{static_cast<time_t>(seconds), 0}, {static_cast<time_t>(seconds), nanoseconds}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

std::uint64_t inode_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return static_cast<std::uint64_t>(info.st_ino);
}

bool exists_no_follow(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

std::string link_target_of(const std::string& path) {
  std::error_code error;
  const std::filesystem::path target = std::filesystem::read_symlink(path, error);
  EXPECT_FALSE(error) << path << ": " << error.message();
  return target.string();
}

/// Flips every bit of the byte at `offset` of a file.
void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  file.read(&byte, 1);
  ASSERT_TRUE(file.good()) << path;
  byte = static_cast<char>(~byte);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&byte, 1);
  ASSERT_TRUE(file.good()) << path;
}

/// What a tree holds, as a restore must reproduce it.
struct Node {
  char kind = '?';  // 'f' file, 'd' directory, 'l' symlink
  std::uint32_t mode = 0;
  std::int64_t mtime_ns = 0;
  std::string content;  // a file's bytes or a link's target
};

Node node_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  Node node;
  node.mode = static_cast<std::uint32_t>(info.st_mode & 07777);
  node.mtime_ns = static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  if (S_ISREG(info.st_mode)) {
    node.kind = 'f';
    node.content = testing::read_text_file(path);
  } else if (S_ISDIR(info.st_mode)) {
    node.kind = 'd';
  } else if (S_ISLNK(info.st_mode)) {
    node.kind = 'l';
    node.content = link_target_of(path);
  }
  return node;
}

/// Every entry of a tree by relative path ("" is the root itself). Empty if `root` is absent.
std::map<std::string, Node> snapshot(const std::string& root) {
  std::map<std::string, Node> nodes;
  if (!exists_no_follow(root)) {
    return nodes;
  }
  nodes[""] = node_of(root);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    // lexically: std::filesystem::relative() would resolve symlinks.
    nodes[entry.path().lexically_relative(root).string()] = node_of(entry.path().string());
  }
  return nodes;
}

std::vector<std::string> names_of(const std::map<std::string, Node>& nodes) {
  std::vector<std::string> names;
  for (const auto& [name, node] : nodes) {
    names.push_back(name);
  }
  return names;
}

/// Field by field, so a failure names the path and the field (and never prints 768 KiB).
void expect_same_tree(const std::map<std::string, Node>& expected, const std::map<std::string, Node>& actual) {
  EXPECT_EQ(names_of(actual), names_of(expected));
  for (const auto& [name, want] : expected) {
    const auto found = actual.find(name);
    if (found == actual.end()) {
      continue;
    }
    const Node& got = found->second;
    const std::string label = "'" + name + "'";
    EXPECT_EQ(got.kind, want.kind) << label;
    if (want.kind != 'l') {  // a symlink's own mode is always 0777 on Linux
      EXPECT_EQ(got.mode, want.mode) << label << std::oct << " mode " << got.mode << " vs " << want.mode;
    }
    EXPECT_EQ(got.mtime_ns, want.mtime_ns) << label;
    EXPECT_EQ(got.content.size(), want.content.size()) << label;
    EXPECT_TRUE(got.content == want.content) << label << ": content differs";
  }
}

/// Entries below `directory` whose name starts with the restore's temporary prefix.
std::vector<std::string> restore_temporaries(const std::string& directory) {
  std::vector<std::string> found;
  if (!exists_no_follow(directory)) {
    return found;
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    if (entry.path().filename().string().rfind(kTemporaryPrefix, 0) == 0) {
      found.push_back(entry.path().string());
    }
  }
  return found;
}

/// For readable failures (no PrintTo overload: see the note in test_util.hpp).
std::string name_of(RestoreAction action) {
  switch (action) {
    case RestoreAction::restored: return "restored";
    case RestoreAction::identical: return "identical";
    case RestoreAction::failed: return "failed";
    case RestoreAction::would_restore: return "would_restore";
  }
  return "?";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The problem reported for `target`, or nullptr.
const RestoreProblem* problem_for(const RestoreReport& report, const std::string& target) {
  for (const RestoreProblem& problem : report.problems) {
    if (problem.target == target) {
      return &problem;
    }
  }
  return nullptr;
}

std::string describe(const RestoreReport& report) {
  std::string text;
  for (const RestoreProblem& problem : report.problems) {
    text += "\n  '" + problem.target + "' (" + problem.path + " v" + std::to_string(problem.number) +
            "): " + problem.reason;
  }
  return text.empty() ? " no problems" : text;
}

/// What on_item saw, by relative path.
struct Seen {
  std::map<std::string, RestoreAction> actions;
  std::map<std::string, std::string> notes;
  int calls = 0;

  RestoreCallback callback() {
    return [this](RestoreAction action, const RestoreItem& item, const std::string& note) {
      ++calls;
      actions[item.relative] = action;
      notes[item.relative] = note;
    };
  }
};

// ---- the fixture: a source tree, a repository in a temporary directory, a catalog

class Restore : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dir(src_);
    repo_ = Repository::open(make_local_backend(dest_), key_, CreateIfMissing::yes, fixture_options());
    catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
  }

  BackupReport backup() {
    const BackupTarget target = BackupTarget::writing_to(*repo_);
    BackupOptions options;
    options.sources = {{src_, {}}};
    options.threads = 2;
    BackupReport report = run_backup(*catalog_, target, options);
    EXPECT_TRUE(report.problems.empty()) << report.problems.front().path << ": " << report.problems.front().reason;
    EXPECT_EQ(report.stats.status, "ok");
    return report;
  }

  /// The repository at dest_, read through a FaultInjectingBackend (faults_, owned by the
  /// repository) that counts reads and injects faults; its counts start at zero.
  std::unique_ptr<Repository> repository_through_faults() {
    auto wrapped = std::make_unique<testing::FaultInjectingBackend>(make_local_backend(dest_));
    faults_ = wrapped.get();
    auto repository = Repository::open(std::move(wrapped), key_, CreateIfMissing::no);
    faults_->reset_counts();
    return repository;
  }

  std::string src(const std::string& relative) const { return src_ + "/" + relative; }
  std::string out(const std::string& relative) const { return out_ + "/" + relative; }

  /// The path relative to the source root ("" for the root itself).
  std::string relative_of(const std::string& path) const {
    if (path == src_) {
      return "";
    }
    EXPECT_EQ(path.rfind(src_ + "/", 0), 0u) << path;
    return path.substr(src_.size() + 1);
  }

  /// The state of the source tree at `at_ns` (deletion markers skipped), to be restored below `root`.
  RestorePlan plan_at(std::int64_t at_ns, const std::string& root) const {
    RestorePlan plan;
    plan.root = root;
    for (VersionRecord& version : catalog_->state_at(src_, at_ns)) {
      if (version.type == EntryType::deleted) {
        continue;
      }
      std::string relative = relative_of(version.path);
      plan.items.push_back({std::move(relative), std::move(version)});
    }
    return plan;
  }
  RestorePlan plan_latest(const std::string& root) const { return plan_at(kEndOfTime, root); }

  /// Only the items whose relative path is in `keep`.
  static RestorePlan only(RestorePlan plan, const std::vector<std::string>& keep) {
    std::vector<RestoreItem> items;
    for (RestoreItem& item : plan.items) {
      if (std::find(keep.begin(), keep.end(), item.relative) != keep.end()) {
        items.push_back(std::move(item));
      }
    }
    EXPECT_EQ(items.size(), keep.size()) << "the plan lacks some of the items asked for";
    plan.items = std::move(items);
    return plan;
  }

  /// Version `number` of the source path `relative`.
  VersionRecord version_of(const std::string& relative, std::uint32_t number) const {
    for (const VersionRecord& version : catalog_->versions_of(src(relative))) {
      if (version.number == number) {
        return version;
      }
    }
    ADD_FAILURE() << "no version " << number << " of " << relative;
    return VersionRecord{};
  }

  /// The pack file on the destination.
  std::string pack_file(const std::string& pack_name) const { return dest_ + "/" + object_names::pack(pack_name); }

  TempDir dir_{"restore_test_"};
  std::string src_ = dir_ / "src";
  std::string dest_ = dir_ / "dest";
  std::string out_ = dir_ / "out";  // the restore destination; absent until a test makes it
  MasterKey key_ = MasterKey::generate();
  std::unique_ptr<Repository> repo_;
  testing::FaultInjectingBackend* faults_ = nullptr;  // set by repository_through_faults()
  std::unique_ptr<Catalog> catalog_;
};

// ---- full round trip

TEST_F(Restore, FullTreeRoundTripsIntoANewDestination) {
  write_file(src("empty.txt"), "", 0644);
  write_file(src("small.txt"), "hello, restore", 0600);
  write_file(src("run.sh"), "#!/bin/sh\necho hi\n", 0755);
  write_file(src("setuid"), "set-user-id program", 04750);
  write_random(src("big.bin"), kBigSize, 7, 0640);
  make_dir(src("sub"), 0750);
  write_file(src("sub/nested.txt"), "nested\n");
  make_dir(src("sub/deeper"), 0711);
  write_file(src("sub/deeper/leaf.txt"), "leaf", 0400);
  make_symlink("../small.txt", src("sub/up"));
  make_dir(src("emptydir"), 0700);
  make_dir(src("readonly"), 0755);
  write_file(src("readonly/inside.txt"), "inside a read-only directory");
  ASSERT_EQ(::chmod(src("readonly").c_str(), 0555), 0);
  make_symlink("small.txt", src("link_relative"));
  make_symlink(src("small.txt"), src("link_absolute"));
  make_symlink("no/such/target", src("link_dangling"));
  // Distinct times down to the nanosecond; directories last (writing into them changes theirs).
  long nanoseconds = 1;
  for (const char* path : {"empty.txt", "small.txt", "run.sh", "setuid", "big.bin", "sub/nested.txt",
                           "sub/deeper/leaf.txt", "sub/up", "readonly/inside.txt", "link_relative", "link_absolute",
                           "link_dangling", "sub/deeper", "sub", "emptydir", "readonly"}) {
    set_mtime(src(path), 1'600'000'000 + nanoseconds * 1000, nanoseconds * 1111);
    ++nanoseconds;
  }
  set_mtime(src_, 1'650'000'000, 424242);
  const auto source = snapshot(src_);
  backup();

  const VersionRecord big = version_of("big.bin", 1);
  ASSERT_GE(catalog_->chunks_of(big.id).size(), 2u) << "big.bin should span several chunks";

  Seen seen;
  RestoreOptions options;
  options.on_item = seen.callback();
  const RestorePlan plan = plan_latest(out_);
  ASSERT_EQ(plan.items.size(), source.size());
  const RestoreReport report = restore(*catalog_, *repo_, plan, options);

  EXPECT_TRUE(report.problems.empty()) << describe(report);
  expect_same_tree(source, snapshot(out_));
  EXPECT_EQ(report.files, 8u);
  EXPECT_EQ(report.directories, 4u);  // sub, sub/deeper, emptydir, readonly (the root is not counted)
  EXPECT_EQ(report.symlinks, 4u);
  EXPECT_EQ(report.identical, 0u);
  std::uint64_t bytes = 0;
  for (const auto& [name, node] : source) {
    bytes += node.kind == 'f' ? node.content.size() : 0;
  }
  EXPECT_EQ(report.bytes, bytes);
  EXPECT_EQ(seen.calls, static_cast<int>(plan.items.size()));
  for (const auto& [name, action] : seen.actions) {
    EXPECT_EQ(name_of(action), "restored") << "'" << name << "': " << seen.notes[name];
  }
  EXPECT_TRUE(restore_temporaries(out_).empty());

  // Again into the same place: files and links are identical and left alone; nothing changes.
  const std::uint64_t big_inode = inode_of(out("big.bin"));
  const RestoreReport again = restore(*catalog_, *repo_, plan, RestoreOptions{});
  EXPECT_TRUE(again.problems.empty()) << describe(again);
  EXPECT_EQ(again.identical, 12u);  // 8 files and 4 symlinks
  EXPECT_EQ(again.files, 0u);
  EXPECT_EQ(again.symlinks, 0u);
  EXPECT_EQ(again.bytes, 0u);
  EXPECT_EQ(inode_of(out("big.bin")), big_inode);
  expect_same_tree(source, snapshot(out_));
}

// Issue 13: a plan of millions of items is read a batch at a time, never whole: the restore has
// taken no more than a batch from it when the first item is done, and the tree comes back whole.
TEST_F(Restore, AStreamedPlanIsReadOneBatchAtATime) {
  for (int d = 0; d < 5; ++d) {
    make_dir(src("d" + std::to_string(d)));
    for (int f = 0; f < 8; ++f) {
      write_file(src("d" + std::to_string(d) + "/f" + std::to_string(f)), "file " + std::to_string(d * 8 + f));
    }
  }
  const auto source = snapshot(src_);
  backup();
  const RestorePlan held = plan_latest(out_);
  std::vector<RestoreItem> sorted = items_of(held);
  std::size_t taken = 0;
  RestorePlan streamed;
  streamed.root = out_;
  streamed.open_items = [&]() -> RestoreItemSource {
    taken = 0;
    return [&](RestoreItem& item) {
      if (taken == sorted.size()) {
        return false;
      }
      item = sorted[taken++];
      return true;
    };
  };
  RestoreOptions options;
  options.batch_items = 10;
  std::size_t taken_at_first_item = 0;
  options.on_item = [&](RestoreAction, const RestoreItem&, const std::string&) {
    if (taken_at_first_item == 0) {
      taken_at_first_item = taken;
    }
  };
  const RestoreReport report = restore(*catalog_, *repo_, streamed, options);
  EXPECT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(taken_at_first_item, 10u);
  EXPECT_EQ(taken, sorted.size());
  EXPECT_EQ(report.files, 40u);
  expect_same_tree(source, snapshot(out_));
}

// Issue 12: one ranged read per chunk cost a round trip per small file on a remote destination.
// Neighbouring chunks of a pack are read together, and what is restored is unchanged.
TEST_F(Restore, SmallFilesOfOnePackAreReadInAFewRangedReads) {
  for (int i = 0; i < 200; ++i) {
    testing::write_text_file(src("file" + std::to_string(1000 + i) + ".txt"), "small file number " + std::to_string(i) + "\n");
  }
  backup();
  const auto repository = repository_through_faults();
  RestoreOptions options;
  options.read_ahead = 4;
  const RestoreReport report = restore(*catalog_, *repository, plan_latest(out_), options);
  EXPECT_TRUE(report.problems.empty());
  EXPECT_EQ(report.files, 200U);
  EXPECT_LE(faults_->calls(testing::FaultInjectingBackend::Op::get_range), 4) << "200 chunks of one pack";
  expect_same_tree(snapshot(src_), snapshot(out_));
  // Without grouping (a local disk), one read per chunk.
  std::filesystem::remove_all(out_);
  faults_->reset_counts();
  EXPECT_TRUE(restore(*catalog_, *repository, plan_latest(out_), RestoreOptions{}).problems.empty());
  EXPECT_EQ(faults_->calls(testing::FaultInjectingBackend::Op::get_range), 200);
  expect_same_tree(snapshot(src_), snapshot(out_));
}

// Issue 12: the backup packs the largest files first, so here the pack holds the files in the
// reverse of their path order. A remote restore takes them in the order of their data, and reads
// the pack in a few regions instead of a read per file.
TEST_F(Restore, ARemoteRestoreFollowsTheOrderOfTheDataNotOfThePaths) {
  for (int i = 0; i < 60; ++i) {
    testing::write_text_file(src("f" + std::to_string(100 + i) + ".txt"), std::string(1000 + 100 * static_cast<std::size_t>(i), 'a' + (i % 26)));
  }
  backup();
  const auto repository = repository_through_faults();
  RestoreOptions options;
  options.read_ahead = 2;
  const RestoreReport report = restore(*catalog_, *repository, plan_latest(out_), options);
  EXPECT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(report.files, 60U);
  EXPECT_LE(faults_->calls(testing::FaultInjectingBackend::Op::get_range), 3) << "60 files packed in reverse path order";
  expect_same_tree(snapshot(src_), snapshot(out_));
}

// A destination that stops answering (its retries spent) stops the restore at once, instead of
// every later file waiting through the same retries: what was restored is complete, nothing is
// left half-written, and the error says how to finish.
TEST_F(Restore, ADestinationThatStopsAnsweringStopsTheRestoreWithCompleteFilesOnly) {
  for (int i = 0; i < 12; ++i) {
    testing::write_text_file(src("g" + std::to_string(100 + i) + ".txt"), "file " + std::to_string(i) + "\n");
  }
  backup();
  for (const unsigned read_ahead : {0U, 2U}) {
    SCOPED_TRACE(read_ahead);
    std::filesystem::remove_all(out_);
    const auto repository = repository_through_faults();
    faults_->fail(testing::FaultInjectingBackend::Op::get_range, read_ahead == 0 ? 5 : 1, std::nullopt, ErrorKind::transient);
    RestoreOptions options;
    options.threads = 1;
    options.read_ahead = read_ahead;
    std::optional<Error> stopped;
    try {
      restore(*catalog_, *repository, plan_latest(out_), options);
    } catch (const Error& error) {
      stopped = error;
    }
    ASSERT_TRUE(stopped.has_value());
    EXPECT_EQ(stopped->kind(), ErrorKind::transient);
    EXPECT_NE(std::string(stopped->what()).find("run the same restore again"), std::string::npos) << stopped->what();
    EXPECT_LE(faults_->failed(testing::FaultInjectingBackend::Op::get_range), read_ahead + 2) << "stopped at the first file it could not read";
    // Whatever is there is whole: every restored file has its source's content, and no temporary is left.
    const std::map<std::string, Node> restored = snapshot(out_);
    const std::map<std::string, Node> source = snapshot(src_);
    EXPECT_LT(restored.size(), source.size());
    for (const auto& [name, node] : restored) {
      ASSERT_EQ(source.count(name), 1U) << name;
      if (!name.empty()) {
        EXPECT_EQ(testing::read_text_file(out(name)), testing::read_text_file(src(name))) << name;
      }
    }
  }
}

TEST_F(Restore, ExistingDestinationDirectoryKeepsItsOwnMode) {
  write_file(src("a.txt"), "a");
  ASSERT_EQ(::chmod(src_.c_str(), 0755), 0);
  backup();
  make_dir(out_, 0700);

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});

  EXPECT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(node_of(out_).mode, 0700u);
  EXPECT_EQ(testing::read_text_file(out("a.txt")), "a");
}

TEST_F(Restore, SingleOlderVersionOfAFileToAnotherName) {
  write_file(src("notes.txt"), "first draft", 0640);
  set_mtime(src("notes.txt"), 1'500'000'000, 5);
  backup();
  write_file(src("notes.txt"), "second draft, longer", 0644);
  set_mtime(src("notes.txt"), 1'500'000'100, 6);
  backup();

  const std::vector<VersionRecord> versions = catalog_->versions_of(src("notes.txt"));
  ASSERT_EQ(versions.size(), 2u);
  RestorePlan plan;
  plan.root = out_;
  plan.items = {{"old/copy/notes-v1.txt", versions[0]}};  // parents that do not exist yet
  const RestoreReport report = restore(*catalog_, *repo_, plan, RestoreOptions{});

  EXPECT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(report.files, 1u);
  EXPECT_EQ(report.bytes, 11u);
  const Node restored = node_of(out("old/copy/notes-v1.txt"));
  EXPECT_EQ(restored.content, "first draft");
  EXPECT_EQ(restored.mode, 0640u);
  EXPECT_EQ(restored.mtime_ns, 1'500'000'000'000'000'005);
}

TEST_F(Restore, FileAsTheRootItemIsRestoredOrReported) {
  // A plan whose root item ("") is a file, as `restore --directory <a backed-up file>` builds
  // one (cmd_restore.cpp, plan_directory takes state_at(<path>) and maps <path> itself to "").
  write_file(src("single.txt"), "one file as the root");
  backup();
  Seen seen;
  RestoreOptions options;
  options.on_item = seen.callback();
  RestorePlan plan;
  plan.root = out_;
  plan.items = {{"", version_of("single.txt", 1)}};

  RestoreReport report;
  const auto outcome = testing::error_kind([&] { report = restore(*catalog_, *repo_, plan, options); });

  // Either the file is written at the root path, or the restore says it was not (a problem or an
  // error). BUG (restore.cpp): restore() creates an empty *directory* at plan.root, restore_item
  // returns RestoreAction::restored for "" without looking at its type, and the report has no
  // problem and files == 0: the file is silently not restored.
  const bool written = report.files == 1 && node_of(out_).kind == 'f' &&
                       testing::read_text_file(out_) == "one file as the root";
  const bool reported = outcome.has_value() || !report.problems.empty();
  EXPECT_TRUE(written || reported) << "nothing restored, nothing reported; " << out_ << " is a "
                                   << (node_of(out_).kind == 'd' ? "directory" : "non-directory");
  if (!outcome.has_value() && !written) {
    EXPECT_NE(name_of(seen.actions[""]), "restored");
  }
}

TEST_F(Restore, TimesBeforeTheEpochAndFarAheadRoundTrip) {
  write_file(src("old.txt"), "from 1969");
  write_file(src("future.txt"), "from 2200");
  make_dir(src("olddir"));
  set_mtime(src("old.txt"), -2, 500);  // 1969-12-31T23:59:58.0000005Z
  set_mtime(src("future.txt"), 7'258'118'400, 999'999'999);
  set_mtime(src("olddir"), -86'400, 1);
  const auto source = snapshot(src_);
  backup();

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});

  EXPECT_TRUE(report.problems.empty()) << describe(report);
  expect_same_tree(source, snapshot(out_));
}

// ---- restoring the state at a date

TEST_F(Restore, StateAtAnEarlierTimeGivesTheFirstTreeExactly) {
  write_file(src("kept.txt"), "unchanged");
  write_file(src("edited.txt"), "original text", 0600);
  write_file(src("removed.txt"), "this file is deleted later");
  make_dir(src("sub"));
  write_file(src("sub/inner.txt"), "inner");
  make_symlink("kept.txt", src("link"));
  set_mtime(src("kept.txt"), 1'400'000'000, 1);
  set_mtime(src("edited.txt"), 1'400'000'000, 2);
  set_mtime(src("removed.txt"), 1'400'000'000, 3);
  set_mtime(src("sub/inner.txt"), 1'400'000'000, 4);
  set_mtime(src("link"), 1'400'000'000, 5);
  set_mtime(src("sub"), 1'400'000'000, 6);
  set_mtime(src_, 1'400'000'000, 7);
  const auto first_tree = snapshot(src_);
  backup();

  write_file(src("edited.txt"), "rewritten text, a different length", 0644);
  set_mtime(src("edited.txt"), 1'400'000'500, 8);
  ASSERT_EQ(::unlink(src("removed.txt").c_str()), 0);
  write_file(src("sub/added.txt"), "added later");
  make_dir(src("newdir"));
  ASSERT_EQ(::unlink(src("link").c_str()), 0);
  make_symlink("edited.txt", src("link"));
  backup();
  const auto second_tree = snapshot(src_);

  const std::vector<VersionRecord> edited = catalog_->versions_of(src("edited.txt"));
  ASSERT_EQ(edited.size(), 2u);
  ASSERT_LT(edited[0].run_finished_ns, edited[1].run_finished_ns);
  const std::int64_t t1 = edited[0].run_finished_ns + (edited[1].run_finished_ns - edited[0].run_finished_ns) / 2;

  const RestorePlan at_t1 = plan_at(t1, out_);
  const RestoreReport report = restore(*catalog_, *repo_, at_t1, RestoreOptions{});
  EXPECT_TRUE(report.problems.empty()) << describe(report);
  expect_same_tree(first_tree, snapshot(out_));
  EXPECT_TRUE(exists_no_follow(out("removed.txt")));
  EXPECT_FALSE(exists_no_follow(out("sub/added.txt")));
  EXPECT_FALSE(exists_no_follow(out("newdir")));

  // And the latest state gives the second tree.
  const std::string out2 = dir_ / "out2";
  const RestoreReport latest = restore(*catalog_, *repo_, plan_latest(out2), RestoreOptions{});
  EXPECT_TRUE(latest.problems.empty()) << describe(latest);
  expect_same_tree(second_tree, snapshot(out2));
  EXPECT_FALSE(exists_no_follow(out2 + "/removed.txt"));
}

// ---- existing files at the target

class RestoreExisting : public Restore {
 protected:
  void SetUp() override {
    Restore::SetUp();
    write_file(src("differs.txt"), "the backed-up content", 0600);
    write_file(src("same.txt"), "identical content");
    make_symlink("same.txt", src("link"));
    write_file(src("dir_in_way.txt"), "a directory sits here at the target");
    backup();
    make_dir(out_);
    write_file(out("differs.txt"), "local content that is newer", 0644);
    write_file(out("same.txt"), "identical content", 0600);  // same bytes, other metadata
    make_symlink("elsewhere", out("link"));
    make_dir(out("dir_in_way.txt"));
    write_file(out("dir_in_way.txt/keep"), "mine");
  }
};

TEST_F(RestoreExisting, DifferingFileIsReportedAndLeftAlone) {
  const std::uint64_t differs_inode = inode_of(out("differs.txt"));
  const std::uint64_t same_inode = inode_of(out("same.txt"));
  Seen seen;
  RestoreOptions options;
  options.on_item = seen.callback();

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options);

  const RestoreProblem* differs = problem_for(report, "differs.txt");
  ASSERT_NE(differs, nullptr) << describe(report);
  EXPECT_TRUE(contains(differs->reason, "exists and differs")) << differs->reason;
  EXPECT_EQ(differs->path, src("differs.txt"));
  EXPECT_EQ(differs->number, 1u);
  EXPECT_EQ(testing::read_text_file(out("differs.txt")), "local content that is newer");
  EXPECT_EQ(inode_of(out("differs.txt")), differs_inode);
  EXPECT_EQ(node_of(out("differs.txt")).mode, 0644u);
  EXPECT_EQ(name_of(seen.actions["differs.txt"]), "failed");

  const RestoreProblem* link = problem_for(report, "link");
  ASSERT_NE(link, nullptr) << describe(report);
  EXPECT_TRUE(contains(link->reason, "exists and differs")) << link->reason;
  EXPECT_EQ(link_target_of(out("link")), "elsewhere");

  const RestoreProblem* in_way = problem_for(report, "dir_in_way.txt");
  ASSERT_NE(in_way, nullptr) << describe(report);
  EXPECT_TRUE(contains(in_way->reason, "directory")) << in_way->reason;
  EXPECT_EQ(testing::read_text_file(out("dir_in_way.txt/keep")), "mine");

  EXPECT_EQ(report.problems.size(), 3u) << describe(report);
  EXPECT_EQ(report.identical, 1u);  // same.txt
  EXPECT_EQ(name_of(seen.actions["same.txt"]), "identical");
  EXPECT_EQ(inode_of(out("same.txt")), same_inode);
  EXPECT_EQ(node_of(out("same.txt")).mode, 0600u);  // not rewritten, so not touched at all
  EXPECT_EQ(report.files, 0u);
  EXPECT_EQ(report.symlinks, 0u);
  EXPECT_TRUE(restore_temporaries(out_).empty());
}

TEST_F(RestoreExisting, OverwriteReplacesDifferingFilesOnly) {
  const std::uint64_t same_inode = inode_of(out("same.txt"));
  RestoreOptions options;
  options.existing = ExistingFile::overwrite;

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options);

  // Only the directory in the way of a file remains a problem: it is never replaced.
  ASSERT_EQ(report.problems.size(), 1u) << describe(report);
  EXPECT_EQ(report.problems[0].target, "dir_in_way.txt");
  EXPECT_EQ(testing::read_text_file(out("dir_in_way.txt/keep")), "mine");

  const Node differs = node_of(out("differs.txt"));
  const Node source = node_of(src("differs.txt"));
  EXPECT_EQ(differs.content, "the backed-up content");
  EXPECT_EQ(differs.mode, 0600u);
  EXPECT_EQ(differs.mtime_ns, source.mtime_ns);
  EXPECT_EQ(link_target_of(out("link")), "same.txt");
  EXPECT_EQ(report.files, 1u);
  EXPECT_EQ(report.symlinks, 1u);
  EXPECT_EQ(report.bytes, 21u);
  EXPECT_EQ(report.identical, 1u);
  EXPECT_EQ(inode_of(out("same.txt")), same_inode);  // identical: not rewritten even with overwrite
  EXPECT_TRUE(restore_temporaries(out_).empty());
}

// ---- path safety

TEST(RestorePaths, CheckRelativePath) {
  for (const char* bad : {"/abs", "/", "a/../b", "..", "../a", "a/..", ".", "./a", "a/.", "a//b", "a/", "//a"}) {
    EXPECT_EQ(testing::error_kind([&] { check_relative_path(bad); }), ErrorKind::usage) << "'" << bad << "'";
  }
  for (const char* good : {"", "a", "a/b", "a/b/c.txt", "..a", "a..", ".hidden", "a/.b/..c", "a b/c"}) {
    EXPECT_FALSE(testing::error_kind([&] { check_relative_path(good); }).has_value()) << "'" << good << "'";
  }
}

TEST_F(Restore, UnsafeRelativePathIsAUsageErrorAndWritesNothing) {
  write_file(src("a.txt"), "a");
  backup();
  const VersionRecord a = version_of("a.txt", 1);
  for (const char* bad : {"/abs", "a/../b", "..", "./a", "a//b", "../escaped.txt"}) {
    RestorePlan plan;
    plan.root = out_;
    plan.items = {{"fine.txt", a}, {bad, a}};  // a good item first: nothing is written before the check
    EXPECT_EQ(testing::error_kind([&] { restore(*catalog_, *repo_, plan, RestoreOptions{}); }), ErrorKind::usage)
        << "'" << bad << "'";
  }
  EXPECT_FALSE(exists_no_follow(out_));
  EXPECT_FALSE(exists_no_follow(dir_ / "escaped.txt"));
}

TEST_F(Restore, DeletionMarkerIsAUsageError) {
  write_file(src("gone.txt"), "gone");
  backup();
  ASSERT_EQ(::unlink(src("gone.txt").c_str()), 0);
  backup();
  const VersionRecord marker = version_of("gone.txt", 2);
  ASSERT_EQ(marker.type, EntryType::deleted);
  RestorePlan plan;
  plan.root = out_;
  plan.items = {{"gone.txt", marker}};
  EXPECT_EQ(testing::error_kind([&] { restore(*catalog_, *repo_, plan, RestoreOptions{}); }), ErrorKind::usage);
  EXPECT_FALSE(exists_no_follow(out_));
}

class RestoreInTheWay : public Restore {
 protected:
  void SetUp() override {
    Restore::SetUp();
    write_file(src("top.txt"), "top");
    make_dir(src("sub"));
    write_file(src("sub/x"), "x content");
    make_dir(src("sub/deeper"));
    write_file(src("sub/deeper/y"), "y content");
    backup();
    make_dir(out_);
  }
};

TEST_F(RestoreInTheWay, SymlinkedDirectoryIsNeverFollowed) {
  TempDir outside("restore_outside_");
  make_symlink(outside.path(), out("sub"));

  // Only the file below the link.
  const RestoreReport single = restore(*catalog_, *repo_, only(plan_latest(out_), {"sub/x"}), RestoreOptions{});
  ASSERT_EQ(single.problems.size(), 1u) << describe(single);
  EXPECT_EQ(single.problems[0].target, "sub/x");
  EXPECT_TRUE(contains(single.problems[0].reason, "symbolic link")) << single.problems[0].reason;
  EXPECT_EQ(single.files, 0u);
  EXPECT_TRUE(snapshot(outside.path()).size() == 1u) << "something was written outside the destination";

  // The whole tree: everything below the link fails, the rest is restored.
  const RestoreReport full = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});
  EXPECT_NE(problem_for(full, "sub"), nullptr) << describe(full);
  for (const char* below : {"sub/x", "sub/deeper", "sub/deeper/y"}) {
    const RestoreProblem* problem = problem_for(full, below);
    ASSERT_NE(problem, nullptr) << below << describe(full);
    EXPECT_TRUE(contains(problem->reason, "symbolic link")) << below << ": " << problem->reason;
  }
  EXPECT_EQ(full.problems.size(), 4u) << describe(full);
  EXPECT_EQ(testing::read_text_file(out("top.txt")), "top");
  EXPECT_TRUE(snapshot(outside.path()).size() == 1u) << "something was written outside the destination";
  EXPECT_EQ(link_target_of(out("sub")), outside.path());
  EXPECT_TRUE(restore_temporaries(out_).empty());
}

// Attack test (issue 11, item 11): a user who replaced the folder being restored (or a folder
// above it) by a link made root write into the link's target.
TEST_F(RestoreInTheWay, ASymlinkedRootIsRefusedAndNothingIsWrittenThroughIt) {
  TempDir outside("restore_outside_");
  const std::string root = out("linked_root");
  make_symlink(outside.path(), root);
  const Error error = testing::catch_error([&] { restore(*catalog_, *repo_, plan_latest(root), RestoreOptions{}); });
  EXPECT_EQ(error.kind(), ErrorKind::denied);
  EXPECT_TRUE(contains(error.what(), root + " is a symbolic link")) << error.what();
  EXPECT_TRUE(contains(error.what(), "give the real path")) << error.what();
  EXPECT_TRUE(snapshot(outside.path()).size() == 1u) << "something was written through the link";

  // A missing root below the link is not created through it either.
  RestoreOptions dry_run;
  dry_run.dry_run = true;
  EXPECT_EQ(testing::catch_error([&] { restore(*catalog_, *repo_, plan_latest(root), dry_run); }).kind(), ErrorKind::denied);
}

TEST_F(RestoreInTheWay, AParentLinkOfAnotherUserIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "only root can make a link another user owns";
  }
  TempDir outside("restore_outside_");
  make_symlink(outside.path(), out("theirs"));
  ASSERT_EQ(::lchown(out("theirs").c_str(), 65534, 65534), 0);
  const Error error = testing::catch_error([&] { restore(*catalog_, *repo_, plan_latest(out("theirs/new")), RestoreOptions{}); });
  EXPECT_EQ(error.kind(), ErrorKind::denied);
  EXPECT_TRUE(contains(error.what(), "does not follow it")) << error.what();
  EXPECT_TRUE(snapshot(outside.path()).size() == 1u) << "something was written through the link";
}

TEST_F(RestoreInTheWay, FileInTheWayOfADirectory) {
  write_file(out("sub"), "a file where the directory was");

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});

  for (const char* target : {"sub", "sub/x", "sub/deeper", "sub/deeper/y"}) {
    EXPECT_NE(problem_for(report, target), nullptr) << target << describe(report);
  }
  EXPECT_EQ(report.problems.size(), 4u) << describe(report);
  EXPECT_EQ(testing::read_text_file(out("sub")), "a file where the directory was");
  EXPECT_EQ(testing::read_text_file(out("top.txt")), "top");
  EXPECT_EQ(report.files, 1u);
}

// ---- damage on the destination

class RestoreDamaged : public Restore {
 protected:
  // Run 1: good.txt and version 1 of bad.bin; run 2: version 2 of bad.bin (several chunks), so
  // bad.bin v2 lives in a pack of its own.
  void SetUp() override {
    Restore::SetUp();
    write_file(src("good.txt"), "good content");
    write_random(src("bad.bin"), 1000, 1);
    backup();
    write_random(src("bad.bin"), kMultiChunkSize, 2);
    backup();
    bad_ = version_of("bad.bin", 2);
    chunks_ = catalog_->chunks_of(bad_.id);
    ASSERT_GE(chunks_.size(), 2u);
    const std::vector<ChunkLocation> good = catalog_->chunks_of(version_of("good.txt", 1).id);
    ASSERT_EQ(good.size(), 1u);
    good_pack_ = good[0].pack;
    ASSERT_NE(chunks_[1].pack, good_pack_);
  }

  void expect_only_bad_failed(const RestoreReport& report, const std::string& out_dir) {
    ASSERT_EQ(report.problems.size(), 1u) << describe(report);
    const RestoreProblem& problem = report.problems[0];
    EXPECT_EQ(problem.target, "bad.bin");
    EXPECT_EQ(problem.path, src("bad.bin"));
    EXPECT_EQ(problem.number, 2u);  // the version travels in its own field; the CLI prints it
    EXPECT_FALSE(problem.reason.empty());
    EXPECT_FALSE(exists_no_follow(out_dir + "/bad.bin"));
    EXPECT_TRUE(restore_temporaries(out_dir).empty());
    EXPECT_EQ(testing::read_text_file(out_dir + "/good.txt"), "good content");
    EXPECT_EQ(report.files, 1u);
  }

  VersionRecord bad_;
  std::vector<ChunkLocation> chunks_;
  std::string good_pack_;
};

TEST_F(RestoreDamaged, FlippedByteInAPackFailsThatFileOnly) {
  // The second chunk: the first one is already in the temporary file when the damage is found.
  const ChunkLocation& damaged = chunks_[1];
  flip_byte(pack_file(damaged.pack), damaged.entry.offset + damaged.entry.length / 2);
  Seen seen;
  RestoreOptions options;
  options.on_item = seen.callback();

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options);

  expect_only_bad_failed(report, out_);
  EXPECT_EQ(name_of(seen.actions["bad.bin"]), "failed");
  EXPECT_TRUE(contains(seen.notes["bad.bin"], "cannot be read")) << seen.notes["bad.bin"];
  EXPECT_EQ(name_of(seen.actions["good.txt"]), "restored");

  // The older version lives in an intact pack and still restores.
  RestorePlan older;
  older.root = out_;
  older.items = {{"bad.bin", version_of("bad.bin", 1)}};
  const RestoreReport report_older = restore(*catalog_, *repo_, older, RestoreOptions{});
  EXPECT_TRUE(report_older.problems.empty()) << describe(report_older);
  EXPECT_TRUE(testing::to_bytes(testing::read_text_file(out("bad.bin"))) == testing::random_data(1000, 1));
}

TEST_F(RestoreDamaged, MissingPackFailsThatFileOnly) {
  ASSERT_EQ(::unlink(pack_file(chunks_[1].pack).c_str()), 0);

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});

  expect_only_bad_failed(report, out_);
}

TEST_F(RestoreDamaged, WrongRecordedHashLeavesNothing) {
  // Every chunk reads back fine, but the whole file does not match what the catalog says.
  VersionRecord wrong = bad_;
  wrong.sha256[0] ^= 0x01;
  RestorePlan plan;
  plan.root = out_;
  plan.items = {{"bad.bin", wrong}};

  const RestoreReport report = restore(*catalog_, *repo_, plan, RestoreOptions{});

  ASSERT_EQ(report.problems.size(), 1u) << describe(report);
  EXPECT_EQ(report.problems[0].number, 2u);
  EXPECT_TRUE(contains(report.problems[0].reason, "SHA-256")) << report.problems[0].reason;
  EXPECT_FALSE(exists_no_follow(out("bad.bin")));
  EXPECT_TRUE(restore_temporaries(out_).empty());
  EXPECT_EQ(report.files, 0u);
  EXPECT_EQ(report.bytes, 0u);
}

// ---- metadata: owner, setuid, extended attributes, fifos and devices

struct stat lstat_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info;
}

std::string xattr_of(const std::string& path, const std::string& name) {
  std::string value(256, '\0');
  const ssize_t length = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
  return length < 0 ? "<none>" : value.substr(0, static_cast<std::size_t>(length));
}

// Issue 11 item 10: a user's setuid file came back setuid-root. Root restores the owner (so the
// bit is the user's again); a restore without that right drops setuid and setgid instead.
TEST_F(Restore, SetuidComesBackWithItsOwnerOrNotAtAll) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "giving a file to another user needs root";
  }
  write_file(src("tool"), "#!/bin/sh\n", 0755);
  ASSERT_EQ(::chown(src("tool").c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chmod(src("tool").c_str(), 04755), 0);
  ASSERT_EQ(::setxattr(src("tool").c_str(), "user.note", "kept", 4, 0), 0);
  ASSERT_EQ(::setxattr(src("tool").c_str(), "trusted.mark", "root", 4, 0), 0);
  backup();

  const RestoreReport as_root = restore(*catalog_, *repo_, only(plan_latest(out_), {"tool"}), RestoreOptions{});
  ASSERT_TRUE(as_root.problems.empty()) << describe(as_root);
  const struct stat restored = lstat_of(out("tool"));
  EXPECT_EQ(restored.st_uid, 65534U);
  EXPECT_EQ(restored.st_gid, 65534U);
  EXPECT_EQ(restored.st_mode & 07777, 04755U);
  EXPECT_EQ(xattr_of(out("tool"), "user.note"), "kept");
  EXPECT_EQ(xattr_of(out("tool"), "trusted.mark"), "root");
  EXPECT_EQ(as_root.setid_bits_dropped + as_root.owners_not_restored + as_root.xattrs_not_restored, 0U);

  const std::string other = out_ + "-unprivileged";
  RestoreOptions unprivileged;
  unprivileged.privileged = false;
  const RestoreReport report = restore(*catalog_, *repo_, only(plan_latest(other), {"tool"}), unprivileged);
  ASSERT_TRUE(report.problems.empty()) << describe(report);
  const struct stat mine = lstat_of(other + "/tool");
  EXPECT_EQ(mine.st_uid, 0U);
  EXPECT_EQ(mine.st_mode & 07777, 0755U) << "setuid must not come back for the restoring user";
  EXPECT_EQ(report.setid_bits_dropped, 1U);
  EXPECT_EQ(report.owners_not_restored, 1U);
  EXPECT_EQ(report.xattrs_not_restored, 1U) << "trusted.* is root's";
  EXPECT_EQ(xattr_of(other + "/tool", "user.note"), "kept");
}

TEST_F(Restore, FifosRoundTripAndDevicesNeedRoot) {
  ASSERT_EQ(::mkfifo(src("pipe").c_str(), 0640), 0);
  const bool root = ::geteuid() == 0;
  if (root) {
    ASSERT_EQ(::mknod(src("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  }
  backup();
  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});
  ASSERT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_TRUE(S_ISFIFO(lstat_of(out("pipe")).st_mode));
  EXPECT_EQ(lstat_of(out("pipe")).st_mode & 07777, 0640U);
  if (root) {
    const struct stat device = lstat_of(out("null"));
    EXPECT_TRUE(S_ISCHR(device.st_mode));
    EXPECT_EQ(device.st_rdev, makedev(1, 3));
    EXPECT_EQ(report.special, 2U);
    // Without root's right, a device is a per-item problem, never a failure of the rest.
    RestoreOptions unprivileged;
    unprivileged.privileged = false;
    const RestoreReport other = restore(*catalog_, *repo_, plan_latest(out_ + "-2"), unprivileged);
    ASSERT_EQ(other.problems.size(), 1U) << describe(other);
    EXPECT_EQ(other.problems[0].target, "null");
    EXPECT_TRUE(S_ISFIFO(lstat_of(out_ + "-2/pipe").st_mode));
  }
  // Restoring again finds them identical.
  const RestoreReport again = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});
  EXPECT_TRUE(again.problems.empty()) << describe(again);
  EXPECT_EQ(again.special, 0U);
}

TEST_F(Restore, HardLinksComeBackAsLinks) {
  write_random(src("photo.jpg"), kMultiChunkSize, 31);
  make_dir(src("album"));
  ASSERT_EQ(::link(src("photo.jpg").c_str(), src("album/photo.jpg").c_str()), 0);
  write_random(src("other.jpg"), 1000, 32);  // one link only: an ordinary file
  backup();

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), RestoreOptions{});
  ASSERT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(report.hard_links, 1U);
  EXPECT_EQ(inode_of(out("photo.jpg")), inode_of(out("album/photo.jpg")));
  EXPECT_EQ(lstat_of(out("photo.jpg")).st_nlink, 2U);
  EXPECT_TRUE(testing::to_bytes(testing::read_text_file(out("album/photo.jpg"))) == testing::random_data(kMultiChunkSize, 31));
  EXPECT_EQ(lstat_of(out("other.jpg")).st_nlink, 1U);

  // Only the second name asked for: it is written as a file of its own.
  const std::string alone = out_ + "-alone";
  const RestoreReport single = restore(*catalog_, *repo_, only(plan_latest(alone), {"album/photo.jpg"}), RestoreOptions{});
  ASSERT_TRUE(single.problems.empty()) << describe(single);
  EXPECT_EQ(single.hard_links, 0U);
  EXPECT_TRUE(testing::to_bytes(testing::read_text_file(alone + "/album/photo.jpg")) == testing::random_data(kMultiChunkSize, 31));
}

// ---- faults of the target filesystem (through a FaultEnv)

TEST_F(Restore, NoSpaceFailsTheFileCleanly) {
  write_random(src("big.bin"), kMultiChunkSize, 7);
  backup();
  FaultEnv env;
  env.limit_space(64 * 1024 + 17);  // the disk fills up after a chunk or two
  RestoreOptions options;
  options.env = &env;

  const RestoreReport report = restore(*catalog_, *repo_, only(plan_latest(out_), {"big.bin"}), options);

  ASSERT_EQ(report.problems.size(), 1u) << describe(report);
  EXPECT_EQ(report.problems[0].target, "big.bin");
  EXPECT_EQ(report.problems[0].reason, "cannot write: the destination's disk is full");
  EXPECT_GE(env.calls(FaultEnv::Op::write, out_ + "/*"), 1);
  EXPECT_FALSE(exists_no_follow(out("big.bin")));
  EXPECT_TRUE(restore_temporaries(out_).empty());
  EXPECT_EQ(report.files, 0u);
  EXPECT_EQ(report.bytes, 0u);

  // With room again, the same restore completes.
  const RestoreReport again = restore(*catalog_, *repo_, only(plan_latest(out_), {"big.bin"}), RestoreOptions{});
  EXPECT_TRUE(again.problems.empty()) << describe(again);
  EXPECT_TRUE(testing::to_bytes(testing::read_text_file(out("big.bin"))) == testing::random_data(kMultiChunkSize, 7));
}

/// A tree with a multi-chunk file, small files in a subdirectory and a symlink.
class RestoreCrash : public Restore {
 protected:
  void SetUp() override {
    Restore::SetUp();
    write_random(src("big.bin"), kMultiChunkSize, 11);
    write_file(src("a.txt"), "a", 0600);
    make_dir(src("sub"));
    write_file(src("sub/b.txt"), "bee");
    write_random(src("sub/c.bin"), 70 * 1024, 12);
    make_symlink("../a.txt", src("sub/link"));
    backup();
    options_.env = &env_;
  }

  FaultEnv env_;
  RestoreOptions options_;
};

TEST_F(RestoreCrash, AfterARestoreReportsSuccessACrashLosesNothing) {
  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options_);
  ASSERT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(report.files, 4u);
  EXPECT_GE(env_.calls(FaultEnv::Op::write, out_ + "/*"), 4);  // every file was written through env_

  EXPECT_TRUE(env_.unsynced_files().empty());
  EXPECT_TRUE(env_.crash().empty());  // the power fails right after success is reported

  expect_same_tree(snapshot(src_), snapshot(out_));
}

TEST_F(RestoreCrash, WithoutItsFinalSyncARestoreFailsAndACrashWouldLoseItsFiles) {
  env_.fail(FaultEnv::Op::sync, out_, 1, EIO);  // the syncfs of the destination

  const testing::ErrorOutcome outcome = testing::error_kind([&] { restore(*catalog_, *repo_, plan_latest(out_), options_); });

  EXPECT_EQ(outcome, ErrorKind::io) << outcome;
  EXPECT_TRUE(contains(outcome.message(), "cannot flush the restored files to disk under " + out_)) << outcome;
  // Nothing was reported restored, rightly: the files' data was never made durable, and a
  // crash now loses it (which is what the sync is for).
  const std::vector<std::string> lost = {out("a.txt"), out("big.bin"), out("sub/b.txt"), out("sub/c.bin")};
  EXPECT_EQ(env_.unsynced_files(), lost);
  EXPECT_EQ(env_.crash(), lost);
  EXPECT_EQ(std::filesystem::file_size(out("big.bin")), 0u);
  EXPECT_EQ(std::filesystem::file_size(out("sub/c.bin")), 0u);
}

TEST_F(RestoreCrash, ReplacingAFileSyncsTheNewContentBeforeTheOldIsGone) {
  make_dir(out_);
  write_file(out("a.txt"), "the old content, kept if the new one cannot be made durable");
  env_.fail(FaultEnv::Op::sync, out_ + "/.mybackup-restore-*", 1, EIO);
  options_.existing = ExistingFile::overwrite;

  const RestoreReport report = restore(*catalog_, *repo_, only(plan_latest(out_), {"a.txt"}), options_);

  ASSERT_EQ(report.problems.size(), 1u) << describe(report);
  EXPECT_EQ(report.problems[0].reason, "cannot sync: Input/output error");
  EXPECT_EQ(testing::read_text_file(out("a.txt")), "the old content, kept if the new one cannot be made durable");
  EXPECT_TRUE(restore_temporaries(out_).empty());

  // Without the fault it is replaced, and durable at once (fsync before the rename).
  const RestoreReport replaced = restore(*catalog_, *repo_, only(plan_latest(out_), {"a.txt"}), options_);
  EXPECT_TRUE(replaced.problems.empty()) << describe(replaced);
  EXPECT_EQ(testing::read_text_file(out("a.txt")), "a");
}

// ---- new files are named only once complete

TEST_F(RestoreCrash, ANewFileIsWrittenWithoutANameAndNamedOnceChecked) {
  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options_);

  ASSERT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(env_.calls(FaultEnv::Op::open, out_ + "/*(unnamed *"), 4);   // one per regular file
  EXPECT_EQ(env_.calls(FaultEnv::Op::rename, out_ + "/*(unnamed *"), 4);  // then named
  EXPECT_EQ(env_.calls(FaultEnv::Op::open, out_ + "/*" + kTemporaryPrefix + "*"), 0);
  expect_same_tree(snapshot(src_), snapshot(out_));
}

TEST_F(RestoreCrash, AFileThatAppearsUnderItsNameMeanwhileIsKept) {
  // Another program (or user) creates the name while the restore writes the file.
  env_.on(FaultEnv::Op::rename, out_ + "/(unnamed *", [&](const std::string&) { write_file(out("a.txt"), "planted"); });

  const RestoreReport report = restore(*catalog_, *repo_, only(plan_latest(out_), {"a.txt"}), options_);

  ASSERT_EQ(report.problems.size(), 1u) << describe(report);
  EXPECT_EQ(report.problems[0].reason, "something appeared under its name while it was restored: nothing was changed");
  EXPECT_EQ(testing::read_text_file(out("a.txt")), "planted");
  EXPECT_TRUE(restore_temporaries(out_).empty());
}

/// A filesystem without unnamed files (O_TMPFILE), or a process that cannot name one.
class WithoutUnnamedFiles : public FaultEnv {
 public:
  explicit WithoutUnnamedFiles(bool can_create) : can_create_(can_create) {}
  int create_unnamed_file_at(int dir_fd, unsigned mode) override {
    return can_create_ ? FaultEnv::create_unnamed_file_at(dir_fd, mode) : -EOPNOTSUPP;
  }
  int name_unnamed_file_at(int, int, const char*) override { return -EOPNOTSUPP; }

 private:
  bool can_create_;
};

TEST_F(RestoreCrash, WhereUnnamedFilesCannotBeMadeOrNamedFilesGoThroughATemporaryName) {
  for (const bool can_create : {false, true}) {
    SCOPED_TRACE(can_create ? "cannot name them" : "cannot make them");
    std::filesystem::remove_all(out_);
    WithoutUnnamedFiles env(can_create);
    options_.env = &env;

    const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options_);

    ASSERT_TRUE(report.problems.empty()) << describe(report);
    expect_same_tree(snapshot(src_), snapshot(out_));
    // The 4 files, and the symbolic link (always made under a temporary name).
    EXPECT_EQ(env.calls(FaultEnv::Op::rename, out_ + "/*" + kTemporaryPrefix + "*"), 5);
    EXPECT_TRUE(restore_temporaries(out_).empty());
    EXPECT_TRUE(env.unsynced_files().empty());
  }
}

// ---- large files

/// Counts the direct I/O a restore turns on, and refuses it when told to, as tmpfs or some FUSE
/// file systems do.
class DirectIoEnv : public FaultEnv {
 public:
  explicit DirectIoEnv(bool refuse) : refuse_(refuse) {}
  int set_direct_io(int fd, bool on) override {
    if (on) {
      ++turned_on;
    }
    return on && refuse_ ? -EINVAL : FaultEnv::set_direct_io(fd, on);
  }
  int turned_on = 0;

 private:
  bool refuse_;
};

TEST_F(Restore, ALargeFileGoesPastThePageCacheOrTheOrdinaryWayWithTheSameBytes) {
  make_dir(src("sub"));
  write_random(src("sub/large.bin"), 3 * 1024 * 1024 + 12345, 77);
  write_random(src("small.bin"), kBigSize, 78);
  backup();
  for (const bool refuse : {false, true}) {
    SCOPED_TRACE(refuse ? "refused" : "direct");
    std::filesystem::remove_all(out_);
    DirectIoEnv env(refuse);
    RestoreOptions options;
    options.env = &env;

    const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options);

    ASSERT_TRUE(report.problems.empty()) << describe(report);
    expect_same_tree(snapshot(src_), snapshot(out_));
    EXPECT_EQ(env.turned_on, 1);  // for the large file only
    EXPECT_TRUE(env.unsynced_files().empty());
  }
}

// ---- dry run

class RestoreDryRun : public Restore {
 protected:
  void SetUp() override {
    Restore::SetUp();
    write_file(src("a.txt"), "a");
    make_dir(src("sub"));
    write_file(src("sub/b.txt"), "b");
    make_symlink("a.txt", src("link"));
    backup();
  }
};

TEST_F(RestoreDryRun, AbsentDestinationIsNotEvenCreated) {
  Seen seen;
  RestoreOptions options;
  options.dry_run = true;
  options.on_item = seen.callback();
  const RestorePlan plan = plan_latest(out_ + "/deeper");

  const RestoreReport report = restore(*catalog_, *repo_, plan, options);

  EXPECT_FALSE(exists_no_follow(out_));
  EXPECT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(report.files + report.directories + report.symlinks + report.bytes + report.identical, 0u);
  EXPECT_EQ(seen.calls, static_cast<int>(plan.items.size()));
  EXPECT_EQ(seen.actions.size(), 5u);  // "", a.txt, link, sub, sub/b.txt
  for (const auto& [name, action] : seen.actions) {
    EXPECT_EQ(name_of(action), "would_restore") << "'" << name << "'";
  }
}

TEST_F(RestoreDryRun, ExistingDestinationIsNotChanged) {
  make_dir(out_, 0700);
  set_mtime(out_, 1'300'000'000, 9);
  const auto before = snapshot(out_);
  Seen seen;
  RestoreOptions options;
  options.dry_run = true;
  options.on_item = seen.callback();

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options);

  expect_same_tree(before, snapshot(out_));
  EXPECT_TRUE(report.problems.empty()) << describe(report);
  EXPECT_EQ(report.files + report.directories + report.symlinks + report.bytes, 0u);
  EXPECT_EQ(seen.actions.size(), 5u);
  for (const auto& [name, action] : seen.actions) {
    if (name.empty()) {
      // The destination root already exists, so a dry run has nothing to do for it.
      // BUG (restore.cpp, restore_item): the root item returns RestoreAction::restored before
      // the dry_run check, so a dry run reports the root as "restored".
      EXPECT_NE(name_of(action), "restored") << "a dry run reported the root as restored";
      continue;
    }
    EXPECT_EQ(name_of(action), "would_restore") << "'" << name << "'";
  }
}

TEST_F(RestoreDryRun, ReportsConflictsWithoutTouchingThem) {
  make_dir(out_);
  write_file(out("a.txt"), "local a");
  write_file(out("sub"), "a file in the way");
  const auto before = snapshot(out_);
  Seen seen;
  RestoreOptions options;
  options.dry_run = true;
  options.on_item = seen.callback();

  const RestoreReport report = restore(*catalog_, *repo_, plan_latest(out_), options);

  expect_same_tree(before, snapshot(out_));
  const RestoreProblem* a = problem_for(report, "a.txt");
  ASSERT_NE(a, nullptr) << describe(report);
  EXPECT_TRUE(contains(a->reason, "exists and differs")) << a->reason;
  EXPECT_NE(problem_for(report, "sub"), nullptr) << describe(report);
  EXPECT_NE(problem_for(report, "sub/b.txt"), nullptr) << describe(report);
  EXPECT_EQ(name_of(seen.actions["link"]), "would_restore");
  EXPECT_EQ(name_of(seen.actions["a.txt"]), "failed");
}

// ---- cancel

TEST_F(RestoreDryRun, CancelledBeforeStartIsInterrupted) {
  std::atomic<bool> cancel{true};
  RestoreOptions options;
  options.cancel = &cancel;
  EXPECT_EQ(testing::error_kind([&] { restore(*catalog_, *repo_, plan_latest(out_), options); }),
            ErrorKind::interrupted);
  EXPECT_TRUE(testing::files_under(out_).empty());
}

TEST_F(RestoreDryRun, CancelledMidwayKeepsCompleteFilesOnly) {
  // Files are restored by several workers, so which ones finish before the cancel is seen is not
  // fixed: what must hold is that every file present is complete and correct, no temporary is
  // left, and files cancelled before they started are absent. Enough files that the cancel always
  // lands while work remains (more items than workers).
  make_dir(src("many"));
  for (int i = 0; i < 40; ++i) {
    write_file(src("many/f" + std::to_string(i) + ".txt"), "content " + std::to_string(i));
  }
  backup();
  std::atomic<bool> cancel{false};
  int file_calls = 0;
  RestoreOptions options;
  options.cancel = &cancel;
  options.on_item = [&](RestoreAction action, const RestoreItem& item, const std::string&) {
    if (item.version.type == EntryType::file && action == RestoreAction::restored && ++file_calls == 1) {
      cancel = true;
    }
  };
  EXPECT_EQ(testing::error_kind([&] { restore(*catalog_, *repo_, plan_latest(out_), options); }),
            ErrorKind::interrupted);
  EXPECT_GE(file_calls, 1);
  const std::vector<std::string> present = testing::files_under(out_);
  EXPECT_FALSE(present.empty());
  EXPECT_LT(present.size(), 43u) << "the cancel must stop the restore before every item is written";
  for (const std::string& name : present) {
    if (name.rfind("many/f", 0) == 0) {
      EXPECT_EQ(testing::read_text_file(out(name)), "content " + name.substr(6, name.size() - 10)) << name;
    } else if (name == "a.txt" || name == "sub/b.txt") {
      EXPECT_EQ(testing::read_text_file(out(name)), name == "a.txt" ? "a" : "b") << name;
    }
  }
  EXPECT_TRUE(restore_temporaries(out_).empty());
}


// Ctrl-C during one large file stops between two of its chunks, not after the whole file (a
// multi-gigabyte file kept a restore running long after the signal): the partial file is removed.
TEST_F(Restore, CancelledInTheMiddleOfAFileStopsBeforeItsNextChunk) {
  write_random(src("big.bin"), kBigSize, 21);  // a dozen chunks
  backup();
  class CancelOnFirstWrite final : public EnvWrapper {
   public:
    CancelOnFirstWrite(Env& target, std::atomic<bool>& cancel) : EnvWrapper(target), cancel_(cancel) {}
    std::int64_t write(int fd, const void* data, std::size_t size) override {
      ++writes;
      cancel_ = true;
      return EnvWrapper::write(fd, data, size);
    }
    std::atomic<int> writes{0};

   private:
    std::atomic<bool>& cancel_;
  };
  std::atomic<bool> cancel{false};
  CancelOnFirstWrite env(Env::default_env(), cancel);
  RestoreOptions options;
  options.cancel = &cancel;
  options.env = &env;
  EXPECT_EQ(testing::error_kind([&] { restore(*catalog_, *repo_, only(plan_latest(out_), {"big.bin"}), options); }),
            ErrorKind::interrupted);
  EXPECT_EQ(env.writes.load(), 1) << "one chunk written, then the cancel seen";
  EXPECT_FALSE(exists_no_follow(out("big.bin")));
  EXPECT_TRUE(restore_temporaries(out_).empty());
}

TEST(RestoreReportJson, ProblemTargetsAreAbsoluteBelowTheRoot) {
  RestoreReport report;
  report.root = "/restore/here";
  report.files = 2;
  report.problems.push_back({"sub/x", "/src/sub/x", 3, "a symbolic link is in the way"});
  const nlohmann::ordered_json json = report;
  EXPECT_EQ(json.at("root"), "/restore/here");
  EXPECT_EQ(json.at("files"), 2);
  const nlohmann::ordered_json& problems = json.at("problems");
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_EQ(problems[0].at("target"), "/restore/here/sub/x");
  EXPECT_EQ(problems[0].at("path"), "/src/sub/x");
  EXPECT_EQ(problems[0].at("version"), 3);
}

}  // namespace
}  // namespace mybackup
