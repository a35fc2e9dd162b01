#include "mybackup/storage/remote_url.hpp"

#include <algorithm>
#include <cctype>

#include "mybackup/util/bytes.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

[[noreturn]] void refuse(const std::string& url, const std::string& what) {
  throw Error(ErrorKind::usage, "destination " + url + " " + what);
}

std::string lower(std::string text) {
  for (char& c : text) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return text;
}

/// %-encodes what would change the meaning of a URL part: '%', the delimiters in `special`,
/// spaces and control characters.
std::string encode(const std::string& text, const std::string& special) {
  static const char* const hex = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '%' || byte <= 0x20 || byte == 0x7f || special.find(c) != std::string::npos) {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 15];
    } else {
      out += c;
    }
  }
  return out;
}

bool host_character(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
}

void parse_authority(const std::string& authority, const std::string& url, bool user_allowed, RemoteUrl& out) {
  std::string host_port = authority;
  const std::size_t at = authority.rfind('@');
  if (at != std::string::npos) {
    const std::string user = authority.substr(0, at);
    if (user.find(':') != std::string::npos) {
      refuse(url, "holds a password: never put secrets in a destination (config.yaml is copied into every backup); "
                  "use ssh-agent or a key file (sftp), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (s3)");
    }
    if (!user_allowed) {
      refuse(url, "names a user: credentials for this scheme come from the environment, not the URL");
    }
    out.user = percent_decode(user, url);
    if (out.user.empty()) {
      refuse(url, "has an empty user name before '@'");
    }
    host_port = authority.substr(at + 1);
  }
  std::string port_text;
  if (!host_port.empty() && host_port[0] == '[') {
    const std::size_t close = host_port.find(']');
    if (close == std::string::npos) {
      refuse(url, "has an IPv6 address without its closing ']'");
    }
    out.host = lower(host_port.substr(1, close - 1));
    const bool v6 = !out.host.empty() && std::all_of(out.host.begin(), out.host.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
    });
    if (!v6) {
      refuse(url, "has a bad IPv6 address between '[' and ']'");
    }
    const std::string after = host_port.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        refuse(url, "has text after the IPv6 address: write [address]:port");
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        refuse(url, "has an empty port after ':'");
      }
    }
  } else {
    const std::size_t colon = host_port.find(':');
    out.host = lower(host_port.substr(0, colon));
    if (colon != std::string::npos) {
      port_text = host_port.substr(colon + 1);
      if (port_text.empty()) {
        refuse(url, "has an empty port after ':'");
      }
    }
    if (!std::all_of(out.host.begin(), out.host.end(), host_character)) {
      refuse(url, "has a bad host name '" + out.host + "': use letters, digits, '-' and '.', or [an:IPv6::address]");
    }
  }
  if (out.host.empty()) {
    refuse(url, "has no host: write " + out.scheme + "://host/…");
  }
  if (!port_text.empty()) {
    const bool digits = port_text.size() <= 5 && std::all_of(port_text.begin(), port_text.end(), [](char c) {
                          return c >= '0' && c <= '9';
                        });
    const long port = digits ? std::stol(port_text) : 0;
    if (port < 1 || port > 65535) {
      refuse(url, "has a bad port '" + port_text + "': use a number from 1 to 65535");
    }
    out.port = static_cast<std::uint16_t>(port);
  }
}

std::string normalize_remote_path(const std::string& raw, const std::string& url) {
  std::string path;
  std::size_t start = 0;
  while (start <= raw.size()) {
    std::size_t end = raw.find('/', start);
    if (end == std::string::npos) {
      end = raw.size();
    }
    const std::string segment = percent_decode(raw.substr(start, end - start), url);
    if (segment == "." || segment == "..") {
      refuse(url, "has a '" + segment + "' in its path: write the path without it");
    }
    if (segment.find('/') != std::string::npos) {
      refuse(url, "has an encoded '/' (%2F) in its path: write it as a plain '/'");
    }
    if (!segment.empty()) {
      path += "/" + segment;
    }
    start = end + 1;
  }
  return path;
}

/// `url` with the password of "user:password@host" replaced by "***", so no message repeats it.
std::string without_password(const std::string& url) {
  const std::size_t start = url.find("://");
  if (start == std::string::npos) {
    return url;
  }
  const std::size_t authority_end = url.find_first_of("/?#", start + 3);
  const std::size_t at = url.rfind('@', authority_end == std::string::npos ? std::string::npos : authority_end);
  if (at == std::string::npos || at < start + 3) {
    return url;
  }
  const std::size_t colon = url.find(':', start + 3);
  if (colon == std::string::npos || colon > at) {
    return url;
  }
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace

std::string percent_decode(const std::string& text, const std::string& url) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    Bytes value;
    try {
      value = from_hex(text.substr(i + 1, 2));
    } catch (const Error&) {
      value.clear();
    }
    if (value.size() != 1 || value[0] == 0) {
      refuse(url, "has a bad %-escape: write %XX with two hex digits (not %00)");
    }
    out += static_cast<char>(value[0]);
    i += 2;
  }
  return out;
}

RemoteUrl parse_remote_url(const std::string& scheme, const std::string& rest, const std::string& given_url,
                           const std::vector<std::string>& known_options, bool user_allowed) {
  const std::string url = without_password(given_url);
  RemoteUrl out;
  out.scheme = lower(scheme);
  if (rest.find('#') != std::string::npos) {
    refuse(url, "has a '#' fragment: write '#' in a name as %23");
  }
  const std::size_t question = rest.find('?');
  const std::string before_query = rest.substr(0, question);
  const std::size_t slash = before_query.find('/');
  parse_authority(before_query.substr(0, slash), url, user_allowed, out);
  if (slash != std::string::npos) {
    out.path = normalize_remote_path(before_query.substr(slash + 1), url);
  }
  if (question != std::string::npos) {
    const std::string query = rest.substr(question + 1);
    std::size_t start = 0;
    while (start <= query.size()) {
      std::size_t end = query.find('&', start);
      if (end == std::string::npos) {
        end = query.size();
      }
      const std::string pair = query.substr(start, end - start);
      start = end + 1;
      if (pair.empty()) {
        continue;
      }
      const std::size_t equals = pair.find('=');
      const std::string name = lower(percent_decode(pair.substr(0, equals), url));
      const std::string value = equals == std::string::npos ? "" : percent_decode(pair.substr(equals + 1), url);
      if (std::find(known_options.begin(), known_options.end(), name) == known_options.end()) {
        std::string known;
        for (const std::string& option : known_options) {
          known += (known.empty() ? "" : ", ") + option;
        }
        refuse(url, "has an unknown option '" + name + "' (" + out.scheme + ":// knows: " +
                        (known.empty() ? "none" : known) + ")");
      }
      if (value.empty()) {
        refuse(url, "has no value for option '" + name + "': write " + name + "=VALUE");
      }
      if (!out.options.emplace(name, value).second) {
        refuse(url, "gives option '" + name + "' twice");
      }
    }
  }
  return out;
}

std::string RemoteUrl::text() const {
  std::string out = scheme + "://";
  if (!user.empty()) {
    out += encode(user, "@:/?#[]") + "@";
  }
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 0) {
    out += ":" + std::to_string(port);
  }
  out += encode(path, "?#");
  char separator = '?';
  for (const auto& [name, value] : options) {
    out += separator + encode(name, "&=?#") + "=" + encode(value, "&=?#");
    separator = '&';
  }
  return out;
}

std::string RemoteUrl::option(const std::string& name, const std::string& fallback) const {
  const auto found = options.find(name);
  return found == options.end() ? fallback : found->second;
}

}  // namespace mybackup
