#pragma once
// A minimal JSON writer for the few documents mybackup emits (the repository marker, lock files,
// --json command output). Reading JSON is left to yaml-cpp, which parses JSON as YAML 1.2 flow.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mybackup {

/// Builds compact or indented JSON text. Calls must be well nested; the writer inserts commas.
///   JsonWriter json;
///   json.begin_object().key("files").value(12).key("name").value("a\"b").end_object();
///   json.str()  ->  {"files":12,"name":"a\"b"}
class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = false) : pretty_(pretty) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  JsonWriter& value(unsigned number) { return value(static_cast<std::uint64_t>(number)); }
  JsonWriter& value(double number);
  JsonWriter& value(bool flag);
  JsonWriter& null();

  const std::string& str() const { return out_; }

 private:
  void before_value();
  void newline();

  std::string out_;
  std::vector<bool> has_items_;  // one per open container
  bool after_key_ = false;
  bool pretty_;
};

/// JSON string literal with quotes and escapes.
std::string json_quote(std::string_view text);

}  // namespace mybackup
