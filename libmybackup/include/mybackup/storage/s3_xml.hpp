#pragma once
// The XML an S3 server answers with, read with expat: a ListObjectsV2 page and an error reply.
// The server is untrusted: the caller bounds the size of the text before parsing; a document type
// declaration (and with it any entity) is refused; a page that does not parse is Error(corrupt).
// Pure functions; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mybackup {

struct S3ListedObject {
  std::string key;  // the full key, prefix included
  std::uint64_t size = 0;
};

struct S3ListPage {
  std::vector<S3ListedObject> objects;  // in the server's order
  bool truncated = false;               // IsTruncated: another page follows
  std::string next_token;               // NextContinuationToken, when truncated
};

/// One page of a ListObjectsV2 reply. Error(corrupt) for text that is not such a page (malformed
/// XML, another root element, a DOCTYPE, a Contents without a Key, a Size that is not a number).
S3ListPage parse_list_objects_v2(std::string_view xml);

struct S3ErrorReply {
  std::string code;     // "NoSuchKey", "SignatureDoesNotMatch", … ("" when the body had none)
  std::string message;  // the server's own text, cut to 200 characters, control characters removed
};

/// The Code and Message of an S3 error body; empty fields when the body is not such XML (a proxy's
/// HTML page, nothing at all). Never throws.
S3ErrorReply parse_s3_error(std::string_view xml);

}  // namespace mybackup
