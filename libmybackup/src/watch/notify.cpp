#include "mybackup/watch/notify.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "mybackup/util/error.hpp"

extern char** environ;

namespace mybackup {

std::vector<std::string> split_command_line(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) {
        words.push_back(word);
        word.clear();
        in_word = false;
      }
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i == text.size()) {
        throw Error(ErrorKind::usage, "notify.command: a backslash ends the command: remove it or quote it");
      }
      word += text[i];
    } else if (c == '\'') {
      const std::size_t close = text.find('\'', i + 1);
      if (close == std::string::npos) {
        throw Error(ErrorKind::usage, "notify.command: a ' is not closed");
      }
      word += text.substr(i + 1, close - i - 1);
      i = close;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j) {
        if (text[j] == '\\' && j + 1 < text.size() && (text[j + 1] == '"' || text[j + 1] == '\\')) {
          ++j;
        }
        word += text[j];
      }
      if (j == text.size()) {
        throw Error(ErrorKind::usage, "notify.command: a \" is not closed");
      }
      i = j;
    } else {
      word += c;
    }
  }
  if (in_word) {
    words.push_back(word);
  }
  if (words.empty()) {
    throw Error(ErrorKind::usage, "notify.command: no command to run");
  }
  return words;
}

std::vector<std::string> substitute_placeholders(std::vector<std::string> words,
                                                 const std::map<std::string, std::string>& values) {
  for (std::string& word : words) {
    std::string out;
    for (std::size_t i = 0; i < word.size();) {
      bool replaced = false;
      if (word[i] == '{') {
        for (const auto& [name, value] : values) {
          const std::string placeholder = "{" + name + "}";
          if (word.compare(i, placeholder.size(), placeholder) == 0) {
            out += value;  // never scanned again: a value holding "{x}" stays literal
            i += placeholder.size();
            replaced = true;
            break;
          }
        }
      }
      if (!replaced) {
        out += word[i++];
      }
    }
    word = out;
  }
  return words;
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CommandResult result;
  if (argv.empty()) {
    result.error = "no command";
    return result;
  }
  std::vector<char*> pointers;
  for (const std::string& word : argv) {
    pointers.push_back(const_cast<char*>(word.c_str()));
  }
  pointers.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (const int fd : {0, 1, 2}) {
    posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int failed = ::posix_spawnp(&pid, pointers[0], &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed != 0) {
    result.error = argv[0] + ": " + std::strerror(failed);
    return result;
  }
  result.started = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      break;
    }
    if (done < 0 && errno != EINTR) {
      result.error = std::string("waitpid: ") + std::strerror(errno);
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      result.timed_out = true;
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace mybackup
