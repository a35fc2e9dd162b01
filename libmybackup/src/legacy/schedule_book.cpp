#include "mybackup/legacy/schedule_book.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstdio>

#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/source/scanner.hpp"
#include "util/unique_fd.hpp"

namespace mybackup {

namespace {

constexpr std::size_t kMaxNameLength = 200;
constexpr const char* kForm = "expected PATH;HH:MM;NAME, e.g. \"documents;09:00;docs_morning\"";

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) {
    return "";
  }
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

bool is_comment_or_blank(const std::string& text) {
  const std::string trimmed = trim(text);
  return trimmed.empty() || trimmed.front() == '#';
}

int two_digits(const std::string& text) {
  if (text.size() != 2 || text[0] < '0' || text[0] > '9' || text[1] < '0' || text[1] > '9') {
    return -1;
  }
  return (text[0] - '0') * 10 + (text[1] - '0');
}

void check_name(const std::string& name) {
  if (name.empty()) {
    throw Error(ErrorKind::usage, std::string("the name is empty: ") + kForm);
  }
  if (name.size() > kMaxNameLength) {
    throw Error(ErrorKind::usage, "the name is " + std::to_string(name.size()) + " characters long: use at most " +
                                      std::to_string(kMaxNameLength));
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) {
      const std::string shown = c == ' ' ? "a space" : std::string("'") + c + "'";
      throw Error(ErrorKind::usage, "the name '" + name + "' contains " + shown +
                                        ": use only letters, digits, '_', '-' and '.'");
    }
  }
  if (name.front() == '.') {
    throw Error(ErrorKind::usage, "the name '" + name + "' starts with '.': its archive would be a hidden file; "
                                  "start it with a letter or a digit");
  }
}

std::size_t parse_index(const std::string& text) {
  std::size_t index = 0;
  const char* end = text.data() + text.size();
  const auto [stop, problem] = std::from_chars(text.data(), end, index);
  if (text.empty() || problem != std::errc() || stop != end) {
    throw Error(ErrorKind::usage, "'" + text + "' is not a schedule index: give the number `mybackup schedule list` shows");
  }
  return index;
}

}  // namespace

std::string Schedule::time_text() const {
  char text[8];
  std::snprintf(text, sizeof text, "%02d:%02d", hour, minute);
  return text;
}

std::string Schedule::line() const { return path + ";" + time_text() + ";" + name; }

std::string Schedule::resolved_path(const std::string& base_directory) const {
  if (!path.empty() && path.front() == '/') {
    return normalize_path(path);
  }
  return normalize_path(join_path(base_directory, path));
}

Schedule parse_schedule(const std::string& text) {
  if (text.find('\n') != std::string::npos) {
    throw Error(ErrorKind::usage, std::string("a schedule is one line: ") + kForm);
  }
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (;;) {
    const auto semicolon = text.find(';', start);
    fields.push_back(trim(text.substr(start, semicolon == std::string::npos ? std::string::npos : semicolon - start)));
    if (semicolon == std::string::npos) {
      break;
    }
    start = semicolon + 1;
  }
  if (fields.size() != 3) {
    throw Error(ErrorKind::usage, "'" + text + "' has " + std::to_string(fields.size()) + " field" +
                                      (fields.size() == 1 ? "" : "s") + " separated by ';': " + kForm);
  }
  Schedule schedule;
  schedule.path = fields[0];
  if (schedule.path.empty()) {
    throw Error(ErrorKind::usage, std::string("the path is empty: ") + kForm);
  }
  const std::string& time = fields[1];
  const auto colon = time.find(':');
  const int hour = colon == std::string::npos ? -1 : two_digits(time.substr(0, colon));
  const int minute = colon == std::string::npos ? -1 : two_digits(time.substr(colon + 1));
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59) {
    throw Error(ErrorKind::usage, "the time '" + time + "' must be HH:MM with hours 00-23 and minutes 00-59, e.g. 09:00");
  }
  schedule.hour = hour;
  schedule.minute = minute;
  schedule.name = fields[2];
  check_name(schedule.name);
  return schedule;
}

ScheduleBook ScheduleBook::parse(const std::string& text, const std::string& origin) {
  ScheduleBook book;
  std::size_t start = 0;
  std::size_t number = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    Line entry{line, std::nullopt};
    if (!is_comment_or_blank(line)) {
      try {
        entry.schedule = parse_schedule(line);
        if (book.find(entry.schedule->name)) {
          throw Error(ErrorKind::usage, "the name '" + entry.schedule->name +
                                            "' is used twice: each schedule needs its own name (its archive is NAME.tar)");
        }
      } catch (const Error& error) {
        throw Error(ErrorKind::config, origin + ":" + std::to_string(number) + ": " + error.what() +
                                           " (fix or delete that line)");
      }
    }
    book.lines_.push_back(std::move(entry));
  }
  return book;
}

std::string ScheduleBook::serialize() const {
  std::string text;
  for (const Line& line : lines_) {
    text += line.text;
    text += '\n';
  }
  return text;
}

std::vector<Schedule> ScheduleBook::schedules() const {
  std::vector<Schedule> result;
  for (const Line& line : lines_) {
    if (line.schedule) {
      result.push_back(*line.schedule);
    }
  }
  return result;
}

std::size_t ScheduleBook::size() const {
  std::size_t count = 0;
  for (const Line& line : lines_) {
    count += line.schedule ? 1 : 0;
  }
  return count;
}

std::optional<Schedule> ScheduleBook::find(const std::string& name) const {
  for (const Line& line : lines_) {
    if (line.schedule && line.schedule->name == name) {
      return line.schedule;
    }
  }
  return std::nullopt;
}

void ScheduleBook::add(const Schedule& schedule) {
  if (const auto existing = find(schedule.name)) {
    throw Error(ErrorKind::usage, "a schedule named '" + schedule.name + "' already exists (" + existing->line() +
                                      "): choose another name, or delete that one first");
  }
  lines_.push_back(Line{schedule.line(), schedule});
}

Schedule ScheduleBook::remove(std::size_t index) {
  std::size_t seen = 0;
  for (auto it = lines_.begin(); it != lines_.end(); ++it) {
    if (!it->schedule) {
      continue;
    }
    if (seen == index) {
      Schedule removed = *it->schedule;
      lines_.erase(it);
      return removed;
    }
    ++seen;
  }
  if (seen == 0) {
    throw Error(ErrorKind::usage, "there is no schedule " + std::to_string(index) +
                                      ": there are no schedules (see `mybackup schedule list`)");
  }
  throw Error(ErrorKind::usage, "there is no schedule " + std::to_string(index) + ": the indexes are 0 to " +
                                    std::to_string(seen - 1) + " (see `mybackup schedule list`)");
}

ScheduleBook load_schedule_book(const std::string& path) {
  if (!path_exists(path)) {
    return ScheduleBook();
  }
  const Bytes data = read_file(path);
  return ScheduleBook::parse(std::string(data.begin(), data.end()), path);
}

void edit_schedule_file(const std::string& path, const std::function<void(ScheduleBook&)>& change) {
  make_directories(parent_directory(path), 0700);
  const std::string lock_path = path + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (lock.get() < 0) {
    throw_system_error(errno, "cannot open the lock file " + lock_path);
  }
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      throw_system_error(errno, "cannot lock " + lock_path);
    }
  }
  // Read only under the lock: what another writer renamed into place before is part of it.
  ScheduleBook book = load_schedule_book(path);
  change(book);
  write_file_atomic(path, as_bytes(book.serialize()), 0644);
  // The lock is released when `lock` closes, after the rename and the directory sync.
}

std::size_t add_schedule(const std::string& path, const std::string& line_text, const std::string& base_directory) {
  const Schedule schedule = parse_schedule(line_text);
  const std::string source = schedule.resolved_path(base_directory);
  if (!path_exists(source)) {
    const bool relative = schedule.path.front() != '/';
    throw Error(ErrorKind::usage, "the path " + source + " does not exist" +
                                      (relative ? " (a relative path is read from " + base_directory + ")" : "") +
                                      ": give an existing file or directory" + (relative ? ", or an absolute path" : ""));
  }
  std::size_t index = 0;
  edit_schedule_file(path, [&](ScheduleBook& book) {
    book.add(schedule);
    index = book.size() - 1;
  });
  return index;
}

Schedule delete_schedule(const std::string& path, const std::string& index_text) {
  Schedule removed;
  edit_schedule_file(path, [&](ScheduleBook& book) {
    const std::size_t index = parse_index(index_text);
    removed = book.remove(index);
  });
  return removed;
}

}  // namespace mybackup
