// `mybackup restore`: a file or a directory as it was (latest, at a date, or a version number),
// back in place or elsewhere; `restore --list` shows what can be restored.

#include <malloc.h>
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
#include "mybackup/engine/restore_plan.hpp"
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

/// What `restore --list` shows: everything a restore writes but directories (files, links, fifos,
/// devices); deletion markers are not current.
bool is_listed(EntryType type) { return type != EntryType::directory && type != EntryType::deleted; }

void list_restorable(Context& context, const Catalog& catalog, bool json) {
  // Printed as the catalog gives them, in path order: the first lines come at once and nothing
  // is held, whatever the number of files.
  const std::unique_ptr<Catalog::StateCursor> state = catalog.state_cursor("/", std::numeric_limits<std::int64_t>::max());
  VersionRecord version;
  if (json) {
    // A summary of each restorable file, not the whole version (`mybackup list` shows that):
    // one object {"files": [...]}, written element by element.
    std::string out = "{\"files\":[";
    bool first = true;
    while (state->next(version)) {
      if (is_listed(version.type)) {
        out += first ? "" : ",";
        first = false;
        out += nlohmann::ordered_json{{"path", version.path},
                                      {"version", version.number},
                                      {"date", format_utc_exact(version.run_finished_ns)},
                                      {"size", version.size}}
                   .dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);  // as print_json
        if (out.size() > 64 * 1024) {
          std::cout << out;
          out.clear();
        }
      }
    }
    std::cout << out << "]}" << std::endl;
    return;
  }
  std::uint64_t count = 0;
  while (state->next(version)) {
    if (is_listed(version.type)) {
      print_line(version.path + "  (version " + std::to_string(version.number) + ", " +
                 format_local(version.run_finished_ns) + ", " + format_bytes(version.size) + ")");
      ++count;
    }
  }
  say(context, counted(count, "file") + " can be restored (deleted files too: `mybackup list PATH` shows their versions)");
}

/// One progress line on a terminal, refreshed a few times per second.
class Progress {
 public:
  /// `total`: the number of steps, 0 when not known ahead.
  Progress(bool enabled, std::size_t total) : enabled_(enabled), total_(total) {}
  void step() {
    ++done_;
    if (!enabled_) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ > std::chrono::milliseconds(200) || done_ == total_) {
      std::cerr << "\rrestoring " << done_;
      if (total_ != 0) {
        std::cerr << "/" << total_;
      }
      std::cerr << std::flush;
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
  const std::unique_ptr<Session> session = context.open_session();
  const Catalog& catalog = session->catalog();
  if (flags.list) {
    list_restorable(context, catalog, flags.json);
    return;
  }
  RestorePoint point;
  point.version = flags.version;
  if (!flags.date.empty()) {
    point.at_ns = parse_restore_date(flags.date);
    point.label = flags.date;
  }
  const std::string destination = flags.destination.empty() ? "" : normalize_path(flags.destination);
  const RestorePlan plan = flags.file.empty()
                               ? plan_directory_restore(catalog, normalize_path(flags.directory), destination, point)
                               : plan_file_restore(catalog, normalize_path(flags.file), destination, point);
  const ReadingRepository reading = session->open_for_reading();
  if (!reading.primary_problem.empty()) {
    print_error("mybackup: warning: the primary destination is unusable (" + reading.primary_problem +
                "); reading from the secondary " + reading.repository->location());
  }
  Repository& repository = *reading.repository;

  RestoreOptions options;
  options.existing = flags.overwrite ? ExistingFile::overwrite : ExistingFile::keep;
  options.dry_run = flags.dry_run;
  options.cancel = &stop_requested();
  options.read_ahead = reading.connections;
  // A restore frees and allocates a buffer of a chunk's size several times per chunk, on several
  // threads. By default glibc hands such memory back to the kernel and faults it in again, zeroed:
  // 490,000 page faults and most of the system time of a 1 GiB restore. Keeping some slack per
  // arena makes that 40,000 to 85,000, for about 100 MiB more peak memory (bench/run_remote.sh,
  // mixed: 1 GiB).
  ::mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
  ::mallopt(M_TOP_PAD, 16 * 1024 * 1024);
  // A directory's items come as the restore goes: their number is not known ahead.
  Progress progress(!flags.dry_run && !flags.json && !context.quiet && ::isatty(STDERR_FILENO) != 0 &&
                        (plan.open_items || plan.items.size() > 100),
                    plan.open_items ? 0 : plan.items.size());
  options.on_item = [&](RestoreAction action, const RestoreItem& item, const std::string& note) {
    const std::string target = join_path(plan.root, item.relative);
    if (action == RestoreAction::failed) {
      print_error("mybackup: cannot restore " + target + " (version " + std::to_string(item.version.number) + " of " +
                  item.version.path + "): " + note);
      context.log().error("restore: {} (version {} of {}): {}", target, item.version.number, item.version.path, note);
    } else if (flags.dry_run && !flags.json) {
      print_line((action == RestoreAction::identical ? "identical      " : "would restore  ") + target);
    }
    progress.step();
  };
  context.log().info("restore: start {} into {}{}", flags.file.empty() ? flags.directory : flags.file, plan.root,
                     flags.dry_run ? " (dry run)" : "");
  const RestoreReport report = restore(catalog, repository, plan, options);
  report_fallback_reads(context, repository);
  context.log().info("restore: {} files, {} directories, {} symlinks, {} identical, {} B, {} problems into {}", report.files,
                     report.directories, report.symlinks, report.identical, report.bytes, report.problems.size(), plan.root);
  if (flags.json) {
    nlohmann::ordered_json out = {{"dry_run", flags.dry_run}};
    out.update(nlohmann::ordered_json(report));
    print_json(out);
  } else if (!flags.dry_run) {
    say(context, "Restored " + counted(report.files, "file") + ", " + counted(report.directories, "directory", "directories") +
                     (report.special > 0 ? ", " + counted(report.special, "fifo or device", "fifos or devices") : "") +
                     " and " + counted(report.symlinks, "symlink") + " (" + format_bytes(report.bytes) + ") into " + plan.root +
                     (report.identical > 0 ? "; already identical, left as is: " + counted(report.identical, "file") : ""));
    std::vector<std::string> left_out;
    if (report.owners_not_restored > 0) {
      left_out.push_back("the owner of " + counted(report.owners_not_restored, "item") + " (now yours)");
    }
    if (report.setid_bits_dropped > 0) {
      left_out.push_back("the setuid/setgid bits of " + counted(report.setid_bits_dropped, "item"));
    }
    if (report.xattrs_not_restored > 0) {
      left_out.push_back(counted(report.xattrs_not_restored, "extended attribute"));
    }
    if (!left_out.empty()) {
      std::string text = "Not restored: ";
      for (std::size_t i = 0; i < left_out.size(); ++i) {
        text += (i == 0 ? "" : i + 1 == left_out.size() ? " and " : ", ") + left_out[i];
      }
      say(context, text + " (only root can restore them; unsupported attributes are not restored either)");
    }
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
