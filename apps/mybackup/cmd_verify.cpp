// `mybackup verify`: check that the destination holds everything the catalog indexes, intact,
// and that the catalog agrees with the manifests. Read-only: no lock, nothing written.

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

#include "cli.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/engine/verify.hpp"

namespace mybackup::cli {

namespace {

/// How many affected versions a problem line names before "and N more".
constexpr std::size_t kVersionsShown = 10;

struct VerifyFlags {
  bool read_data = false;
  std::optional<std::string> subset;  // "10%" or "10"; absent: every pack
  bool json = false;
  bool repair = false;
};

/// "10%", "10" or "12.5" → 10, 10, 12.5. Error(usage) unless it is a number in (0, 100].
double parse_subset(const std::string& text) {
  std::string number = text;
  if (!number.empty() && number.back() == '%') {
    number.pop_back();
  }
  char* end = nullptr;
  const double value = number.empty() ? 0 : std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || !(value > 0 && value <= 100)) {
    throw Error(ErrorKind::usage, "invalid --subset '" + text + "': give a percentage above 0 and at most 100, like 10% or 10");
  }
  return value;
}

std::string label(VerifyProblemKind kind) {
  switch (kind) {
    case VerifyProblemKind::missing_pack: return "missing pack";
    case VerifyProblemKind::wrong_size: return "pack of the wrong size";
    case VerifyProblemKind::damaged_pack: return "damaged pack";
    case VerifyProblemKind::damaged_header: return "damaged pack header";
    case VerifyProblemKind::header_mismatch: return "pack header disagrees with the catalog";
    case VerifyProblemKind::damaged_chunk: return "damaged chunk";
    case VerifyProblemKind::missing_manifest: return "missing manifest";
    case VerifyProblemKind::unrecorded_manifest: return "manifest not in the catalog";
    case VerifyProblemKind::damaged_manifest: return "damaged manifest";
    case VerifyProblemKind::manifest_gap: return "missing manifest numbers";
    case VerifyProblemKind::rolled_back: return "rolled back";
    case VerifyProblemKind::catalog_mismatch: return "catalog disagrees with the manifests";
    case VerifyProblemKind::unreferenced_pack: return "unreferenced pack";
  }
  return "problem";
}

std::string versions_text(const std::vector<AffectedVersion>& versions) {
  std::vector<std::string> items;
  for (std::size_t i = 0; i < versions.size() && i < kVersionsShown; ++i) {
    items.push_back(versions[i].path + " (version " + std::to_string(versions[i].number) + ")");
  }
  std::string text = join(items);
  if (versions.size() > kVersionsShown) {
    text += " and " + format_count(versions.size() - kVersionsShown) + " more (--json lists them all)";
  }
  return text;
}

/// One line per problem: what, where, why, which file versions, and what the secondary holds.
std::string problem_line(const VerifyProblem& problem, const std::string& primary, const std::string& secondary) {
  std::string line = std::string(severity(problem.kind) == Severity::error ? "error: " : "warning: ") + label(problem.kind);
  if (!problem.chunk.empty()) {
    line += " " + problem.chunk + " in pack " + problem.pack;
  } else if (!problem.pack.empty()) {
    line += " " + problem.pack;
  } else if (!problem.manifest.empty()) {
    line += " " + problem.manifest;
  }
  line += ": " + problem.detail;
  if (!problem.affected.empty()) {
    line += (problem.kind == VerifyProblemKind::catalog_mismatch ? "; versions: " : "; damaged file versions: ") +
            versions_text(problem.affected);
  } else if (problem.kind == VerifyProblemKind::damaged_chunk || problem.kind == VerifyProblemKind::missing_pack ||
             problem.kind == VerifyProblemKind::wrong_size) {
    line += "; no file version uses it any more";
  }
  switch (problem.secondary) {
    case SecondaryCopy::intact:
      line += std::string(problem.kind == VerifyProblemKind::missing_pack ? "; missing from" : "; damaged on") +
              " the primary, intact on the secondary " + secondary + " (copy " + secondary + "/" +
              object_names::pack(problem.pack) + " to " + primary + "/" + object_names::pack(problem.pack) +
              " to repair the primary)";
      break;
    case SecondaryCopy::missing: line += "; not on the secondary " + secondary + " either"; break;
    case SecondaryCopy::damaged: line += "; damaged on the secondary " + secondary + " too"; break;
    case SecondaryCopy::not_checked: break;
  }
  return line;
}

void print_report_json(const VerifyReport& report, const std::string& destination, const std::string& secondary) {
  nlohmann::ordered_json out = {{"destination", destination}, {"secondary", path_or_null(secondary)}};
  out.update(nlohmann::ordered_json(report));
  print_json(out);
}

/// --repair: records what the report found (engine/verify.hpp, VerifyRepair) and says what it means.
void repair(Context& context, Catalog& catalog, const VerifyReport& report, bool json) {
  const VerifyRepair repair = plan_repair(report);
  // With --json, stdout holds the one JSON object: the repair's lines go to stderr.
  const auto tell = [&](const std::string& line) {
    if (!context.quiet) {
      json ? print_error(line) : print_line(line);
    }
  };
  if (repair.empty()) {
    tell("Repair: nothing to record");
    return;
  }
  apply_repair(catalog, repair);
  context.log().warn("verify --repair: {} packs recorded as damaged, {} manifest losses accepted, {} versions lost",
                     repair.damaged_packs.size(), repair.accepted_losses.size(), repair.lost_versions.size());
  if (!repair.damaged_packs.empty()) {
    tell("Repair: " + counted(repair.damaged_packs.size(), "pack") +
         " will not be trusted again: the next backup stores again every file they held whose source still exists");
  }
  if (!repair.accepted_losses.empty()) {
    tell("Repair: " + counted(repair.accepted_losses.size(), "manifest loss", "manifest losses") +
         " accepted: they are no longer reported and `mybackup clean` works again");
  }
  for (const AffectedVersion& version : repair.lost_versions) {
    tell("Repair: lost from the primary: " + version.path + " version " + std::to_string(version.number));
  }
}

void print_human(Context& context, const VerifyReport& report, const std::string& destination,
                 const std::string& secondary) {
  const double seconds = seconds_between(report.started_ns, report.finished_ns);
  std::string scope = "metadata only; --read-data also reads the packs";
  if (report.read_data) {
    char percent[32];
    std::snprintf(percent, sizeof percent, "%g%%", report.subset_percent);
    scope = report.subset_percent >= 100 ? "all data read" : std::string("data of a random ") + percent + " of the packs read";
  }
  say(context, "Verified " + destination + " in " + format_duration(seconds) + " (" + scope + ")");
  say(context, "  packs: " + format_count(report.packs_referenced) + " referenced by the catalog, " + counted(report.packs_on_destination, "pack") + " on the destination");
  say(context, "  manifests: " + format_count(report.manifests_checked) + " read" +
                   (report.catalog_compared ? "; the catalog was compared with them (" +
                                                  counted(report.versions_compared, "version") + ")"
                                            : "; the catalog could not be compared with them"));
  if (report.read_data) {
    say(context, "  data: " + counted(report.packs_read, "pack") + " read (" + format_bytes(report.bytes_read) + "), " +
                     counted(report.chunks_checked, "chunk") + " authenticated and re-hashed");
  }
  if (report.secondary_consulted) {
    say(context, "  secondary: " + secondary + " consulted for what is damaged on the primary");
  }
  for (const VerifyProblem& problem : report.problems) {
    const std::string line = problem_line(problem, destination, secondary);
    if (severity(problem.kind) == Severity::error) {
      print_line(line);  // even with --quiet
    } else {
      say(context, line);
    }
  }
  const std::string warnings =
      report.warnings() == 0 ? "" : " (" + counted(report.warnings(), "warning") + ")";
  if (report.ok()) {
    say(context, "OK: no damage found" + warnings);
    return;
  }
  std::map<std::string, std::uint64_t> by_kind;
  std::vector<AffectedVersion> versions;
  bool all_on_secondary = report.secondary_consulted;
  for (const VerifyProblem& problem : report.problems) {
    if (severity(problem.kind) == Severity::error) {
      ++by_kind[label(problem.kind)];
      if (problem.kind != VerifyProblemKind::catalog_mismatch) {
        versions.insert(versions.end(), problem.affected.begin(), problem.affected.end());
      }
      all_on_secondary = all_on_secondary && problem.secondary == SecondaryCopy::intact;
    }
  }
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  std::vector<std::string> kinds;
  for (const auto& [kind, count] : by_kind) {
    kinds.push_back(format_count(count) + " " + kind);
  }
  print_line("DAMAGED: " + counted(report.errors(), "problem") + " (" + join(kinds) + "); " +
             counted(versions.size(), "file version") + " cannot be restored intact from " + destination +
             (all_on_secondary ? ", but every damaged pack is intact on the secondary" : "") + warnings);
}

void run(Context& context, const VerifyFlags& flags) {
  VerifyOptions options;
  options.read_data = flags.read_data;
  if (flags.subset) {
    options.subset_percent = parse_subset(*flags.subset);
    if (!flags.read_data) {
      throw Error(ErrorKind::usage, "--subset chooses which packs --read-data reads: add --read-data");
    }
  }
  const std::unique_ptr<Session> session = context.open_session();
  const Config& config = session->config();
  Catalog& catalog = session->catalog();
  const std::unique_ptr<Repository> repository = session->open_primary(DestinationUse::read);
  if (!repository) {
    if (flags.json) {
      print_json({{"destination", config.destination_primary}, {"ok", true}, {"nothing_backed_up", true}});
    } else {
      say(context, "Nothing to verify: nothing is backed up on " + config.destination_primary + " yet");
    }
    return;
  }
  const SecondaryForReading secondary = session->open_secondary(*repository);
  if (!secondary.problem.empty()) {
    print_error("mybackup: warning: the secondary " + config.destination_secondary + " is not consulted: " +
                secondary.problem);
  }
  options.secondary = secondary.repository.get();
  options.cancel = &stop_requested();

  const bool show_progress = !flags.json && !context.quiet && ::isatty(STDERR_FILENO) != 0;
  bool progress_shown = false;
  auto last = std::chrono::steady_clock::time_point{};
  if (show_progress) {
    options.on_progress = [&](const VerifyProgress& step) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(200) && step.done != step.total) {
        return;
      }
      last = now;
      const std::string what = step.stage == "sizes"       ? "checking pack sizes"
                               : step.stage == "manifests" ? "reading manifests"
                               : step.stage == "catalog"   ? "comparing the catalog, versions"
                               : step.stage == "reading"   ? "reading packs"
                                                           : std::string(step.stage);
      std::string line = "verify: " + what + " " + std::to_string(step.done);
      if (step.total != 0) {
        line += "/" + std::to_string(step.total);
      }
      line.resize(std::max<std::size_t>(line.size(), 60), ' ');  // covers a longer previous line
      std::cerr << '\r' << line << std::flush;
      progress_shown = true;
    };
  }
  context.log().info("verify: start{}{} destination {}{}", flags.read_data ? " read-data" : "",
                     flags.subset ? " subset " + *flags.subset : "",
                     repository->location(), secondary.repository ? " secondary " + secondary.repository->location() : "");
  const VerifyReport report = verify_repository(catalog, *repository, options);
  if (progress_shown) {
    std::cerr << '\n';
  }
  context.log().info("verify: done in {:.2f}s: {} packs read ({} B), {} chunks, {} manifests, {} versions compared; "
                     "{} errors, {} warnings",
                     seconds_between(report.started_ns, report.finished_ns), report.packs_read, report.bytes_read,
                     report.chunks_checked, report.manifests_checked, report.versions_compared, report.errors(),
                     report.warnings());
  const std::string secondary_location = secondary.repository ? secondary.repository->location() : "";
  for (const VerifyProblem& problem : report.problems) {
    if (severity(problem.kind) == Severity::error) {
      context.log().error("verify: {}", problem_line(problem, repository->location(), secondary_location));
    }
  }
  if (flags.json) {
    print_report_json(report, repository->location(), secondary_location);
  } else {
    print_human(context, report, repository->location(), secondary_location);
  }
  if (flags.repair) {
    repair(context, catalog, report, flags.json);
  }
  if (!report.ok()) {
    context.exit_code = kError;
  }
}

}  // namespace

void register_verify(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand(
      "verify", "Check that the destination holds every pack the catalog needs, intact, and that the catalog agrees "
                "with the manifests (read-only)");
  auto flags = std::make_shared<VerifyFlags>();
  command->add_flag("--read-data", flags->read_data,
                    "Also read every pack: check its name against its SHA-256, authenticate and re-hash every chunk");
  command->add_option("--subset", flags->subset,
                      "With --read-data: read only this random share of the packs (10% or 10)");
  command->add_flag("--json", flags->json, "Print one JSON object");
  command->add_flag("--repair", flags->repair,
                    "Record what was found: damaged or missing packs are never deduplicated against again (the next "
                    "backup stores their files again), and manifest losses are accepted (clean works again)");
  add_example(*command, "mybackup verify --read-data --subset 10%\n  mybackup verify --read-data --repair && mybackup backup");
  command->callback([&context, flags] { run(context, *flags); });
}

}  // namespace mybackup::cli
