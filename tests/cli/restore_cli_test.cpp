// End-to-end tests of `mybackup list` and `mybackup restore`: the built binary, run as a user would
// (see cli_harness.hpp), must give back every recorded state of a tree byte for byte and metadata
// for metadata, choose versions by number and by date, never overwrite or write through a symlink
// unasked, and name what it cannot restore without leaving a partial file behind.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_harness.hpp"
#include "mybackup/util/bytes.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/crypto/crypto.hpp"

namespace mybackup_cli_test {
namespace {

// ---------------------------------------------------------------- trees in memory

/// One entry of a tree as a restore must reproduce it.
struct Node {
  char type = '?';   // 'f' file, 'd' directory, 'l' symlink
  std::string data;  // a file's bytes or a symlink's target
  unsigned mode = 0;
  std::int64_t mtime_ns = 0;
};

/// Relative path -> entry, for everything below a root (the root itself excluded).
using Tree = std::map<std::string, Node>;

std::int64_t mtime_ns_of(const struct stat& info) {
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

/// Every entry below `root` (recursively, symlinks not followed) with type, content, mode, mtime.
Tree snapshot(const std::string& root) {
  Tree tree;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    const std::string path = it->path().string();
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) {
      ADD_FAILURE() << "cannot lstat " << path;
      continue;
    }
    Node node;
    node.mode = static_cast<unsigned>(info.st_mode) & 07777U;
    node.mtime_ns = mtime_ns_of(info);
    if (S_ISDIR(info.st_mode)) {
      node.type = 'd';
    } else if (S_ISLNK(info.st_mode)) {
      node.type = 'l';
      std::string target(4096, '\0');
      const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      target.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
      node.data = target;
    } else if (S_ISREG(info.st_mode)) {
      node.type = 'f';
      node.data = read_text(path);
    }
    tree[it->path().lexically_relative(root).string()] = node;  // fs::relative would follow symlinks
  }
  EXPECT_FALSE(error) << root << ": " << error.message();
  return tree;
}

std::string describe(const Node& node) {
  char mode[16];
  std::snprintf(mode, sizeof mode, "%04o", node.mode);
  std::string text = std::string(1, node.type) + " mode " + mode + " mtime_ns " + std::to_string(node.mtime_ns);
  if (node.type == 'f') {
    text += " size " + std::to_string(node.data.size()) + " hash " + std::to_string(std::hash<std::string>{}(node.data));
  } else if (node.type == 'l') {
    text += " -> " + node.data;
  }
  return text;
}

/// Equal trees: same paths, types, bytes, link targets, modes and mtimes (to the nanosecond).
::testing::AssertionResult same_tree(const Tree& expected, const Tree& actual) {
  std::string differences;
  for (const auto& [path, node] : expected) {
    const auto found = actual.find(path);
    if (found == actual.end()) {
      differences += "  missing   " + path + "  (expected " + describe(node) + ")\n";
      continue;
    }
    const Node& got = found->second;
    if (got.type != node.type || got.data != node.data || got.mode != node.mode || got.mtime_ns != node.mtime_ns) {
      differences += "  differs   " + path + "\n    expected " + describe(node) + "\n    actual   " + describe(got) + "\n";
    }
  }
  for (const auto& [path, node] : actual) {
    if (expected.count(path) == 0) {
      differences += "  unexpected " + path + "  (" + describe(node) + ")\n";
    }
  }
  if (!differences.empty()) {
    return ::testing::AssertionFailure() << "trees differ:\n" << differences;
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- times, hashes, files

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// "2026-11-21T12:34:56.123456789" + `suffix` of the UTC time `ns` shifted by `offset_minutes`.
std::string iso_with_offset(std::int64_t ns, int offset_minutes) {
  const std::int64_t shifted = ns + static_cast<std::int64_t>(offset_minutes) * 60 * 1'000'000'000;
  const std::time_t seconds = static_cast<std::time_t>(shifted / 1'000'000'000);
  std::tm parts{};
  ::gmtime_r(&seconds, &parts);
  char text[80];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &parts);
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, ".%09lld", static_cast<long long>(shifted % 1'000'000'000));
  std::string result = std::string(text) + fraction;
  if (offset_minutes == 0) {
    return result + "Z";
  }
  const int magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  char offset[16];
  std::snprintf(offset, sizeof offset, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+', magnitude / 60, magnitude % 60);
  return result + offset;
}

/// The exact instant `ns` in ISO 8601 UTC with nanoseconds: "2026-11-21T12:34:56.123456789Z".
std::string iso_utc(std::int64_t ns) { return iso_with_offset(ns, 0); }

/// "2026-11-21T12:34:56Z": the form `list --json` prints (whole seconds, rounded down).
std::string iso_utc_seconds(std::int64_t ns) {
  const std::time_t seconds = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm parts{};
  ::gmtime_r(&seconds, &parts);
  char text[80];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

/// Today in the local time zone (the child inherits TZ): "2026-11-21".
std::string local_day(std::int64_t ns) {
  const std::time_t seconds = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm parts{};
  ::localtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d", &parts);
  return text;
}

std::string sha256_hex(const std::string& content) {
  const mybackup::Digest digest = mybackup::Sha256::hash(mybackup::as_bytes(content));
  static const char* const kDigits = "0123456789abcdef";
  std::string hex;
  for (const std::uint8_t byte : digest) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0x0f];
  }
  return hex;
}

void set_mtime(const std::string& path, std::int64_t ns) {
  const timespec time{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  const timespec times[2] = {time, time};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path << ": " << std::strerror(errno);
}

std::int64_t mtime_of(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    return -1;
  }
  return mtime_ns_of(info);
}

void make_directory(const std::string& path, unsigned mode) {
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

void write_file(const std::string& path, const std::string& content, unsigned mode) {
  ASSERT_NO_FATAL_FAILURE(write_text(path, content));
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

bool is_symlink(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 && S_ISLNK(info.st_mode);
}

/// Every entry below `root` whose name starts with ".mybackup-restore-" (a restore's temporary).
std::vector<std::string> restore_temporaries_below(const std::string& root) {
  std::vector<std::string> found;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    if (it->path().filename().string().rfind(".mybackup-restore-", 0) == 0) {
      found.push_back(it->path().string());
    }
  }
  return found;
}

/// True if some line of `text` starts with `word` and ends with `path` (the column between them
/// is the command's business).
bool has_line(const std::string& text, const std::string& word, const std::string& path) {
  for (const std::string& line : lines_of(text)) {
    if (line.rfind(word, 0) == 0 && line.size() >= word.size() + path.size() &&
        line.compare(line.size() - path.size(), path.size(), path) == 0 &&
        line.substr(word.size(), line.size() - word.size() - path.size()).find_first_not_of(' ') == std::string::npos) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------- the fixture

class RestoreCliTest : public CliTest {
 protected:
  /// init, `add src`, destination dest/, and this tree in src/ (modes set explicitly):
  ///   a.txt 0644, b.txt 0640, docs/ 0755, docs/c.txt 0644, docs/deep/ 0750,
  ///   docs/deep/d.bin 0600 (binary), empty/ 0700 (empty), link -> docs/c.txt
  void configure_rich_tree() {
    init();
    ASSERT_NO_FATAL_FAILURE(write_file(src_ + "/a.txt", "alpha\n", 0644));
    ASSERT_NO_FATAL_FAILURE(write_file(src_ + "/b.txt", "bravo bravo\n", 0640));
    ASSERT_NO_FATAL_FAILURE(make_directory(src_ + "/docs", 0755));
    ASSERT_NO_FATAL_FAILURE(write_file(src_ + "/docs/c.txt", "charlie\n", 0644));
    ASSERT_NO_FATAL_FAILURE(make_directory(src_ + "/docs/deep", 0750));
    std::string binary;
    for (int i = 0; i < 5000; ++i) {
      binary += static_cast<char>((i * 7919) % 256);
    }
    ASSERT_NO_FATAL_FAILURE(write_file(src_ + "/docs/deep/d.bin", binary, 0600));
    ASSERT_NO_FATAL_FAILURE(make_directory(src_ + "/empty", 0700));
    ASSERT_EQ(::symlink("docs/c.txt", (src_ + "/link").c_str()), 0);
    ASSERT_TRUE(succeeded(run({"add", src_})));
    ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  }

  /// Runs `backup`, which must succeed with `counts` ("1 new, 0 changed, ...") in its summary;
  /// `finished_ns` is the wall clock right after it returned.
  void backup(const std::string& counts, std::int64_t& finished_ns) {
    const Result result = run({"backup"});
    finished_ns = now_ns();
    ASSERT_TRUE(succeeded(result));
    ASSERT_TRUE(contains(result.out, counts)) << result;
  }

  /// backup() with `counts`, then remembers the tree and the moment just after the run.
  void record_run(const std::string& counts) {
    std::int64_t moment = 0;
    ASSERT_NO_FATAL_FAILURE(backup(counts, moment));
    trees_.push_back(snapshot(src_));
    moments_.push_back(moment);
  }

  std::vector<Tree> trees_;             // the tree after each recorded run
  std::vector<std::int64_t> moments_;   // the moment just after each recorded run

  Result restore(const std::vector<std::string>& args) {
    std::vector<std::string> command{"restore"};
    command.insert(command.end(), args.begin(), args.end());
    return run(command);
  }
};

// ================================================================ history of a tree

// Five runs, each with one kind of change; after every run the tree is remembered with its
// metadata and the moment just after the run. Restoring the directory at each moment (an exact
// ISO 8601 instant with nanoseconds) gives back that tree exactly: files' bytes, modes and mtimes
// to the nanosecond, symlinks, empty directories, directories' modes and mtimes. Without --date
// the restore gives the current tree.
TEST_F(RestoreCliTest, EveryRunCanBeRestoredExactlyAsItWas) {
  ASSERT_NO_FATAL_FAILURE(configure_rich_tree());
  const std::vector<Tree>& trees = trees_;
  const std::vector<std::int64_t>& moments = moments_;
  const auto record = [&](const std::string& counts) { record_run(counts); };

  // Run 1: everything is new (4 files and a symlink).
  ASSERT_NO_FATAL_FAILURE(record("5 new, 0 changed, 0 deleted, 0 unchanged"));
  // Run 2: one file's content.
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, edited and longer\n"));
  ASSERT_NO_FATAL_FAILURE(record("0 new, 1 changed, 0 deleted, 4 unchanged"));
  // Run 3: a file deleted.
  ASSERT_EQ(::unlink((src_ + "/b.txt").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(record("0 new, 0 changed, 1 deleted, 4 unchanged"));
  // Run 4: the deleted file comes back with other content; another is renamed.
  ASSERT_NO_FATAL_FAILURE(write_file(src_ + "/b.txt", "bravo, the second of that name\n", 0604));
  ASSERT_EQ(::rename((src_ + "/docs/deep/d.bin").c_str(), (src_ + "/docs/deep/e.bin").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(record("2 new, 0 changed, 1 deleted, 3 unchanged"));
  // Run 5: metadata only. A mode change alone makes a new version (mode is compared), so does an
  // mtime change; directories get new versions for both as well.
  ASSERT_EQ(::chmod((src_ + "/a.txt").c_str(), 0600), 0);
  ASSERT_NO_FATAL_FAILURE(set_mtime(src_ + "/docs/c.txt", 1'600'000'000'123'456'789));
  ASSERT_EQ(::chmod((src_ + "/empty").c_str(), 0750), 0);
  ASSERT_NO_FATAL_FAILURE(set_mtime(src_ + "/docs/deep", 1'500'000'000'987'654'321));
  ASSERT_NO_FATAL_FAILURE(record("0 new, 2 changed, 0 deleted, 3 unchanged"));

  // Each run's tree really differs from the one before (else the test proves less than it says).
  for (std::size_t i = 1; i < trees.size(); ++i) {
    EXPECT_FALSE(same_tree(trees[i - 1], trees[i])) << "runs " << i << " and " << i + 1 << " left the same tree";
  }
  ASSERT_EQ(trees[0].count("empty"), 1U);
  ASSERT_EQ(trees[0].at("link").type, 'l');

  for (std::size_t i = 0; i < trees.size(); ++i) {
    const std::string out = root_ + "/restored-run" + std::to_string(i + 1);
    const Result result = restore({"--directory", src_, "--destination", out, "--date", iso_utc(moments[i])});
    ASSERT_TRUE(succeeded(result));
    EXPECT_TRUE(contains(result.out, "Restored ")) << result;
    EXPECT_EQ(result.err, "") << result;
    EXPECT_TRUE(same_tree(trees[i], snapshot(out))) << "run " << i + 1 << " restored with --date " << iso_utc(moments[i]);
  }

  // Without --date: the tree as it is now (which is the tree of run 5).
  const std::string latest = root_ + "/restored-latest";
  const Result result = restore({"--directory", src_, "--destination", latest});
  ASSERT_TRUE(succeeded(result));
  EXPECT_TRUE(same_tree(snapshot(src_), snapshot(latest)));

  // The same instants written with an offset instead of 'Z' name the same moments.
  const std::string run1 = root_ + "/a-run1.txt";
  ASSERT_TRUE(succeeded(restore({"--file", src_ + "/a.txt", "--destination", run1, "--date", iso_with_offset(moments[0], -8 * 60)})));
  EXPECT_EQ(read_text(run1), trees[0].at("a.txt").data);
  const std::string run2 = root_ + "/a-run2.txt";
  ASSERT_TRUE(succeeded(restore({"--file", src_ + "/a.txt", "--destination", run2, "--date", iso_with_offset(moments[1], 5 * 60 + 30)})));
  EXPECT_EQ(read_text(run2), trees[1].at("a.txt").data);
  EXPECT_EQ(mtime_of(run2), trees[1].at("a.txt").mtime_ns);
}

// ================================================================ list

// `list FILE` shows every version with its number, date, size and the start of its SHA-256;
// `list --json` gives the same with the full SHA-256 of the content and the stored size.
TEST_F(RestoreCliTest, ListShowsEveryVersionWithDateSizeAndSha256) {
  configure();
  const std::string file = src_ + "/a.txt";
  const std::vector<std::string> contents = {"alpha\n", "alpha, the second\n", "alpha, the third and longest\n"};
  std::vector<std::int64_t> started;
  std::vector<std::int64_t> finished;
  for (std::size_t i = 0; i < contents.size(); ++i) {
    ASSERT_NO_FATAL_FAILURE(write_text(file, contents[i]));
    started.push_back(now_ns());
    std::int64_t moment = 0;
    ASSERT_NO_FATAL_FAILURE(backup(i == 0 ? "3 new" : "0 new, 1 changed", moment));
    finished.push_back(moment);
  }

  const Result text = run({"list", file});
  ASSERT_TRUE(succeeded(text));
  EXPECT_EQ(text.err, "");
  const std::vector<std::string> lines = lines_of(text.out);
  ASSERT_GE(lines.size(), 1 + contents.size()) << text;
  EXPECT_EQ(lines[0], file) << text;
  const std::regex version_line(R"(^\s+(\d+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+(\d+ B)\s+(\d+ B)\s+([0-9a-f]{16}).*$)");
  std::size_t matched = 0;
  for (const std::string& line : lines) {
    std::smatch parts;
    if (!std::regex_match(line, parts, version_line)) {
      continue;
    }
    ASSERT_LT(matched, contents.size()) << text;
    EXPECT_EQ(parts[1].str(), std::to_string(matched + 1)) << text;
    EXPECT_EQ(parts[3].str(), std::to_string(contents[matched].size()) + " B") << text;
    EXPECT_EQ(parts[5].str(), sha256_hex(contents[matched]).substr(0, 16)) << text;
    ++matched;
  }
  EXPECT_EQ(matched, contents.size()) << "one line per version: number, date, size, stored, sha256" << text;

  const Result json = run({"list", file, "--json"});
  ASSERT_TRUE(succeeded(json));
  ASSERT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["path"], file) << json;
  nlohmann::json versions = json_of(json.out)["versions"];
  ASSERT_TRUE(versions.is_array()) << json;
  ASSERT_EQ(versions.size(), contents.size()) << "one version per run" << json;
  for (std::size_t i = 0; i < contents.size(); ++i) {
    nlohmann::json& version = versions[i];
    EXPECT_EQ(version["version"], i + 1) << json;
    const std::string date = version.value("date", "");
    // The run's finishing time, exact to the nanosecond ("…:SS.nnnnnnnnnZ"): its whole seconds
    // lie within the run's own window.
    ASSERT_GE(date.size(), 20u) << json;
    const std::string seconds = date.substr(0, 19) + "Z";
    EXPECT_EQ(date.size(), 30u) << "nanosecond precision expected: " << date;
    EXPECT_GE(seconds, iso_utc_seconds(started[i])) << "version " << i + 1 << json;
    EXPECT_LE(seconds, iso_utc_seconds(finished[i])) << "version " << i + 1 << json;
    EXPECT_EQ(version["size"], contents[i].size()) << json;
    EXPECT_GT(version.value("stored", 0), 0) << json;
    EXPECT_EQ(version["sha256"], sha256_hex(contents[i])) << json;
  }

  const Result unknown = run({"list", src_ + "/never.txt"});
  EXPECT_TRUE(failed_with(unknown, 1, {src_ + "/never.txt", "no backup"}));
}

// ================================================================ restore --file

// A deleted file comes back in place (no --destination) with its content, mode and mtime.
TEST_F(RestoreCliTest, DeletedFileComesBackInPlace) {
  configure();
  const std::string file = src_ + "/sub/b.txt";
  ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
  ASSERT_NO_FATAL_FAILURE(set_mtime(file, 1'700'000'000'123'456'789));
  const std::string content = read_text(file);
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_EQ(::unlink(file.c_str()), 0);
  const std::string others = listing(src_);

  const Result result = restore({"--file", file});
  ASSERT_TRUE(succeeded(result));
  EXPECT_TRUE(contains(result.out, "Restored 1 file")) << result;
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(read_text(file), content);
  EXPECT_EQ(file_mode(file), 0640U);
  EXPECT_EQ(mtime_of(file), 1'700'000'000'123'456'789);
  EXPECT_EQ(restore_temporaries_below(src_), std::vector<std::string>{});
  ASSERT_EQ(::unlink(file.c_str()), 0);
  EXPECT_EQ(listing(src_), others) << "nothing but the file may be written";
}

// --version N with --destination a new path; --destination an existing directory (the file goes
// inside under its own name); --date today (the latest); a file deleted by a later run.
TEST_F(RestoreCliTest, FileByVersionByDateAndIntoADirectory) {
  configure();
  const std::string file = src_ + "/a.txt";
  const std::vector<std::string> contents = {"alpha\n", "alpha, version two\n", "alpha, version three\n"};
  std::vector<std::int64_t> mtimes;
  for (std::size_t i = 0; i < contents.size(); ++i) {
    ASSERT_NO_FATAL_FAILURE(write_text(file, contents[i]));
    ASSERT_EQ(::chmod(file.c_str(), i == 1 ? 0604 : 0644), 0);
    mtimes.push_back(mtime_of(file));
    ASSERT_TRUE(succeeded(run({"backup"})));
  }

  const std::string v2 = root_ + "/restored/v2.txt";
  const Result by_version = restore({"--file", file, "--version", "2", "--destination", v2});
  ASSERT_TRUE(succeeded(by_version));
  EXPECT_EQ(read_text(v2), contents[1]);
  EXPECT_EQ(file_mode(v2), 0604U);
  EXPECT_EQ(mtime_of(v2), mtimes[1]);
  EXPECT_EQ(read_text(file), contents[2]) << "the original must be untouched";

  const std::string into = root_ + "/into";
  ASSERT_EQ(::mkdir(into.c_str(), 0755), 0);
  const Result into_directory = restore({"--file", file, "--destination", into});
  ASSERT_TRUE(succeeded(into_directory));
  EXPECT_EQ(read_text(into + "/a.txt"), contents[2]);
  EXPECT_EQ(files_below(into), std::vector<std::string>{"a.txt"});

  const std::string today = root_ + "/today.txt";
  const Result by_day = restore({"--file", file, "--date", local_day(now_ns()), "--destination", today});
  ASSERT_TRUE(succeeded(by_day));
  EXPECT_EQ(read_text(today), contents[2]) << "the end of today is after every run";

  // A file deleted by a later run: without --date its latest content comes back; at a moment
  // after the deletion it did not exist.
  const std::string gone = src_ + "/sub/b.txt";
  const std::string gone_content = read_text(gone);
  ASSERT_EQ(::unlink(gone.c_str()), 0);
  std::int64_t after_deletion = 0;
  ASSERT_NO_FATAL_FAILURE(backup("1 deleted", after_deletion));
  const Result deleted_at = restore({"--file", gone, "--date", iso_utc(after_deletion), "--destination", root_ + "/gone.txt"});
  EXPECT_TRUE(failed_with(deleted_at, 1, {gone, "versions are 1 ("}));
  EXPECT_FALSE(exists(root_ + "/gone.txt"));
  const Result latest = restore({"--file", gone});
  ASSERT_TRUE(succeeded(latest));
  EXPECT_EQ(read_text(gone), gone_content);
}

// A version or a moment without a version is an error listing the versions there are; nothing is
// written.
TEST_F(RestoreCliTest, MissingVersionOrDateListsTheVersions) {
  configure();
  const std::string file = src_ + "/a.txt";
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_NO_FATAL_FAILURE(write_text(file, "alpha, again\n"));
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::string target = root_ + "/target.txt";

  const Result no_version = restore({"--file", file, "--version", "9", "--destination", target});
  EXPECT_TRUE(failed_with(no_version, 1, {file, "version 9", "versions are 1 (", "2 ("}));
  const Result before_first = restore({"--file", file, "--date", "2000-01-01", "--destination", target});
  EXPECT_TRUE(failed_with(before_first, 1, {file, "2000-01-01", "versions are 1 (", "2 ("}));
  const Result before_first_instant = restore({"--file", file, "--date", "2001-02-03T04:05:06.5Z", "--destination", target});
  EXPECT_TRUE(failed_with(before_first_instant, 1, {file, "versions are 1 ("}));
  const Result directory_before_first = restore({"--directory", src_, "--date", "2000-01-01", "--destination", target});
  EXPECT_TRUE(failed_with(directory_before_first, 1, {src_, "2000-01-01"}));
  EXPECT_FALSE(exists(target));

  // A date that is no date at all is a usage error quoting it.
  const Result no_such_day = restore({"--file", file, "--date", "2026-02-30", "--destination", target});
  EXPECT_TRUE(failed_with(no_such_day, 2, {"2026-02-30"}));
  const Result garbage = restore({"--file", file, "--date", "yesterday", "--destination", target});
  EXPECT_TRUE(failed_with(garbage, 2, {"yesterday"}));
  EXPECT_FALSE(exists(target));
  EXPECT_EQ(read_text(file), "alpha, again\n");
}

TEST_F(RestoreCliTest, ContradictoryOrMissingOptionsAreUsageErrors) {
  first_backup();
  const std::string before = listing(src_);
  const std::vector<std::vector<std::string>> commands = {
      {},                                                     // nothing to restore
      {"--dry-run"},                                          // still nothing
      {"--directory", src_, "--version", "1"},                // --version is for one file
      {"--file", src_ + "/a.txt", "--version", "1", "--date", "2026-01-01"},
      {"--file", src_ + "/a.txt", "--directory", src_},
      {"--file", src_ + "/a.txt", "--list"},
      {"--file", src_ + "/a.txt", "--version", "0"},
      {"--file", src_ + "/a.txt", "--version", "two"},
  };
  for (const std::vector<std::string>& args : commands) {
    const Result result = restore(args);
    EXPECT_EQ(result.code, 2) << result;
    EXPECT_EQ(result.out, "") << result;
    EXPECT_EQ(lines_of(result.err).size(), 1U) << result;
    EXPECT_EQ(result.err.rfind("mybackup: error: ", 0), 0U) << result;
  }
  EXPECT_TRUE(failed_with(restore({"--directory", src_, "--version", "1"}), 2, {"--version", "--date"}));
  EXPECT_TRUE(failed_with(restore({}), 2, {"--file", "--directory", "--list"}));
  EXPECT_EQ(listing(src_), before);
}

// ================================================================ never overwrite unasked

// An existing file that differs is left alone (exit 1, the message points at --overwrite); with
// --overwrite it is replaced; an identical file is left as it is and counts as success.
TEST_F(RestoreCliTest, ExistingDifferentFileIsOnlyReplacedWithOverwrite) {
  configure();
  const std::string file = src_ + "/a.txt";
  ASSERT_NO_FATAL_FAILURE(set_mtime(file, 1'650'000'000'000'000'001));
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_NO_FATAL_FAILURE(write_text(file, "a local edit, never backed up\n"));
  const std::int64_t edited_mtime = mtime_of(file);

  const Result refused = restore({"--file", file});
  EXPECT_EQ(refused.code, 1) << refused;
  EXPECT_TRUE(contains(refused.err, "--overwrite")) << refused;
  EXPECT_TRUE(contains(refused.err, file)) << refused;
  EXPECT_EQ(read_text(file), "a local edit, never backed up\n");
  EXPECT_EQ(mtime_of(file), edited_mtime);
  EXPECT_EQ(restore_temporaries_below(src_), std::vector<std::string>{});

  // The same for a whole directory restored in place: the other files are identical, the edited
  // one is kept.
  const Result refused_tree = restore({"--directory", src_});
  EXPECT_EQ(refused_tree.code, 1) << refused_tree;
  EXPECT_TRUE(contains(refused_tree.err, file)) << refused_tree;
  EXPECT_TRUE(contains(refused_tree.err, "--overwrite")) << refused_tree;
  EXPECT_EQ(read_text(file), "a local edit, never backed up\n");

  const Result replaced = restore({"--file", file, "--overwrite"});
  ASSERT_TRUE(succeeded(replaced));
  EXPECT_EQ(replaced.err, "");
  EXPECT_EQ(read_text(file), "alpha\n");
  EXPECT_EQ(mtime_of(file), 1'650'000'000'000'000'001);
  EXPECT_EQ(restore_temporaries_below(src_), std::vector<std::string>{});

  const Result identical = restore({"--file", file});
  ASSERT_TRUE(succeeded(identical));
  EXPECT_TRUE(contains(identical.out, "identical")) << identical;
  EXPECT_EQ(identical.err, "");
  EXPECT_EQ(read_text(file), "alpha\n");

  const Result identical_tree = restore({"--directory", src_});
  ASSERT_TRUE(succeeded(identical_tree));
  EXPECT_TRUE(contains(identical_tree.out, "identical")) << identical_tree;
}

// ================================================================ path safety

// A symlink in the destination where the tree has a directory is never followed: the restore
// fails for what lies below it, says why, and writes nothing outside the destination -- with
// --overwrite as well.
TEST_F(RestoreCliTest, SymlinkInTheDestinationIsNotFollowed) {
  first_backup();  // src/a.txt, src/sub/b.txt, src/sub/c.bin
  const std::string outside = root_ + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  const std::string out = root_ + "/restored";
  ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (out + "/sub").c_str()), 0);

  for (const bool overwrite : {false, true}) {
    std::vector<std::string> args{"--directory", src_, "--destination", out};
    if (overwrite) {
      args.push_back("--overwrite");
    }
    const Result result = restore(args);
    EXPECT_NE(result.code, 0) << result;
    EXPECT_TRUE(contains(result.err, "symbolic link")) << result;
    EXPECT_TRUE(contains(result.err, out + "/sub/b.txt")) << result;
    EXPECT_EQ(listing(outside), "") << "nothing may be written through the symlink" << result;
    EXPECT_TRUE(is_symlink(out + "/sub")) << "the symlink must be left as it is";
    EXPECT_EQ(read_text(out + "/a.txt"), "alpha\n") << "what lies elsewhere is restored" << result;
  }
}

// ================================================================ damaged repository

// One byte flipped in a pack: the restore names each file it cannot restore with its version,
// leaves nothing (not even a temporary) at that file's path, and restores the others verified.
TEST_F(RestoreCliTest, DamagedPackNamesTheFileAndLeavesNoPartialFile) {
  init();
  // Two 320 KiB random files: packs close at 64 KiB, so the data spans several packs.
  ASSERT_NO_FATAL_FAILURE(use_small_repository());
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big0.bin", 320 * 1024, 1));
  ASSERT_NO_FATAL_FAILURE(write_random_file(src_ + "/big1.bin", 320 * 1024, 2));
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/small.txt", "small\n"));
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_TRUE(succeeded(run({"backup"})));

  // The largest pack; one byte in its middle (a chunk's blob: packs are blobs, then a header).
  std::string pack_path;
  std::uintmax_t pack_size = 0;
  for (const std::string& relative : files_below(dest_ + "/data")) {
    const std::string path = dest_ + "/data/" + relative;
    if (fs::path(path).extension() == ".enc" && fs::file_size(path) > pack_size) {
      pack_path = path;
      pack_size = fs::file_size(path);
    }
  }
  ASSERT_FALSE(pack_path.empty()) << listing(dest_);
  const std::string pack_name = fs::path(pack_path).stem().string();
  const std::uint64_t flipped = pack_size / 2;
  {
    std::fstream pack(pack_path, std::ios::in | std::ios::out | std::ios::binary);
    pack.seekg(static_cast<std::streamoff>(flipped));
    char byte = 0;
    pack.get(byte);
    pack.seekp(static_cast<std::streamoff>(flipped));
    pack.put(static_cast<char>(byte ^ 0x5a));
    ASSERT_TRUE(pack.good()) << pack_path;
  }

  // Which files have a chunk covering that byte: the catalog knows where every chunk is.
  const std::vector<std::string> names = {"big0.bin", "big1.bin", "small.txt"};
  std::set<std::string> damaged;
  {
    const mybackup::Catalog catalog(home_ + "/backups.db");
    for (const std::string& name : names) {
      const std::vector<mybackup::VersionRecord> versions = catalog.versions_of(src_ + "/" + name);
      ASSERT_EQ(versions.size(), 1U) << name;
      for (const mybackup::ChunkLocation& chunk : catalog.chunks_of(versions[0].id)) {
        if (chunk.pack == pack_name && chunk.entry.offset <= flipped && flipped < chunk.entry.offset + chunk.entry.length) {
          damaged.insert(name);
        }
      }
    }
  }
  ASSERT_EQ(damaged.size(), 1U) << "the flipped byte should lie in exactly one file's chunk (random data, no sharing)";

  const std::string out = root_ + "/restored";
  const Result result = restore({"--directory", src_, "--destination", out});
  EXPECT_EQ(result.code, 1) << result;
  for (const std::string& name : names) {
    const std::string target = out + "/" + name;
    if (damaged.count(name) != 0) {
      EXPECT_TRUE(contains(result.err, target)) << "the damaged file must be named" << result;
      EXPECT_TRUE(contains(result.err, "version 1")) << result;
      EXPECT_TRUE(contains(result.err, src_ + "/" + name)) << result;
      EXPECT_FALSE(exists(target)) << "no partial file at " << target;
    } else {
      EXPECT_FALSE(contains(result.err, target)) << result;
      EXPECT_TRUE(read_text(target) == read_text(src_ + "/" + name)) << name << " must be restored intact";
      EXPECT_EQ(mtime_of(target), mtime_of(src_ + "/" + name)) << name;
    }
  }
  EXPECT_EQ(restore_temporaries_below(out), std::vector<std::string>{});
  const std::vector<std::string> err_lines = lines_of(result.err);
  ASSERT_FALSE(err_lines.empty()) << result;
  EXPECT_EQ(err_lines.back().rfind("mybackup: error: ", 0), 0U) << result;
}

// ================================================================ restore --list

// `restore --list` shows every current file and symlink with its latest version; deleted files
// are not current. `--list --json` gives the same as JSON.
TEST_F(RestoreCliTest, ListShowsCurrentFilesWithTheirLatestVersion) {
  configure();  // src/a.txt, src/sub/b.txt, src/sub/c.bin
  ASSERT_EQ(::symlink("a.txt", (src_ + "/link").c_str()), 0);
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, two\n"));
  ASSERT_TRUE(succeeded(run({"backup"})));
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, three\n"));
  ASSERT_EQ(::unlink((src_ + "/sub/b.txt").c_str()), 0);
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::vector<std::pair<std::string, int>> current = {
      {src_ + "/a.txt", 3}, {src_ + "/link", 1}, {src_ + "/sub/c.bin", 1}};

  const Result text = restore({"--list"});
  ASSERT_TRUE(succeeded(text));
  EXPECT_EQ(text.err, "");
  for (const auto& [path, version] : current) {
    EXPECT_TRUE(contains(text.out, path + "  (version " + std::to_string(version) + ", ")) << path << text;
  }
  EXPECT_FALSE(contains(text.out, src_ + "/sub/b.txt")) << "a deleted file is not current" << text;
  EXPECT_TRUE(contains(text.out, "3 files can be restored")) << text;

  const Result json = restore({"--list", "--json"});
  ASSERT_TRUE(succeeded(json));
  nlohmann::json list = json_of(json.out);
  ASSERT_TRUE(list.is_object()) << json;
  std::map<std::string, nlohmann::json> files;
  for (const nlohmann::json& file : list["files"]) {
    files[file.value("path", "")] = file;
  }
  for (const auto& [path, version] : current) {
    ASSERT_EQ(files.count(path), 1U) << path << json;
    EXPECT_EQ(files[path]["version"], version) << path << json;
    EXPECT_TRUE(files[path]["date"].is_string()) << path << json;
  }
  EXPECT_EQ(files[src_ + "/a.txt"]["size"], 13) << json;
  EXPECT_FALSE(contains(json.out, src_ + "/sub/b.txt")) << json;
  EXPECT_EQ(count_of(json.out, "\"path\""), current.size()) << json;
}

// ================================================================ dry run

// --dry-run says what it would restore and writes nothing: a new destination is not even created.
TEST_F(RestoreCliTest, DryRunWritesNothing) {
  first_backup();  // src/a.txt, src/sub/b.txt, src/sub/c.bin
  const std::string out = root_ + "/restored";
  const Result tree = restore({"--directory", src_, "--destination", out, "--dry-run"});
  ASSERT_TRUE(succeeded(tree));
  for (const std::string name : {"a.txt", "sub/b.txt", "sub/c.bin"}) {
    EXPECT_TRUE(has_line(tree.out, "would restore", out + "/" + name)) << name << tree;
  }
  EXPECT_FALSE(exists(out)) << "a dry run must not create the destination";

  const Result json = restore({"--directory", src_, "--destination", out, "--dry-run", "--json"});
  ASSERT_TRUE(succeeded(json));
  ASSERT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["dry_run"], true) << json;
  EXPECT_FALSE(exists(out));

  // In place, with one file missing: it would be restored, the others are identical.
  const std::string file = src_ + "/sub/b.txt";
  ASSERT_EQ(::unlink(file.c_str()), 0);
  const std::string before = listing(src_);
  const std::int64_t sub_mtime = mtime_of(src_ + "/sub");
  const Result in_place = restore({"--directory", src_, "--dry-run"});
  ASSERT_TRUE(succeeded(in_place));
  EXPECT_TRUE(has_line(in_place.out, "would restore", file)) << in_place;
  EXPECT_TRUE(has_line(in_place.out, "identical", src_ + "/a.txt")) << in_place;
  EXPECT_TRUE(has_line(in_place.out, "identical", src_ + "/sub/c.bin")) << in_place;
  const Result one = restore({"--file", file, "--dry-run"});
  ASSERT_TRUE(succeeded(one));
  EXPECT_TRUE(has_line(one.out, "would restore", file)) << one;
  EXPECT_EQ(listing(src_), before) << "a dry run must not write";
  EXPECT_EQ(mtime_of(src_ + "/sub"), sub_mtime) << "a dry run must not touch directories either";
  EXPECT_FALSE(exists(file));
}

// ================================================================ recovery: init --from

// The laptop dies: only the destination and a copy of the key are left. `init --from` in an
// empty home rebuilds settings and catalog; every run's state restores exactly; history, status
// and further backups go on as before.
TEST_F(RestoreCliTest, AHomeRebuiltFromTheDestinationRestoresEveryRun) {
  ASSERT_NO_FATAL_FAILURE(configure_rich_tree());
  ASSERT_TRUE(succeeded(run({"config", "set", "retention.keep_versions", "7"})));
  const std::vector<Tree>& trees = trees_;
  const std::vector<std::int64_t>& moments = moments_;
  const auto record = [&](const std::string& counts) { record_run(counts); };
  ASSERT_NO_FATAL_FAILURE(record("5 new, 0 changed, 0 deleted, 0 unchanged"));
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, edited\n"));
  ASSERT_NO_FATAL_FAILURE(record("0 new, 1 changed, 0 deleted, 4 unchanged"));
  ASSERT_EQ(::unlink((src_ + "/b.txt").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(record("0 new, 0 changed, 1 deleted, 4 unchanged"));
  const std::string list_before = run({"list", src_ + "/a.txt", "--json"}).out;
  const std::string restorable_before = run({"restore", "--list", "--json"}).out;

  const std::string saved_key = root_ + "/usb-key";
  fs::copy_file(key_path(), saved_key);
  fs::remove_all(home_);

  // Without the key, or with another one, nothing is created.
  EXPECT_TRUE(failed_with(run({"init", "--from", dest_}), 2, {"--key-file"}));
  const std::string other_key = root_ + "/other-key";
  ASSERT_TRUE(succeeded(run({"--home", root_ + "/other-home", "init"})));
  fs::copy_file(root_ + "/other-home/key", other_key);
  const Result wrong = run({"init", "--from", dest_, "--key-file", other_key});
  EXPECT_NE(wrong.code, 0) << wrong;
  EXPECT_FALSE(exists(home_ + "/config.yaml")) << wrong;
  EXPECT_NE(run({"init", "--from", root_ + "/out", "--key-file", saved_key}).code, 0);

  const Result recovered = run({"init", "--from", dest_, "--key-file", saved_key});
  ASSERT_TRUE(succeeded(recovered));
  EXPECT_TRUE(contains(recovered.out, "3 runs")) << recovered;
  EXPECT_EQ(key_hex(key_path()), key_hex(saved_key));
  EXPECT_EQ(file_mode(key_path()), 0600U);
  EXPECT_TRUE(contains(run({"config", "show"}).out, "retention.keep_versions = 7"));
  EXPECT_EQ(run({"list", src_ + "/a.txt", "--json"}).out, list_before);
  EXPECT_EQ(run({"restore", "--list", "--json"}).out, restorable_before);
  for (std::size_t i = 0; i < trees.size(); ++i) {
    const std::string out = root_ + "/recovered-run" + std::to_string(i + 1);
    ASSERT_TRUE(succeeded(restore({"--directory", src_, "--destination", out, "--date", iso_utc(moments[i])})));
    EXPECT_TRUE(same_tree(trees[i], snapshot(out))) << "run " << i + 1;
  }
  // A second init --from on the recovered home changes nothing.
  EXPECT_TRUE(failed_with(run({"init", "--from", dest_, "--key-file", saved_key}), 1, {"already initialized"}));

  // Backups go on: version numbers continue where they were.
  ASSERT_NO_FATAL_FAILURE(write_text(src_ + "/a.txt", "alpha, after the recovery\n"));
  std::int64_t moment = 0;
  ASSERT_NO_FATAL_FAILURE(backup("0 new, 1 changed, 0 deleted, 3 unchanged", moment));
  EXPECT_TRUE(contains(run({"list", src_ + "/a.txt"}).out, "  3  ")) << run({"list", src_ + "/a.txt"});
}

// With a passphrase set at init, the destination and the passphrase alone bring everything back;
// a wrong passphrase is exit code 4 and creates nothing.
TEST_F(RestoreCliTest, ADestinationAndItsPassphraseAreEnoughToRecover) {
  RunOptions secret;
  secret.env = {{"MYBACKUP_PASSPHRASE", "correct horse battery"}, {"MYBACKUP_TEST_SCRYPT_N", "16"}};
  secret.no_terminal = true;
  ASSERT_TRUE(succeeded(run({"init", "--passphrase"}, secret)));
  make_tree();
  ASSERT_TRUE(succeeded(run({"add", src_})));
  ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::string key_before = key_hex(key_path());
  fs::remove_all(home_);

  RunOptions wrong = secret;
  wrong.env[0].second = "incorrect horse";
  EXPECT_TRUE(failed_with(run({"init", "--from", dest_, "--passphrase"}, wrong), 4, {"passphrase"}));
  EXPECT_FALSE(exists(home_));
  EXPECT_TRUE(failed_with(run({"init", "--from", dest_, "--passphrase", "--key-file", root_ + "/k"}, secret), 2,
                          {"one way"}));

  ASSERT_TRUE(succeeded(run({"init", "--from", dest_, "--passphrase"}, secret)));
  EXPECT_EQ(key_hex(key_path()), key_before);
  const std::string out = root_ + "/restored";
  ASSERT_TRUE(succeeded(restore({"--directory", src_, "--destination", out})));
  EXPECT_TRUE(same_tree(snapshot(src_), snapshot(out)));
}

// ================================================================ the secondary destination

// Backups and cleans keep the secondary a copy of the primary; a restore reads what the primary
// lost from it and says so; `sync` repairs a secondary that missed runs.
TEST_F(RestoreCliTest, TheSecondaryIsKeptInStepAndRestoresWhatThePrimaryLost) {
  const std::string nas = root_ + "/nas";
  EXPECT_TRUE(failed_with(run({"sync"}), 1, {"not initialized"}));
  configure();
  EXPECT_TRUE(failed_with(run({"sync"}), 2, {"destinations.secondary"}));
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", nas})));
  Result backed_up = run({"backup"});
  ASSERT_TRUE(succeeded(backed_up));
  EXPECT_TRUE(contains(backed_up.out, "Secondary " + nas + " updated: 1 pack")) << backed_up;
  EXPECT_EQ(listing(nas + "/data"), listing(dest_ + "/data"));
  EXPECT_EQ(listing(nas + "/snapshots"), listing(dest_ + "/snapshots"));

  // The primary loses every pack: the restore still succeeds, from the secondary, and says so.
  fs::remove_all(dest_ + "/data");
  const std::string out = root_ + "/restored";
  const Result restored = restore({"--directory", src_, "--destination", out});
  ASSERT_TRUE(succeeded(restored)) << restored;
  EXPECT_TRUE(contains(restored.err, "was read from the secondary destination")) << restored;
  EXPECT_EQ(read_text(out + "/sub/b.txt"), read_text(src_ + "/sub/b.txt"));

  // `sync` never deletes the secondary's copy of a pack the primary lost, and says so (exit 1).
  const Result lost = run({"sync"});
  EXPECT_EQ(lost.code, 1) << lost;
  EXPECT_TRUE(contains(lost.err, "missing from the primary destination")) << lost;
  EXPECT_FALSE(listing(nas + "/data").empty());
  fs::copy(nas + "/data", dest_ + "/data", fs::copy_options::recursive);

  // A secondary that was unreachable during a backup is brought up to date by `sync`.
  fs::rename(nas, root_ + "/nas-unplugged");
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", root_ + "/out/file-not-dir/x"})));
  write_text(root_ + "/out/file-not-dir", "a file where a directory should be");
  write_text(src_ + "/a.txt", "alpha, while the NAS was away\n");
  const Result partial = run({"backup"});
  EXPECT_EQ(partial.code, 3) << partial;
  EXPECT_TRUE(contains(partial.err, "was not updated")) << partial;
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", nas})));
  fs::rename(root_ + "/nas-unplugged", nas);
  const Result synced = run({"sync", "--json"});
  ASSERT_TRUE(succeeded(synced)) << synced;
  EXPECT_EQ(json_of(synced.out)["packs_copied"], 1) << synced;
  EXPECT_EQ(json_of(synced.out)["manifests_copied"], 1) << synced;
  EXPECT_EQ(listing(nas + "/snapshots"), listing(dest_ + "/snapshots"));

  // What clean removes goes from the secondary too.
  ASSERT_TRUE(succeeded(run({"clean", "--keep-days", "0", "--keep-versions", "1"})));
  EXPECT_EQ(listing(nas + "/data"), listing(dest_ + "/data"));
}

}  // namespace
}  // namespace mybackup_cli_test
