#include "servers/sshd_server.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace mybackup::test_servers {

namespace {

constexpr const char* kSshd = "/usr/sbin/sshd";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.good()) {
    throw std::runtime_error("sshd test server: cannot write " + path);
  }
}

/// Spawns `argv` (searched in PATH) with stdin from /dev/null and stdout and stderr appended to `log`.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int error = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

/// Starts `argv` (an absolute path) as spawn() does, and makes the kernel kill it when this
/// process dies: a test that crashes leaves no server behind.
pid_t spawn_tied_to_this_process(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (null_fd < 0 || log_fd < 0) {
    throw std::runtime_error("sshd test server: cannot open " + log + ": " + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent || ::dup2(null_fd, 0) < 0 ||
        ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) {
      ::_exit(126);
    }
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  ::close(null_fd);
  ::close(log_fd);
  return pid;
}

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    throw std::runtime_error(std::string("sshd test server: no free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

bool accepts_connections(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool connected = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  if (fd >= 0) {
    ::close(fd);
  }
  return connected;
}

/// The processes whose parent is `pid`, and theirs, from /proc.
std::vector<pid_t> descendants_of(pid_t pid) {
  std::vector<std::pair<pid_t, pid_t>> parents;  // (pid, parent)
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const std::string stat_line = read_file("/proc/" + name + "/stat");
    const std::size_t command_end = stat_line.rfind(')');  // the command may hold spaces and ')'
    if (command_end == std::string::npos || command_end + 2 > stat_line.size()) {
      continue;
    }
    std::istringstream fields(stat_line.substr(command_end + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    parents.emplace_back(static_cast<pid_t>(std::stol(name)), parent);
  }
  std::vector<pid_t> found{pid};
  for (std::size_t i = 0; i < found.size(); ++i) {
    for (const auto& [child, parent] : parents) {
      if (parent == found[i]) {
        found.push_back(child);
      }
    }
  }
  found.erase(found.begin());
  return found;
}

std::string current_user() {
  const passwd* entry = ::getpwuid(::geteuid());
  if (entry == nullptr) {
    throw std::runtime_error("sshd test server: the current user has no name (getpwuid)");
  }
  return entry->pw_name;
}

void make_key_pair(const std::string& path) {
  std::string output;
  if (run_command({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mybackup-test", "-f", path}, &output) != 0) {
    throw std::runtime_error("sshd test server: ssh-keygen failed (run scripts/bootstrap --servers): " + output);
  }
}

}  // namespace

int run_command(const std::vector<std::string>& argv, std::string* output) {
  char pattern[] = "/tmp/mybackup_command_XXXXXX";
  const int fd = ::mkstemp(pattern);
  if (fd < 0) {
    return -1;
  }
  ::close(fd);
  const pid_t pid = spawn(argv, pattern);
  int status = 0;
  const bool waited = pid > 0 && ::waitpid(pid, &status, 0) == pid;
  if (output != nullptr) {
    *output = read_file(pattern);
  }
  ::unlink(pattern);
  return waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

SshdServer::SshdServer() {
  if (::access(kSshd, X_OK) != 0) {
    throw std::runtime_error(std::string(kSshd) + " is missing: the SFTP tests need OpenSSH's server; run scripts/bootstrap --servers " +
                             "(it installs openssh-server and openssh-client)");
  }
  char pattern[] = "/tmp/mybackup_sshd_XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    throw std::runtime_error(std::string("sshd test server: mkdtemp: ") + std::strerror(errno));
  }
  folder_ = pattern;
  user_ = current_user();
  host_key_ = folder_ + "/host_key";
  user_key_ = folder_ + "/user_key";
  known_hosts_ = folder_ + "/known_hosts";
  make_key_pair(host_key_);
  make_key_pair(user_key_);
  write_file(folder_ + "/authorized_keys", read_file(user_key_ + ".pub"));
  ::mkdir(login_folder().c_str(), 0700);
  if (::geteuid() == 0) {
    ::mkdir("/run/sshd", 0755);  // sshd's privilege separation folder, needed when root starts it
  }
  // Another process may take the free port before sshd binds it: then try another one.
  for (int attempt = 1;; ++attempt) {
    port_ = free_loopback_port();
    write_file(known_hosts_, known_hosts_line(host_key_));
    write_configuration();
    try {
      start();
      return;
    } catch (const std::runtime_error&) {
      if (attempt == 3) {
        throw;
      }
    }
  }
}

SshdServer::~SshdServer() {
  kill();
  std::error_code ignored;
  std::filesystem::remove_all(folder_, ignored);
}

void SshdServer::write_configuration() const {
  write_file(folder_ + "/sshd_config",
             "ListenAddress 127.0.0.1\n"
             "Port " + std::to_string(port_) + "\n"
             "HostKey " + host_key_ + "\n"
             "PidFile " + folder_ + "/sshd.pid\n"
             "AuthorizedKeysFile " + folder_ + "/authorized_keys\n"
             "StrictModes no\n"
             // Without PAM, sshd refuses accounts whose password is locked ("!", "*"), as service
             // and CI accounts often are; a non-root sshd can only let its own user in, and with
             // PAM the account check runs through pam_unix's helper. Root needs no PAM.
             "UsePAM " + std::string(::geteuid() == 0 ? "no" : "yes") + "\n"
             "PasswordAuthentication no\n"
             "KbdInteractiveAuthentication no\n"
             "PubkeyAuthentication yes\n"
             "PermitRootLogin prohibit-password\n"
             "Subsystem sftp internal-sftp -d " + login_folder() + "\n"
             "MaxStartups 100\n"
             "MaxSessions 100\n"
             "LogLevel ERROR\n");
}

void SshdServer::start() {
  if (pid_ > 0) {
    return;
  }
  pid_ = spawn_tied_to_this_process({kSshd, "-D", "-e", "-f", folder_ + "/sshd_config"}, folder_ + "/sshd.log");
  if (pid_ <= 0) {
    throw std::runtime_error("sshd test server: cannot start " + std::string(kSshd));
  }
  wait_until_ready();
}

void SshdServer::wait_until_ready() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!accepts_connections(port_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("sshd test server: sshd exited at start: " + log());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill();
      throw std::runtime_error("sshd test server: sshd does not accept connections after 20 s: " + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void SshdServer::kill() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGSTOP);  // no new session processes while they are found
  for (const pid_t child : descendants_of(pid_)) {
    ::kill(child, SIGKILL);
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string SshdServer::url(const std::string& path) const { return url(path, user_key_, known_hosts_); }

std::string SshdServer::url(const std::string& path, const std::string& identity, const std::string& known_hosts) const {
  return "sftp://" + user_ + "@127.0.0.1:" + std::to_string(port_) + path + "?identity=" + identity +
         "&known_hosts=" + known_hosts;
}

std::string SshdServer::host_key_fingerprint() const {
  std::string output;
  if (run_command({"ssh-keygen", "-l", "-E", "sha256", "-f", host_key_ + ".pub"}, &output) != 0) {
    throw std::runtime_error("sshd test server: ssh-keygen -l failed: " + output);
  }
  std::istringstream fields(output);
  std::string bits;
  std::string fingerprint;
  fields >> bits >> fingerprint;
  return fingerprint;
}

std::string SshdServer::make_key(const std::string& name) const {
  const std::string path = folder_ + "/" + name;
  make_key_pair(path);
  return path;
}

std::string SshdServer::known_hosts_line(const std::string& key) const {
  std::istringstream fields(read_file(key + ".pub"));
  std::string type;
  std::string base64;
  fields >> type >> base64;
  return "[127.0.0.1]:" + std::to_string(port_) + " " + type + " " + base64 + "\n";
}

std::string SshdServer::log() const { return read_file(folder_ + "/sshd.log"); }

}  // namespace mybackup::test_servers
