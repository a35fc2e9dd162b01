// End-to-end tests of hostile text: file names and text on the destination (a lock's holder, a
// key's label) holding escape sequences, newlines, bidi overrides and bytes that are not UTF-8.
// Whatever prints them (backup, list, restore, status, config show, key list, the lock refusal,
// the legacy `schedule backups`) must show them escaped, on the line they belong to, and the log
// must keep one well-formed record per line; the data itself (catalog, restored names, --json
// values) keeps the names exactly.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

using namespace std::string_literals;

// A source directory and files whose names attack the terminal and the log.
const std::string kDir = "dir\x1b[2J\n2026-01-01T00:00:00.000+00:00 [error] pid=1 forged";
const std::string kDirShown = "dir\\x1b[2J\\n2026-01-01T00:00:00.000+00:00 [error] pid=1 forged";
const std::string kRed = "name\x1b[31m\nred.txt";
const std::string kRedShown = "name\\x1b[31m\\nred.txt";
const std::string kLatin1 = "caf\xe9.txt";  // not UTF-8
const std::string kLatin1Shown = "caf\\xe9.txt";
const std::string kBidi = "invoice_\xe2\x80\xae" "fdp.exe";  // reads "invoice_exe.pdf"
const std::string kBidiShown = "invoice_\\u202efdp.exe";
const std::string kFrench = "Élève à l'école ✓.txt";  // printable: shown as it is

/// The first byte of `text` that a terminal or a log reader would act on: a control character
/// other than the newline ending each line, DEL, a C1 control or a bidi override. "" if none.
std::string raw_control(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<std::uint8_t>(text[i]);
    const auto next = i + 1 < text.size() ? static_cast<std::uint8_t>(text[i + 1]) : 0;
    const auto third = i + 2 < text.size() ? static_cast<std::uint8_t>(text[i + 2]) : 0;
    if ((byte < 0x20 && byte != '\n') || byte == 0x7f || (byte == 0xc2 && next >= 0x80 && next <= 0x9f) ||
        (byte == 0xe2 && next == 0x80 && third >= 0xaa && third <= 0xae)) {
      return "byte " + std::to_string(byte) + " at " + std::to_string(i) + " in: " + nlohmann::json(text).dump();
    }
  }
  return "";
}

bool ascii_only(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<std::uint8_t>(c) < 0x80; });
}

class EscapeCliTest : public CliTest {
 protected:
  std::string source() const { return src_ + "/" + kDir; }
  std::string source_shown() const { return src_ + "/" + kDirShown; }

  /// init, the hostile source added, destination dest/.
  void configure_hostile() {
    init();
    ASSERT_EQ(::mkdir(source().c_str(), 0755), 0);
    for (const std::string& name : {kRed, kLatin1, kBidi, kFrench}) {
      write_text(source() + "/" + name, "content of " + name + "\n");
    }
    const Result added = run({"add", source()});
    ASSERT_TRUE(succeeded(added));
    EXPECT_EQ(added.out, "Added source " + source_shown() + "\n");
    ASSERT_TRUE(succeeded(run({"config", "set", "destination", dest_})));
  }

  /// Every line of every log in the home is one record that starts as the program writes it,
  /// and no log holds a raw control character. Returns the logs' text.
  std::string check_logs() {
    static const std::regex kRecord(
        R"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{3} ?[+-]\d\d:?\d\d \[(info|warning|error)\] pid=\d+ .*)");
    std::string all;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(home_ + "/logs", error)) {
      const std::string text = read_text(entry.path().string());
      EXPECT_EQ(raw_control(text), "") << entry.path();
      for (const std::string& line : lines_of(text)) {
        EXPECT_TRUE(std::regex_match(line, kRecord)) << "not a record of its own in " << entry.path() << ": " << line;
      }
      all += text;
    }
    return all;
  }
};

TEST_F(EscapeCliTest, HostileFileNamesAreShownEscapedAndKeptExact) {
  ASSERT_NO_FATAL_FAILURE(configure_hostile());

  const Result backup = run({"backup", "--verbose"});
  ASSERT_TRUE(succeeded(backup));
  EXPECT_EQ(raw_control(backup.out + backup.err), "") << backup;
  for (const std::string& shown : {kRedShown, kLatin1Shown, kBidiShown, kFrench}) {
    EXPECT_TRUE(contains(backup.out, "added    " + source_shown() + "/" + shown + "\n")) << shown << backup;
  }

  const Result listed = run({"restore", "--list"});
  ASSERT_TRUE(succeeded(listed));
  EXPECT_EQ(raw_control(listed.out + listed.err), "") << listed;
  const std::vector<std::string> lines = lines_of(listed.out);
  ASSERT_EQ(lines.size(), 5U) << "one line per file and a summary" << listed;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(lines[i].rfind(source_shown() + "/", 0), 0U) << lines[i];
  }
  for (const std::string& shown : {kRedShown, kLatin1Shown, kBidiShown, kFrench}) {
    EXPECT_TRUE(contains(listed.out, source_shown() + "/" + shown + "  (version 1, ")) << shown << listed;
  }

  const Result versions = run({"list", source() + "/" + kRed});
  ASSERT_TRUE(succeeded(versions));
  EXPECT_EQ(raw_control(versions.out), "") << versions;
  EXPECT_EQ(lines_of(versions.out).front(), source_shown() + "/" + kRedShown);

  // --json: the exact names (a parser reads them back), pure ASCII, and one document even with a
  // name that is not UTF-8 (it reads as U+FFFD).
  const Result versions_json = run({"list", "--json", source() + "/" + kRed});
  ASSERT_TRUE(succeeded(versions_json));
  EXPECT_TRUE(ascii_only(versions_json.out)) << versions_json;
  EXPECT_EQ(json_of(versions_json.out)["path"], source() + "/" + kRed);
  const Result listed_json = run({"restore", "--list", "--json"});
  ASSERT_TRUE(succeeded(listed_json));
  EXPECT_TRUE(ascii_only(listed_json.out)) << listed_json;
  std::vector<std::string> json_paths;
  const nlohmann::json listed_document = json_of(listed_json.out);
  for (const nlohmann::json& file : listed_document["files"]) {
    json_paths.push_back(file.at("path").get<std::string>());
  }
  std::sort(json_paths.begin(), json_paths.end());
  std::vector<std::string> expected{source() + "/" + kBidi, source() + "/" + kFrench, source() + "/" + kRed,
                                    source() + "/caf\xef\xbf\xbd.txt"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(json_paths, expected);

  const std::string target = root_ + "/restored";
  const Result dry_run = run({"restore", "--directory", source(), "--destination", target, "--dry-run"});
  ASSERT_TRUE(succeeded(dry_run));
  EXPECT_EQ(raw_control(dry_run.out + dry_run.err), "") << dry_run;
  EXPECT_EQ(lines_of(dry_run.out).size(), 5U) << "the directory and its four files" << dry_run;
  EXPECT_TRUE(contains(dry_run.out, "would restore  " + target + "/" + kRedShown + "\n")) << dry_run;
  const Result restored = run({"restore", "--directory", source(), "--destination", target});
  ASSERT_TRUE(succeeded(restored));
  EXPECT_EQ(raw_control(restored.out + restored.err), "") << restored;
  for (const std::string& name : {kRed, kLatin1, kBidi, kFrench}) {
    EXPECT_EQ(read_text(target + "/" + name), "content of " + name + "\n") << "restored under its exact name";
  }

  const Result status = run({"status"});
  ASSERT_TRUE(succeeded(status));
  EXPECT_EQ(raw_control(status.out + status.err), "") << status;
  EXPECT_TRUE(contains(status.out, "\n  " + source_shown() + "  4 files\n")) << status;
  const Result shown = run({"config", "show"});
  ASSERT_TRUE(succeeded(shown));
  EXPECT_EQ(raw_control(shown.out), "") << shown;
  EXPECT_TRUE(contains(shown.out, "\n  " + source_shown() + "\n")) << shown;

  // An error message naming a path: one line, escaped.
  const Result missing = run({"list", source() + "/gone\x1b[2J\nhere"});
  EXPECT_TRUE(failed_with(missing, 1, {"no backup of " + source_shown() + "/gone\\x1b[2J\\nhere"}));

  const std::string logs = check_logs();
  EXPECT_TRUE(contains(logs, kDirShown)) << "the source path is logged, escaped";
}

TEST_F(EscapeCliTest, HostileLockHolderIsRefusedOnOneEscapedLine) {
  first_backup();
  // Another writer's lock, written on the destination as an attacker may: its host name and
  // purpose hold escape sequences and newlines (JSON-escaped in the file, raw once parsed).
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch());
  ASSERT_TRUE(::mkdir((dest_ + "/locks").c_str(), 0755) == 0 || errno == EEXIST);
  write_text(dest_ + "/locks/0123456789abcdef.json",
             "{\"host\": \"evil\\u001b[2J\\nhost\\u009b31m\", \"pid\": " + std::to_string(::getpid()) +
                 ", \"purpose\": \"backup\\u001b]0;pwned\\u0007\", \"time_ns\": " + std::to_string(now.count()) +
                 ", \"time\": \"2026-01-01T00:00:00Z\"}\n");
  write_text(src_ + "/new.txt", "new\n");

  const Result locked = run({"backup"});
  EXPECT_TRUE(failed_with(locked, 1, {"locked by backup\\x1b]0;pwned\\x07 (pid", "on evil\\x1b[2J\\nhost\\u009b31m since"}));
  EXPECT_EQ(raw_control(locked.err), "") << locked;

  const std::string logs = check_logs();
  EXPECT_TRUE(contains(logs, "evil\\x1b[2J\\nhost\\u009b31m")) << logs;
}

TEST_F(EscapeCliTest, HostileKeyLabelIsListedEscaped) {
  first_backup();
  RunOptions options;
  options.no_terminal = true;
  options.env = {{"MYBACKUP_TEST_SCRYPT_N", "16"}, {"MYBACKUP_PASSPHRASE", "tulip anvil 42 orbit"}};
  ASSERT_TRUE(succeeded(run({"key", "add", "--label", "offsite"}, options)));
  // `key add` refuses such a label; someone with write access to the destination edits it in.
  const std::vector<std::string> keys = files_below(dest_ + "/keys");
  ASSERT_EQ(keys.size(), 1U);
  const std::string key_file = dest_ + "/keys/" + keys[0];
  std::string text = read_text(key_file);
  const std::string written = "\"label\": \"offsite\"";
  const std::size_t at = text.find(written);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, written.size(), "\"label\": \"off\\u001b[2Jsite\\nmybackup: error: forged\"");
  write_text(key_file, text);
  const std::string label = "off\x1b[2Jsite\nmybackup: error: forged";

  const Result listed = run({"key", "list"});
  ASSERT_TRUE(succeeded(listed));
  EXPECT_EQ(raw_control(listed.out), "") << listed;
  ASSERT_EQ(lines_of(listed.out).size(), 2U) << "a header and one key" << listed;
  EXPECT_TRUE(contains(listed.out, "  off\\x1b[2Jsite\\nmybackup: error: forged\n")) << listed;

  const Result listed_json = run({"key", "list", "--json"});
  ASSERT_TRUE(succeeded(listed_json));
  EXPECT_EQ(json_of(listed_json.out)["keys"][0]["label"], label) << listed_json;
  check_logs();
}

TEST_F(EscapeCliTest, LegacyArchiveListingEscapesControlsAndKeepsTheRest) {
  ASSERT_EQ(::mkdir(home_.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((home_ + "/backups").c_str(), 0700), 0);
  write_text(home_ + "/backups/evil\x1b[2J\nname.tar", "");
  const Result listed = run({"schedule", "backups"});
  ASSERT_TRUE(succeeded(listed));
  EXPECT_EQ(listed.out, "evil\\x1b[2J\\nname.tar\n");

  ASSERT_EQ(::unlink((home_ + "/backups/evil\x1b[2J\nname.tar").c_str()), 0);
  write_text(home_ + "/backups/docs_morning.tar", "");
  EXPECT_EQ(run({"schedule", "backups"}).out, "docs_morning.tar\n") << "ordinary names stay byte for byte";
  check_logs();
}

}  // namespace
}  // namespace mybackup_cli_test
