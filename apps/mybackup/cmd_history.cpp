// `mybackup list FILE`: every recorded version of one path.

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup::cli {

namespace {

void list_versions(Context& context, const std::string& raw_path, bool json) {
  const std::unique_ptr<Session> session = context.open_session();
  const Catalog& catalog = session->catalog();
  const std::string path = normalize_path(raw_path);
  const std::vector<VersionRecord> versions = catalog.versions_of(path);
  if (versions.empty()) {
    throw Error(ErrorKind::not_found, "no backup of " + path + " (`mybackup restore --list` shows every backed-up path)");
  }
  if (json) {
    print_json({{"path", path}, {"versions", versions}});
    return;
  }
  print_line(path);
  print_line("  version  date                 size        stored      sha256");
  for (const VersionRecord& version : versions) {
    char line[256];
    std::string detail;
    if (version.type == EntryType::file) {
      detail = to_hex(version.sha256).substr(0, 16) + "…";
    } else if (version.type == EntryType::symlink) {
      detail = "-> " + version.link_target;
    } else {
      detail = to_string(version.type);
    }
    const bool has_size = version.type == EntryType::file;
    std::snprintf(line, sizeof line, "  %-7u  %s  %-10s  %-10s  ", version.number, format_local(version.run_finished_ns).c_str(),
                  has_size ? format_bytes(version.size).c_str() : "-", has_size ? format_bytes(version.stored_size).c_str() : "-");
    print_line(line + detail);
  }
}

}  // namespace

void register_history(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("list", "List every backed-up version of a file: number, date, size, stored size, SHA-256");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  command->add_option("path", *path, "A backed-up file (or directory)")->required();
  command->add_flag("--json", *json, "Print one JSON object");
  add_example(*command, "mybackup list ~/Documents/report.pdf");
  command->callback([&context, path, json] { list_versions(context, *path, *json); });
}

}  // namespace mybackup::cli
