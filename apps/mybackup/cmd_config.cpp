// `mybackup config set KEY VALUE` and `mybackup config show`.

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli.hpp"

namespace mybackup::cli {

void register_config(CLI::App& app, Context& context) {
  auto* config = app.add_subcommand("config", "Show or change settings (config.yaml)");
  config->require_subcommand(1);
  add_example(*config, "mybackup config set destination /mnt/backups\n  mybackup config show");

  auto* set = config->add_subcommand("set", "Change one setting");
  auto key = std::make_shared<std::string>();
  auto value = std::make_shared<std::string>();
  set->add_option("key", *key, "Setting name, e.g. destination, compression.level, watch.interval")->required();
  set->add_option("value", *value, "New value")->required();
  add_example(*set, "mybackup config set destination /mnt/backups\n  mybackup config set compression.level 5");
  set->callback([&context, key, value] {
    Config settings = context.load_config();
    set_config_value(settings, *key, *value);
    save_config(context.home().config_path(), settings);
    const std::string canonical = *key == "destination" ? "destinations.primary" : *key;
    for (const auto& [name, text] : config_values(settings)) {
      if (name == canonical) {
        context.log().info("config set {} = {}", name, text);
        say(context, name + " = " + (text.empty() ? "(not set)" : text));
      }
    }
  });

  auto* show = config->add_subcommand("show", "Print every setting (never the key)");
  auto json = std::make_shared<bool>(false);
  show->add_flag("--json", *json, "Print one JSON object");
  add_example(*show, "mybackup config show");
  show->callback([&context, json] {
    const Config settings = context.load_config();
    const std::string key_file = context.home().key_path(settings);
    if (*json) {
      nlohmann::ordered_json out = {{"home", context.home().root()}, {"key_file", key_file}};
      out.update(nlohmann::ordered_json(settings));
      print_json(out);
      return;
    }
    print_line("home = " + context.home().root());
    print_line("encryption = " + settings.encryption_algorithm + " (key file " + key_file + ")");
    for (const auto& [name, text] : config_values(settings)) {
      print_line(name + " = " + (text.empty() ? "(not set)" : text));
    }
    print_line(std::string("sources:") + (settings.sources.empty() ? " (none: add one with `mybackup add DIR`)" : ""));
    for (const SourceConfig& source : settings.sources) {
      print_line("  " + source.path + (source.exclude.empty() ? "" : "  (exclude: " + join(source.exclude) + ")"));
    }
  });
}

}  // namespace mybackup::cli
