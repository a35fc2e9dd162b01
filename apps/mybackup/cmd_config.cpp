// `mybackup config set KEY VALUE` and `mybackup config show`.

#include <spdlog/spdlog.h>

#include <iostream>

#include "cli.hpp"
#include "mybackup/util/json.hpp"

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
      JsonWriter out(true);
      out.begin_object().key("home").value(context.home().root()).key("key_file").value(key_file);
      for (const auto& [name, text] : config_values(settings)) {
        out.key(name).value(text);
      }
      out.key("sources").begin_array();
      for (const SourceConfig& source : settings.sources) {
        out.begin_object().key("path").value(source.path).key("exclude").begin_array();
        for (const std::string& pattern : source.exclude) {
          out.value(pattern);
        }
        out.end_array().key("added_at").value(source.added_at).end_object();
      }
      out.end_array().end_object();
      std::cout << out.str() << '\n';
      return;
    }
    std::cout << "home = " << context.home().root() << '\n';
    std::cout << "encryption = " << settings.encryption_algorithm << " (key file " << key_file << ")\n";
    for (const auto& [name, text] : config_values(settings)) {
      std::cout << name << " = " << (text.empty() ? "(not set)" : text) << '\n';
    }
    std::cout << "sources:" << (settings.sources.empty() ? " (none: add one with `mybackup add DIR`)" : "") << '\n';
    for (const SourceConfig& source : settings.sources) {
      std::cout << "  " << source.path << (source.exclude.empty() ? "" : "  (exclude: " + join(source.exclude) + ")") << '\n';
    }
  });
}

}  // namespace mybackup::cli
