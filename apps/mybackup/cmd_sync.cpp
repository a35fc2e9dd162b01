// `mybackup sync`: bring the secondary destination up to date with the primary. Also run after
// every backup and clean when a secondary is configured.

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "mybackup/session/session.hpp"

namespace mybackup::cli {

namespace {

void run(Context& context, bool json) {
  const std::unique_ptr<Session> session = context.open_session();
  const SyncOutcome outcome = session->sync();
  if (outcome.nothing_backed_up) {
    say(context, "Nothing to copy: nothing is backed up on " + outcome.primary + " yet");
    return;
  }
  const SyncReport& report = outcome.report;
  report_manifest_problems(context, outcome.manifest_problems);
  report_sync_problems(context, report);
  if (json) {
    nlohmann::ordered_json out = {{"primary", outcome.primary}, {"secondary", outcome.secondary}};
    out.update(nlohmann::ordered_json(report));
    print_json(out);
    return;
  }
  say(context, "Secondary " + outcome.secondary + " is up to date: " + counted(report.packs_copied, "pack") + " (" +
                   format_bytes(report.bytes_copied) + ") and " + counted(report.manifests_copied, "manifest") +
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
