#include "mybackup/home/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <functional>

#include "mybackup/storage/registry.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/source/scanner.hpp"

namespace mybackup {

namespace {

/// One settable key: how to read it out of a Config and how to set it from text. Loading the
/// file, `config set` and `config show` all go through this one table, so validation lives once.
struct KeyRule {
  std::string key;
  std::function<std::string(const Config&)> get;
  std::function<void(Config&, const std::string&)> set;  // throws Error(usage) on a bad value
};

int parse_int(const std::string& key, const std::string& text, int min, int max, const std::string& unit) {
  int value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, problem] = std::from_chars(text.data(), end, value);
  if (problem != std::errc() || stop != end || value < min || value > max) {
    std::string range = max == std::numeric_limits<int>::max() ? "at least " + std::to_string(min)
                                                               : "from " + std::to_string(min) + " to " + std::to_string(max);
    throw Error(ErrorKind::usage, key + " must be a whole number " + range + unit + ", got '" + text + "'");
  }
  return value;
}

bool parse_bool(const std::string& key, const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
    return true;
  }
  if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
    return false;
  }
  throw Error(ErrorKind::usage, key + " must be true or false, got '" + text + "'");
}

std::string path_value(const std::string& text) {
  if (text.empty() || text == "null" || text == "~") {
    return "";
  }
  return normalize_path(text);
}

/// A destination: a local path or a URL of a supported scheme (storage/registry.hpp).
std::string destination_value(const std::string& text) {
  if (text.empty() || text == "null" || text == "~") {
    return "";
  }
  return normalize_destination(text);
}

std::string bool_text(bool value) { return value ? "true" : "false"; }

const std::vector<KeyRule>& rules() {
  static const std::vector<KeyRule> table = {
      {"compression.enabled", [](const Config& c) { return bool_text(c.compression_enabled); },
       [](Config& c, const std::string& v) { c.compression_enabled = parse_bool("compression.enabled", v); }},
      {"compression.level", [](const Config& c) { return std::to_string(c.compression_level); },
       [](Config& c, const std::string& v) { c.compression_level = parse_int("compression.level", v, 1, 22, ""); }},
      {"destinations.primary", [](const Config& c) { return c.destination_primary; },
       [](Config& c, const std::string& v) { c.destination_primary = destination_value(v); }},
      {"destinations.secondary", [](const Config& c) { return c.destination_secondary; },
       [](Config& c, const std::string& v) { c.destination_secondary = destination_value(v); }},
      {"watch.enabled", [](const Config& c) { return bool_text(c.watch_enabled); },
       [](Config& c, const std::string& v) { c.watch_enabled = parse_bool("watch.enabled", v); }},
      {"watch.interval", [](const Config& c) { return std::to_string(c.watch_interval); },
       [](Config& c, const std::string& v) {
         c.watch_interval = parse_int("watch.interval", v, 1, std::numeric_limits<int>::max(), " (seconds)");
       }},
      {"watch.realtime", [](const Config& c) { return bool_text(c.watch_realtime); },
       [](Config& c, const std::string& v) { c.watch_realtime = parse_bool("watch.realtime", v); }},
      {"watch.debounce", [](const Config& c) { return std::to_string(c.watch_debounce); },
       [](Config& c, const std::string& v) {
         c.watch_debounce = parse_int("watch.debounce", v, 0, 3600, " (seconds)");
       }},
      {"notify.command", [](const Config& c) { return c.notify_command; },
       [](Config& c, const std::string& v) { c.notify_command = (v == "null" || v == "~") ? "" : v; }},
      {"retention.keep_days", [](const Config& c) { return std::to_string(c.retention_keep_days); },
       [](Config& c, const std::string& v) {
         c.retention_keep_days = parse_int("retention.keep_days", v, 0, std::numeric_limits<int>::max(), "");
       }},
      {"retention.keep_versions", [](const Config& c) { return std::to_string(c.retention_keep_versions); },
       [](Config& c, const std::string& v) {
         c.retention_keep_versions = parse_int("retention.keep_versions", v, 1, std::numeric_limits<int>::max(), "");
       }},
      {"retention.auto_clean", [](const Config& c) { return bool_text(c.retention_auto_clean); },
       [](Config& c, const std::string& v) { c.retention_auto_clean = parse_bool("retention.auto_clean", v); }},
      {"schedule.file", [](const Config& c) { return c.schedule_file; },
       [](Config& c, const std::string& v) { c.schedule_file = path_value(v); }},
      {"schedule.archive_dir", [](const Config& c) { return c.schedule_archive_dir; },
       [](Config& c, const std::string& v) { c.schedule_archive_dir = path_value(v); }},
      {"schedule.log_dir", [](const Config& c) { return c.schedule_log_dir; },
       [](Config& c, const std::string& v) { c.schedule_log_dir = path_value(v); }},
      {"schedule.catch_up", [](const Config& c) { return bool_text(c.schedule_catch_up); },
       [](Config& c, const std::string& v) { c.schedule_catch_up = parse_bool("schedule.catch_up", v); }},
  };
  return table;
}

const KeyRule* find_rule(const std::string& key) {
  const std::string canonical = key == "destination" ? "destinations.primary" : key;
  for (const KeyRule& rule : rules()) {
    if (rule.key == canonical) {
      return &rule;
    }
  }
  return nullptr;
}

Error at_line(const std::string& path, const YAML::Node& node, const std::string& problem) {
  return Error(ErrorKind::config, path + ":" + std::to_string(node.Mark().line + 1) + ": " + problem);
}

std::string scalar_text(const YAML::Node& node) { return node.IsNull() ? std::string() : node.Scalar(); }

void load_sources(const std::string& path, const YAML::Node& list, Config& config) {
  if (list.IsNull()) {
    return;
  }
  if (!list.IsSequence()) {
    throw at_line(path, list, "sources must be a list of {path, exclude, added_at}");
  }
  for (const YAML::Node& item : list) {
    if (!item.IsMap() || !item["path"] || !item["path"].IsScalar()) {
      throw at_line(path, item, "each source needs a 'path'");
    }
    SourceConfig source;
    for (const auto& field : item) {
      const std::string name = field.first.as<std::string>();
      if (name == "path") {
        source.path = normalize_path(field.second.Scalar());
      } else if (name == "added_at") {
        source.added_at = scalar_text(field.second);
      } else if (name == "exclude") {
        if (field.second.IsSequence()) {
          for (const YAML::Node& pattern : field.second) {
            source.exclude.push_back(pattern.as<std::string>());
          }
        } else if (!field.second.IsNull()) {
          throw at_line(path, field.second, "exclude must be a list of patterns, like ['*.tmp', 'build/']");
        }
      } else {
        throw at_line(path, field.first, "unknown key 'sources." + name + "'");
      }
    }
    config.sources.push_back(std::move(source));
  }
}

}  // namespace

const SourceConfig* Config::find_source(const std::string& path) const {
  for (const SourceConfig& source : sources) {
    if (source.path == path) {
      return &source;
    }
  }
  return nullptr;
}

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> names;
    for (const KeyRule& rule : rules()) {
      names.push_back(rule.key);
    }
    return names;
  }();
  return keys;
}

void set_config_value(Config& config, const std::string& key, const std::string& value) {
  const KeyRule* rule = find_rule(key);
  if (rule == nullptr) {
    std::string valid = "destination";
    for (const std::string& name : config_keys()) {
      valid += ", " + name;
    }
    throw Error(ErrorKind::usage, "unknown key '" + key + "': valid keys are " + valid);
  }
  rule->set(config, value);
}

std::vector<std::pair<std::string, std::string>> config_values(const Config& config) {
  std::vector<std::pair<std::string, std::string>> values;
  for (const KeyRule& rule : rules()) {
    values.emplace_back(rule.key, rule.get(config));
  }
  return values;
}

Config load_config(const std::string& path) {
  if (!path_exists(path)) {
    throw Error(ErrorKind::not_found, path + " not found: run `mybackup init`");
  }
  return parse_config(std::string(as_text(read_file(path))), path);
}

Config parse_config(const std::string& text, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& error) {
    throw Error(ErrorKind::config, path + ":" + std::to_string(error.mark.line + 1) + ": " + error.msg +
                                        " (fix that line with a text editor)");
  } catch (const YAML::Exception& error) {
    throw Error(ErrorKind::config, path + ": " + error.what());
  }
  Config config;
  if (root.IsNull()) {
    return config;
  }
  if (!root.IsMap()) {
    throw at_line(path, root, "the file must be a mapping of settings");
  }
  for (const auto& section : root) {
    const std::string name = section.first.as<std::string>();
    const YAML::Node& value = section.second;
    if (name == "version") {
      config.version = scalar_text(value);
    } else if (name == "created_at") {
      config.created_at = scalar_text(value);
    } else if (name == "sources") {
      load_sources(path, value, config);
    } else if (name == "encryption") {
      if (!value.IsMap()) {
        throw at_line(path, value, "encryption must be a mapping");
      }
      for (const auto& field : value) {
        const std::string field_name = field.first.as<std::string>();
        if (field_name == "algorithm") {
          config.encryption_algorithm = scalar_text(field.second);
          if (config.encryption_algorithm != "AES-256-GCM") {
            throw at_line(path, field.second, "encryption.algorithm must be AES-256-GCM");
          }
        } else if (field_name == "key_file") {
          config.key_file = scalar_text(field.second);
        } else if (field_name == "key") {
          throw at_line(path, field.first,
                        "encryption.key is not used: mybackup keeps the key in its own file (encryption.key_file); "
                        "remove this line");
        } else {
          throw at_line(path, field.first, "unknown key 'encryption." + field_name + "'");
        }
      }
    } else if (value.IsMap()) {
      for (const auto& field : value) {
        const std::string key = name + "." + field.first.as<std::string>();
        if (key == "compression.algorithm") {
          if (scalar_text(field.second) != "zstd") {
            throw at_line(path, field.second, "compression.algorithm must be zstd");
          }
          continue;
        }
        const KeyRule* rule = find_rule(key);
        if (rule == nullptr) {
          throw at_line(path, field.first, "unknown key '" + key + "'");
        }
        if (!field.second.IsScalar() && !field.second.IsNull()) {
          throw at_line(path, field.second, key + " must be a single value");
        }
        try {
          rule->set(config, scalar_text(field.second));
        } catch (const Error& error) {
          throw at_line(path, field.second, error.what());
        }
      }
    } else if (!value.IsNull() ||
               (name != "compression" && name != "destinations" && name != "watch" && name != "retention" &&
                name != "schedule" && name != "notify")) {
      // An empty known section means its defaults; any other key is unknown, empty or not.
      throw at_line(path, section.first, "unknown key '" + name + "'");
    }
  }
  return config;
}

void save_config(const std::string& path, const Config& config) {
  YAML::Emitter out;
  const auto text_or_null = [&out](const std::string& text) {
    if (text.empty()) {
      out << YAML::Null;
    } else {
      out << YAML::SingleQuoted << text;
    }
  };
  out << YAML::BeginMap;
  out << YAML::Key << "version" << YAML::Value << YAML::SingleQuoted << config.version;
  out << YAML::Key << "created_at" << YAML::Value << YAML::SingleQuoted << config.created_at;
  out << YAML::Key << "encryption" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "algorithm" << YAML::Value << config.encryption_algorithm;
  out << YAML::Key << "key_file" << YAML::Value << config.key_file;
  out << YAML::EndMap;
  out << YAML::Key << "compression" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.compression_enabled;
  out << YAML::Key << "algorithm" << YAML::Value << "zstd";
  out << YAML::Key << "level" << YAML::Value << config.compression_level;
  out << YAML::EndMap;
  out << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
  for (const SourceConfig& source : config.sources) {
    out << YAML::BeginMap;
    out << YAML::Key << "path" << YAML::Value << YAML::SingleQuoted << source.path;
    out << YAML::Key << "exclude" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const std::string& pattern : source.exclude) {
      out << YAML::SingleQuoted << pattern;
    }
    out << YAML::EndSeq;
    out << YAML::Key << "added_at" << YAML::Value << YAML::SingleQuoted << source.added_at;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "destinations" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "primary" << YAML::Value;
  text_or_null(config.destination_primary);
  out << YAML::Key << "secondary" << YAML::Value;
  text_or_null(config.destination_secondary);
  out << YAML::EndMap;
  out << YAML::Key << "watch" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.watch_enabled;
  out << YAML::Key << "interval" << YAML::Value << config.watch_interval;
  out << YAML::Key << "realtime" << YAML::Value << config.watch_realtime;
  out << YAML::Key << "debounce" << YAML::Value << config.watch_debounce;
  out << YAML::EndMap;
  out << YAML::Key << "notify" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "command" << YAML::Value;
  text_or_null(config.notify_command);
  out << YAML::EndMap;
  out << YAML::Key << "retention" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "keep_days" << YAML::Value << config.retention_keep_days;
  out << YAML::Key << "keep_versions" << YAML::Value << config.retention_keep_versions;
  out << YAML::Key << "auto_clean" << YAML::Value << config.retention_auto_clean;
  out << YAML::EndMap;
  out << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "file" << YAML::Value;
  text_or_null(config.schedule_file);
  out << YAML::Key << "archive_dir" << YAML::Value;
  text_or_null(config.schedule_archive_dir);
  out << YAML::Key << "log_dir" << YAML::Value;
  text_or_null(config.schedule_log_dir);
  out << YAML::Key << "catch_up" << YAML::Value << config.schedule_catch_up;
  out << YAML::EndMap;
  out << YAML::EndMap;
  const std::string text = std::string("# mybackup configuration. Edit by hand or with `mybackup config set KEY VALUE`.\n") +
                           out.c_str() + "\n";
  write_file_atomic(path, as_bytes(text), 0600);
}

}  // namespace mybackup
