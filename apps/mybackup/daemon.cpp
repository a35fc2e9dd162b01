// Background services of the command line (`schedule start|stop`, `watch start|stop`): detaching
// a daemon that reports its start through a pipe, and stopping it through its pid file.

#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "cli.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/util/pid_file.hpp"

namespace mybackup::cli {

namespace {

/// Best effort: the parent waiting on the pipe may be gone, and there is no one else to tell.
void write_to(int fd, const std::string& text) {
  try {
    write_all(fd, as_bytes(text), "to the starting command");
  } catch (const Error&) {
  }
}

std::string read_all(int fd) {
  std::string text;
  char buffer[512];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return text;
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace

std::optional<std::string> start_daemon(Context& context, const std::string& what, const std::string& silent_failure,
                                        const std::function<void(const std::function<void()>& ready)>& serve) {
  int channel[2];
  if (::pipe2(channel, O_CLOEXEC) != 0) {
    throw_system_error(errno, "cannot start " + what);
  }
  std::cout.flush();
  std::cerr.flush();
  const pid_t child = ::fork();
  if (child < 0) {
    throw_system_error(errno, "cannot start " + what);
  }
  if (child == 0) {
    // The intermediate child: a new session, then a grandchild that is no session leader (it can
    // never get a terminal) and whose parent is init once we exit.
    ::close(channel[0]);
    ::setsid();
    const pid_t daemon = ::fork();
    if (daemon != 0) {
      ::_exit(daemon < 0 ? 1 : 0);
    }
    if (::chdir("/") != 0) {
      ::_exit(1);
    }
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 || ::dup2(null_fd, 2) < 0) {
      ::_exit(1);
    }
    ::close(null_fd);
    int write_end = channel[1];
    try {
      serve([&write_end] {
        write_to(write_end, "ok " + std::to_string(::getpid()));
        ::close(write_end);
        write_end = -1;
      });
      context.exit_code = kOk;
    } catch (const Error& error) {
      if (write_end >= 0) {
        write_to(write_end, std::string(error.kind() == ErrorKind::usage ? "2" : "1") + error.what());
      }
      context.exit_code = kError;
    } catch (const std::exception& error) {
      if (write_end >= 0) {
        write_to(write_end, std::string("1") + error.what());
      }
      context.exit_code = kError;
    }
    if (write_end >= 0) {
      ::close(write_end);
    }
    context.quiet = true;
    return std::nullopt;  // the daemon ends like any command: back through main
  }

  ::close(channel[1]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string answer = read_all(channel[0]);
  ::close(channel[0]);
  if (answer.rfind("ok ", 0) == 0) {
    return answer.substr(3);
  }
  const std::string message = answer.empty() ? silent_failure : answer.substr(1);
  throw Error(!answer.empty() && answer[0] == '2' ? ErrorKind::usage : ErrorKind::io, message);
}

long stop_daemon(const std::string& pid_file, const std::string& what, const std::string& stop_command,
                 const std::string& slow_reason, std::chrono::seconds timeout) {
  long pid = inspect_pid_file(pid_file).pid;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int tries = 0; pid <= 0 && tries < 100; ++tries) {  // it may be writing its pid this instant
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    pid = inspect_pid_file(pid_file).pid;
  }
  if (pid <= 0) {
    throw Error(ErrorKind::io, what + " holds " + pid_file + " but wrote no pid in it: stop it by hand");
  }
  if (::kill(static_cast<pid_t>(pid), SIGTERM) != 0 && errno != ESRCH) {
    throw_system_error(errno, "cannot stop " + what + " (pid " + std::to_string(pid) + ")");
  }
  while (inspect_pid_file(pid_file).running) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ErrorKind::io, what + " (pid " + std::to_string(pid) + ") did not stop within " +
                                     std::to_string(timeout.count()) + " s (" + slow_reason + "): run `" + stop_command +
                                     "` again, or `kill -9 " + std::to_string(pid) + "`");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pid;
}

}  // namespace mybackup::cli
