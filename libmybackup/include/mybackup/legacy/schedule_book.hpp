#pragma once
// backup_schedules.txt: the schedules of the legacy scheduler (`mybackup schedule …`), in the
// format of the original tool, so that a file written for it is read as is:
//
//   # Comments and blank lines are kept through every change made by mybackup.
//   documents;09:00;docs_morning
//   /home/me/photos;18:30;photos_evening
//
//   line   = schedule / comment / blank
//   schedule = path ";" time ";" name      (spaces around each field are ignored)
//   time   = HH ":" MM                     two digits each, 00-23 and 00-59, local time
//   name   = 1*200 (ALPHA / DIGIT / "_" / "-" / "."), not starting with "."; unique in the file
//   path   = any text without ";"; a relative path is resolved against the base directory (the
//            home: the counterpart of the legacy tool's working directory, /app in its container)
//   comment = *WSP "#" *CHAR
//
// A schedule archives its path into <archive_dir>/<name>.tar once a day at HH:MM.
// Schedules are numbered from 0 in file order, skipping comments and blank lines: these are the
// indexes `schedule list` shows and `schedule delete N` takes.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mybackup {

struct Schedule {
  std::string path;  // as written (possibly relative)
  int hour = 0;      // 0..23
  int minute = 0;    // 0..59
  std::string name;

  /// "09:00".
  std::string time_text() const;
  /// The canonical line: "documents;09:00;docs_morning".
  std::string line() const;
  /// The path to archive: `path` if absolute, else `base_directory`/`path`, normalized.
  std::string resolved_path(const std::string& base_directory) const;
};

/// Parses one schedule line. Throws Error(usage) with one line naming the problem and the
/// expected form, e.g. "time '9:00' must be HH:MM (00-23:00-59), e.g. 09:00". Does not look at
/// the file system.
Schedule parse_schedule(const std::string& text);

/// The whole file: schedules in order, with the comments and blank lines between them.
class ScheduleBook {
 public:
  ScheduleBook() = default;

  /// Parses the text of a schedule file. Throws Error(config) "<origin>:<line>: <problem>" for an
  /// invalid line or a duplicate name. A final line without '\n' and CRLF line ends are accepted.
  static ScheduleBook parse(const std::string& text, const std::string& origin);

  /// The file text: every line read, unchanged, then the lines added; '\n' after each line.
  std::string serialize() const;

  /// The schedules in order (index = position in this vector).
  std::vector<Schedule> schedules() const;
  std::size_t size() const;
  /// The schedule named `name`, if any.
  std::optional<Schedule> find(const std::string& name) const;

  /// Appends a schedule. Error(usage) if its name is taken.
  void add(const Schedule& schedule);
  /// Removes and returns schedule `index`; comments and blank lines stay. Error(usage) if there
  /// is no such index ("no schedule 5: the indexes are 0 to 2 (see `mybackup schedule list`)").
  Schedule remove(std::size_t index);

 private:
  struct Line {
    std::string text;                 // as read (without the line end)
    std::optional<Schedule> schedule;  // empty for a comment or a blank line
  };
  std::vector<Line> lines_;
};

/// Reads a schedule file. A missing file is an empty book. Error(config) as ScheduleBook::parse,
/// Error(io) if it cannot be read.
ScheduleBook load_schedule_book(const std::string& path);

/// Changes a schedule file safely against other writers: takes an exclusive flock on
/// "<path>.lock" (waiting for other writers), reads the file, calls `change`, and writes the result
/// to a temporary file that is fsynced and renamed over `path` (then the directory is fsynced).
/// If `change` throws, the file is left untouched and the exception propagates. Creates the
/// directory of `path` (mode 0700) if needed. Two concurrent edits never lose each other's lines.
void edit_schedule_file(const std::string& path, const std::function<void(ScheduleBook&)>& change);

/// `schedule create`: parses `line_text`, checks that its path exists (relative to
/// `base_directory`) and appends it to the file with edit_schedule_file. Returns the index of the
/// new schedule. Error(usage) for anything invalid (bad line, missing path, taken name), the file
/// unchanged; Error(config) if the file holds an invalid line already.
std::size_t add_schedule(const std::string& path, const std::string& line_text, const std::string& base_directory);

/// `schedule delete N`: `index_text` must be a whole number naming an existing schedule.
/// Returns the removed schedule. Error(usage) otherwise, the file unchanged.
Schedule delete_schedule(const std::string& path, const std::string& index_text);

}  // namespace mybackup
