// `mybackup add` and `mybackup remove`: the list of sources in config.yaml.

#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup::cli {

namespace {

bool contains(const std::string& outer, const std::string& inner) {
  const std::string prefix = outer == "/" ? "/" : outer + "/";
  return inner.compare(0, prefix.size(), prefix) == 0;
}

void add_source(Context& context, const std::string& raw_path, const std::string& excludes) {
  Config config = context.load_config();
  const std::string path = normalize_path(raw_path);
  if (!path_exists(path)) {
    throw Error(ErrorKind::not_found, "cannot add " + path + ": no such file or directory");
  }
  for (const SourceConfig& source : config.sources) {
    if (source.path == path) {
      throw Error(ErrorKind::exists, path + " is already a source (change its excludes with `mybackup remove` then `mybackup add`)");
    }
    if (contains(source.path, path) || contains(path, source.path)) {
      throw Error(ErrorKind::usage, "cannot add " + path + ": it overlaps the source " + source.path +
                                        " (a path can belong to one source only)");
    }
  }
  SourceConfig source;
  source.path = path;
  source.exclude = split_patterns(excludes);
  source.added_at = format_utc(system_clock().now_ns());
  config.sources.push_back(source);
  save_config(context.home().config_path(), config);
  const std::string patterns = join(source.exclude);
  context.log().info("add: source {} (exclude: {})", path, patterns.empty() ? "none" : patterns);
  say(context, "Added source " + path + (patterns.empty() ? "" : " (exclude: " + patterns + ")"));
}

void remove_source(Context& context, const std::string& raw_path) {
  Config config = context.load_config();
  const std::string path = normalize_path(raw_path);
  const auto found = std::find_if(config.sources.begin(), config.sources.end(),
                                  [&](const SourceConfig& source) { return source.path == path; });
  if (found == config.sources.end()) {
    throw Error(ErrorKind::not_found, path + " is not a source (sources: " + source_paths(config) + ")");
  }
  config.sources.erase(found);
  save_config(context.home().config_path(), config);
  context.log().info("remove: source {}", path);
  say(context, "Removed source " + path + " (its backed-up history stays restorable)");
}

}  // namespace

void register_sources(CLI::App& app, Context& context) {
  auto* add = app.add_subcommand("add", "Add a file or directory to back up");
  auto add_path = std::make_shared<std::string>();
  auto excludes = std::make_shared<std::string>();
  add->add_option("path", *add_path, "File or directory to back up")->required();
  add->add_option("-e,--exclude", *excludes,
                  "Comma-separated patterns to skip: a name glob (*.tmp), a path relative to the source (docs/*.pdf), "
                  "or a directory (build/)");
  add_example(*add, "mybackup add ~/Documents --exclude \"*.tmp,~*,.DS_Store\"");
  add->callback([&context, add_path, excludes] { add_source(context, *add_path, *excludes); });

  auto* remove = app.add_subcommand("remove", "Stop backing up a source (its history stays)");
  auto remove_path = std::make_shared<std::string>();
  remove->add_option("path", *remove_path, "A source previously added")->required();
  add_example(*remove, "mybackup remove ~/Documents");
  remove->callback([&context, remove_path] { remove_source(context, *remove_path); });
}

}  // namespace mybackup::cli
