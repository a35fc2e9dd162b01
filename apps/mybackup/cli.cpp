#include "cli.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <iostream>

#include "mybackup/util/clock.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/display_text.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/catalog/replay.hpp"

namespace mybackup::cli {

const Home& Context::home() {
  if (!home_) {
    home_ = std::make_unique<Home>(Home::locate(home_option));
    if (const std::string problem = home_->permission_problem(); !problem.empty() && home_->initialized()) {
      print_error("mybackup: warning: " + problem);
    }
  }
  return *home_;
}

Config Context::load_config() {
  home().require_initialized();
  return mybackup::load_config(home().config_path());
}

spdlog::logger& Context::log() {
  if (!logger_) {
    try {
      if (home().initialized()) {
        make_directories(home().log_directory(), 0700);
        auto sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(home().log_directory() + "/mybackup.log",
                                                                           5 * 1024 * 1024, 3, false, private_log_file());
        logger_ = std::make_shared<spdlog::logger>("mybackup", std::move(sink));
        logger_->set_formatter(log_formatter("%Y-%m-%dT%H:%M:%S.%e%z [%l] pid=%P %v"));
        logger_->flush_on(spdlog::level::info);
      }
    } catch (const std::exception&) {
      logger_.reset();  // an unwritable log must not stop a backup
    }
    if (!logger_) {
      logger_ = std::make_shared<spdlog::logger>("mybackup", std::make_shared<spdlog::sinks::null_sink_mt>());
    }
  }
  return *logger_;
}

/// Session events go to the log, warnings and errors included (the CLI prints those from results).
class Context::LogEvents : public SessionEvents {
 public:
  explicit LogEvents(Context& context) : context_(context) {}
  void record(Level level, const std::string& line) override {
    switch (level) {
      case Level::info: context_.log().info("{}", line); break;
      case Level::warning: context_.log().warn("{}", line); break;
      case Level::error: context_.log().error("{}", line); break;
    }
  }

 private:
  Context& context_;
};

std::unique_ptr<Session> Context::open_session() {
  if (!events_) {
    events_ = std::make_unique<LogEvents>(*this);
  }
  install_stop_handlers();
  return std::make_unique<Session>(home(), *events_, &stop_requested());
}

spdlog::file_event_handlers private_log_file() {
  spdlog::file_event_handlers handlers;
  handlers.after_open = [](const spdlog::filename_t&, std::FILE* file) { ::fchmod(::fileno(file), 0600); };
  return handlers;
}

namespace {
std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int signal_number) {
  g_stop.store(true);
  std::signal(signal_number, SIG_DFL);
}

}  // namespace

const std::atomic<bool>& stop_requested() { return g_stop; }

namespace {
/// $MYBACKUP_PASSPHRASE as it was when the process started (protect_process took it).
std::optional<std::string>& environment_passphrase() {
  static std::optional<std::string> passphrase;
  return passphrase;
}

void wipe_environment_passphrase() {
  if (std::optional<std::string>& passphrase = environment_passphrase(); passphrase.has_value()) {
    secure_wipe(std::span(reinterpret_cast<std::uint8_t*>(passphrase->data()), passphrase->size()));
  }
}
}  // namespace

void protect_process() {
  // Key material lives in this process: no core file, and no other process of this user may
  // attach to it or read its memory.
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // The passphrase is taken out of the environment, so no child (notify.command, the scheduler's
  // jobs) inherits it, and wiped where it was.
  if (char* value = std::getenv("MYBACKUP_PASSPHRASE"); value != nullptr) {
    environment_passphrase() = std::string(value);
    secure_wipe(std::span(reinterpret_cast<std::uint8_t*>(value), std::strlen(value)));
    ::unsetenv("MYBACKUP_PASSPHRASE");
    std::atexit(wipe_environment_passphrase);
  }
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}


// ---------------------------------------------------------------- passphrases and wrapped keys

Passphrase::~Passphrase() { secure_wipe(std::span(reinterpret_cast<std::uint8_t*>(text_.data()), text_.capacity())); }

namespace {
void wipe(std::string& text) {
  secure_wipe(std::span(reinterpret_cast<std::uint8_t*>(text.data()), text.capacity()));
  text.clear();
}

/// The terminal's echo turned off for as long as this lives.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) == 0) {
      termios quiet = saved_;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      active_ = ::tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
    }
  }
  ~EchoOff() {
    if (active_) {
      ::tcsetattr(fd_, TCSAFLUSH, &saved_);
    }
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;
  bool active() const { return active_; }

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};


/// One line typed on the terminal `fd` after `prompt`, without echo. Error(usage) when `fd` is no
/// terminal.
void prompt_line(int fd, const std::string& prompt, std::string& out) {
  const EchoOff echo_off(fd);
  if (!echo_off.active()) {
    throw Error(ErrorKind::usage, "cannot turn off echo on the terminal: pass --passphrase-file FILE or set MYBACKUP_PASSPHRASE");
  }
  write_all(fd, as_bytes(prompt), "to the terminal");
  out.clear();
  out.reserve(1024);
  bool too_long = false;
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) {
      if (stop_requested()) {
        break;
      }
      continue;
    }
    if (n <= 0 || c == '\n') {
      break;
    }
    if (out.size() < out.capacity()) {  // never reallocate: a reallocation would leave a copy behind
      out.push_back(c);
    } else {
      too_long = true;
    }
  }
  write_all(fd, as_bytes("\n"), "to the terminal");
  if (stop_requested()) {
    wipe(out);
    throw Error(ErrorKind::interrupted, "interrupted: nothing changed");
  }
  if (too_long) {
    const std::size_t limit = out.capacity();
    wipe(out);
    throw Error(ErrorKind::usage, "a typed passphrase can have at most " + std::to_string(limit) +
                                      " characters: use a shorter one, or --passphrase-file FILE");
  }
  if (!out.empty() && out.back() == '\r') {
    out.pop_back();
  }
}

/// Closes a file descriptor at the end of a scope.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};
}  // namespace

void read_passphrase(const std::string& passphrase_file, PassphraseUse use, Passphrase& out) {
  std::string& text = out.text_;
  wipe(text);
  if (!passphrase_file.empty()) {
    Bytes raw = read_file(passphrase_file);
    const auto end = std::find(raw.begin(), raw.end(), static_cast<std::uint8_t>('\n'));
    text.reserve(static_cast<std::size_t>(end - raw.begin()));
    text.assign(raw.begin(), end);
    secure_wipe(raw);
    if (!text.empty() && text.back() == '\r') {
      text.pop_back();
    }
    if (text.empty()) {
      throw Error(ErrorKind::usage, "passphrase file " + passphrase_file + " starts with an empty line: put the passphrase on its first line");
    }
    return;
  }
  if (const std::optional<std::string>& env = environment_passphrase(); env.has_value()) {
    text = *env;
    if (text.empty()) {
      throw Error(ErrorKind::usage, "MYBACKUP_PASSPHRASE is set but empty: set it to the passphrase, or unset it to be asked");
    }
    return;
  }
  const FdCloser tty{::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)};
  if (tty.fd < 0) {
    throw Error(ErrorKind::usage, "a passphrase is needed and there is no terminal to ask for it: pass --passphrase-file FILE, "
                                  "set MYBACKUP_PASSPHRASE, or run the command on a terminal");
  }
  install_stop_handlers();  // Ctrl-C while echo is off ends the prompt and turns echo back on
  prompt_line(tty.fd, use == PassphraseUse::new_one ? "New passphrase: " : "Passphrase: ", text);
  if (text.empty()) {
    throw Error(ErrorKind::usage, "the passphrase is empty: nothing changed (an empty passphrase protects nothing)");
  }
  if (use == PassphraseUse::new_one) {
    std::string again;
    prompt_line(tty.fd, "Repeat the passphrase: ", again);
    const bool same = again == text;
    wipe(again);
    if (!same) {
      wipe(text);
      throw Error(ErrorKind::usage, "passphrases do not match: nothing changed, run the command again");
    }
  }
}

ScryptParams new_key_scrypt_params() {
  ScryptParams params;
  if (const char* text = std::getenv("MYBACKUP_TEST_SCRYPT_N"); text != nullptr && *text != '\0') {
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(text, &end, 10);
    params.n = n;
    if (errno != 0 || *end != '\0' || !params.acceptable()) {
      const std::string why = errno != 0 || *end != '\0' ? "not a number" : params.refusal();
      throw Error(ErrorKind::usage, std::string("MYBACKUP_TEST_SCRYPT_N=") + text + ": " + why +
                                        " (it is for tests only: unset it)");
    }
  }
  return params;
}

WrapDetails new_key_details(const std::string& label) {
  WrapDetails details;
  details.created = format_utc(system_clock().now_ns());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) {
    details.host = host;
  }
  details.label = label;
  return details;
}



void report_fallback_reads(Context& context, const Repository& repository) {
  for (const Repository::FallbackRead& read : repository.fallback_reads()) {
    print_error("mybackup: warning: pack " + read.pack + " was read from the secondary destination (on the primary: " +
                read.reason + "); run `mybackup verify`");
    context.log().warn("pack {} read from the secondary destination (primary: {})", read.pack, read.reason);
  }
}

void report_damaged_packs(Context& context, const CleanReport& report) {
  for (const std::string& name : report.damaged_packs) {
    print_error("mybackup: pack " + name + " could not be read or authenticated and was left as it is (its files may not restore)");
  }
  if (!report.damaged_packs.empty()) {
    context.exit_code = kError;
  }
}

void report_manifest_problems(Context& context, const std::vector<std::string>& problems) {
  for (const std::string& problem : problems) {
    print_error("mybackup: warning: " + problem);
  }
  if (!problems.empty() && context.exit_code == kOk) {
    context.exit_code = kPartial;
  }
}

void report_sync_problems(Context& context, const SyncReport& report) {
  for (const std::string& name : report.damaged_on_primary) {
    print_error("mybackup: pack " + name + " is damaged on the primary destination and was not copied (run `mybackup verify`)");
  }
  for (const std::string& name : report.only_on_secondary) {
    print_error("mybackup: pack " + name + " is missing from the primary destination; the secondary keeps its copy (run `mybackup verify`)");
  }
  for (const std::string& key : report.unreadable_manifests) {
    print_error("mybackup: manifest " + key +
                " fails authentication on the primary destination and was not copied (run `mybackup verify`)");
  }
  if (!report.damaged_on_primary.empty() || !report.only_on_secondary.empty() || !report.unreadable_manifests.empty()) {
    context.exit_code = kError;
  }
}

void report_secondary_update(Context& context, const std::string& secondary, const SecondaryUpdate& update, bool json) {
  if (update.done) {
    const SyncReport& report = *update.done;
    report_sync_problems(context, report);
    if (!json) {
      say(context, "Secondary " + secondary + " updated: " + counted(report.packs_copied, "pack") + " (" +
                       format_bytes(report.bytes_copied) + ") and " + counted(report.manifests_copied, "manifest") + " copied" +
                       (report.packs_deleted > 0 ? ", " + counted(report.packs_deleted, "pack") + " deleted" : ""));
    }
  } else if (update.configured) {
    print_error("mybackup: warning: the secondary destination " + secondary + " was not updated: " + update.failure +
                " (run `mybackup sync` once it is reachable)");
    if (context.exit_code == kOk) {
      context.exit_code = kPartial;
    }
  }
}

void say(const Context& context, const std::string& line) {
  if (!context.quiet) {
    print_line(line);
  }
}

void print_line(const std::string& line) { std::cout << display_text(line) << '\n'; }

void print_error(const std::string& line) { std::cerr << display_text(line) << '\n'; }

namespace {
/// spdlog's pattern formatter, given each message through display_text().
class EscapingFormatter final : public spdlog::formatter {
 public:
  explicit EscapingFormatter(std::string pattern)
      : pattern_(std::move(pattern)), inner_(std::make_unique<spdlog::pattern_formatter>(pattern_)) {}
  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& out) override {
    const std::string shown = display_text(std::string_view(message.payload.data(), message.payload.size()));
    spdlog::details::log_msg escaped = message;
    escaped.payload = spdlog::string_view_t(shown.data(), shown.size());
    inner_->format(escaped, out);
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<EscapingFormatter>(pattern_); }

 private:
  std::string pattern_;
  std::unique_ptr<spdlog::pattern_formatter> inner_;
};
}  // namespace

std::unique_ptr<spdlog::formatter> log_formatter(const std::string& pattern) {
  return std::make_unique<EscapingFormatter>(pattern);
}

void print_json(const nlohmann::ordered_json& document) {
  // ensure_ascii: every character beyond ASCII as \uXXXX, so C1 and bidi controls (which JSON
  // leaves alone) cannot reach a terminal either; a parser reads the same strings.
  std::cout << document.dump(2, ' ', true, nlohmann::ordered_json::error_handler_t::replace) << '\n';
}

nlohmann::ordered_json path_or_null(const std::string& path) {
  return path.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(path);
}

std::string format_bytes(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) {
    return std::to_string(bytes) + " B";
  }
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

std::string format_count(std::uint64_t count) {
  std::string digits = std::to_string(count);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<std::size_t>(i), ",");
  }
  return digits;
}

std::string join(const std::vector<std::string>& items, const std::string& empty) {
  if (items.empty()) {
    return empty;
  }
  std::string text = items.front();
  for (std::size_t i = 1; i < items.size(); ++i) {
    text += ", " + items[i];
  }
  return text;
}

std::string counted(std::uint64_t count, const std::string& noun, const std::string& plural) {
  return format_count(count) + " " + (count == 1 ? noun : plural.empty() ? noun + "s" : plural);
}

std::string format_duration(double seconds) {
  char text[32];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  } else {
    const auto whole = static_cast<long>(seconds);
    std::snprintf(text, sizeof text, "%ld min %02ld s", whole / 60, whole % 60);
  }
  return text;
}

void add_example(CLI::App& command, const std::string& example) { command.footer("\nExample:\n  " + example); }

}  // namespace mybackup::cli
