#include "mybackup/storage/aws_credentials.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr std::size_t kMaxCredentialsFile = 1 << 20;

std::string trim(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) {
    return "";
  }
  const std::size_t last = text.find_last_not_of(" \t\r");
  return std::string(text.substr(first, last - first + 1));
}

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::string credentials_file_path() {
  if (std::string path = environment("AWS_SHARED_CREDENTIALS_FILE"); !path.empty()) {
    return path;
  }
  const std::string home = environment("HOME");
  return home.empty() ? "" : home + "/.aws/credentials";
}

/// The file's text, at most kMaxCredentialsFile bytes; nullopt when it cannot be read.
std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::string text(kMaxCredentialsFile, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

}  // namespace

std::optional<AwsCredentials> parse_aws_credentials_file(std::string_view text, const std::string& profile) {
  AwsCredentials found;
  bool in_profile = false;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      continue;
    }
    if (line.front() == '[') {
      in_profile = line.back() == ']' && trim(std::string_view(line).substr(1, line.size() - 2)) == profile;
      continue;
    }
    const std::size_t equals = line.find('=');
    if (!in_profile || equals == std::string::npos) {
      continue;
    }
    const std::string key = trim(std::string_view(line).substr(0, equals));
    const std::string value = trim(std::string_view(line).substr(equals + 1));
    if (key == "aws_access_key_id") {
      found.access_key_id = value;
    } else if (key == "aws_secret_access_key") {
      found.secret_access_key = value;
    } else if (key == "aws_session_token") {
      found.session_token = value;
    }
  }
  if (found.access_key_id.empty() || found.secret_access_key.empty()) {
    return std::nullopt;
  }
  return found;
}

AwsCredentials load_aws_credentials(const std::string& profile) {
  if (profile.empty()) {
    AwsCredentials from_environment{environment("AWS_ACCESS_KEY_ID"), environment("AWS_SECRET_ACCESS_KEY"),
                                    environment("AWS_SESSION_TOKEN"), "the environment"};
    if (!from_environment.access_key_id.empty() && !from_environment.secret_access_key.empty()) {
      return from_environment;
    }
  }
  std::string name = profile;
  if (name.empty()) {
    name = environment("AWS_PROFILE");
  }
  if (name.empty()) {
    name = "default";
  }
  const std::string path = credentials_file_path();
  if (!path.empty()) {
    if (const auto text = read_small_file(path)) {
      if (auto found = parse_aws_credentials_file(*text, name)) {
        found->source = "profile '" + name + "' of " + path;
        return *found;
      }
    }
  }
  throw Error(ErrorKind::usage, "no S3 credentials: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add "
                                "aws_access_key_id and aws_secret_access_key to profile '" +
                                    name + "' in " + (path.empty() ? "~/.aws/credentials" : path));
}

}  // namespace mybackup
