#include "mybackup/session/session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "mybackup/catalog/replay.hpp"
#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

/// An exclude pattern matching exactly `path` (a directory) below `root`, or "" if it is not below.
std::string anchored_exclude(const std::string& root, const std::string& path) {
  const std::string prefix = root == "/" ? "/" : root + "/";
  if (path.empty() || path.compare(0, prefix.size(), prefix) != 0) {
    return "";
  }
  std::string pattern = "/";
  for (const char c : path.substr(prefix.size())) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') {
      pattern += '\\';  // fnmatch escape: match the character itself
    }
    pattern += c;
  }
  return pattern + "/";
}

}  // namespace

Session::Session(const Home& home, SessionEvents& events, const std::atomic<bool>* cancel)
    : home_((home.require_initialized(), home)),
      events_(events),
      cancel_(cancel),
      config_text_(as_text(read_file(home.config_path()))),
      catalog_(home.catalog_path()) {
  config_ = parse_config(config_text_, home.config_path());
}

const MasterKey& Session::key() {
  if (!key_) {
    key_ = load_key_file(home_.key_path(config_));
  }
  return *key_;
}

Session::~Session() = default;

void Session::require_destination() const {
  if (config_.destination_primary.empty()) {
    throw Error(ErrorKind::usage, "destination missing: run `mybackup config set destination DIR`");
  }
}

RetentionPolicy Session::retention_policy() const {
  RetentionPolicy policy;
  policy.keep_days = config_.retention_keep_days;
  policy.keep_versions = config_.retention_keep_versions;
  return policy;
}

// ---------------------------------------------------------------- destinations

TransferOptions Session::transfer_options() const {
  TransferOptions transfer;
  transfer.upload_limit = config_.transfer_upload_limit;
  return transfer;
}

unsigned Session::connections_for(const std::string& destination) const {
  return local_destination_path(destination) ? 0U : static_cast<unsigned>(config_.transfer_connections);
}

std::unique_ptr<Repository> Session::open_destination(const std::string& destination, DestinationUse use) {
  const std::string known_id = catalog_.repository_id();
  const CreateIfMissing create =
      (known_id.empty() && use == DestinationUse::write) ? CreateIfMissing::yes : CreateIfMissing::no;
  std::unique_ptr<Repository> repository;
  try {
    // A new repository gets the options of config.yaml (repository.*); an existing one keeps its own.
    repository = Repository::open(open_backend(destination, transfer_options()), key(), create,
                                  create == CreateIfMissing::yes ? config_.new_repository : RepositoryOptions{});
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
    // The key check above proved this repository uses our key, so our wrapped keys belong there.
    const std::unique_ptr<Backend> pending = home_.pending_keys();
    for (const std::string& id : move_wrapped_keys(*pending, repository->key_store())) {
      record(SessionEvents::Level::info, fmt::format("wrapped key {} moved from the home to the destination {}", id, destination));
    }
  }
  return repository;
}

std::unique_ptr<Repository> Session::open_primary(DestinationUse use) {
  require_destination();
  return open_destination(config_.destination_primary, use);
}

ReadingRepository Session::open_for_reading() {
  require_destination();
  const auto open_secondary_copy = [&]() -> std::unique_ptr<Repository> {
    if (config_.destination_secondary.empty()) {
      return nullptr;
    }
    try {
      return open_destination(config_.destination_secondary, DestinationUse::read);
    } catch (const Error& error) {
      record(SessionEvents::Level::warning,
             fmt::format("secondary destination {} unusable: {}", config_.destination_secondary, error.what()));
      return nullptr;
    }
  };
  ReadingRepository reading;
  try {
    reading.repository = open_primary(DestinationUse::read);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::mismatch && !is_access_failure(error.kind()) && error.kind() != ErrorKind::not_found) {
      throw;
    }
    reading.repository = open_secondary_copy();
    if (!reading.repository) {
      throw;
    }
    reading.primary_problem = error.what();
    reading.connections = connections_for(config_.destination_secondary);
    record(SessionEvents::Level::warning, fmt::format("primary destination unusable ({}); reading from the secondary {}",
                                                      error.what(), reading.repository->location()));
    return reading;
  }
  if (!reading.repository) {
    throw Error(ErrorKind::not_found, "no repository at " + config_.destination_primary + ": run `mybackup backup` first");
  }
  if (std::unique_ptr<Repository> secondary = open_secondary_copy()) {
    reading.repository->set_fallback(std::move(secondary));
  }
  reading.connections = connections_for(config_.destination_primary);
  return reading;
}

SecondaryForReading Session::open_secondary(const Repository& primary) {
  SecondaryForReading opened;
  if (config_.destination_secondary.empty()) {
    return opened;
  }
  try {
    std::unique_ptr<Repository> secondary =
        Repository::open(open_backend(config_.destination_secondary, transfer_options()), key(), CreateIfMissing::no);
    if (secondary->info().id == primary.info().id) {
      opened.repository = std::move(secondary);
      return opened;
    }
    opened.problem = "it holds another repository (" + secondary->info().id + ")";
  } catch (const Error& error) {
    opened.problem = error.what();
  }
  record(SessionEvents::Level::warning,
         fmt::format("secondary {} not consulted: {}", config_.destination_secondary, opened.problem));
  return opened;
}

std::vector<BackupSource> Session::backup_sources(const std::string& only) const {
  if (config_.sources.empty()) {
    throw Error(ErrorKind::usage, "no source to back up: add one with `mybackup add DIR`");
  }
  // A repository or a home inside a source would be backed up into itself, live lock and catalog
  // included: they are always left out.
  const std::vector<std::string> never_back_up = {config_.destination_primary, config_.destination_secondary, home_.root()};
  std::vector<BackupSource> sources;
  const std::string wanted = only.empty() ? "" : normalize_path(only);
  for (const SourceConfig& source : config_.sources) {
    if (wanted.empty() || source.path == wanted) {
      BackupSource selected{source.path, source.exclude};
      for (const std::string& place : never_back_up) {
        const std::string path = place.empty() ? "" : local_destination_path(place).value_or("");
        if (std::string pattern = anchored_exclude(source.path, path); !pattern.empty()) {
          selected.exclude.push_back(pattern);
        }
      }
      sources.push_back(std::move(selected));
    }
  }
  if (sources.empty()) {
    throw Error(ErrorKind::usage, wanted + " is not a source (sources: " + source_paths(config_) +
                                      "); add it first with `mybackup add " + wanted + "`");
  }
  return sources;
}

// ---------------------------------------------------------------- runs

ManifestCheck Session::catch_up(Repository& repository, const std::string& command) {
  catalog_.set_repository_id(repository.info().id);
  const ReplayReport replay = replay_new_manifests(catalog_, repository);
  if (replay.replayed > 0) {
    record(SessionEvents::Level::warning,
           fmt::format("{}: the catalog was behind the destination; recorded {} run(s) found there", command, replay.replayed));
  }
  for (const std::string& problem : replay.check.problems()) {
    record(SessionEvents::Level::error, fmt::format("{}: {}", command, problem));
  }
  return replay.check;
}

void Session::refuse_clean_unless_healthy(const ManifestCheck& check) const {
  if (!check.healthy()) {
    throw Error(ErrorKind::corrupt, "clean refused, nothing was deleted: " + check.problems().front() +
                                        "; once you know what is lost, `mybackup verify --repair` accepts it and clean works again");
  }
}

void Session::record_failure(RunKind kind, std::int64_t started_ns, const Error& error) {
  try {
    catalog_.record_failed_run(kind, started_ns, system_clock().now_ns(), error.what());
  } catch (const std::exception&) {
    // The run already failed; the catalog may be what broke.
  }
}

BackupOutcome Session::backup(const BackupRequest& request) {
  BackupOptions options;
  options.sources = backup_sources(request.only_source);
  require_destination();
  options.compression_level = config_.compression_enabled ? config_.compression_level : 0;
  options.uploads = std::max(1U, connections_for(config_.destination_primary));
  options.dry_run = request.dry_run;
  options.cancel = cancel_;
  options.config = config_text_;
  options.on_file = request.on_file;
  options.spool_directory = home_.root();
  const KeySet keys = KeySet::derive(key());

  BackupOutcome outcome;
  outcome.destination = config_.destination_primary;
  const std::int64_t started = system_clock().now_ns();
  record(SessionEvents::Level::info, fmt::format("backup: start{} sources [{}] destination {}",
                                                 request.dry_run ? " (dry run)" : "", source_paths(config_),
                                                 outcome.destination));
  std::unique_ptr<Repository> repository;
  try {
    repository = open_primary(request.dry_run ? DestinationUse::read : DestinationUse::write);
    BackupTarget target;
    target.keys = &keys;
    // A dry run before the first backup cuts as the repository about to be created will.
    target.chunker = repository ? repository->info().chunker : config_.new_repository.chunker;
    target.repository = repository.get();
    if (request.dry_run) {
      outcome.report = run_backup(catalog_, target, options);
    } else {
      const std::unique_ptr<RepositoryLock> lock = repository->lock("backup");
      outcome.manifest_problems = catch_up(*repository, "backup").problems();
      target.lock = lock.get();
      outcome.report = run_backup(catalog_, target, options);
    }
  } catch (const Error& error) {
    if (!request.dry_run) {
      record_failure(RunKind::backup, started, error);
    }
    throw;
  }
  const BackupReport& report = outcome.report;
  const RunStats& s = report.stats;
  record(SessionEvents::Level::info,
         fmt::format("backup: {} in {:.2f}s: new {} changed {} deleted {} unchanged {} skipped {}; read {} B, new {} B, "
                     "stored {} B in {} packs; manifest {}; time scan {:.2f}s store {:.2f}s commit {:.2f}s",
                     s.status, seconds_between(report.started_ns, report.finished_ns), s.files_new, s.files_changed,
                     s.files_deleted, s.files_unchanged, s.files_skipped, s.bytes_read, s.bytes_new, s.bytes_stored,
                     report.packs_written, report.manifest_key.empty() ? "none" : report.manifest_key, report.scan_seconds,
                     report.store_seconds, report.commit_seconds));
  for (const ScanProblem& problem : report.problems) {
    record(SessionEvents::Level::warning, fmt::format("backup: {}: {}", problem.path, problem.reason));
  }
  for (const UntrustedPack& pack : report.untrusted_packs) {
    record(SessionEvents::Level::error,
           fmt::format("backup: pack {} {}: its chunks were stored again where the source still has them", pack.name,
                       pack.reason));
  }
  if (request.dry_run) {
    return outcome;
  }
  if (config_.retention_auto_clean) {
    try {
      outcome.auto_clean = clean_locked_or_dry(*repository, retention_policy(), false);
    } catch (const Error& error) {
      // The backup is recorded whatever happens here, so the error says so.
      outcome.auto_clean_error =
          Error(error.kind(), std::string("the backup is done, but the automatic clean after it failed: ") + error.what());
      return outcome;
    }
  }
  outcome.secondary = update_secondary(*repository);
  return outcome;
}

CleanReport Session::clean_locked_or_dry(Repository& repository, const RetentionPolicy& policy, bool dry_run) {
  CleanOptions options;
  options.policy = policy;
  options.dry_run = dry_run;
  options.cancel = cancel_;
  options.orphan_grace_ns = std::int64_t{config_.retention_orphan_grace_hours} * 3600 * 1'000'000'000;
  const std::int64_t started = system_clock().now_ns();
  record(SessionEvents::Level::info, fmt::format("clean: start{} keep_days {} keep_versions {} destination {}",
                                                 dry_run ? " (dry run)" : "", policy.keep_days, policy.keep_versions,
                                                 repository.location()));
  CleanReport report;
  try {
    if (dry_run) {
      refuse_clean_unless_healthy(check_manifest_sequence(catalog_, repository.location(), repository.manifest_keys()));
      report = run_clean(catalog_, repository, nullptr, options);
    } else {
      const std::unique_ptr<RepositoryLock> lock = repository.lock("clean");
      refuse_clean_unless_healthy(catch_up(repository, "clean"));
      report = run_clean(catalog_, repository, lock.get(), options);
    }
  } catch (const Error& error) {
    record(SessionEvents::Level::error, fmt::format("clean: failed: {}", error.what()));
    if (!dry_run) {
      record_failure(RunKind::clean, started, error);
    }
    throw;
  }
  record(SessionEvents::Level::info,
         fmt::format("clean: done in {:.2f}s: {} versions removed ({} paths), {} chunks removed; packs {} deleted, {} "
                     "rewritten into {}, {} orphans ({} kept for the grace period); {} B deleted, {} B written, {} B unreferenced kept; {} damaged; manifest {}",
                     seconds_between(report.started_ns, report.finished_ns), report.versions_removed, report.paths_removed,
                     report.chunks_removed, report.packs_deleted, report.packs_rewritten, report.packs_written,
                     report.orphan_packs, report.orphan_packs_kept, report.bytes_deleted, report.bytes_written, report.bytes_dead_kept,
                     report.damaged_packs.size(), report.manifest_key.empty() ? "none" : report.manifest_key));
  for (const std::string& name : report.damaged_packs) {
    record(SessionEvents::Level::error,
           fmt::format("clean: pack {} could not be read or authenticated and was left as it is", name));
  }
  return report;
}

CleanOutcome Session::clean(const RetentionPolicy& policy, bool dry_run) {
  policy.validate();
  CleanOutcome outcome;
  outcome.destination = config_.destination_primary;
  std::unique_ptr<Repository> repository = open_primary(DestinationUse::read);
  if (!repository) {
    outcome.nothing_backed_up = true;
    return outcome;
  }
  outcome.destination = repository->location();
  outcome.report = clean_locked_or_dry(*repository, policy, dry_run);
  if (!dry_run) {
    outcome.secondary = update_secondary(*repository);
  }
  return outcome;
}

// ---------------------------------------------------------------- the secondary destination

SyncReport Session::sync_to_secondary(Repository& primary, std::vector<std::string>* manifest_problems) {
  const std::string& secondary_destination = config_.destination_secondary;
  if (same_destination(secondary_destination, config_.destination_primary)) {
    throw Error(ErrorKind::usage, "the secondary destination is the primary one (" + secondary_destination +
                                      "): set another directory with `mybackup config set destinations.secondary DIR`");
  }
  record(SessionEvents::Level::info, fmt::format("sync: start {} -> {}", primary.location(), secondary_destination));
  const std::unique_ptr<RepositoryLock> primary_lock = primary.lock("sync");
  const ManifestCheck check = catch_up(primary, "sync");
  if (manifest_problems != nullptr) {
    *manifest_problems = check.problems();
  }
  const std::unique_ptr<Repository> secondary = Repository::open_copy(open_backend(secondary_destination, transfer_options()), primary);
  const std::unique_ptr<RepositoryLock> secondary_lock = secondary->lock("sync");
  const unsigned transfers =
      std::max({1U, connections_for(config_.destination_primary), connections_for(secondary_destination)});
  const SyncReport report = sync_repository(primary, *secondary, catalog_.pack_names(), transfers, cancel_);
  // Only numbers the catalog holds: sync copies authenticated manifests, a planted name is not one.
  catalog_.remember_highest_seq(secondary->location(),
                                std::min(highest_seq(secondary->manifest_keys()), catalog_.last_seq()));
  record(SessionEvents::Level::info,
         fmt::format("sync: done: {} packs ({} B), {} manifests, {} keys copied, {} keys removed, {} packs deleted; "
                     "{} damaged on the primary, {} kept only on the secondary",
                     report.packs_copied, report.bytes_copied, report.manifests_copied, report.keys_copied,
                     report.keys_removed, report.packs_deleted, report.damaged_on_primary.size(),
                     report.only_on_secondary.size()));
  for (const std::string& name : report.damaged_on_primary) {
    record(SessionEvents::Level::error, fmt::format("sync: pack {} damaged on the primary, not copied", name));
  }
  for (const std::string& name : report.only_on_secondary) {
    record(SessionEvents::Level::error, fmt::format("sync: pack {} missing from the primary, kept on the secondary", name));
  }
  for (const std::string& key : report.unreadable_manifests) {
    record(SessionEvents::Level::error, fmt::format("sync: manifest {} fails authentication on the primary, not copied", key));
  }
  return report;
}

SecondaryUpdate Session::update_secondary(Repository& primary) {
  SecondaryUpdate update;
  update.configured = !config_.destination_secondary.empty();
  if (!update.configured) {
    return update;
  }
  try {
    update.done = sync_to_secondary(primary);
  } catch (const Error& error) {
    update.failure = error.what();
    record(SessionEvents::Level::warning,
           fmt::format("sync: secondary {} not updated: {}", config_.destination_secondary, error.what()));
  }
  return update;
}

SyncOutcome Session::sync() {
  require_destination();
  if (config_.destination_secondary.empty()) {
    throw Error(ErrorKind::usage, "no secondary destination: set one with `mybackup config set destinations.secondary DIR`");
  }
  SyncOutcome outcome;
  outcome.primary = config_.destination_primary;
  outcome.secondary = config_.destination_secondary;
  std::unique_ptr<Repository> primary = open_primary(DestinationUse::read);
  if (!primary) {
    outcome.nothing_backed_up = true;
    return outcome;
  }
  outcome.primary = primary->location();
  outcome.report = sync_to_secondary(*primary, &outcome.manifest_problems);
  return outcome;
}

// ---------------------------------------------------------------- recovery (init --from)

RecoveryReport recover_home(const Home& home, const std::string& destination, const KeySource& key_source, bool force) {
  if (home.initialized() && !force) {
    throw Error(ErrorKind::exists, "mybackup is already initialized in " + home.root() +
                                       ": nothing changed (use another --home, or --force to set the current state aside)");
  }
  RecoveryReport report;
  report.destination = normalize_destination(destination);
  std::unique_ptr<Backend> backend = open_backend(report.destination);
  const MasterKey key = key_source(*backend);
  std::unique_ptr<Repository> repository;
  try {
    repository = Repository::open(std::move(backend), key, CreateIfMissing::no);
  } catch (const Error& error) {
    if (error.kind() == ErrorKind::not_found) {
      throw Error(ErrorKind::not_found,
                  report.destination + " holds no mybackup repository: check the path (is the disk mounted?)");
    }
    throw;
  }

  // The settings the newest backup recorded, pointed at this destination.
  // Read through temporary files in the home, or, before it exists, where temporary files go.
  const std::string recorded =
      newest_recorded_config(*repository, path_exists(home.root()) ? home.root() : temporary_directory());
  report.settings_recorded = !recorded.empty();
  report.config = recorded.empty() ? Config{} : parse_config(recorded, "the config recorded on " + report.destination);
  report.config.destination_primary = report.destination;
  report.config.key_file = "key";  // the key is written into the home, whatever the old machine used
  const std::string now = format_utc(system_clock().now_ns());
  if (report.config.created_at.empty()) {
    report.config.created_at = now;
  }
  home.initialize_with(key, report.config, force, now, [&](const std::string& catalog_path) {
    Catalog catalog(catalog_path);
    catalog.set_repository_id(repository->info().id);
    const ReplayReport replay = replay_new_manifests(catalog, *repository);
    report.runs = replay.replayed;
    report.manifest_problems = replay.check.problems();
  });
  report.summary = Catalog(home.catalog_path()).summary();
  return report;
}

}  // namespace mybackup
