// Reading what an S3 server answers (s3_xml) and where its keys come from (aws_credentials),
// without a server: well-formed pages, hostile ones, and credential files.

#include "mybackup/storage/s3_xml.hpp"

#include <gtest/gtest.h>

#include "mybackup/storage/aws_credentials.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup::testing {
namespace {

const std::string kPage =
    R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/data/ab/one.enc</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><Size>123</Size></Contents>
<Contents><Key>p/a&amp;b</Key><Size>0</Size></Contents>
<NextContinuationToken>tok/en+=</NextContinuationToken></ListBucketResult>)";

TEST(S3ListingXml, APageGivesKeysSizesAndTheNextToken) {
  const S3ListPage page = parse_list_objects_v2(kPage);
  ASSERT_EQ(page.objects.size(), 2U);
  EXPECT_EQ(page.objects[0].key, "p/data/ab/one.enc");
  EXPECT_EQ(page.objects[0].size, 123U);
  EXPECT_EQ(page.objects[1].key, "p/a&b");
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_token, "tok/en+=");
  const S3ListPage last = parse_list_objects_v2("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  EXPECT_TRUE(last.objects.empty());
  EXPECT_FALSE(last.truncated);
}

TEST(S3ListingXml, HostilePagesAreCorrupt) {
  for (const std::string& bad : {
           std::string(""), std::string("<ListBucketResult>"), std::string("<Other/>"), std::string("not xml"),
           std::string("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"),
           std::string("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"),
           std::string("<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999</Size></Contents></ListBucketResult>"),
           std::string("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
           std::string("<!DOCTYPE x [<!ENTITY a \"aaaa\">]><ListBucketResult><Contents><Key>&a;</Key><Size>1</Size>"
                       "</Contents></ListBucketResult>"),
       }) {
    EXPECT_EQ(error_kind([&] { parse_list_objects_v2(bad); }), ErrorKind::corrupt) << bad;
  }
}

TEST(S3ListingXml, ErrorRepliesGiveCodeAndAPrintableMessage) {
  const S3ErrorReply reply = parse_s3_error(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone\n\t away</Message></Error>");
  EXPECT_EQ(reply.code, "NoSuchKey");
  EXPECT_EQ(reply.message, "gone away");  // control characters (a newline, a tab) are dropped
  EXPECT_EQ(parse_s3_error("<Error><Code>X</Code><Message>bad \x1b[31m</Message></Error>").code, "")  // not XML 1.0
      << "an escape character makes the body invalid XML";
  EXPECT_EQ(parse_s3_error("<html>proxy error</html>").code, "");
  EXPECT_EQ(parse_s3_error("").code, "");
  EXPECT_EQ(parse_s3_error(std::string(300, 'x')).message, "");
  EXPECT_EQ(parse_s3_error("<Error><Message>" + std::string(500, 'm') + "</Message></Error>").message.size(), 200U);
}

TEST(AwsCredentialsFile, ProfilesAreReadByName) {
  const std::string text =
      "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n"
      "[ backup ]\r\naws_access_key_id=AKIABACKUP\r\n; other comment\r\naws_secret_access_key =s2\r\n"
      "aws_session_token = tok\r\n[half]\naws_access_key_id = AKIAHALF\n";
  const auto fallback = parse_aws_credentials_file(text, "default");
  ASSERT_TRUE(fallback.has_value());
  EXPECT_EQ(fallback->access_key_id, "AKIADEFAULT");
  EXPECT_EQ(fallback->secret_access_key, "s1");
  EXPECT_EQ(fallback->session_token, "");
  const auto backup = parse_aws_credentials_file(text, "backup");
  ASSERT_TRUE(backup.has_value());
  EXPECT_EQ(backup->access_key_id, "AKIABACKUP");
  EXPECT_EQ(backup->secret_access_key, "s2");
  EXPECT_EQ(backup->session_token, "tok");
  EXPECT_FALSE(parse_aws_credentials_file(text, "half").has_value());
  EXPECT_FALSE(parse_aws_credentials_file(text, "nosuch").has_value());
  EXPECT_FALSE(parse_aws_credentials_file("[x\naws_access_key_id=a\naws_secret_access_key=b", "x").has_value());
}

}  // namespace
}  // namespace mybackup::testing
