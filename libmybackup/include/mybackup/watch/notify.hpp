#pragma once
// notify.command: a user's command run after a failed watch backup, without a shell.
//
//   notify.command: notify-send mybackup '{message}'
//
// The text is split into words like a shell splits a simple command (blanks separate words;
// '…' keeps everything literally; "…" keeps everything but \" and \\ escapes; \ outside quotes
// escapes the next character), with no expansion of any kind. Then {message}, {source} and
// {exit_code} are replaced inside each word, so a message with blanks or quotes stays one word.

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace mybackup {

/// The words of `text`. Error(usage) "notify.command: …" on an unclosed quote, a trailing
/// backslash, or no word at all.
std::vector<std::string> split_command_line(const std::string& text);

/// Each word with every "{name}" of `values` replaced (other braces are left as they are).
std::vector<std::string> substitute_placeholders(std::vector<std::string> words,
                                                 const std::map<std::string, std::string>& values);

struct CommandResult {
  bool started = false;    // false: it could not be run at all (see error)
  bool timed_out = false;  // killed (SIGKILL) at the timeout
  int exit_code = -1;      // its exit status, or 128 + signal; -1 when not started or killed
  std::string error;       // why it did not start
};

/// Runs `argv` (argv[0] searched in PATH) with stdin, stdout and stderr on /dev/null, waits for
/// it at most `timeout`, and kills it then. Never throws for the command's own failure.
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

}  // namespace mybackup
