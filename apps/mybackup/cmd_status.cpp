// `mybackup status`: what is backed up, how much space it takes, and how the last run went.

#include <iostream>

#include "cli.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/json.hpp"

namespace mybackup::cli {

namespace {

std::uint64_t saved(std::uint64_t before, std::uint64_t after) { return before > after ? before - after : 0; }

void show(Context& context, bool json) {
  const Config config = context.load_config();
  const Catalog catalog(context.home().catalog_path());
  const CatalogSummary summary = catalog.summary();
  const std::optional<RunRecord> last = catalog.last_run("backup");
  const std::optional<RunRecord> last_clean = catalog.last_run("clean");
  const std::string repository_id = catalog.repository_id();
  const std::uint64_t dedup_saved = saved(summary.original_bytes, summary.unique_bytes);
  const std::uint64_t compression_saved = saved(summary.unique_bytes, summary.compressed_bytes);

  if (json) {
    JsonWriter out(true);
    out.begin_object()
        .key("home").value(context.home().root())
        .key("repository_id").value(repository_id)
        .key("destinations").begin_object();
    for (const auto& [name, path] : {std::pair{"primary", &config.destination_primary},
                                     std::pair{"secondary", &config.destination_secondary}}) {
      out.key(name);
      if (path->empty()) {
        out.null();
      } else {
        out.value(*path);
      }
    }
    out.end_object()
        .key("files").value(summary.files)
        .key("versions").value(summary.versions)
        .key("current_bytes").value(summary.current_bytes)
        .key("original_bytes").value(summary.original_bytes)
        .key("unique_bytes").value(summary.unique_bytes)
        .key("stored_bytes").value(summary.stored_bytes)
        .key("saved_by_dedup_bytes").value(dedup_saved)
        .key("saved_by_compression_bytes").value(compression_saved)
        .key("chunks").value(summary.chunks)
        .key("packs").value(summary.packs)
        .key("runs").value(summary.runs)
        .key("last_run");
    if (last) {
      out.begin_object()
          .key("kind").value(last->kind)
          .key("started").value(format_utc(last->started_ns))
          .key("seconds").value(static_cast<double>(last->finished_ns - last->started_ns) / 1e9)
          .key("status").value(last->stats.status)
          .key("error").value(last->stats.error)
          .key("files_new").value(last->stats.files_new)
          .key("files_changed").value(last->stats.files_changed)
          .key("files_deleted").value(last->stats.files_deleted)
          .key("files_skipped").value(last->stats.files_skipped)
          .end_object();
    } else {
      out.null();
    }
    out.key("last_clean");
    if (last_clean) {
      out.begin_object()
          .key("started").value(format_utc(last_clean->started_ns))
          .key("seconds").value(static_cast<double>(last_clean->finished_ns - last_clean->started_ns) / 1e9)
          .key("status").value(last_clean->stats.status)
          .key("error").value(last_clean->stats.error)
          .key("versions_removed").value(last_clean->stats.files_deleted)
          .end_object();
    } else {
      out.null();
    }
    out.key("sources").begin_array();
    for (const SourceConfig& source : config.sources) {
      out.begin_object().key("path").value(source.path).key("files").value(catalog.file_count_under(source.path));
      out.key("exclude").begin_array();
      for (const std::string& pattern : source.exclude) {
        out.value(pattern);
      }
      out.end_array().end_object();
    }
    out.end_array().end_object();
    std::cout << out.str() << '\n';
    return;
  }

  std::cout << "Home:         " << context.home().root() << '\n';
  std::cout << "Destination:  " << (config.destination_primary.empty() ? "(not set: run `mybackup config set destination DIR`)"
                                                                        : config.destination_primary)
            << (repository_id.empty() ? "" : "  (repository " + repository_id.substr(0, 8) + ")") << '\n';
  if (!config.destination_secondary.empty()) {
    std::cout << "Secondary:    " << config.destination_secondary << '\n';
  }
  std::cout << "Files:        " << counted(summary.files, "file") << " (" << format_bytes(summary.current_bytes) << "), "
            << counted(summary.versions, "version") << " in history (" << format_bytes(summary.original_bytes) << ")\n";
  std::cout << "Stored:       " << format_bytes(summary.stored_bytes) << " in " << counted(summary.packs, "pack")
            << "; saved " << format_bytes(dedup_saved) << " by deduplication, " << format_bytes(compression_saved)
            << " by compression\n";
  if (last) {
    std::string outcome = last->stats.status;
    if (last->stats.status == "failed") {
      outcome += ": " + last->stats.error;
    } else {
      outcome += " (" + format_count(last->stats.files_new) + " new, " + format_count(last->stats.files_changed) + " changed, " +
                 format_count(last->stats.files_deleted) + " deleted" +
                 (last->stats.files_skipped > 0 ? ", " + format_count(last->stats.files_skipped) + " skipped" : "") + ")";
    }
    std::cout << "Last backup:  " << format_local(last->started_ns) << ", "
              << format_duration(static_cast<double>(last->finished_ns - last->started_ns) / 1e9) << ", " << outcome << '\n';
  } else {
    std::cout << "Last backup:  never (run `mybackup backup`)\n";
  }
  if (last_clean) {
    const std::string outcome = last_clean->stats.status == "failed"
                                    ? "failed: " + last_clean->stats.error
                                    : last_clean->stats.status + " (" + counted(last_clean->stats.files_deleted, "version") + " removed)";
    std::cout << "Last clean:   " << format_local(last_clean->started_ns) << ", " << outcome << '\n';
  }
  std::cout << "Sources:" << (config.sources.empty() ? "      (none: add one with `mybackup add DIR`)" : "") << '\n';
  for (const SourceConfig& source : config.sources) {
    const std::string patterns = join(source.exclude);
    std::cout << "  " << source.path << "  " << counted(catalog.file_count_under(source.path), "file")
              << (patterns.empty() ? "" : ", exclude: " + patterns) << '\n';
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
