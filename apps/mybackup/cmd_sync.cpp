// `mybackup sync`: bring the secondary destination up to date with the primary. Also run after
// every backup and clean when a secondary is configured.

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/repository/lock.hpp"

namespace mybackup::cli {

SyncReport sync_secondary(Context& context, const Config& config, Catalog& catalog, Repository& primary) {
  const std::string& secondary_path = config.destination_secondary;
  if (same_destination(secondary_path, config.destination_primary)) {
    throw Error(ErrorKind::usage, "the secondary destination is the primary one (" + secondary_path +
                                      "): set another directory with `mybackup config set destinations.secondary DIR`");
  }
  context.log().info("sync: start {} -> {}", primary.location(), secondary_path);
  const std::unique_ptr<RepositoryLock> primary_lock = primary.lock("sync");
  catch_up(context, catalog, primary, "sync");
  const std::unique_ptr<Repository> secondary = Repository::open_copy(open_backend(secondary_path), primary);
  const std::unique_ptr<RepositoryLock> secondary_lock = secondary->lock("sync");
  install_stop_handlers();
  const SyncReport report = sync_repository(primary, *secondary, catalog.pack_names(), &stop_requested());
  context.log().info("sync: done: {} packs ({} B), {} manifests, {} keys copied, {} keys removed, {} packs deleted; "
                     "{} damaged on the primary, {} kept only on the secondary",
                     report.packs_copied, report.bytes_copied, report.manifests_copied, report.keys_copied,
                     report.keys_removed, report.packs_deleted, report.damaged_on_primary.size(),
                     report.only_on_secondary.size());
  for (const std::string& name : report.damaged_on_primary) {
    std::cerr << "mybackup: pack " << name << " is damaged on the primary destination and was not copied (run `mybackup verify`)\n";
    context.log().error("sync: pack {} damaged on the primary, not copied", name);
  }
  for (const std::string& name : report.only_on_secondary) {
    std::cerr << "mybackup: pack " << name
              << " is missing from the primary destination; the secondary keeps its copy (run `mybackup verify`)\n";
    context.log().error("sync: pack {} missing from the primary, kept on the secondary", name);
  }
  if (!report.damaged_on_primary.empty() || !report.only_on_secondary.empty()) {
    context.exit_code = kError;
  }
  return report;
}

void update_secondary_after(Context& context, const Config& config, Catalog& catalog, Repository& primary, bool json) {
  if (config.destination_secondary.empty()) {
    return;
  }
  try {
    const SyncReport report = sync_secondary(context, config, catalog, primary);
    if (!json) {
      say(context, "Secondary " + config.destination_secondary + " updated: " + counted(report.packs_copied, "pack") +
                       " (" + format_bytes(report.bytes_copied) + ") and " + counted(report.manifests_copied, "manifest") +
                       " copied" +
                       (report.packs_deleted > 0 ? ", " + counted(report.packs_deleted, "pack") + " deleted" : ""));
    }
  } catch (const Error& error) {
    std::cerr << "mybackup: warning: the secondary destination " << config.destination_secondary
              << " was not updated: " << error.what() << " (run `mybackup sync` once it is reachable)\n";
    context.log().warn("sync: secondary {} not updated: {}", config.destination_secondary, error.what());
    if (context.exit_code == kOk) {
      context.exit_code = kPartial;
    }
  }
}

namespace {

void run(Context& context, bool json) {
  const Config config = context.load_config();
  require_destination(config);
  if (config.destination_secondary.empty()) {
    throw Error(ErrorKind::usage, "no secondary destination: set one with `mybackup config set destinations.secondary DIR`");
  }
  const MasterKey key = load_key_file(context.home().key_path(config));
  Catalog catalog(context.home().catalog_path());
  std::unique_ptr<Repository> primary = open_destination(config.destination_primary, key, catalog, DestinationUse::read);
  if (!primary) {
    say(context, "Nothing to copy: nothing is backed up on " + config.destination_primary + " yet");
    return;
  }
  const SyncReport report = sync_secondary(context, config, catalog, *primary);
  if (json) {
    nlohmann::ordered_json out = {{"primary", primary->location()}, {"secondary", config.destination_secondary}};
    out.update(nlohmann::ordered_json(report));
    print_json(out);
    return;
  }
  say(context, "Secondary " + config.destination_secondary + " is up to date: " + counted(report.packs_copied, "pack") +
                   " (" + format_bytes(report.bytes_copied) + ") and " + counted(report.manifests_copied, "manifest") +
                   " copied, " + counted(report.packs_deleted, "pack") + " deleted (removed by clean on the primary)");
}

}  // namespace

void register_sync(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("sync", "Bring the secondary destination up to date with the primary");
  auto json = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "Print one JSON summary object");
  add_example(*command, "mybackup config set destinations.secondary /mnt/nas/backups && mybackup sync");
  command->callback([&context, json] { run(context, *json); });
}

}  // namespace mybackup::cli
