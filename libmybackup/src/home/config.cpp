#include "mybackup/home/config.hpp"

#include <nlohmann/json.hpp>
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

/// Who changes a setting: the user (`config set`, shown by `config show`), or only the file
/// (written by init, checked when loading, never offered by `config set`).
enum class Scope { user, file };

/// How a setting's text is written to config.yaml.
enum class Style {
  plain,           // as YAML needs it: numbers, true/false, plain words
  quoted,          // always in single quotes
  quoted_or_null,  // in single quotes, or null (~) when empty: paths and commands
  sources,         // the list of sources (the row has no get/set: sources have their own code)
};

/// One setting of config.yaml: its key ("section.field", or "field" at the top level), how to
/// read it out of a Config and how to set it from text. Loading the file, saving it, `config set`
/// and `config show` all go through this one table, in its order (the file's layout), so each
/// setting and its validation live once.
struct KeyRule {
  std::string key;
  Scope scope;
  Style style;
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

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * 1024;

/// A size as config.yaml writes it: "16MiB", "64KiB", or a number of bytes.
std::string size_text(std::uint64_t bytes) {
  if (bytes >= kMiB && bytes % kMiB == 0) {
    return std::to_string(bytes / kMiB) + "MiB";
  }
  if (bytes >= kKiB && bytes % kKiB == 0) {
    return std::to_string(bytes / kKiB) + "KiB";
  }
  return std::to_string(bytes);
}

/// A size: a whole number of bytes, or followed by K/KiB or M/MiB (any case, a space allowed).
std::uint64_t parse_size(const std::string& key, const std::string& text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, problem] = std::from_chars(text.data(), end, value);
  std::string unit(stop, end);
  unit.erase(0, unit.find_first_not_of(' '));
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::uint64_t scale = unit.empty() ? 1 : (unit == "k" || unit == "kib") ? kKiB : (unit == "m" || unit == "mib") ? kMiB : 0;
  // Bounded well below overflow: every size setting is at most a few dozen MiB.
  if (problem != std::errc() || stop == text.data() || scale == 0 || value > (std::uint64_t{1} << 40)) {
    throw Error(ErrorKind::usage, key + " must be a size like 64KiB or 16MiB, got '" + text + "'");
  }
  return value * scale;
}

/// A setting whose only valid value is `value` (the file names it for readers; nothing changes it).
KeyRule fixed(const std::string& key, const std::string& value) {
  return {key, Scope::file, Style::plain, [value](const Config&) { return value; },
          [key, value](Config&, const std::string& text) {
            if (text != value) {
              throw Error(ErrorKind::usage, key + " must be " + value);
            }
          }};
}

const std::vector<KeyRule>& rules() {
  static const std::vector<KeyRule> table = {
      {"version", Scope::file, Style::quoted, [](const Config& c) { return c.version; },
       [](Config& c, const std::string& v) { c.version = v; }},
      {"created_at", Scope::file, Style::quoted, [](const Config& c) { return c.created_at; },
       [](Config& c, const std::string& v) { c.created_at = v; }},
      fixed("encryption.algorithm", "AES-256-GCM"),
      {"encryption.key_file", Scope::file, Style::plain, [](const Config& c) { return c.key_file; },
       [](Config& c, const std::string& v) { c.key_file = v; }},
      {"compression.enabled", Scope::user, Style::plain, [](const Config& c) { return bool_text(c.compression_enabled); },
       [](Config& c, const std::string& v) { c.compression_enabled = parse_bool("compression.enabled", v); }},
      fixed("compression.algorithm", "zstd"),
      {"compression.level", Scope::user, Style::plain, [](const Config& c) { return std::to_string(c.compression_level); },
       [](Config& c, const std::string& v) { c.compression_level = parse_int("compression.level", v, 1, 22, ""); }},
      {"sources", Scope::file, Style::sources, nullptr, nullptr},
      {"destinations.primary", Scope::user, Style::quoted_or_null, [](const Config& c) { return c.destination_primary; },
       [](Config& c, const std::string& v) { c.destination_primary = destination_value(v); }},
      {"destinations.secondary", Scope::user, Style::quoted_or_null,
       [](const Config& c) { return c.destination_secondary; },
       [](Config& c, const std::string& v) { c.destination_secondary = destination_value(v); }},
      {"repository.chunk_size", Scope::user, Style::plain,
       [](const Config& c) { return size_text(c.new_repository.chunker.avg_size); },
       [](Config& c, const std::string& v) {
         c.new_repository.chunker = RepositoryOptions::chunker_for(parse_size("repository.chunk_size", v), "repository.chunk_size");
       }},
      {"repository.pack_size", Scope::user, Style::plain,
       [](const Config& c) { return size_text(c.new_repository.pack_target_size); },
       [](Config& c, const std::string& v) {
         const std::uint64_t size = parse_size("repository.pack_size", v);
         RepositoryOptions::check_pack_target_size(size, "repository.pack_size");
         c.new_repository.pack_target_size = static_cast<std::uint32_t>(size);
       }},
      {"transfer.connections", Scope::user, Style::plain,
       [](const Config& c) { return std::to_string(c.transfer_connections); },
       [](Config& c, const std::string& v) { c.transfer_connections = parse_int("transfer.connections", v, 1, 64, ""); }},
      {"transfer.upload_limit", Scope::user, Style::plain,
       [](const Config& c) { return c.transfer_upload_limit == 0 ? std::string("0") : size_text(c.transfer_upload_limit); },
       [](Config& c, const std::string& v) {
         c.transfer_upload_limit = parse_size("transfer.upload_limit", v);  // per second
       }},
      {"watch.enabled", Scope::user, Style::plain, [](const Config& c) { return bool_text(c.watch_enabled); },
       [](Config& c, const std::string& v) { c.watch_enabled = parse_bool("watch.enabled", v); }},
      {"watch.interval", Scope::user, Style::plain, [](const Config& c) { return std::to_string(c.watch_interval); },
       [](Config& c, const std::string& v) {
         c.watch_interval = parse_int("watch.interval", v, 1, std::numeric_limits<int>::max(), " (seconds)");
       }},
      {"watch.realtime", Scope::user, Style::plain, [](const Config& c) { return bool_text(c.watch_realtime); },
       [](Config& c, const std::string& v) { c.watch_realtime = parse_bool("watch.realtime", v); }},
      {"watch.debounce", Scope::user, Style::plain, [](const Config& c) { return std::to_string(c.watch_debounce); },
       [](Config& c, const std::string& v) {
         c.watch_debounce = parse_int("watch.debounce", v, 0, 3600, " (seconds)");
       }},
      {"notify.command", Scope::user, Style::quoted_or_null, [](const Config& c) { return c.notify_command; },
       [](Config& c, const std::string& v) { c.notify_command = (v == "null" || v == "~") ? "" : v; }},
      {"retention.keep_days", Scope::user, Style::plain,
       [](const Config& c) { return std::to_string(c.retention_keep_days); },
       [](Config& c, const std::string& v) {
         c.retention_keep_days = parse_int("retention.keep_days", v, 0, std::numeric_limits<int>::max(), "");
       }},
      {"retention.keep_versions", Scope::user, Style::plain,
       [](const Config& c) { return std::to_string(c.retention_keep_versions); },
       [](Config& c, const std::string& v) {
         c.retention_keep_versions = parse_int("retention.keep_versions", v, 1, std::numeric_limits<int>::max(), "");
       }},
      {"retention.auto_clean", Scope::user, Style::plain, [](const Config& c) { return bool_text(c.retention_auto_clean); },
       [](Config& c, const std::string& v) { c.retention_auto_clean = parse_bool("retention.auto_clean", v); }},
      {"retention.orphan_grace_hours", Scope::user, Style::plain,
       [](const Config& c) { return std::to_string(c.retention_orphan_grace_hours); },
       [](Config& c, const std::string& v) {
         c.retention_orphan_grace_hours = parse_int("retention.orphan_grace_hours", v, 0, 24 * 365, " (hours)");
       }},
      {"schedule.file", Scope::user, Style::quoted_or_null, [](const Config& c) { return c.schedule_file; },
       [](Config& c, const std::string& v) { c.schedule_file = path_value(v); }},
      {"schedule.archive_dir", Scope::user, Style::quoted_or_null, [](const Config& c) { return c.schedule_archive_dir; },
       [](Config& c, const std::string& v) { c.schedule_archive_dir = path_value(v); }},
      {"schedule.log_dir", Scope::user, Style::quoted_or_null, [](const Config& c) { return c.schedule_log_dir; },
       [](Config& c, const std::string& v) { c.schedule_log_dir = path_value(v); }},
      {"schedule.catch_up", Scope::user, Style::plain, [](const Config& c) { return bool_text(c.schedule_catch_up); },
       [](Config& c, const std::string& v) { c.schedule_catch_up = parse_bool("schedule.catch_up", v); }},
  };
  return table;
}

/// The section of a key ("watch" for "watch.interval"; "" at the top level) and its field.
std::pair<std::string, std::string> split_key(const std::string& key) {
  const std::size_t dot = key.find('.');
  return dot == std::string::npos ? std::pair{std::string(), key} : std::pair{key.substr(0, dot), key.substr(dot + 1)};
}

/// The rule of `key` in `scope` (Scope::file: any rule, as the file may hold them all), or nullptr.
const KeyRule* find_rule(const std::string& key, Scope scope) {
  for (const KeyRule& rule : rules()) {
    if (rule.key == key && rule.style != Style::sources && (scope == Scope::file || rule.scope == Scope::user)) {
      return &rule;
    }
  }
  return nullptr;
}

bool is_section(const std::string& name) {
  return !name.empty() && std::any_of(rules().begin(), rules().end(), [&name](const KeyRule& rule) { return split_key(rule.key).first == name; });
}

Error at_line(const std::string& path, const YAML::Node& node, const std::string& problem) {
  return Error(ErrorKind::config, path + ":" + std::to_string(node.Mark().line + 1) + ": " + problem);
}

std::string scalar_text(const YAML::Node& node) { return node.IsNull() ? std::string() : node.Scalar(); }

/// The text of a key or a list item, which must be a single value: yaml-cpp's own conversion
/// would throw its exception type, not Error, for a list, a mapping or an empty value.
std::string single_value(const std::string& path, const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) {
    throw at_line(path, node, what + " must be a single value, not a list, a mapping or nothing");
  }
  return node.Scalar();
}

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
      const std::string name = single_value(path, field.first, "a key");
      if (name == "path") {
        source.path = normalize_path(field.second.Scalar());
      } else if (name == "added_at") {
        source.added_at = scalar_text(field.second);
      } else if (name == "exclude") {
        if (field.second.IsSequence()) {
          for (const YAML::Node& pattern : field.second) {
            source.exclude.push_back(single_value(path, pattern, "an exclude pattern"));
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

void write_sources(YAML::Emitter& out, const std::vector<SourceConfig>& sources) {
  out << YAML::BeginSeq;
  for (const SourceConfig& source : sources) {
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
}

/// Sets `rule` from its value in the file; errors name the line.
void set_from_file(const std::string& path, const KeyRule& rule, const YAML::Node& value, Config& config) {
  if (!value.IsScalar() && !value.IsNull()) {
    throw at_line(path, value, rule.key + " must be a single value");
  }
  try {
    rule.set(config, scalar_text(value));
  } catch (const Error& error) {
    throw at_line(path, value, error.what());
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
      if (rule.scope == Scope::user) {
        names.push_back(rule.key);
      }
    }
    return names;
  }();
  return keys;
}

void set_config_value(Config& config, const std::string& key, const std::string& value) {
  const KeyRule* rule = find_rule(key == "destination" ? "destinations.primary" : key, Scope::user);
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
    if (rule.scope == Scope::user) {
      values.emplace_back(rule.key, rule.get(config));
    }
  }
  return values;
}

std::string source_paths(const Config& config) {
  std::string text;
  for (const SourceConfig& source : config.sources) {
    text += (text.empty() ? "" : ", ") + source.path;
  }
  return text.empty() ? "none" : text;
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
    const std::string name = single_value(path, section.first, "a key");
    const YAML::Node& value = section.second;
    if (name == "sources") {
      load_sources(path, value, config);
    } else if (const KeyRule* rule = name.find('.') == std::string::npos ? find_rule(name, Scope::file) : nullptr) {
      set_from_file(path, *rule, value, config);
    } else if (!is_section(name)) {
      throw at_line(path, section.first, "unknown key '" + name + "'");
    } else if (value.IsMap()) {
      for (const auto& field : value) {
        const std::string key = name + "." + single_value(path, field.first, "a key");
        if (key == "encryption.key") {
          throw at_line(path, field.first,
                        "encryption.key is not used: mybackup keeps the key in its own file (encryption.key_file); "
                        "remove this line");
        }
        const KeyRule* field_rule = find_rule(key, Scope::file);
        if (field_rule == nullptr) {
          throw at_line(path, field.first, "unknown key '" + key + "'");
        }
        set_from_file(path, *field_rule, field.second, config);
      }
    } else if (!value.IsNull()) {  // an empty section means its defaults
      throw at_line(path, value, name + " must be a mapping");
    }
  }
  return config;
}

void save_config(const std::string& path, const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;  // the open one ("" at the top level)
  for (const KeyRule& rule : rules()) {
    const auto [rule_section, field] = split_key(rule.key);
    if (rule_section != section) {
      if (!section.empty()) {
        out << YAML::EndMap;
      }
      section = rule_section;
      if (!section.empty()) {
        out << YAML::Key << section << YAML::Value << YAML::BeginMap;
      }
    }
    out << YAML::Key << field << YAML::Value;
    if (rule.style == Style::sources) {
      write_sources(out, config.sources);
      continue;
    }
    const std::string text = rule.get(config);
    if (rule.style == Style::plain) {
      out << text;
    } else if (rule.style == Style::quoted_or_null && text.empty()) {
      out << YAML::Null;
    } else {
      out << YAML::SingleQuoted << text;
    }
  }
  if (!section.empty()) {
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  const std::string text = std::string("# mybackup configuration. Edit by hand or with `mybackup config set KEY VALUE`.\n") +
                           out.c_str() + "\n";
  write_file_atomic(path, as_bytes(text), 0600);
}

void to_json(nlohmann::ordered_json& json, const SourceConfig& source) {
  json = {{"path", source.path}, {"exclude", source.exclude}, {"added_at", source.added_at}};
}

void to_json(nlohmann::ordered_json& json, const Config& config) {
  json = nlohmann::ordered_json::object();
  for (const auto& [key, text] : config_values(config)) {
    json[key] = text;
  }
  json["sources"] = config.sources;
}

}  // namespace mybackup
