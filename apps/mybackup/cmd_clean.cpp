// `mybackup clean`: apply the retention policy and reclaim the space nothing references.

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <iostream>
#include <optional>

#include "cli.hpp"
#include "mybackup/engine/clean.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/repository/lock.hpp"

namespace mybackup::cli {

namespace {

struct CleanFlags {
  std::optional<int> keep_days;      // default: retention.keep_days
  std::optional<int> keep_versions;  // default: retention.keep_versions
  bool dry_run = false;
  bool json = false;
};

void print_report(Context& context, const CleanReport& report, const RetentionPolicy& policy, bool dry_run, bool json,
                  const std::string& destination) {
  const double seconds = static_cast<double>(report.finished_ns - report.started_ns) / 1e9;
  if (json) {
    nlohmann::ordered_json out = {{"dry_run", dry_run},
                                  {"destination", destination},
                                  {"keep_days", policy.keep_days},
                                  {"keep_versions", policy.keep_versions}};
    out.update(nlohmann::ordered_json(report));
    print_json(out);
    return;
  }
  const std::string would = dry_run ? "would be " : "";
  say(context, std::string(dry_run ? "Dry run (nothing changed)" : "Clean finished") + " in " + format_duration(seconds) +
                   " (keeping " + counted(static_cast<std::uint64_t>(policy.keep_days), "day") + " and the newest " +
                   counted(static_cast<std::uint64_t>(policy.keep_versions), "version") + " of each file)");
  say(context, "  " + counted(report.versions_removed, "version") + " " + would + "removed" +
                   (report.paths_removed > 0 ? " (" + counted(report.paths_removed, "path") + " " + would + "gone from history)"
                                             : "") +
                   ", " + counted(report.chunks_removed, "chunk") + " " + would + "removed");
  say(context, "  packs: " + format_count(report.packs_deleted) + " " + would + "deleted, " +
                   format_count(report.packs_rewritten) + " " + would + "rewritten into " +
                   counted(report.packs_written, "new pack") + ", " +
                   counted(report.orphan_packs, "orphan") + " (left by interrupted runs) " + would + "deleted");
  say(context, "  " + format_bytes(report.bytes_freed()) + " " + (dry_run ? "would be freed" : "freed") + " on " +
                   destination +
                   (report.bytes_dead_kept > 0 ? " (" + format_bytes(report.bytes_dead_kept) +
                                                     " unreferenced left in packs below the rewrite threshold)"
                                               : ""));
}

RetentionPolicy policy_of(const Config& config, const CleanFlags& flags) {
  RetentionPolicy policy = retention_policy(config);
  policy.keep_days = flags.keep_days.value_or(config.retention_keep_days);
  policy.keep_versions = flags.keep_versions.value_or(config.retention_keep_versions);
  policy.validate();
  return policy;
}

void run(Context& context, const CleanFlags& flags) {
  const Config config = context.load_config();
  require_destination(config);
  const RetentionPolicy policy = policy_of(config, flags);
  const MasterKey key = load_key_file(context.home().key_path(config));
  Catalog catalog(context.home().catalog_path());
  std::unique_ptr<Repository> repository = open_destination(config.destination_primary, key, catalog, DestinationUse::read);
  if (!repository) {
    if (flags.json) {
      print_report(context, CleanReport{}, policy, flags.dry_run, true, config.destination_primary);
    } else {
      say(context, "Nothing to clean: nothing is backed up on " + config.destination_primary + " yet");
    }
    return;
  }
  const CleanReport report = clean_repository(context, catalog, *repository, policy, flags.dry_run);
  print_report(context, report, policy, flags.dry_run, flags.json, repository->location());
  if (!flags.dry_run) {
    update_secondary_after(context, config, catalog, *repository, flags.json);
  }
}

}  // namespace

CleanReport clean_repository(Context& context, Catalog& catalog, Repository& repository, const RetentionPolicy& policy,
                             bool dry_run) {
  CleanOptions options;
  options.policy = policy;
  options.dry_run = dry_run;
  options.cancel = &stop_requested();
  install_stop_handlers();
  const std::int64_t started = system_clock().now_ns();
  context.log().info("clean: start{} keep_days {} keep_versions {} destination {}", dry_run ? " (dry run)" : "",
                     policy.keep_days, policy.keep_versions, repository.location());
  try {
    CleanReport report;
    if (dry_run) {
      report = run_clean(catalog, repository, nullptr, options);
    } else {
      const std::unique_ptr<RepositoryLock> lock = repository.lock("clean");
      catch_up(context, catalog, repository, "clean");
      report = run_clean(catalog, repository, lock.get(), options);
    }
    context.log().info(
        "clean: done in {:.2f}s: {} versions removed ({} paths), {} chunks removed; packs {} deleted, {} rewritten into {}, "
        "{} orphans; {} B deleted, {} B written, {} B unreferenced kept; {} damaged; manifest {}",
        static_cast<double>(report.finished_ns - report.started_ns) / 1e9, report.versions_removed, report.paths_removed,
        report.chunks_removed, report.packs_deleted, report.packs_rewritten, report.packs_written, report.orphan_packs,
        report.bytes_deleted, report.bytes_written, report.bytes_dead_kept, report.damaged_packs.size(),
        report.manifest_key.empty() ? "none" : report.manifest_key);
    for (const std::string& name : report.damaged_packs) {
      context.log().error("clean: pack {} could not be read or authenticated and was left as it is", name);
      std::cerr << "mybackup: pack " << name
                << " could not be read or authenticated and was left as it is (its files may not restore)\n";
    }
    if (!report.damaged_packs.empty()) {
      context.exit_code = kError;
    }
    return report;
  } catch (const Error& error) {
    context.log().error("clean: failed: {}", error.what());
    if (!dry_run) {
      try {
        catalog.record_failed_run(RunKind::clean, started, system_clock().now_ns(), error.what());
      } catch (const std::exception&) {
        // The run already failed; the catalog may be what broke.
      }
    }
    throw;
  }
}

RetentionPolicy retention_policy(const Config& config) {
  RetentionPolicy policy;
  policy.keep_days = config.retention_keep_days;
  policy.keep_versions = config.retention_keep_versions;
  return policy;
}

void register_clean(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand(
      "clean", "Remove versions the retention policy no longer keeps and reclaim the space they used");
  auto flags = std::make_shared<CleanFlags>();
  command->add_option("--keep-days", flags->keep_days,
                      "Keep every version younger than this many days (default: retention.keep_days in config.yaml)");
  command->add_option("--keep-versions", flags->keep_versions,
                      "Keep the newest this many versions of each file (default: retention.keep_versions in config.yaml)");
  command->add_flag("-n,--dry-run", flags->dry_run, "Report what would be removed and freed; change nothing");
  command->add_flag("--json", flags->json, "Print one JSON summary object");
  add_example(*command, "mybackup clean --keep-days 30 --keep-versions 10 --dry-run");
  command->callback([&context, flags] { run(context, *flags); });
}

}  // namespace mybackup::cli
