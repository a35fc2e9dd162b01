// `mybackup list FILE`: every recorded version of one path.

#include <iostream>

#include "cli.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/json.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup::cli {

namespace {

const char* type_name(EntryType type) {
  switch (type) {
    case EntryType::file: return "file";
    case EntryType::directory: return "directory";
    case EntryType::symlink: return "symlink";
    case EntryType::deleted: return "deleted";
  }
  return "?";
}

void list_versions(Context& context, const std::string& raw_path, bool json) {
  context.load_config();
  const Catalog catalog(context.home().catalog_path());
  const std::string path = normalize_path(raw_path);
  const std::vector<VersionRecord> versions = catalog.versions_of(path);
  if (versions.empty()) {
    throw Error(ErrorKind::not_found, "no backup of " + path + " (`mybackup restore --list` shows every backed-up path)");
  }
  if (json) {
    JsonWriter out(true);
    out.begin_object().key("path").value(path).key("versions").begin_array();
    for (const VersionRecord& version : versions) {
      out.begin_object()
          .key("version").value(version.number)
          .key("date").value(format_utc_exact(version.run_finished_ns))
          .key("type").value(type_name(version.type))
          .key("size").value(version.size)
          .key("stored").value(version.stored_size)
          .key("mode").value(version.mode)
          .key("mtime").value(format_utc(version.mtime_ns));
      if (version.type == EntryType::file) {
        out.key("sha256").value(to_hex(version.sha256));
      }
      if (version.type == EntryType::symlink) {
        out.key("target").value(version.link_target);
      }
      out.end_object();
    }
    out.end_array().end_object();
    std::cout << out.str() << '\n';
    return;
  }
  std::cout << path << '\n';
  std::cout << "  version  date                 size        stored      sha256\n";
  for (const VersionRecord& version : versions) {
    char line[256];
    std::string detail;
    if (version.type == EntryType::file) {
      detail = to_hex(version.sha256).substr(0, 16) + "…";
    } else if (version.type == EntryType::symlink) {
      detail = "-> " + version.link_target;
    } else {
      detail = type_name(version.type);
    }
    const bool has_size = version.type == EntryType::file;
    std::snprintf(line, sizeof line, "  %-7u  %s  %-10s  %-10s  ", version.number, format_local(version.run_finished_ns).c_str(),
                  has_size ? format_bytes(version.size).c_str() : "-", has_size ? format_bytes(version.stored_size).c_str() : "-");
    std::cout << line << detail << '\n';
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
