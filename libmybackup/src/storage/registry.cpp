#include "mybackup/storage/registry.hpp"

#include <cctype>
#include <functional>

#include "mybackup/source/scanner.hpp"
#include "mybackup/storage/remote_url.hpp"
#include "mybackup/storage/s3_backend.hpp"
#include "mybackup/storage/retry_backend.hpp"
#include "mybackup/storage/sftp_backend.hpp"
#include "mybackup/storage/throttled_backend.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

struct Scheme {
  std::string name;
  /// The URL's text after "scheme://" → its canonical form (after "scheme://").
  std::function<std::string(const std::string& rest, const std::string& url)> normalize;
  std::function<std::unique_ptr<Backend>(const std::string& rest)> open;
  bool local = false;
};

/// file:///path or file://localhost/path → the normalized absolute path.
std::string file_path(const std::string& rest, const std::string& url) {
  std::string path;
  if (rest.rfind("localhost/", 0) == 0) {
    path = rest.substr(9);
  } else if (!rest.empty() && rest[0] == '/') {
    path = rest;
  } else {
    throw Error(ErrorKind::usage, "destination " + url +
                                      " names a host: a file:// URL must be file:///absolute/path (use sftp:// for another machine)");
  }
  return normalize_path(percent_decode(path, url));
}

/// The canonical text of a remote URL after "scheme://".
std::string after_scheme(const RemoteUrl& url) { return url.text().substr(url.scheme.size() + 3); }

/// s3://host[:port]/bucket[/prefix][?…] (or s3+http://), checked.
RemoteUrl s3_url(const std::string& scheme, const std::string& rest, const std::string& url) {
  RemoteUrl parsed = parse_remote_url(scheme, rest, url, s3_url_options(), false);
  check_s3_url(parsed);
  return parsed;
}

Scheme s3_scheme(const std::string& name) {
  return {name, [name](const std::string& rest, const std::string& url) { return after_scheme(s3_url(name, rest, url)); },
          [name](const std::string& rest) { return make_s3_backend(s3_url(name, rest, name + "://" + rest)); }, false};
}

/// sftp://[user@]host[:port]/path[?identity=…&known_hosts=…], checked; a path is required.
RemoteUrl sftp_url(const std::string& rest, const std::string& url) {
  RemoteUrl parsed = parse_remote_url("sftp", rest, url, sftp_url_options(), true);
  check_sftp_url(parsed);
  return parsed;
}

const std::vector<Scheme>& schemes() {
  static const std::vector<Scheme> table = {
      {"file", [](const std::string& rest, const std::string& url) { return file_path(rest, url); },
       [](const std::string& rest) { return make_local_backend(file_path(rest, "file://" + rest)); }, true},
      s3_scheme("s3"),
      s3_scheme("s3+http"),
      {"sftp", [](const std::string& rest, const std::string& url) { return after_scheme(sftp_url(rest, url)); },
       [](const std::string& rest) { return make_sftp_backend(sftp_url(rest, "sftp://" + rest)); }, false},
  };
  return table;
}

/// Splits "scheme://rest"; nullopt when `text` is not a URL (a plain path).
std::optional<std::pair<std::string, std::string>> split_url(const std::string& text) {
  const std::size_t colon = text.find("://");
  if (colon == std::string::npos || colon == 0) {
    return std::nullopt;
  }
  const std::string scheme = text.substr(0, colon);
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c = scheme[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!letter && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))) {
      return std::nullopt;  // "./a://b" is a path with an odd name, not a URL
    }
  }
  std::string lower = scheme;
  for (char& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return std::pair{lower, text.substr(colon + 3)};
}

const Scheme& scheme_of(const std::string& name, const std::string& url) {
  for (const Scheme& scheme : schemes()) {
    if (scheme.name == name) {
      return scheme;
    }
  }
  std::string supported;
  for (const std::string& known : supported_schemes()) {
    supported += (supported.empty() ? "" : ", ") + known + "://";
  }
  throw Error(ErrorKind::usage, "destination " + url + " has an unsupported scheme '" + name + "://' (supported: " +
                                    supported + ", or a plain local path)");
}

}  // namespace

std::vector<std::string> supported_schemes() {
  std::vector<std::string> names;
  for (const Scheme& scheme : schemes()) {
    names.push_back(scheme.name);
  }
  return names;
}

std::string normalize_destination(const std::string& text) {
  if (text.empty()) {
    return "";
  }
  const auto url = split_url(text);
  if (!url) {
    return normalize_path(text);
  }
  const Scheme& scheme = scheme_of(url->first, text);
  return scheme.name + "://" + scheme.normalize(url->second, text);
}

std::optional<std::string> local_destination_path(const std::string& destination) {
  const auto url = split_url(destination);
  if (!url) {
    return destination;
  }
  const Scheme& scheme = scheme_of(url->first, destination);
  if (!scheme.local) {
    return std::nullopt;
  }
  return scheme.normalize(url->second, destination);
}

bool same_destination(const std::string& a, const std::string& b) {
  if (a == b) {
    return true;
  }
  const std::optional<std::string> local_a = local_destination_path(a);
  return local_a && local_a == local_destination_path(b);
}

std::unique_ptr<Backend> open_backend(const std::string& destination, const TransferOptions& transfer) {
  const auto url = split_url(destination);
  std::unique_ptr<Backend> backend =
      url ? scheme_of(url->first, destination).open(url->second) : make_local_backend(normalize_path(destination));
  backend = make_retrying_backend(std::move(backend));
  if (transfer.upload_limit > 0) {
    backend = make_throttled_backend(std::move(backend), transfer.upload_limit);
  }
  return backend;
}

}  // namespace mybackup
