// `mybackup clean`: apply the retention policy and reclaim the space nothing references.

#include <nlohmann/json.hpp>

#include <optional>

#include "cli.hpp"
#include "mybackup/session/session.hpp"
#include "mybackup/util/clock.hpp"

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
  const double seconds = seconds_between(report.started_ns, report.finished_ns);
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
                   counted(report.orphan_packs, "orphan") + " (left by interrupted runs) " + would + "deleted" +
                   (report.orphan_packs_kept > 0
                        ? ", " + format_count(report.orphan_packs_kept) +
                              " kept (first seen less than retention.orphan_grace_hours ago: a run on another "
                              "computer may still be writing them)"
                        : ""));
  say(context, "  " + format_bytes(report.bytes_freed()) + " " + (dry_run ? "would be freed" : "freed") + " on " +
                   destination +
                   (report.bytes_dead_kept > 0 ? " (" + format_bytes(report.bytes_dead_kept) +
                                                     " unreferenced left in packs below the rewrite threshold)"
                                               : ""));
}

RetentionPolicy policy_of(const Session& session, const CleanFlags& flags) {
  RetentionPolicy policy = session.retention_policy();
  policy.keep_days = flags.keep_days.value_or(policy.keep_days);
  policy.keep_versions = flags.keep_versions.value_or(policy.keep_versions);
  return policy;
}

void run(Context& context, const CleanFlags& flags) {
  const std::unique_ptr<Session> session = context.open_session();
  const RetentionPolicy policy = policy_of(*session, flags);
  const CleanOutcome outcome = session->clean(policy, flags.dry_run);
  if (outcome.nothing_backed_up) {
    if (flags.json) {
      print_report(context, CleanReport{}, policy, flags.dry_run, true, outcome.destination);
    } else {
      say(context, "Nothing to clean: nothing is backed up on " + outcome.destination + " yet");
    }
    return;
  }
  report_damaged_packs(context, outcome.report);
  print_report(context, outcome.report, policy, flags.dry_run, flags.json, outcome.destination);
  report_secondary_update(context, session->config().destination_secondary, outcome.secondary, flags.json);
}

}  // namespace

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
