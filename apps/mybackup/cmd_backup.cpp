// `mybackup backup`: one incremental run over every source (or one).

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>
#include <mutex>

#include "cli.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/engine/backup.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/crypto/keys.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup::cli {

namespace {

const char* action_name(FileAction action) {
  switch (action) {
    case FileAction::added: return "added";
    case FileAction::changed: return "changed";
    case FileAction::deleted: return "deleted";
    case FileAction::skipped: return "skipped";
  }
  return "?";
}

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

std::vector<BackupSource> selected_sources(const Config& config, const std::string& only,
                                           const std::vector<std::string>& never_back_up) {
  if (config.sources.empty()) {
    throw Error(ErrorKind::usage, "no source to back up: add one with `mybackup add DIR`");
  }
  std::vector<BackupSource> sources;
  const std::string wanted = only.empty() ? "" : normalize_path(only);
  for (const SourceConfig& source : config.sources) {
    if (wanted.empty() || source.path == wanted) {
      BackupSource selected{source.path, source.exclude};
      // A repository or a home inside a source would be backed up into itself, live lock and
      // catalog included: they are always left out.
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
    throw Error(ErrorKind::usage, wanted + " is not a source (sources: " + source_paths(config) +
                                      "); add it first with `mybackup add " + wanted + "`");
  }
  return sources;
}

namespace {

void print_report(Context& context, const BackupFlags& flags, const BackupReport& report, const std::string& destination) {
  const RunStats& s = report.stats;
  const double seconds = static_cast<double>(report.finished_ns - report.started_ns) / 1e9;
  if (flags.json) {
    nlohmann::ordered_json json = {{"dry_run", flags.dry_run}, {"destination", destination}};
    json.update(nlohmann::ordered_json(report));
    print_json(json);
    return;
  }
  const std::string what = flags.dry_run ? "Dry run (nothing written)" : "Backup finished";
  say(context, what + " in " + format_duration(seconds) + ": " + format_count(s.files_new) + " new, " +
                   format_count(s.files_changed) + " changed, " + format_count(s.files_deleted) + " deleted, " +
                   format_count(s.files_unchanged) + " unchanged" +
                   (s.files_skipped > 0 ? ", " + format_count(s.files_skipped) + " skipped" : ""));
  say(context, std::string("  read ") + format_bytes(s.bytes_read) + ", new data " + format_bytes(s.bytes_new) + ", " +
                   (flags.dry_run ? "would store " : "stored ") + format_bytes(s.bytes_stored) + " in " +
                   counted(report.packs_written, "pack") + (flags.dry_run ? " on " : " to ") + destination);
}

/// retention.auto_clean: a clean after every successful backup. The backup is recorded whatever
/// happens here, so a failure says so.
void auto_clean(Context& context, const Config& config, Catalog& catalog, Repository& repository, bool json) {
  try {
    const CleanReport report = clean_repository(context, catalog, repository, retention_policy(config), false);
    if (!json) {
      say(context, "Automatic clean: " + counted(report.versions_removed, "old version") + " removed, " +
                       format_bytes(report.bytes_freed()) + " freed");
    }
  } catch (const Error& error) {
    throw Error(error.kind(), std::string("the backup is done, but the automatic clean after it failed: ") + error.what());
  }
}

}  // namespace

void backup_once(Context& context, const BackupFlags& flags) {
  const Config config = context.load_config();
  const std::vector<BackupSource> sources =
      selected_sources(config, flags.source,
                       {config.destination_primary, config.destination_secondary, context.home().root()});
  require_destination(config);
  const std::string& destination = config.destination_primary;
  const MasterKey key = load_key_file(context.home().key_path(config));
  Catalog catalog(context.home().catalog_path());
  const KeySet keys = KeySet::derive(key);

  BackupOptions options;
  options.sources = sources;
  options.compression_level = config.compression_enabled ? config.compression_level : 0;
  options.dry_run = flags.dry_run;
  options.cancel = &stop_requested();
  options.config = std::string(as_text(read_file(context.home().config_path())));
  install_stop_handlers();
  std::mutex output;
  options.on_file = [&](FileAction action, EntryType type, const std::string& path, std::uint64_t, const std::string& note) {
    std::lock_guard lock(output);
    const std::string shown = path + (type == EntryType::directory ? "/" : "");
    if (action == FileAction::skipped) {
      const std::string reason = note.rfind("skipped: ", 0) == 0 ? note.substr(9) : note;
      std::cerr << "mybackup: skipped " << shown << ": " << reason << '\n';
      context.log().warn("backup: skipped {}: {}", path, note);
    } else if (flags.verbose && !flags.json) {
      std::cout << (flags.dry_run ? "would be " : "") << action_name(action) << std::string(9 - std::strlen(action_name(action)), ' ')
                << shown << '\n';
    }
  };

  const std::int64_t started = system_clock().now_ns();
  context.log().info("backup: start{} sources [{}] destination {}", flags.dry_run ? " (dry run)" : "",
                     source_paths(config), destination);
  std::unique_ptr<Repository> repository;
  try {
    repository =
        open_destination(destination, key, catalog, flags.dry_run ? DestinationUse::read : DestinationUse::write, &context);
    BackupTarget target;
    target.keys = &keys;
    target.chunker = repository ? repository->info().chunker : ChunkerParams{};
    target.repository = repository.get();
    BackupReport report;
    if (flags.dry_run) {
      report = run_backup(catalog, target, options);
    } else {
      const std::unique_ptr<RepositoryLock> lock = repository->lock("backup");
      catch_up(context, catalog, *repository, "backup");
      target.lock = lock.get();
      report = run_backup(catalog, target, options);
    }
    const RunStats& s = report.stats;
    context.log().info(
        "backup: {} in {:.2f}s: new {} changed {} deleted {} unchanged {} skipped {}; read {} B, new {} B, stored {} B in {} "
        "packs; manifest {}; time scan {:.2f}s store {:.2f}s commit {:.2f}s",
        s.status, static_cast<double>(report.finished_ns - report.started_ns) / 1e9, s.files_new, s.files_changed,
        s.files_deleted, s.files_unchanged, s.files_skipped, s.bytes_read, s.bytes_new, s.bytes_stored, report.packs_written,
        report.manifest_key.empty() ? "none" : report.manifest_key, report.scan_seconds, report.store_seconds,
        report.commit_seconds);
    print_report(context, flags, report, destination);
    if (!report.problems.empty()) {
      context.exit_code = kPartial;
    }
  } catch (const Error& error) {
    if (!flags.dry_run) {
      try {
        catalog.record_failed_run(RunKind::backup, started, system_clock().now_ns(), error.what());
      } catch (const std::exception&) {
        // The run already failed; the catalog may be what broke.
      }
    }
    throw;
  }
  if (!flags.dry_run) {
    if (config.retention_auto_clean) {
      auto_clean(context, config, catalog, *repository, flags.json);
    }
    update_secondary_after(context, config, catalog, *repository, flags.json);
  }
}

void register_backup(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("backup", "Back up every source (only what changed since the last run)");
  auto flags = std::make_shared<BackupFlags>();
  command->add_option("-s,--source", flags->source, "Back up only this source");
  command->add_flag("-n,--dry-run", flags->dry_run, "Read and report what would be stored; write nothing");
  command->add_flag("-v,--verbose", flags->verbose, "One line per added, changed, deleted or skipped file");
  command->add_flag("--json", flags->json, "Print one JSON summary object");
  add_example(*command, "mybackup backup --dry-run --verbose\n  mybackup backup --source ~/Documents");
  command->callback([&context, flags] { backup_once(context, *flags); });
}

}  // namespace mybackup::cli
