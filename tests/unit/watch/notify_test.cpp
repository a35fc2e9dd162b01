// notify.command: splitting, placeholders, running with a timeout.

#include "mybackup/watch/notify.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "test_util.hpp"

namespace mybackup {
namespace {

using Words = std::vector<std::string>;

TEST(SplitCommandLine, SplitsLikeAShellWithoutExpanding) {
  EXPECT_EQ(split_command_line("notify-send mybackup '{message}'"), (Words{"notify-send", "mybackup", "{message}"}));
  EXPECT_EQ(split_command_line("  a\t b  "), (Words{"a", "b"}));
  EXPECT_EQ(split_command_line("'it''s' \"say \\\"hi\\\" \\\\ \\n\" a\\ b"), (Words{"its", "say \"hi\" \\ \\n", "a b"}));
  EXPECT_EQ(split_command_line("echo $HOME `x` *"), (Words{"echo", "$HOME", "`x`", "*"}));
  EXPECT_EQ(split_command_line("x ''"), (Words{"x", ""}));
}

TEST(SplitCommandLine, RejectsUnclosedQuotesAndEmptyCommands) {
  EXPECT_EQ(testing::catch_error([] { split_command_line("echo 'oops"); }).kind(), ErrorKind::usage);
  EXPECT_EQ(testing::catch_error([] { split_command_line("echo \"oops"); }).kind(), ErrorKind::usage);
  EXPECT_EQ(testing::catch_error([] { split_command_line("echo \\"); }).kind(), ErrorKind::usage);
  EXPECT_EQ(testing::catch_error([] { split_command_line("   "); }).kind(), ErrorKind::usage);
}

TEST(SubstitutePlaceholders, ReplacesInsideWordsAndNeverRescans) {
  const Words words = substitute_placeholders({"x", "[{message}] {exit_code}", "{unknown}", "{source}"},
                                              {{"message", "it's {source}; rm -rf /"}, {"exit_code", "1"}, {"source", "/a b"}});
  EXPECT_EQ(words, (Words{"x", "[it's {source}; rm -rf /] 1", "{unknown}", "/a b"}));
}

TEST(RunCommand, ReportsTheExitCode) {
  EXPECT_EQ(run_command({"true"}, std::chrono::seconds(5)).exit_code, 0);
  const CommandResult failed = run_command({"sh", "-c", "exit 7"}, std::chrono::seconds(5));
  EXPECT_TRUE(failed.started);
  EXPECT_FALSE(failed.timed_out);
  EXPECT_EQ(failed.exit_code, 7);
}

TEST(RunCommand, PassesEachWordAsOneArgument) {
  testing::TempDir dir("notify_test_");
  const std::string out = dir / "out";
  const CommandResult result =
      run_command({"sh", "-c", "printf '%s|' \"$@\" > \"$0\"", out, "a b", "it's", "$HOME"}, std::chrono::seconds(5));
  ASSERT_EQ(result.exit_code, 0);
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "a b|it's|$HOME|");
}

TEST(RunCommand, KillsACommandThatOutlivesTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const CommandResult result = run_command({"sleep", "30"}, std::chrono::milliseconds(200));
  EXPECT_TRUE(result.started);
  EXPECT_TRUE(result.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(RunCommand, AMissingProgramDoesNotStart) {
  const CommandResult result = run_command({"/nonexistent/notifier", "x"}, std::chrono::seconds(5));
  EXPECT_FALSE(result.started);
  EXPECT_NE(result.error.find("/nonexistent/notifier"), std::string::npos) << result.error;
}

}  // namespace
}  // namespace mybackup
