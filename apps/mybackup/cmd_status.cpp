// `mybackup status`: what is backed up, how much space it takes, and how the last run went.

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/clock.hpp"

namespace mybackup::cli {

namespace {

void show(Context& context, bool json) {
  const std::unique_ptr<Session> session = context.open_session();
  const Config& config = session->config();
  const Catalog& catalog = session->catalog();
  const CatalogSummary summary = catalog.summary();
  const std::optional<RunRecord> last = catalog.last_run("backup");
  const std::optional<RunRecord> last_clean = catalog.last_run("clean");
  const std::string repository_id = catalog.repository_id();

  if (json) {
    nlohmann::ordered_json out = {
        {"home", context.home().root()},
        {"repository_id", repository_id},
        {"destinations",
         {{"primary", path_or_null(config.destination_primary)},
          {"secondary", path_or_null(config.destination_secondary)}}},
    };
    out.update(nlohmann::ordered_json(summary));
    out["last_run"] = last ? nlohmann::ordered_json(*last) : nlohmann::ordered_json();
    out["last_clean"] = last_clean ? nlohmann::ordered_json(*last_clean) : nlohmann::ordered_json();
    nlohmann::ordered_json sources = nlohmann::ordered_json::array();
    for (const SourceConfig& source : config.sources) {
      sources.push_back(
          {{"path", source.path}, {"files", catalog.file_count_under(source.path)}, {"exclude", source.exclude}});
    }
    out["sources"] = std::move(sources);
    print_json(out);
    return;
  }

  print_line("Home:         " + context.home().root());
  print_line("Destination:  " +
             (config.destination_primary.empty() ? "(not set: run `mybackup config set destination DIR`)"
                                                 : config.destination_primary) +
             (repository_id.empty() ? "" : "  (repository " + repository_id.substr(0, 8) + ")"));
  if (!config.destination_secondary.empty()) {
    print_line("Secondary:    " + config.destination_secondary);
  }
  print_line("Files:        " + counted(summary.files, "file") + " (" + format_bytes(summary.current_bytes) + "), " +
             counted(summary.versions, "version") + " in history (" + format_bytes(summary.original_bytes) + ")");
  print_line("Stored:       " + format_bytes(summary.stored_bytes) + " in " + counted(summary.packs, "pack") + "; saved " +
             format_bytes(summary.saved_by_dedup_bytes()) + " by deduplication, " +
             format_bytes(summary.saved_by_compression_bytes()) + " by compression");
  if (last) {
    std::string outcome = last->stats.status;
    if (last->stats.status == "failed") {
      outcome += ": " + last->stats.error;
    } else {
      outcome += " (" + format_count(last->stats.files_new) + " new, " + format_count(last->stats.files_changed) + " changed, " +
                 format_count(last->stats.files_deleted) + " deleted" +
                 (last->stats.files_skipped > 0 ? ", " + format_count(last->stats.files_skipped) + " skipped" : "") + ")";
    }
    print_line("Last backup:  " + format_local(last->started_ns) + ", " +
               format_duration(seconds_between(last->started_ns, last->finished_ns)) + ", " + outcome);
  } else {
    print_line("Last backup:  never (run `mybackup backup`)");
  }
  if (last_clean) {
    const std::string outcome = last_clean->stats.status == "failed"
                                    ? "failed: " + last_clean->stats.error
                                    : last_clean->stats.status + " (" + counted(last_clean->stats.files_deleted, "version") + " removed)";
    print_line("Last clean:   " + format_local(last_clean->started_ns) + ", " + outcome);
  }
  print_line(std::string("Sources:") + (config.sources.empty() ? "      (none: add one with `mybackup add DIR`)" : ""));
  for (const SourceConfig& source : config.sources) {
    const std::string patterns = join(source.exclude);
    print_line("  " + source.path + "  " + counted(catalog.file_count_under(source.path), "file") +
               (patterns.empty() ? "" : ", exclude: " + patterns));
  }
}

}  // namespace

void register_status(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("status", "Show what is backed up, the space used and saved, and the last run");
  auto json = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "Print one JSON object");
  add_example(*command, "mybackup status --json");
  command->callback([&context, json] { show(context, *json); });
}

}  // namespace mybackup::cli
