#pragma once
// The harness of the end-to-end tests of the `mybackup` command line (header-only, shared by
// every tests/cli/*_test.cpp): each test runs the built binary exactly as a user would (fork +
// exec, its own MYBACKUP_HOME under a fresh temporary directory) and checks the exit code, what it
// printed, and what it changed on disk.
//
// Layout of each test's temporary directory (removed at the end unless the test failed):
//   home/   MYBACKUP_HOME (created by `mybackup init`, absent before)
//   src/    a small source tree
//   dest/   the destination path (absent until the first backup creates it)
//   user/   $HOME of the child, so nothing ever touches the real ~/.mybackup
//   out/    the child's captured stdout and stderr
//
// Everything is `inline` in a named namespace, so a test file that uses only part of it compiles
// warning-free; test files put their tests in an anonymous namespace inside mybackup_cli_test.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/test_data.hpp"

extern char** environ;

namespace mybackup_cli_test {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- small file helpers

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_text(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline void append_text(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << content;
  ASSERT_TRUE(out.good()) << "cannot append to " << path;
}

inline bool exists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

inline unsigned file_mode(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return 0;
  }
  return static_cast<unsigned>(info.st_mode) & 07777U;
}

/// Every path under `root` (recursively, sorted) with its type, size and a hash of its bytes:
/// equal listings mean nothing was created, deleted or rewritten with other content.
inline std::string listing(const std::string& root) {
  if (!exists(root)) {
    return "(absent)";
  }
  std::vector<std::string> lines;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    const std::string relative = fs::relative(it->path(), root).string();
    if (it->is_directory()) {
      lines.push_back(relative + "/");
    } else {
      const std::string bytes = read_text(it->path().string());
      lines.push_back(relative + " " + std::to_string(bytes.size()) + " " + std::to_string(std::hash<std::string>{}(bytes)));
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines) {
    text += line + "\n";
  }
  return text;
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t count = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) {
    ++count;
  }
  return count;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

// ---------------------------------------------------------------- JSON output

/// `text` parsed as one JSON object (RFC 8259, strictly), or a discarded value if it is not one:
/// invalid JSON, another type, or anything after the object. A missing key reads as null (so a
/// comparison fails and prints both sides); indexing a discarded value throws (the test fails).
inline nlohmann::json json_of(const std::string& text) {
  nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (!document.is_object()) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return document;
}

/// True if `text` is exactly one JSON object (plus surrounding whitespace).
inline bool is_one_json_object(const std::string& text) { return json_of(text).is_object(); }

/// The `"files"` count of the source whose `"path"` is `path` in `status --json`.
inline std::optional<long long> source_files(const std::string& status_json, const std::string& path) {
  const nlohmann::json status = json_of(status_json);
  if (!status.is_object() || !status.contains("sources")) {
    return std::nullopt;
  }
  for (const nlohmann::json& source : status["sources"]) {
    if (source.value("path", "") == path) {
      return source.at("files").get<long long>();
    }
  }
  return std::nullopt;
}

inline std::string in_quotes(const std::string& text) { return "\"" + text + "\""; }

// ---------------------------------------------------------------- running the binary

struct Result {
  int code = -1;
  std::string out;
  std::string err;
  std::string command;
};

inline std::ostream& operator<<(std::ostream& stream, const Result& result) {
  return stream << "\n$ " << result.command << "\n[exit " << result.code << "]\n[stdout]\n"
                << result.out << "[stderr]\n"
                << result.err;
}

/// Environment changes for one run: a value sets the variable, nullopt removes it.
struct RunOptions {
  std::vector<std::pair<std::string, std::optional<std::string>>> env;
  std::string cwd;  // empty: the test's working directory
  bool no_terminal = false;  // run in a new session, without a controlling terminal (/dev/tty fails)
};

inline ::testing::AssertionResult succeeded(const Result& result, int expected = 0) {
  if (result.code != expected) {
    return ::testing::AssertionFailure() << "expected exit " << expected << result;
  }
  return ::testing::AssertionSuccess();
}

/// A failed command: `code`, nothing on stdout, exactly one stderr line "mybackup: error: ..."
/// containing every one of `parts`.
inline ::testing::AssertionResult failed_with(const Result& result, int code, const std::vector<std::string>& parts) {
  if (result.code != code) {
    return ::testing::AssertionFailure() << "expected exit " << code << result;
  }
  if (!result.out.empty()) {
    return ::testing::AssertionFailure() << "expected nothing on stdout" << result;
  }
  const std::vector<std::string> err_lines = lines_of(result.err);
  if (err_lines.size() != 1 || err_lines[0].rfind("mybackup: error: ", 0) != 0 || result.err.back() != '\n') {
    return ::testing::AssertionFailure() << "expected one stderr line \"mybackup: error: ...\"" << result;
  }
  for (const std::string& part : parts) {
    if (!contains(result.err, part)) {
      return ::testing::AssertionFailure() << "stderr lacks \"" << part << "\"" << result;
    }
  }
  return ::testing::AssertionSuccess();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "mybackup_cli_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    root_ = pattern;
    home_ = root_ + "/home";
    src_ = root_ + "/src";
    dest_ = root_ + "/dest";
    ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/user").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/out").c_str(), 0755), 0);
  }

  void TearDown() override {
    check_no_key_leaked();
    if (!HasFailure()) {
      // A test may leave read-only directories behind; make everything removable first.
      std::error_code ignored;
      for (auto it = fs::recursive_directory_iterator(root_, ignored); !ignored && it != fs::recursive_directory_iterator();
           it.increment(ignored)) {
        if (it->is_directory()) {
          ::chmod(it->path().c_str(), 0755);
        }
      }
      fs::remove_all(root_, ignored);
    } else {
      std::cerr << "kept " << root_ << " for inspection\n";
    }
  }

  /// Runs `mybackup args...` with MYBACKUP_HOME=home_ and HOME=<tmp>/user (plus `options.env`).
  Result run(const std::vector<std::string>& args, const RunOptions& options = {}) {
    Result result;
    const pid_t pid = start(args, result, options);
    if (pid <= 0) {
      return result;
    }
    finish(pid, result);
    return result;
  }

  /// Starts `mybackup args...` as run() does, without waiting: returns the child's pid (<= 0 if
  /// fork failed); finish() waits for it and fills in `result`.
  pid_t start(const std::vector<std::string>& args, Result& result, const RunOptions& options = {}) {
    result.command = "mybackup";
    std::vector<std::string> argv_text{MYBACKUP_BIN};
    for (const std::string& arg : args) {
      argv_text.push_back(arg);
      result.command += " " + arg;
    }

    std::vector<std::pair<std::string, std::optional<std::string>>> changes{{"MYBACKUP_HOME", home_},
                                                                          {"HOME", root_ + "/user"}};
    changes.insert(changes.end(), options.env.begin(), options.env.end());
    std::vector<std::string> env_text;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string item = *entry;
      const bool replaced = std::any_of(changes.begin(), changes.end(),
                                        [&](const auto& change) { return item.rfind(change.first + "=", 0) == 0; });
      if (!replaced) {
        env_text.push_back(item);
      }
    }
    for (const auto& change : changes) {
      // The last change of a name wins.
      const std::string prefix = change.first + "=";
      env_text.erase(std::remove_if(env_text.begin(), env_text.end(),
                                    [&prefix](const std::string& item) { return item.rfind(prefix, 0) == 0; }),
                     env_text.end());
      if (change.second) {
        env_text.push_back(prefix + *change.second);
      }
    }

    std::vector<char*> argv;
    for (std::string& arg : argv_text) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& item : env_text) {
      envp.push_back(item.data());
    }
    envp.push_back(nullptr);

    const std::string out_path = root_ + "/out/stdout";
    const std::string err_path = root_ + "/out/stderr";
    const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT_TRUE(out_fd >= 0 && err_fd >= 0 && null_fd >= 0) << std::strerror(errno);
    const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
    const bool new_session = options.no_terminal;

    const pid_t pid = ::fork();
    if (pid == 0) {
      // Child: only async-signal-safe calls from here on.
      if ((new_session && ::setsid() < 0) || (cwd != nullptr && ::chdir(cwd) != 0) || ::dup2(null_fd, 0) < 0 ||
          ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) {
        ::_exit(126);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out_fd);
    ::close(err_fd);
    ::close(null_fd);
    EXPECT_GT(pid, 0) << "fork: " << std::strerror(errno);
    return pid;
  }

  /// Waits for a child start() returned and records its exit code and output in `result`.
  void finish(pid_t pid, Result& result) {
    const std::string out_path = root_ + "/out/stdout";
    const std::string err_path = root_ + "/out/stderr";
    // Wait with a deadline, so a hanging command fails the test instead of stalling the suite.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    auto pause = std::chrono::microseconds(200);
    int status = 0;
    for (;;) {
      const pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid) {
        break;
      }
      if (done < 0 && errno != EINTR) {
        ADD_FAILURE() << "waitpid: " << std::strerror(errno);
        return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ADD_FAILURE() << "timed out: " << result.command;
        break;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
    }
    result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = read_text(out_path);
    result.err = read_text(err_path);
    outputs_.push_back(result.out);
    outputs_.push_back(result.err);
  }

  // ---- common set-ups

  void init() { ASSERT_TRUE(succeeded(run({"init"}))); }

  /// Makes the repository the first backup creates cut chunks of `chunk_size` on average and close
  /// packs at `pack_size` (config.yaml's repository.chunk_size and repository.pack_size, edited in
  /// the file as a user may: two `config set` runs would cost more than the data saved), so a test
  /// gets several chunks and packs out of a few hundred KiB. REQUIRES: init().
  void use_small_repository(const std::string& chunk_size = "4KiB", const std::string& pack_size = "64KiB") {
    const std::string path = home_ + "/config.yaml";
    std::string text = read_text(path);
    for (const auto& [from, to] : {std::pair{std::string("chunk_size: 1MiB"), "chunk_size: " + chunk_size},
                                   std::pair{std::string("pack_size: 16MiB"), "pack_size: " + pack_size}}) {
      const std::size_t at = text.find(from);
      ASSERT_NE(at, std::string::npos) << from << " not in " << path << ":\n" << text;
      text.replace(at, from.size(), to);
    }
    write_text(path, text);
  }

  /// src/a.txt, src/sub/b.txt, src/sub/c.bin: three files, one subdirectory.
  void make_tree() {
    write_text(src_ + "/a.txt", "alpha\n");
    ASSERT_EQ(::mkdir((src_ + "/sub").c_str(), 0755), 0);
    write_text(src_ + "/sub/b.txt", "bravo bravo bravo\n");
    std::string binary;
    for (int i = 0; i < 5000; ++i) {
      binary += static_cast<char>((i * 7919) % 251);
    }
    write_text(src_ + "/sub/c.bin", binary);
  }

  /// init, a tree of three files in src/, `add src`, destination dest/.
  void configure() {
    init();
    make_tree();
    ASSERT_TRUE(succeeded(run({"add", src_})));
    ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  }

  /// Polls `condition` every 100 ms for up to `seconds`; its last answer.
  static bool eventually(const std::function<bool()>& condition, int seconds = 10) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (condition()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return condition();
  }

  /// How many versions `list PATH --json` shows (0 if the command fails).
  std::size_t versions_of(const std::string& path) {
    const Result result = run({"list", path, "--json"});
    if (result.code != 0) {
      return 0;
    }
    const nlohmann::json list = json_of(result.out);
    return list.is_object() && list.contains("versions") ? list["versions"].size() : 0;
  }

  /// configure() and a first backup.
  void first_backup() {
    configure();
    ASSERT_TRUE(succeeded(run({"backup"})));
  }

  std::string key_path() const { return home_ + "/key"; }
  std::string config_path() const { return home_ + "/config.yaml"; }
  std::string log_path() const { return home_ + "/logs/mybackup.log"; }

  /// The 64-hex-digit line of a key file ("" if there is none).
  static std::string key_hex(const std::string& path) {
    for (const std::string& line : lines_of(read_text(path))) {
      if (line.size() == 64 && std::all_of(line.begin(), line.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; })) {
        return line;
      }
    }
    return "";
  }

  /// No key of this test's home (current or set aside by init --force) may appear in anything a
  /// command printed or in the log.
  void check_no_key_leaked() {
    if (!exists(home_)) {
      return;
    }
    std::vector<std::string> keys;
    std::string logs;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(home_, error)) {
      const std::string name = entry.path().filename().string();
      if (name == "key" || name.rfind("key.old-", 0) == 0) {
        keys.push_back(key_hex(entry.path().string()));
      }
    }
    for (const auto& entry : fs::directory_iterator(home_ + "/logs", error)) {
      logs += read_text(entry.path().string());
    }
    for (const std::string& key : keys) {
      ASSERT_EQ(key.size(), 64U) << "a key file without its 64-hex-digit line";
      std::string upper = key;
      std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      for (const std::string& output : outputs_) {
        EXPECT_FALSE(contains(output, key) || contains(output, upper)) << "the key appeared in a command's output";
      }
      EXPECT_FALSE(contains(logs, key) || contains(logs, upper)) << "the key appeared in the log";
      EXPECT_FALSE(contains(read_text(config_path()), key)) << "the key appeared in config.yaml";
    }
  }

  std::string status_json() {
    const Result status = run({"status", "--json"});
    EXPECT_TRUE(succeeded(status));
    EXPECT_TRUE(is_one_json_object(status.out)) << status;
    return status.out;
  }

  /// The *.json files in dest/locks (writer locks), sorted.
  std::vector<std::string> lock_files() const {
    std::vector<std::string> found;
    std::error_code error;
    for (auto it = fs::directory_iterator(dest_ + "/locks", error); !error && it != fs::directory_iterator();
         it.increment(error)) {
      if (it->path().extension() == ".json") {
        found.push_back(it->path().filename().string());
      }
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  std::string root_;
  std::string home_;
  std::string src_;
  std::string dest_;
  std::vector<std::string> outputs_;  // every stdout and stderr of this test, for the key check
};

// ---------------------------------------------------------------- more file helpers

/// Every regular file below `root` (recursively), relative to it.
inline std::vector<std::string> files_below(const std::string& root) {
  std::vector<std::string> files;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    // Lexical, and without throwing: a run may rename or remove a file while it is listed (a test
    // that watches a backup in progress), and fs::relative resolves the path on disk.
    std::error_code type_error;
    if (it->is_regular_file(type_error)) {
      files.push_back(it->path().lexically_relative(root).string());
    }
  }
  return files;
}

/// Every entry below `root` whose name starts with ".tmp-" (a put() that never finished).
inline std::vector<std::string> temporaries_below(const std::string& root) {
  std::vector<std::string> found;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    if (it->path().filename().string().rfind(".tmp-", 0) == 0) {
      found.push_back(it->path().string());
    }
  }
  return found;
}

/// Writes `size` bytes of test data from `seed` (common/test_data.hpp; incompressible unless
/// asked, so a backup of it takes real work). Files that must not deduplicate need other seeds.
inline void write_random_file(const std::string& path, std::size_t size, std::uint64_t seed,
                              mybackup::testing::Compressibility kind = mybackup::testing::Compressibility::incompressible) {
  mybackup::testing::TestDataGenerator generator(seed, kind);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<std::uint8_t> block(1024 * 1024);
  for (std::size_t done = 0; done < size; done += block.size()) {
    const std::size_t n = std::min(block.size(), size - done);
    generator.fill(std::span(block).first(n));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
  }
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

}  // namespace mybackup_cli_test
