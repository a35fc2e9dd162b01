#pragma once
// The parts of a remote destination URL, "scheme://[user@]host[:port]/path[?name=value&…]", as
// the SFTP and S3 backends read them. The text after "://" is parsed here; the scheme itself is
// picked by the registry (registry.hpp).
//
// What is refused (Error(usage), one line naming the URL and the fix):
// - a password in the URL ("user:secret@host"): the URL is stored in config.yaml, which is copied
//   into every manifest, so secrets come from the agent, a key file or the environment instead;
// - an empty host, a port outside 1-65535, a bad %-escape, an option the scheme does not know,
//   an option given twice, a fragment ("#…").
// Pure functions of their arguments; thread-safe.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mybackup {

struct RemoteUrl {
  std::string scheme;                         // lower case: "sftp", "s3", "s3+http"
  std::string user;                           // empty when the URL names none
  std::string host;                           // lower case; an IPv6 address without its brackets
  std::uint16_t port = 0;                     // 0: the protocol's default
  std::string path;                           // %-decoded, "/" separated, no trailing "/", may be ""
  std::map<std::string, std::string> options; // the query's name=value pairs, %-decoded

  /// The canonical text: scheme://user@host:port/path?a=1&b=2 (options sorted by name; characters
  /// that would change the meaning %-encoded). parse(text()) == *this.
  std::string text() const;

  /// The value of option `name`, or `fallback` when it is not given.
  std::string option(const std::string& name, const std::string& fallback = "") const;

  bool operator==(const RemoteUrl&) const = default;
};

/// Parses `rest`, the text after "scheme://" of `url` (which messages quote). `known_options`
/// lists the query names the scheme accepts; `user_allowed` says whether "user@" may appear.
/// The path is normalized: empty, "." and ".." segments are refused (a remote path has no current
/// directory to resolve them against), a trailing "/" is dropped.
RemoteUrl parse_remote_url(const std::string& scheme, const std::string& rest, const std::string& url,
                           const std::vector<std::string>& known_options, bool user_allowed);

/// Decodes %XX escapes in `text` (part of `url`, which messages quote). Error(usage) for a bad
/// or %00 escape.
std::string percent_decode(const std::string& text, const std::string& url);

}  // namespace mybackup
