// `mybackup restore`: a file or a directory as it was (latest, at a date, or a version number),
// back in place or elsewhere; `restore --list` shows what can be restored.

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <limits>

#include "cli.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/date_parse.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/engine/restore.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup::cli {

namespace {

struct RestoreFlags {
  std::string file;
  std::string directory;
  bool list = false;
  std::string date;
  std::uint32_t version = 0;
  std::string destination;
  bool overwrite = false;
  bool dry_run = false;
  bool json = false;
};

std::string version_list(const std::vector<VersionRecord>& versions) {
  std::vector<std::string> items;
  for (const VersionRecord& version : versions) {
    items.push_back(std::to_string(version.number) + " (" + format_local(version.run_finished_ns) +
                    (version.type == EntryType::deleted ? ", deleted" : "") + ")");
  }
  return join(items, "none");
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

/// Chooses the version of one file the flags ask for; errors list what exists.
VersionRecord choose_version(const std::vector<VersionRecord>& versions, const std::string& path, const RestoreFlags& flags,
                             std::int64_t at_ns) {
  if (flags.version != 0) {
    for (const VersionRecord& version : versions) {
      if (version.number == flags.version && version.type != EntryType::deleted) {
        return version;
      }
    }
    throw Error(ErrorKind::not_found, "no version " + std::to_string(flags.version) + " of " + path +
                                          " to restore; its versions are " + version_list(versions));
  }
  const VersionRecord* chosen = nullptr;
  for (const VersionRecord& version : versions) {
    const bool in_time = version.run_finished_ns <= at_ns;
    // Without --date the newest version that is not a deletion: a deleted file comes back.
    if (in_time && (flags.date.empty() ? version.type != EntryType::deleted : true)) {
      chosen = &version;
    }
  }
  if (chosen == nullptr) {
    throw Error(ErrorKind::not_found, "no version of " + path + " as of " + flags.date + "; its versions are " +
                                          version_list(versions));
  }
  if (chosen->type == EntryType::deleted) {
    throw Error(ErrorKind::not_found, path + " did not exist on " + flags.date + " (deleted in version " +
                                          std::to_string(chosen->number) + "); its versions are " + version_list(versions));
  }
  return *chosen;
}

RestorePlan plan_file(const Catalog& catalog, const RestoreFlags& flags, std::int64_t at_ns) {
  const std::string path = normalize_path(flags.file);
  const std::vector<VersionRecord> versions = catalog.versions_of(path);
  if (versions.empty()) {
    throw Error(ErrorKind::not_found, "no backup of " + path + " (`mybackup restore --list` shows every backed-up path)");
  }
  const VersionRecord version = choose_version(versions, path, flags, at_ns);
  if (version.type == EntryType::directory) {
    throw Error(ErrorKind::usage, path + " is a directory: use `mybackup restore --directory " + path + "`");
  }
  RestorePlan plan;
  if (flags.destination.empty()) {
    plan.root = parent_directory(path);
    plan.items.push_back({base_name(path), version});
    return plan;
  }
  const std::string target = normalize_path(flags.destination);
  struct stat info {};
  if (::stat(target.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    plan.root = target;  // into that directory, under the file's own name
    plan.items.push_back({base_name(path), version});
  } else {
    plan.root = parent_directory(target);
    plan.items.push_back({base_name(target), version});
  }
  return plan;
}

RestorePlan plan_directory(const Catalog& catalog, const RestoreFlags& flags, std::int64_t at_ns) {
  if (flags.version != 0) {
    throw Error(ErrorKind::usage, "--version applies to one file: for a directory use --date");
  }
  const std::string directory = normalize_path(flags.directory);
  RestorePlan plan;
  plan.root = flags.destination.empty() ? directory : normalize_path(flags.destination);
  const std::string prefix = directory == "/" ? "/" : directory + "/";
  for (const VersionRecord& version : catalog.state_at(directory, at_ns)) {
    if (version.type == EntryType::deleted) {
      continue;  // did not exist at that moment
    }
    if (version.path == directory && version.type != EntryType::directory) {
      throw Error(ErrorKind::usage, directory + " is not a directory: use `mybackup restore --file " + directory + "`");
    }
    plan.items.push_back({version.path == directory ? "" : version.path.substr(prefix.size()), version});
  }
  if (plan.items.empty()) {
    throw Error(ErrorKind::not_found, "nothing backed up under " + directory +
                                          (flags.date.empty() ? "" : " as of " + flags.date) +
                                          " (`mybackup restore --list` shows every backed-up path)");
  }
  return plan;
}

void list_restorable(Context& context, const Catalog& catalog, bool json) {
  const std::vector<VersionRecord> state = catalog.state_at("/", std::numeric_limits<std::int64_t>::max());
  if (json) {
    // A summary of each restorable file, not the whole version (`mybackup list` shows that).
    nlohmann::ordered_json files = nlohmann::ordered_json::array();
    for (const VersionRecord& version : state) {
      if (version.type == EntryType::file || version.type == EntryType::symlink) {
        files.push_back({{"path", version.path},
                         {"version", version.number},
                         {"date", format_utc_exact(version.run_finished_ns)},
                         {"size", version.size}});
      }
    }
    print_json({{"files", std::move(files)}});
    return;
  }
  std::uint64_t count = 0;
  for (const VersionRecord& version : state) {
    if (version.type == EntryType::file || version.type == EntryType::symlink) {
      std::cout << version.path << "  (version " << version.number << ", " << format_local(version.run_finished_ns) << ", "
                << format_bytes(version.size) << ")\n";
      ++count;
    }
  }
  say(context, counted(count, "file") + " can be restored (deleted files too: `mybackup list PATH` shows their versions)");
}

/// One progress line on a terminal, refreshed a few times per second.
class Progress {
 public:
  Progress(bool enabled, std::size_t total) : enabled_(enabled), total_(total) {}
  void step() {
    ++done_;
    if (!enabled_) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ > std::chrono::milliseconds(200) || done_ == total_) {
      std::cerr << "\rrestoring " << done_ << "/" << total_ << std::flush;
      last_ = now;
      shown_ = true;
    }
  }
  ~Progress() {
    if (shown_) {
      std::cerr << '\n';
    }
  }

 private:
  bool enabled_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

void run(Context& context, const RestoreFlags& flags) {
  const Config config = context.load_config();
  const Catalog catalog(context.home().catalog_path());
  if (flags.list) {
    list_restorable(context, catalog, flags.json);
    return;
  }
  const std::int64_t at_ns =
      flags.date.empty() ? std::numeric_limits<std::int64_t>::max() : parse_restore_date(flags.date);
  const RestorePlan plan = flags.file.empty() ? plan_directory(catalog, flags, at_ns) : plan_file(catalog, flags, at_ns);
  const MasterKey key = load_key_file(context.home().key_path(config));
  const std::unique_ptr<Repository> repository = open_for_reading(context, config, key, catalog);

  RestoreOptions options;
  options.existing = flags.overwrite ? ExistingFile::overwrite : ExistingFile::keep;
  options.dry_run = flags.dry_run;
  install_stop_handlers();
  options.cancel = &stop_requested();
  Progress progress(!flags.dry_run && !flags.json && !context.quiet && ::isatty(STDERR_FILENO) != 0 && plan.items.size() > 100,
                    plan.items.size());
  options.on_item = [&](RestoreAction action, const RestoreItem& item, const std::string& note) {
    const std::string target = join_path(plan.root, item.relative);
    if (action == RestoreAction::failed) {
      std::cerr << "mybackup: cannot restore " << target << " (version " << item.version.number << " of "
                << item.version.path << "): " << note << '\n';
      context.log().error("restore: {} (version {} of {}): {}", target, item.version.number, item.version.path, note);
    } else if (flags.dry_run && !flags.json) {
      std::cout << (action == RestoreAction::identical ? "identical      " : "would restore  ") << target << '\n';
    }
    progress.step();
  };
  context.log().info("restore: start {} items into {}{}", plan.items.size(), plan.root, flags.dry_run ? " (dry run)" : "");
  const RestoreReport report = restore(catalog, *repository, plan, options);
  report_fallback_reads(context, *repository);
  context.log().info("restore: {} files, {} directories, {} symlinks, {} identical, {} B, {} problems into {}", report.files,
                     report.directories, report.symlinks, report.identical, report.bytes, report.problems.size(), plan.root);
  if (flags.json) {
    nlohmann::ordered_json out = {{"dry_run", flags.dry_run}};
    out.update(nlohmann::ordered_json(report));
    print_json(out);
  } else if (!flags.dry_run) {
    say(context, "Restored " + counted(report.files, "file") + ", " + counted(report.directories, "directory", "directories") +
                     " and " + counted(report.symlinks, "symlink") + " (" + format_bytes(report.bytes) + ") into " + plan.root +
                     (report.identical > 0 ? "; already identical, left as is: " + counted(report.identical, "file") : ""));
  }
  if (!report.problems.empty()) {
    throw Error(ErrorKind::io, counted(report.problems.size(), "item") +
                                   " could not be restored (named above); everything else was restored and verified");
  }
}

}  // namespace

void register_restore(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("restore", "Restore a file or a directory, as it is now or was at a date or version");
  auto flags = std::make_shared<RestoreFlags>();
  auto* file = command->add_option("-f,--file", flags->file, "A backed-up file");
  auto* directory = command->add_option("-d,--directory", flags->directory, "A backed-up directory (its whole tree)");
  auto* list = command->add_flag("-l,--list", flags->list, "List every restorable file with its latest version");
  file->excludes(directory)->excludes(list);
  directory->excludes(list);
  auto* date = command->add_option("--date", flags->date,
                                   "As it was at that moment: YYYY-MM-DD (end of that day), YYYY-MM-DDTHH:MM[:SS], or ISO 8601 "
                                   "with an offset");
  auto* version = command->add_option("--version", flags->version, "Version number, as `mybackup list` shows")
                      ->check(CLI::PositiveNumber);
  date->excludes(version);
  command->add_option("--destination", flags->destination,
                      "Where to write: for --file a path or a directory, for --directory the directory that receives "
                      "its contents (default: back where it was)");
  command->add_flag("--overwrite", flags->overwrite, "Replace existing files that differ (default: leave them and fail)");
  command->add_flag("-n,--dry-run", flags->dry_run, "List what would be written; write nothing");
  command->add_flag("--json", flags->json, "Print one JSON object");
  add_example(*command,
              "mybackup restore --file ~/Documents/report.pdf --date 2026-01-15\n"
              "  mybackup restore --directory ~/Documents --destination ~/Restored\n"
              "  mybackup restore --list");
  command->callback([&context, flags] {
    if (flags->file.empty() && flags->directory.empty() && !flags->list) {
      throw Error(ErrorKind::usage, "say what to restore: --file PATH, --directory PATH or --list");
    }
    run(context, *flags);
  });
}

}  // namespace mybackup::cli
