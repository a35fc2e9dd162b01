// Remote destination URLs: what is accepted, how it is spelled back, and what is refused.

#include "mybackup/storage/remote_url.hpp"

#include <gtest/gtest.h>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;

RemoteUrl parse(const std::string& rest, std::vector<std::string> options = {"region", "ca"}, bool user = true) {
  return parse_remote_url("sftp", rest, "sftp://" + rest, options, user);
}

std::string refusal(const std::string& rest, bool user = true) {
  try {
    parse(rest, {"region", "ca"}, user);
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::usage);
    return error.what();
  }
  ADD_FAILURE() << rest << " was accepted";
  return "";
}

TEST(RemoteUrl, PartsAreSplitAndDecoded) {
  const RemoteUrl url = parse("backup@NAS.example:2222/srv/my%20backups/?region=eu-west-1&ca=/etc/ca.pem");
  EXPECT_EQ(url.scheme, "sftp");
  EXPECT_EQ(url.user, "backup");
  EXPECT_EQ(url.host, "nas.example");
  EXPECT_EQ(url.port, 2222);
  EXPECT_EQ(url.path, "/srv/my backups");
  EXPECT_EQ(url.option("region"), "eu-west-1");
  EXPECT_EQ(url.option("ca"), "/etc/ca.pem");
  EXPECT_EQ(url.option("missing", "fallback"), "fallback");
}

TEST(RemoteUrl, TheCanonicalTextParsesBackToTheSameParts) {
  for (const std::string rest : {"host", "host/a/b", "u@host:1/a//b/", "[::1]:8080/bucket/x", "h/a%3Fb%25c?ca=/x%26y",
                                 "127.0.0.1:18080/bucket?region=us-east-1&ca=/p"}) {
    const RemoteUrl url = parse(rest);
    const std::string text = url.text();
    ASSERT_EQ(text.rfind("sftp://", 0), 0U) << text;
    EXPECT_EQ(parse(text.substr(7)), url) << rest << " → " << text;
  }
  EXPECT_EQ(parse("U@Host:22//a//b/?region=x").text(), "sftp://U@host:22/a/b?region=x");
  EXPECT_EQ(parse("[::1]:8080/bucket").host, "::1");
  EXPECT_EQ(parse("[::1]:8080/bucket").text(), "sftp://[::1]:8080/bucket");
}

TEST(RemoteUrl, BadUrlsAreRefusedWithTheReason) {
  EXPECT_NE(refusal("user:secret@host/x").find("password"), std::string::npos);
  EXPECT_EQ(refusal("user:secret@host/x").find("secret@"), std::string::npos) << "the message must not echo the secret";
  EXPECT_NE(refusal("user@host/x", false).find("names a user"), std::string::npos);
  EXPECT_NE(refusal("/x").find("no host"), std::string::npos);
  EXPECT_NE(refusal("host:0/x").find("bad port"), std::string::npos);
  EXPECT_NE(refusal("host:65536/x").find("bad port"), std::string::npos);
  EXPECT_NE(refusal("host:ab/x").find("bad port"), std::string::npos);
  EXPECT_NE(refusal("host:/x").find("empty port"), std::string::npos);
  EXPECT_NE(refusal("ho st/x").find("bad host"), std::string::npos);
  EXPECT_NE(refusal("[::1/x").find("']'"), std::string::npos);
  EXPECT_NE(refusal("[zz]/x").find("IPv6"), std::string::npos);
  EXPECT_NE(refusal("host/a/../b").find("'..'"), std::string::npos);
  EXPECT_NE(refusal("host/a/%2e%2e/b").find("'..'"), std::string::npos);
  EXPECT_NE(refusal("host/a%2fb").find("%2F"), std::string::npos);
  EXPECT_NE(refusal("host/a%zz").find("%-escape"), std::string::npos);
  EXPECT_NE(refusal("host/a?nosuch=1").find("unknown option 'nosuch'"), std::string::npos);
  EXPECT_NE(refusal("host/a?region=").find("no value"), std::string::npos);
  EXPECT_NE(refusal("host/a?region=a&region=b").find("twice"), std::string::npos);
  EXPECT_NE(refusal("host/a#frag").find("fragment"), std::string::npos);
  EXPECT_EQ(error_kind([] { percent_decode("%00", "x"); }), ErrorKind::usage);
}

TEST(RemoteUrl, SecretsSmuggledIntoTheUserAreRefusedNotStored) {
  // "a:b@c@host" would otherwise keep "a:b@c" as a user name.
  EXPECT_NE(refusal("a:b@c@host/x").find("password"), std::string::npos);
}

}  // namespace
}  // namespace mybackup
