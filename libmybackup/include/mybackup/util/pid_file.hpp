#pragma once
// The pid file of a long-running process (the scheduler service): one line, the pid in decimal.
//
// The process holds an exclusive flock(2) on the file for as long as it runs, so "running" means
// "the file is locked", not "a process with that pid exists": a pid reused by another program, or
// a service killed with SIGKILL, is never taken for a running service. A clean stop empties the
// file; a file that still names a pid but is not locked is stale (the process died).

#include <string>

namespace mybackup {

struct PidFileState {
  bool running = false;  // a process holds the lock
  long pid = 0;          // the pid written in the file (0 if none)
  bool stale = false;    // not running, yet a pid is written: the process ended without cleaning up
};

/// Inspects `path` without changing it. A missing file: not running. Error(io) if it cannot be read.
PidFileState inspect_pid_file(const std::string& path);

class PidFile {
 public:
  /// Creates or opens `path` (mode 0644), takes its lock without waiting and writes this
  /// process's pid. Error(locked) "the backup service is already running (pid N)" if another
  /// process holds it; Error(io) if the file cannot be written.
  explicit PidFile(std::string path);
  /// Empties the file and releases the lock.
  ~PidFile();
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace mybackup
