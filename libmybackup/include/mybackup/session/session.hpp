#pragma once
// A session: the workflows a front end runs against one home. It owns the order every writer
// follows — open the destination, take the writer lock, catch the catalog up with the destination,
// run, record a failure, apply automatic retention, bring the secondary destination up to date —
// so that `backup`, `clean`, `sync` and `watch` cannot drift apart. The CLI parses, calls a session
// and prints what it returns; nothing here prints. Progress goes to SessionEvents (the CLI's log).
//
// Errors: every call throws mybackup::Error; a failed backup or clean is recorded in the catalog
// (status "failed") before its error propagates, except a dry run, which records nothing.
// Thread safety: one thread at a time per Session. Several processes may hold sessions on the same
// home and destination: the repository's writer lock serializes the writers.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/catalog/replay.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/engine/backup.hpp"
#include "mybackup/engine/clean.hpp"
#include "mybackup/engine/retention.hpp"
#include "mybackup/engine/sync.hpp"
#include "mybackup/home/config.hpp"
#include "mybackup/home/home.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

/// Where a session writes what happened (one line each), for the front end's log. The result of
/// each call says the same things to the user; this is the record. Called on the session's thread.
class SessionEvents {
 public:
  enum class Level { info, warning, error };
  virtual ~SessionEvents() = default;
  virtual void record(Level level, const std::string& line) = 0;
};

enum class DestinationUse { read, write };

/// A secondary destination update after a backup or a clean (the run itself succeeded either way).
struct SecondaryUpdate {
  bool configured = false;        // false: no secondary destination, nothing was tried
  std::optional<SyncReport> done;  // what was copied, when the update ran
  std::string failure;            // why it did not run or stopped ("" when done)
};

struct BackupRequest {
  std::string only_source;  // empty: every source
  bool dry_run = false;
  /// Called for every added, changed, deleted or skipped entry, possibly from worker threads
  /// (see BackupOptions::on_file). May be empty.
  FileCallback on_file;
};

struct BackupOutcome {
  std::string destination;  // the primary destination, as configured
  BackupReport report;
  /// Problems in the destination's manifests found while catching up (replay.hpp): the backup
  /// went on without them; the front end reports each line (mybackup exits 3).
  std::vector<std::string> manifest_problems;
  /// retention.auto_clean: the clean that followed (not after a dry run).
  std::optional<CleanReport> auto_clean;
  /// The automatic clean failed: the backup is recorded, its report stands, this error is the
  /// command's failure ("the backup is done, but the automatic clean after it failed: ...").
  std::optional<Error> auto_clean_error;
  SecondaryUpdate secondary;  // not tried after a dry run or a failed automatic clean
};

struct CleanOutcome {
  std::string destination;  // where it ran; the configured primary when nothing is backed up
  bool nothing_backed_up = false;  // no repository yet: nothing was done
  CleanReport report;
  SecondaryUpdate secondary;  // not tried after a dry run
};

struct SyncOutcome {
  std::string primary;
  std::string secondary;
  std::vector<std::string> manifest_problems;  // on the primary, as BackupOutcome's
  bool nothing_backed_up = false;  // no repository on the primary yet: nothing was copied
  SyncReport report;
};

/// The repository to read from, and why it is not the primary when it is not.
struct ReadingRepository {
  std::unique_ptr<Repository> repository;
  /// Not empty: the primary was unusable for this reason and `repository` is the secondary.
  std::string primary_problem;
  /// Transfers worth running at once against `repository` (RestoreOptions::read_ahead):
  /// transfer.connections for a remote destination, 0 for a local one.
  unsigned connections = 0;
};

/// The secondary destination opened to consult (verify): `repository` is null when none is
/// configured or it cannot be used, `problem` then says why ("" when none is configured).
struct SecondaryForReading {
  std::unique_ptr<Repository> repository;
  std::string problem;
};

class Session {
 public:
  /// Opens `home`'s config and catalog. Error(not_found) with the `mybackup init` hint when the
  /// home is not initialized; the errors of parse_config and Catalog otherwise.
  /// `events` and `cancel` (may be null: never cancelled) must outlive the session; once *cancel is
  /// true, runs stop at their next safe point with Error(interrupted).
  Session(const Home& home, SessionEvents& events, const std::atomic<bool>* cancel = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Home& home() const { return home_; }
  const Config& config() const { return config_; }
  /// The home's key, loaded at the first call (load_key_file's errors), so that what needs no key
  /// (listing the catalog) works with a damaged key file.
  const MasterKey& key();
  Catalog& catalog() { return catalog_; }

  /// Error(usage) with the `config set destination` hint when no primary destination is set.
  void require_destination() const;

  /// The primary destination's repository, checked to be the one this catalog indexes
  /// (Error(mismatch) otherwise, or when the destination lost the repository the catalog knows).
  /// For DestinationUse::write: creates the repository when the catalog knows none yet, and moves
  /// the home's pending wrapped keys to it. Returns null for a read before the first backup.
  std::unique_ptr<Repository> open_primary(DestinationUse use);

  /// For restore: the primary, with the secondary (if configured and usable) as the fallback for
  /// missing or damaged packs; the secondary alone when the primary is unreachable, missing or
  /// another repository. Error(not_found) when nothing is backed up yet.
  ReadingRepository open_for_reading();

  /// For verify: the secondary destination, when one is configured and holds `primary`'s repository.
  SecondaryForReading open_secondary(const Repository& primary);

  /// The sources a backup reads: every configured source (or only `only`), each with the home
  /// and the destinations lying below it excluded (a repository is never backed up into itself).
  /// Error(usage) when there is no source, or `only` is not one.
  std::vector<BackupSource> backup_sources(const std::string& only = "") const;

  /// One backup: sources, writer lock (Error(locked) if held), catch-up, run, then
  /// retention.auto_clean and the secondary update. A dry run takes no lock and writes nothing.
  BackupOutcome backup(const BackupRequest& request);

  /// One clean with `policy` (default: the config's retention settings), then the secondary update.
  /// Error(corrupt), before anything is deleted, when the destination's manifests have a gap, were
  /// rolled back or cannot be read (the packs of the versions they hide would look unreferenced),
  /// unless the user accepted those losses (`verify --repair`).
  CleanOutcome clean(const RetentionPolicy& policy, bool dry_run);

  /// Brings the secondary destination up to date with the primary (both writer locks).
  /// Error(usage) when no secondary is configured or it is the primary.
  SyncOutcome sync();

  /// The retention policy config.yaml sets.
  RetentionPolicy retention_policy() const;

 private:
  CleanReport clean_locked_or_dry(Repository& repository, const RetentionPolicy& policy, bool dry_run);
  /// `manifest_problems` (may be null) receives the primary's, found while catching up.
  SyncReport sync_to_secondary(Repository& primary, std::vector<std::string>* manifest_problems = nullptr);
  SecondaryUpdate update_secondary(Repository& primary);
  ManifestCheck catch_up(Repository& repository, const std::string& command);
  void refuse_clean_unless_healthy(const ManifestCheck& check) const;
  std::unique_ptr<Repository> open_destination(const std::string& destination, DestinationUse use);
  /// config.yaml's transfer.* as the registry takes them.
  TransferOptions transfer_options() const;
  /// transfer.connections for a remote `destination`, 0 for a local one (a disk, where one
  /// transfer at a time is best).
  unsigned connections_for(const std::string& destination) const;
  void record_failure(RunKind kind, std::int64_t started_ns, const Error& error);
  void record(SessionEvents::Level level, const std::string& line) { events_.record(level, line); }

  const Home& home_;
  SessionEvents& events_;
  const std::atomic<bool>* cancel_;
  Config config_;
  std::string config_text_;  // config.yaml as read, recorded in each backup's manifest
  std::optional<MasterKey> key_;
  Catalog catalog_;
};

/// How `recover_home` gets the repository's key once the destination is open: from a key file,
/// or by unlocking a passphrase-wrapped key stored there (`key_store`, key_wrap.hpp).
using KeySource = std::function<MasterKey(const Backend& key_store)>;

struct RecoveryReport {
  std::string destination;  // normalized
  std::size_t runs = 0;     // runs recorded from the destination's manifests
  CatalogSummary summary;
  bool settings_recorded = false;  // false: no manifest held config.yaml, the home has defaults
  /// Gaps and unreadable manifests (replay.hpp): recorded without them; `init --from` exits 3.
  std::vector<std::string> manifest_problems;
  Config config;                   // the recovered settings, pointed at `destination`
};

/// `init --from`: makes `home` from an existing destination — the key from `key_source`, the
/// settings from the newest manifest that recorded them, the catalog replayed from every manifest.
/// Error(exists) when the home is initialized and not `force`; Error(not_found) when the
/// destination holds no repository; the key source's errors (wrong_key, ...) unchanged.
RecoveryReport recover_home(const Home& home, const std::string& destination, const KeySource& key_source, bool force);

}  // namespace mybackup
