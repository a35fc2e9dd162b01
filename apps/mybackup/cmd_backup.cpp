// `mybackup backup`: one incremental run over every source (or one).

#include <nlohmann/json.hpp>

#include <cstring>
#include <mutex>

#include "cli.hpp"
#include "mybackup/session/session.hpp"
#include "mybackup/util/clock.hpp"

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

void print_report(Context& context, const BackupFlags& flags, const BackupReport& report, const std::string& destination) {
  const RunStats& s = report.stats;
  const double seconds = seconds_between(report.started_ns, report.finished_ns);
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

}  // namespace

void backup_once(Context& context, const BackupFlags& flags) {
  const std::unique_ptr<Session> session = context.open_session();
  BackupRequest request;
  request.only_source = flags.source;
  request.dry_run = flags.dry_run;
  std::mutex output;
  request.on_file = [&](FileAction action, EntryType type, const std::string& path, std::uint64_t, const std::string& note) {
    std::lock_guard lock(output);
    const std::string shown = path + (type == EntryType::directory ? "/" : "");
    if (action == FileAction::skipped) {
      const std::string reason = note.rfind("skipped: ", 0) == 0 ? note.substr(9) : note;
      print_error("mybackup: skipped " + shown + ": " + reason);
    } else if (flags.verbose && !flags.json) {
      print_line((flags.dry_run ? "would be " : "") + std::string(action_name(action)) +
                 std::string(9 - std::strlen(action_name(action)), ' ') + shown);
    }
  };
  const BackupOutcome outcome = session->backup(request);
  print_report(context, flags, outcome.report, outcome.destination);
  if (!outcome.report.problems.empty()) {
    context.exit_code = kPartial;
  }
  report_manifest_problems(context, outcome.manifest_problems);
  for (const UntrustedPack& pack : outcome.report.untrusted_packs) {
    print_error("mybackup: warning: pack " + pack.name + " " + pack.reason +
                ": the files it held were stored again where their source still exists (run `mybackup verify` for "
                "the versions that are lost)");
  }
  if (!outcome.report.untrusted_packs.empty() && context.exit_code == kOk) {
    context.exit_code = kPartial;
  }
  if (outcome.auto_clean) {
    report_damaged_packs(context, *outcome.auto_clean);
    if (!flags.json) {
      say(context, "Automatic clean: " + counted(outcome.auto_clean->versions_removed, "old version") + " removed, " +
                       format_bytes(outcome.auto_clean->bytes_freed()) + " freed");
    }
  }
  if (outcome.auto_clean_error) {
    throw *outcome.auto_clean_error;
  }
  report_secondary_update(context, session->config().destination_secondary, outcome.secondary, flags.json);
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
