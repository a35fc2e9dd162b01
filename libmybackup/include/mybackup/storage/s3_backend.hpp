#pragma once
// An S3 bucket (AWS, Ceph's RADOS Gateway, MinIO, Backblaze B2, Wasabi, Garage…) as a Backend,
// through libcurl, whose own AWS Signature V4 signs every request.
//
//   s3://host[:port]/bucket[/prefix][?options]       HTTPS, the certificate checked
//   s3+http://host[:port]/bucket[/prefix][?options]  plain HTTP, only when written so
//
// Options: region=NAME (default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1),
// style=path|virtual (path: https://host/bucket/key, the default, which every server speaks;
// virtual: https://bucket.host/key), ca=/path/to/ca.pem (trust this CA instead of the system's),
// profile=NAME (credentials from that profile, see aws_credentials.hpp).
//
// How the Backend contract is kept:
// - put: one PUT (atomic on every S3 server) with Content-MD5 and x-amz-content-sha256, so a body
//   damaged on the way is refused by the server; a 200 means stored durably. Create-if-absent is
//   a HEAD (the name taken → Error(exists)) then a PUT with `If-None-Match: *` (HTTP 412 →
//   Error(exists)), so two writers racing for one name cannot both win. A server that ignores
//   that header (s3rver, older MinIO, some gateways) still refuses a name already taken, but of
//   two writers racing in the instant between the HEAD and the PUT, the last one wins. mybackup's
//   names are unique per content or per writer (packs by their hash, manifests and locks carry a
//   random id), so only the first backups of two homes racing to create the marker of one empty
//   destination could meet that.
//   A missing bucket is created by the first put (as a local folder is).
// - get: the body is read until the caller's bound and no further (Content-Length is checked
//   first; a body running past the bound is cut off and refused as Error(corrupt)).
// - list: ListObjectsV2, page by page; keys outside the prefix or not valid object names are left
//   out (the listing is untrusted), a page token that repeats is Error(corrupt).
// Errors: 404 → not_found; 412 → exists; 403 and bad credentials → denied, naming the cause (wrong
// secret, unknown key, clock skew, permission); 429, 5xx, 409, resets and timeouts → transient; a
// body that fails the server's digest check → transient (it was damaged on the way).
// Credentials (aws_credentials.hpp) are read when the backend is made; nothing secret is ever put
// in a message or a log line.
// Thread-safe: each call borrows a curl handle from a pool (connections are kept and reused).

#include <memory>
#include <string>

#include "mybackup/storage/backend.hpp"
#include "mybackup/storage/remote_url.hpp"

namespace mybackup {

/// The options an s3:// or s3+http:// URL accepts (for the registry).
const std::vector<std::string>& s3_url_options();

/// Error(usage) unless `url` names a valid bucket (3–63 of [a-z0-9.-], starting and ending with a
/// letter or digit) and valid options (style is path or virtual).
void check_s3_url(const RemoteUrl& url);

/// Opens the bucket `url` names (REQUIRES: check_s3_url passed). Reads the credentials now:
/// Error(usage) when there are none. Touches the network only on the first call.
std::unique_ptr<Backend> make_s3_backend(const RemoteUrl& url);

}  // namespace mybackup
