#pragma once
// Small header-only helpers shared by the unit tests (namespace mybackup::testing).
//
// Note: inside `namespace mybackup { ... }` an unqualified `testing::` names this namespace, not
// GoogleTest's; write `::testing::Test` there (GoogleTest's own macros already do).

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/test_data.hpp"
#include "mybackup/util/bytes.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/storage/backend.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace testing {

/// A fresh directory /tmp/<prefix>XXXXXX (mkdtemp), removed with everything in it at the end.
/// Runs `body` and returns the mybackup::Error it throws (a test failure if it throws none).
template <typename Body>
Error catch_error(Body body) {
  try {
    body();
  } catch (const Error& error) {
    return error;
  }
  ADD_FAILURE() << "no mybackup::Error thrown";
  return Error(ErrorKind::io, "<none>");
}

/// Every figure of two catalog summaries is equal.
inline void expect_same_summary(const CatalogSummary& a, const CatalogSummary& b) {
  EXPECT_EQ(a.files, b.files);
  EXPECT_EQ(a.versions, b.versions);
  EXPECT_EQ(a.original_bytes, b.original_bytes);
  EXPECT_EQ(a.current_bytes, b.current_bytes);
  EXPECT_EQ(a.unique_bytes, b.unique_bytes);
  EXPECT_EQ(a.compressed_bytes, b.compressed_bytes);
  EXPECT_EQ(a.stored_bytes, b.stored_bytes);
  EXPECT_EQ(a.chunks, b.chunks);
  EXPECT_EQ(a.packs, b.packs);
  EXPECT_EQ(a.runs, b.runs);
}

/// No size bound, for tests that read back objects they wrote themselves.
inline constexpr std::uint64_t kAnySize = std::numeric_limits<std::uint64_t>::max();

/// A second view of a local repository's objects, for tests that plant damage or look at what
/// the repository stored (engine code has no such door: Repository is the only way in).
inline std::unique_ptr<Backend> raw_backend(const Repository& repository) {
  return make_local_backend(repository.location());
}

/// The names in a listing, in its order.
inline std::vector<std::string> names_of(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> names;
  for (const ObjectInfo& object : objects) {
    names.push_back(object.name);
  }
  return names;
}

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "mybackup_test_") {
    std::string pattern = "/tmp/" + prefix + "XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    }
    path_ = pattern;
  }
  /// Removed at the end, unless the test failed: then it stays for a look.
  ~TempDir() {
    if (!::testing::Test::HasFailure()) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  /// The path of `relative` inside the directory.
  std::string operator/(const std::string& relative) const { return path_ + "/" + relative; }

 private:
  std::string path_;
};

/// What a call threw: the kind and message of a mybackup::Error, or nothing. Compares equal to
/// an ErrorKind and reads like std::optional<ErrorKind>; prints as "corrupt: <message>" or
/// "no error", so a failed EXPECT_EQ(error_kind(...), ErrorKind::x) shows what really happened.
/// (A PrintTo(ErrorKind) here would be an ODR hazard: test files that do not include this header
/// would instantiate GoogleTest's printer for ErrorKind differently.)
class ErrorOutcome {
 public:
  ErrorOutcome() = default;
  ErrorOutcome(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}

  bool has_value() const { return kind_.has_value(); }
  explicit operator bool() const { return has_value(); }
  /// REQUIRES: has_value().
  ErrorKind operator*() const { return *kind_; }
  const std::optional<ErrorKind>& kind() const { return kind_; }
  /// So `std::optional<ErrorKind> kind = error_kind(...)` keeps working.
  operator std::optional<ErrorKind>() const { return kind_; }  // NOLINT(google-explicit-constructor)
  const std::string& message() const { return message_; }

  friend bool operator==(const ErrorOutcome& outcome, ErrorKind kind) { return outcome.kind_ == kind; }
  friend std::ostream& operator<<(std::ostream& out, const ErrorOutcome& outcome) {
    if (!outcome.kind_) {
      return out << "no error";
    }
    return out << to_string(*outcome.kind_) << ": " << outcome.message_;
  }

 private:
  std::optional<ErrorKind> kind_;
  std::string message_;
};

/// Runs `action` and reports the mybackup::Error it throws, if any. Any other exception
/// propagates (and fails the test).
inline ErrorOutcome error_kind(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return ErrorOutcome(error.kind(), error.what());
  }
  return ErrorOutcome();
}

/// The message of the mybackup::Error that `action` throws, or "" if it returns normally.
inline std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

inline Bytes to_bytes(const std::string& text) { return Bytes(text.begin(), text.end()); }

/// Deterministic pseudo-random bytes (common/test_data.hpp): incompressible unless asked.
inline Bytes random_data(std::size_t size, std::uint64_t seed = 1,
                         Compressibility kind = Compressibility::incompressible) {
  return test_data(size, seed, kind);
}

/// Options for a repository of small chunks (1 KiB .. 32 KiB, 4 KiB on average) and 64 KiB packs:
/// a few dozen KiB make several chunks, a few hundred several packs.
inline RepositoryOptions small_repository_options() {
  RepositoryOptions options;
  options.chunker = RepositoryOptions::chunker_for(4 * 1024);
  options.pack_target_size = 64 * 1024;
  return options;
}

inline void write_text_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out.good()) {
    throw std::runtime_error("cannot write " + path);
  }
}

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot read " + path);
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

/// Every regular file below `directory` (hidden ones included), as paths relative to it, sorted.
inline std::vector<std::string> files_under(const std::string& directory) {
  std::vector<std::string> files;
  std::error_code error;
  if (!std::filesystem::exists(directory, error)) {
    return files;
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    if (entry.is_regular_file()) {
      files.push_back(std::filesystem::relative(entry.path(), directory).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Every entry name below `directory` (files and directories) that starts with ".tmp-".
inline std::vector<std::string> temporaries_under(const std::string& directory) {
  std::vector<std::string> found;
  std::error_code error;
  if (!std::filesystem::exists(directory, error)) {
    return found;
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    if (entry.path().filename().string().rfind(".tmp-", 0) == 0) {
      found.push_back(entry.path().string());
    }
  }
  return found;
}

/// Parses one JSON object strictly (RFC 8259: no comments, no trailing commas, nothing after it).
/// Throws std::runtime_error on anything else, so tests can check that a document the program
/// wrote is real JSON.
inline nlohmann::json parse_json_object(std::string_view text) {
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    throw std::runtime_error(std::string("invalid JSON: ") + error.what());
  }
  if (!document.is_object()) {
    throw std::runtime_error("not a JSON object: " + std::string(text));
  }
  return document;
}

}  // namespace testing
}  // namespace mybackup
