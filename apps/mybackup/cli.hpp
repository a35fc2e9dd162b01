#pragma once
// Shared pieces of the command-line front end: the per-invocation context, output helpers and
// the registration function of each command group. Library code never prints; this layer does.

#include <CLI/CLI.hpp>
#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mybackup/engine/backup.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/home/config.hpp"
#include "mybackup/home/home.hpp"
#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/engine/clean.hpp"
#include "mybackup/engine/retention.hpp"
#include "mybackup/engine/sync.hpp"
#include "mybackup/session/session.hpp"

#include <spdlog/common.h>

namespace spdlog {
class formatter;
class logger;
}

namespace mybackup::cli {

/// Exit codes (documented in README and `mybackup --help`).
enum ExitCode : int { kOk = 0, kError = 1, kUsage = 2, kPartial = 3, kWrongKey = 4 };

/// State shared by every command of one invocation.
struct Context {
  std::string home_option;  // --home
  bool quiet = false;       // --quiet
  int exit_code = kOk;      // a command may lower success to kPartial

  /// The home, located once (from --home, MYBACKUP_HOME or ~/.mybackup).
  const Home& home();
  /// Config of an initialized home (Error(not_found) with a hint otherwise).
  Config load_config();
  /// The log of this home (logs/mybackup.log, rotating); a no-op logger before `init`.
  spdlog::logger& log();
  /// A library session on the initialized home: its events go to log(), and Ctrl-C / SIGTERM
  /// (handlers installed here) stop its runs at a safe point.
  std::unique_ptr<Session> open_session();

 private:
  class LogEvents;
  std::unique_ptr<Home> home_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<SessionEvents> events_;
};

/// File events for every log this program writes: a log names backed-up paths, so each file is
/// made private (0600) as it is opened, whatever the umask, rotated files included.
spdlog::file_event_handlers private_log_file();

/// First thing in main: no core dumps and no attaching to this process (it holds key material),
/// and $MYBACKUP_PASSPHRASE taken out of the environment (read_passphrase still sees it).
void protect_process();

/// SIGINT/SIGTERM set stop_requested(); long commands stop at a safe point. A second signal ends
/// the process at once (the handler restores the default action).
void install_stop_handlers();
const std::atomic<bool>& stop_requested();

// ---- passphrases and wrapped keys (cmd_init.cpp, cmd_key.cpp)

enum class PassphraseUse { existing, new_one };

/// A passphrase, wiped from memory when it goes (best effort: only this buffer). Not copyable.
class Passphrase {
 public:
  Passphrase() = default;
  ~Passphrase();
  Passphrase(const Passphrase&) = delete;
  Passphrase& operator=(const Passphrase&) = delete;
  const std::string& text() const { return text_; }

 private:
  friend void read_passphrase(const std::string&, PassphraseUse, Passphrase&);
  std::string text_;
};

/// Reads a passphrase into `out` from, in this order: `passphrase_file` (its first line) if not
/// empty; $MYBACKUP_PASSPHRASE; the terminal (/dev/tty, echo off; asked twice for a new one).
/// Error(usage) if none of these exists, the passphrase is empty or the two entries differ.
void read_passphrase(const std::string& passphrase_file, PassphraseUse use, Passphrase& out);

/// The scrypt cost of new wrapped keys: the production default, or N from the test-only variable
/// MYBACKUP_TEST_SCRYPT_N (the end-to-end tests set it to keep scrypt cheap; never set it otherwise).
ScryptParams new_key_scrypt_params();
/// Creation time (now), this machine's host name and `label`, for a new wrapped key.
WrapDetails new_key_details(const std::string& label);
/// Shows (stderr, "mybackup: warning: ...", and the log) the wrapped key files an unlock or a
/// listing left out, one line each (cmd_key.cpp).
void report_key_warnings(Context& context, const std::vector<std::string>& warnings);
/// The wrapped keys of `key_store` an unlock will try, its warnings already shown.
UnlockPlan plan_unlock_reporting(Context& context, const Backend& key_store);
/// Tells (stderr and log) which packs had to be read from the secondary destination.
void report_fallback_reads(Context& context, const Repository& repository);
/// Tells (stderr) which packs a clean found damaged and left as they were; sets kError if any.
void report_damaged_packs(Context& context, const CleanReport& report);
/// Tells (stderr) what catching up found wrong in a destination's manifests (gaps, a rollback,
/// manifests that fail authentication; the run went on without them); kPartial (3) if any.
void report_manifest_problems(Context& context, const std::vector<std::string>& problems);
/// Tells (stderr) what a sync found wrong (packs damaged or missing on the primary); kError if any.
void report_sync_problems(Context& context, const SyncReport& report);
/// After a backup or a clean: the secondary update's summary line (not with --json), its
/// problems, or a warning (exit code 3) saying how to finish later, since the run succeeded.
void report_secondary_update(Context& context, const std::string& secondary, const SecondaryUpdate& update, bool json);

// ---- backups (cmd_backup.cpp), shared by `backup` and `watch`

struct BackupFlags {
  std::string source;  // empty: every source
  bool dry_run = false;
  bool verbose = false;
  bool json = false;
};

/// One `mybackup backup` run: reads the config, takes the writer lock (Error(locked) if held),
/// backs up, prints the report, then applies retention.auto_clean and updates the secondary.
/// Sets context.exit_code to kPartial when files were skipped. Stops at a safe point with
/// Error(interrupted) once stop_requested().
void backup_once(Context& context, const BackupFlags& flags);

// ---- background services (daemon.cpp)

/// Starts a daemon (new session, no terminal, stdio on /dev/null, working directory /) that runs
/// `serve`; `serve` calls `ready` once it runs (pid file held). In the calling process: returns
/// the daemon's pid once ready() was called, or throws the error `serve` failed with (its kind
/// usage, else io; `silent_failure` if it ended without a word). In the daemon: returns nullopt
/// after `serve` ended, with context.exit_code set; the caller must return to main at once.
std::optional<std::string> start_daemon(Context& context, const std::string& what, const std::string& silent_failure,
                                        const std::function<void(const std::function<void()>& ready)>& serve);
/// Sends SIGTERM to the process holding `pid_file` (REQUIRES: it is running) and waits until it
/// released the file; returns its pid. Error(io) after `timeout`, naming `stop_command` to retry
/// and `slow_reason`. `what` names the service in messages ("the backup service").
long stop_daemon(const std::string& pid_file, const std::string& what, const std::string& stop_command,
                 const std::string& slow_reason, std::chrono::seconds timeout);

// ---- output: every line this program prints or logs goes through display_text()
// (mybackup/util/display_text.hpp), once, here. File names, paths and whatever is read from the
// destination (lock holders, key labels, manifests) may hold escape sequences or newlines; the
// program's own words hold none. So pass one whole line each time, without its newline.

/// Prints `line` to stdout unless --quiet.
void say(const Context& context, const std::string& line);
/// Prints `line` to stdout, even with --quiet (what the command was asked for: a listing).
void print_line(const std::string& line);
/// Prints `line` to stderr (warnings, per-file problems, errors: "mybackup: warning: ...").
void print_error(const std::string& line);
/// The format of every log this program writes: spdlog's `pattern`, each message passed through
/// display_text(), so a record stays one line whatever names its arguments hold.
std::unique_ptr<spdlog::formatter> log_formatter(const std::string& pattern);
/// Prints `--json` output: one document indented by 2, then a newline (even with --quiet). Pure
/// ASCII: controls and every non-ASCII character are \uXXXX escapes (what a parser reads is
/// unchanged). Bytes that are not UTF-8 (a file name may hold any) are printed as U+FFFD, so the
/// output stays JSON.
void print_json(const nlohmann::ordered_json& document);
/// A path in `--json` output: null when it is not set ("").
nlohmann::ordered_json path_or_null(const std::string& path);

/// "1.5 GiB", "12.0 MiB", "512 B".
std::string format_bytes(std::uint64_t bytes);
/// "1,234,567".
std::string format_count(std::uint64_t count);
/// "a, b, c" (`empty` when there is nothing to join).
std::string join(const std::vector<std::string>& items, const std::string& empty = "");
/// "1 file", "2,000 files"; `plural` when adding an s is wrong ("directories").
std::string counted(std::uint64_t count, const std::string& noun, const std::string& plural = "");
/// "3.2 s", "1 min 05 s".
std::string format_duration(double seconds);
/// Adds the standard "Example:" footer to a command's --help.
void add_example(CLI::App& command, const std::string& example);

void register_init(CLI::App& app, Context& context);
void register_sources(CLI::App& app, Context& context);
void register_config(CLI::App& app, Context& context);
void register_backup(CLI::App& app, Context& context);
void register_status(CLI::App& app, Context& context);
void register_history(CLI::App& app, Context& context);
void register_restore(CLI::App& app, Context& context);
void register_clean(CLI::App& app, Context& context);
void register_sync(CLI::App& app, Context& context);
void register_schedule(CLI::App& app, Context& context);
void register_verify(CLI::App& app, Context& context);
void register_key(CLI::App& app, Context& context);
void register_watch(CLI::App& app, Context& context);

}  // namespace mybackup::cli
