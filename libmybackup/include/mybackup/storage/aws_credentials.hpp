#pragma once
// Where the S3 backend finds its keys, as the AWS tools do, and never in config.yaml (whose text is
// copied into every manifest):
//   1. the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for
//      temporary credentials), unless the destination names a profile;
//   2. a profile of the shared credentials file: the destination's `profile=` option, else
//      AWS_PROFILE, else "default"; the file is AWS_SHARED_CREDENTIALS_FILE, else
//      ~/.aws/credentials.
// Error(usage) when neither has a key pair, naming both ways to give one. The values are never put
// in an error message.
// Thread-safe (reads the environment and a file; no shared state).

#include <optional>
#include <string>
#include <string_view>

namespace mybackup {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
  std::string source;         // where they came from, for messages: "the environment", "profile x of F"
};

/// The credentials to use; `profile` is the destination's `profile=` option ("" when not given).
AwsCredentials load_aws_credentials(const std::string& profile);

/// The key pair of `profile` in the text of a shared credentials file (INI: "[name]" sections of
/// "key = value" lines, '#' and ';' comments), or nullopt if the profile or either key is missing.
/// A file of outside origin: any text is accepted without throwing.
std::optional<AwsCredentials> parse_aws_credentials_file(std::string_view text, const std::string& profile);

}  // namespace mybackup
