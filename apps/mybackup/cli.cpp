#include "cli.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "mybackup/util/clock.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/catalog/replay.hpp"

namespace mybackup::cli {

const Home& Context::home() {
  if (!home_) {
    home_ = std::make_unique<Home>(Home::locate(home_option));
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
                                                                           5 * 1024 * 1024, 3);
        logger_ = std::make_shared<spdlog::logger>("mybackup", std::move(sink));
        logger_->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z [%l] pid=%P %v");
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

namespace {
std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int signal_number) {
  g_stop.store(true);
  std::signal(signal_number, SIG_DFL);
}

}  // namespace

const std::atomic<bool>& stop_requested() { return g_stop; }

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}


std::unique_ptr<Repository> open_destination(const std::string& destination, const MasterKey& key, const Catalog& catalog,
                                             DestinationUse use, Context* context) {
  const std::string known_id = catalog.repository_id();
  const CreateIfMissing create =
      (known_id.empty() && use == DestinationUse::write) ? CreateIfMissing::yes : CreateIfMissing::no;
  std::unique_ptr<Repository> repository;
  try {
    // A new repository gets the options of config.yaml (repository.*); an existing one keeps its own.
    repository = Repository::open(open_backend(destination), key, create,
                                  create == CreateIfMissing::yes ? context->load_config().new_repository : RepositoryOptions{});
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::not_found) {
      throw;
    }
    if (!known_id.empty()) {
      throw Error(ErrorKind::mismatch, "destination " + destination + " holds no repository, but this catalog indexes repository " +
                                           known_id + ": set the destination back to where it is, or start a new home");
    }
    return nullptr;  // a read before the first backup: nothing there yet
  }
  if (!known_id.empty() && repository->info().id != known_id) {
    throw Error(ErrorKind::mismatch, "destination " + destination + " belongs to another repository (" + repository->info().id +
                                         ", this catalog indexes " + known_id + "): choose the right destination or another home");
  }
  if (use == DestinationUse::write) {
    if (context == nullptr) {
      throw std::logic_error("open_destination for a write needs the context");
    }
    // The key check above proved this repository uses our key, so our wrapped keys belong there.
    const auto pending = pending_keys(context->home());
    for (const std::string& id : move_wrapped_keys(*pending, repository->key_store())) {
      context->log().info("wrapped key {} moved from the home to the destination {}", id, destination);
    }
  }
  return repository;
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
  if (const char* env = std::getenv("MYBACKUP_PASSPHRASE"); env != nullptr) {
    text = env;
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
      throw Error(ErrorKind::usage, std::string("MYBACKUP_TEST_SCRYPT_N=") + text +
                                        " must be a power of two from 2 to 1048576 (it is for tests only: unset it)");
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

std::unique_ptr<Backend> pending_keys(const Home& home) { return make_local_backend(home.root(), 0600); }


void require_destination(const Config& config) {
  if (config.destination_primary.empty()) {
    throw Error(ErrorKind::usage, "destination missing: run `mybackup config set destination DIR`");
  }
}

void catch_up(Context& context, Catalog& catalog, Repository& repository, const std::string& command) {
  catalog.set_repository_id(repository.info().id);
  if (const std::size_t replayed = replay_new_manifests(catalog, repository); replayed > 0) {
    context.log().warn("{}: the catalog was behind the destination; recorded {} run(s) found there", command, replayed);
  }
}

std::unique_ptr<Repository> open_for_reading(Context& context, const Config& config, const MasterKey& key,
                                             const Catalog& catalog) {
  require_destination(config);
  const auto open_secondary = [&]() -> std::unique_ptr<Repository> {
    if (config.destination_secondary.empty()) {
      return nullptr;
    }
    try {
      return open_destination(config.destination_secondary, key, catalog, DestinationUse::read);
    } catch (const Error& error) {
      context.log().warn("secondary destination {} unusable: {}", config.destination_secondary, error.what());
      return nullptr;
    }
  };
  std::unique_ptr<Repository> primary;
  try {
    primary = open_destination(config.destination_primary, key, catalog, DestinationUse::read);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::mismatch && !is_access_failure(error.kind()) && error.kind() != ErrorKind::not_found) {
      throw;
    }
    std::unique_ptr<Repository> secondary = open_secondary();
    if (!secondary) {
      throw;
    }
    std::cerr << "mybackup: warning: the primary destination is unusable (" << error.what()
              << "); reading from the secondary " << secondary->location() << '\n';
    context.log().warn("primary destination unusable ({}); reading from the secondary {}", error.what(),
                       secondary->location());
    return secondary;
  }
  if (!primary) {
    throw Error(ErrorKind::not_found, "no repository at " + config.destination_primary + ": run `mybackup backup` first");
  }
  if (std::unique_ptr<Repository> secondary = open_secondary()) {
    primary->set_fallback(std::move(secondary));
  }
  return primary;
}

void report_fallback_reads(Context& context, const Repository& repository) {
  for (const Repository::FallbackRead& read : repository.fallback_reads()) {
    std::cerr << "mybackup: warning: pack " << read.pack << " was read from the secondary destination (on the primary: "
              << read.reason << "); run `mybackup verify`\n";
    context.log().warn("pack {} read from the secondary destination (primary: {})", read.pack, read.reason);
  }
}

void say(const Context& context, const std::string& line) {
  if (!context.quiet) {
    std::cout << line << '\n';
  }
}

void print_json(const nlohmann::ordered_json& document) {
  std::cout << document.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
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

std::string source_paths(const Config& config) {
  std::vector<std::string> paths;
  for (const SourceConfig& source : config.sources) {
    paths.push_back(source.path);
  }
  return join(paths, "none");
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
