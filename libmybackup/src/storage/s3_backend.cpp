#include "mybackup/storage/s3_backend.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>
#include <utility>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/storage/aws_credentials.hpp"
#include "mybackup/storage/s3_xml.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr std::uint64_t kMaxErrorBody = 64 * 1024;
constexpr std::uint64_t kMaxListPage = 16 * 1024 * 1024;
constexpr long kConnectTimeoutSeconds = 20;
constexpr long kStallSeconds = 60;  // no byte for this long: the transfer is given up (transient)
constexpr long kReceiveBuffer = 512 * 1024;  // bytes per read from the socket (libcurl's default, 16 KiB, is a system call per 16 KiB)

/// AWS's URI encoding: everything but A-Za-z0-9-_.~ as %XX (and '/' too unless `keep_slash`).
std::string aws_encode(const std::string& text, bool keep_slash) {
  static const char* const hex = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += c;
    } else {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 15];
    }
  }
  return out;
}

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

std::string content_md5(ByteView data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr) != 1) {
    throw Error(ErrorKind::crypto, "OpenSSL could not compute an MD5 digest for an S3 upload");
  }
  return base64(digest, length);
}

bool valid_bucket_name(const std::string& name) {
  const auto edge = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return name.size() >= 3 && name.size() <= 63 && edge(name.front()) && edge(name.back()) &&
         std::all_of(name.begin(), name.end(), [&](char c) { return edge(c) || c == '-' || c == '.'; });
}

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

void initialize_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw Error(ErrorKind::io, "libcurl could not be initialized");
    }
  });
}

struct Request {
  std::string method = "GET";  // GET, HEAD, PUT, DELETE
  std::string key;             // "" addresses the bucket itself
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::string> headers;
  ByteView body;
  std::uint64_t max_body = kMaxErrorBody;  // the most a reply may carry
};

struct Response {
  long status = 0;
  Bytes body;
  std::optional<std::uint64_t> content_length;
  std::optional<std::uint64_t> range_start;  // the first byte of a 206 reply (Content-Range)
};

/// What the transfer callbacks share with the request.
struct Transfer {
  Response* response = nullptr;
  std::uint64_t max_body = 0;
  bool head = false;  // a HEAD reply's Content-Length is the object's size, not a body to bound
  bool over_bound = false;
};

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (transfer->response->body.size() + n > transfer->max_body) {
    transfer->over_bound = true;
    return 0;  // stops the transfer: nothing past the bound is read
  }
  Bytes& body = transfer->response->body;
  if (body.empty() && transfer->response->content_length) {
    // One allocation of the announced size (never past the bound): growing by doubling copied
    // every large download twice into fresh pages, most of a restore's system time.
    body.reserve(static_cast<std::size_t>(std::min(*transfer->response->content_length, transfer->max_body)));
  }
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
  body.insert(body.end(), bytes, bytes + n);
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  std::string line(data, n);
  std::transform(line.begin(), line.end(), line.begin(), [](unsigned char c) { return std::tolower(c); });
  if (line.rfind("http/", 0) == 0) {
    transfer->response->content_length.reset();  // a new response (after 100 Continue)
    transfer->response->range_start.reset();
  } else if (line.rfind("content-range:", 0) == 0) {
    const std::size_t first = line.find_first_of("0123456789");
    const std::size_t last = first == std::string::npos ? first : line.find_first_not_of("0123456789", first);
    if (first != std::string::npos && last != std::string::npos && line[last] == '-' && last - first <= 19) {
      transfer->response->range_start = std::stoull(line.substr(first, last - first));
    }
  } else if (line.rfind("content-length:", 0) == 0) {
    const std::string value = line.substr(15);
    const std::size_t first = value.find_first_of("0123456789");
    if (first != std::string::npos) {
      const std::size_t last = value.find_first_not_of("0123456789", first);
      const std::string digits = value.substr(first, last - first);
      if (digits.size() <= 19) {
        transfer->response->content_length = std::stoull(digits);
        if (!transfer->head && *transfer->response->content_length > transfer->max_body) {
          transfer->over_bound = true;  // refused before a byte of the body is read
        }
      }
    }
  }
  return n;
}

class S3Backend final : public Backend {
 public:
  explicit S3Backend(const RemoteUrl& url) : url_(url) {
    check_s3_url(url);
    initialize_curl_once();
    const std::size_t slash = url.path.find('/', 1);
    bucket_ = url.path.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
    key_prefix_ = slash == std::string::npos ? "" : url.path.substr(slash + 1) + "/";
    region_ = url.option("region", environment("AWS_REGION"));
    if (region_.empty()) {
      region_ = environment("AWS_DEFAULT_REGION");
    }
    if (region_.empty()) {
      region_ = "us-east-1";
    }
    const std::string scheme = url.scheme == "s3+http" ? "http" : "https";
    const std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    const std::string port = url.port == 0 ? "" : ":" + std::to_string(url.port);
    virtual_style_ = url.option("style", "path") == "virtual";
    base_ = virtual_style_ ? scheme + "://" + bucket_ + "." + host + port + "/" : scheme + "://" + host + port + "/" + bucket_ + "/";
    bucket_url_ = virtual_style_ ? base_ : scheme + "://" + host + port + "/" + bucket_;
    credentials_ = load_aws_credentials(url.option("profile"));
    location_ = url.text();
  }

  ~S3Backend() override {
    for (CURL* handle : idle_) {
      curl_easy_cleanup(handle);
    }
  }

  S3Backend(const S3Backend&) = delete;
  S3Backend& operator=(const S3Backend&) = delete;

  std::string location() const override { return location_; }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    check_object_name(name);
    Request request;
    request.method = "PUT";
    request.key = key_prefix_ + name;
    request.body = data;
    request.headers = {"Content-MD5: " + content_md5(data), "Content-Type: application/octet-stream"};
    if (overwrite == Overwrite::no) {
      // Asked first, since some servers ignore If-None-Match (then only a true race can replace).
      if (size(name)) {
        throw Error(ErrorKind::exists, location_ + ": " + name + " already exists");
      }
      request.headers.push_back("If-None-Match: *");
    }
    Response response = perform(request);
    if (response.status == 404 && error_code(response) == "NoSuchBucket") {
      create_bucket();
      response = perform(request);
    }
    if (response.status == 412) {
      throw Error(ErrorKind::exists, location_ + ": " + name + " already exists");
    }
    expect_success(response, name);
  }

  Bytes get(const std::string& name, std::uint64_t max_size) const override {
    check_object_name(name);
    Request request;
    request.key = key_prefix_ + name;
    request.max_body = std::max(max_size, kMaxErrorBody);
    Response response = perform(request, name, max_size);
    expect_success(response, name);
    if (response.body.size() > max_size) {
      throw_too_large(name, response.body.size(), max_size);
    }
    if (response.content_length && *response.content_length != response.body.size()) {
      throw Error(ErrorKind::transient, location_ + ": " + name + " arrived shorter than the server announced");
    }
    return std::move(response.body);
  }

  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    check_object_name(name);
    if (length == 0) {
      const auto object_size = size(name);
      if (!object_size) {
        throw_not_found(name, "");
      }
      if (*object_size < offset) {
        throw_short(name, offset, length, *object_size);
      }
      return {};
    }
    Request request;
    request.key = key_prefix_ + name;
    request.headers = {"Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1)};
    request.max_body = std::max(length, kMaxErrorBody);
    Response response = perform(request, name, length);
    if (response.status == 416) {
      throw_short(name, offset, length, std::nullopt);
    }
    expect_success(response, name);
    if (response.status != 206) {
      throw Error(ErrorKind::io, location_ + ": the server ignored the byte range asked for " + name +
                                     " (HTTP " + std::to_string(response.status) + " instead of 206)");
    }
    if (response.range_start != offset) {
      throw Error(ErrorKind::corrupt, location_ + ": the server sent another byte range of " + name + " than asked for");
    }
    if (response.body.size() > length) {
      // More than asked, from the right place (s3rver answers "bytes=0-0" with the whole object):
      // what was asked is there, within the bound the reply was read with.
      response.body.resize(length);
    }
    if (response.body.size() != length) {
      throw_short(name, offset, length, std::nullopt);
    }
    return std::move(response.body);
  }

  std::optional<std::uint64_t> size(const std::string& name) const override {
    check_object_name(name);
    Request request;
    request.method = "HEAD";
    request.key = key_prefix_ + name;
    const Response response = perform(request);
    if (response.status == 404) {
      return std::nullopt;
    }
    if (response.status >= 400 && response.body.empty()) {
      // A HEAD reply has no body, so no error code: ask again with a GET of one byte to learn why
      // (a wrong secret, clock skew and a denied permission call for different fixes).
      request.method = "GET";
      request.headers = {"Range: bytes=0-0"};
      if (const Response probe = perform(request); probe.status >= 400) {
        expect_success(probe, name);
      }
    }
    expect_success(response, name);
    if (!response.content_length) {
      throw Error(ErrorKind::io, location_ + ": the server gave no size for " + name);
    }
    return response.content_length;
  }

  std::vector<ObjectInfo> list(const std::string& prefix) const override {
    if (!prefix.empty()) {
      check_object_name(prefix);
    }
    std::vector<ObjectInfo> objects;
    list_pages(key_prefix_ + (prefix.empty() ? "" : prefix + "/"), 0, [&](const S3ListedObject& object) {
      std::string name = object.key.substr(key_prefix_.size());
      try {
        check_object_name(name);
      } catch (const Error&) {
        return true;  // a folder marker or a foreign key: not one of ours
      }
      objects.push_back({std::move(name), object.size});
      return true;
    });
    std::sort(objects.begin(), objects.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    objects.erase(std::unique(objects.begin(), objects.end(),
                              [](const ObjectInfo& a, const ObjectInfo& b) { return a.name == b.name; }),
                  objects.end());
    return objects;
  }

  bool empty() const override {
    bool found = false;
    list_pages(key_prefix_, 1, [&](const S3ListedObject&) {
      found = true;
      return false;
    });
    return !found;
  }

  void remove(const std::string& name) override {
    check_object_name(name);
    Request request;
    request.method = "DELETE";
    request.key = key_prefix_ + name;
    const Response response = perform(request);
    if (response.status == 404) {
      return;
    }
    expect_success(response, name);
  }

 private:
  /// Calls `each` for every listed key under `key_prefix` (keys outside it are dropped) until it
  /// returns false. A missing bucket lists nothing. `page_size` 0: the server's default.
  template <typename Each>
  void list_pages(const std::string& key_prefix, int page_size, Each each) const {
    std::string token;
    std::set<std::string> tokens_seen;
    while (true) {
      Request request;
      request.query = {{"list-type", "2"}, {"prefix", key_prefix}};
      if (page_size > 0) {
        request.query.emplace_back("max-keys", std::to_string(page_size));
      }
      if (!token.empty()) {
        request.query.emplace_back("continuation-token", token);
      }
      request.max_body = kMaxListPage;
      const Response response = perform(request, "the listing", kMaxListPage);
      if (response.status == 404 && error_code(response) == "NoSuchBucket") {
        return;
      }
      expect_success(response, "the listing of " + (key_prefix.empty() ? std::string("the bucket") : key_prefix));
      S3ListPage page = parse_list_objects_v2(as_text(response.body));
      for (const S3ListedObject& object : page.objects) {
        if (object.key.size() > key_prefix.size() && object.key.compare(0, key_prefix.size(), key_prefix) == 0 &&
            !each(object)) {
          return;
        }
      }
      if (!page.truncated) {
        return;
      }
      if (!tokens_seen.insert(page.next_token).second) {
        throw Error(ErrorKind::corrupt, location_ + ": the server's listing repeats a page (a loop): refusing to go on");
      }
      token = std::move(page.next_token);
    }
  }

  void create_bucket() {
    Request request;
    request.method = "PUT";
    const std::string configuration =
        region_ == "us-east-1" ? "" :
                               "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                               "<LocationConstraint>" + region_ + "</LocationConstraint></CreateBucketConfiguration>";
    request.body = as_bytes(configuration);
    const Response response = perform(request);
    const std::string code = error_code(response);
    if (response.status == 409 && code == "BucketAlreadyOwnedByYou") {
      return;
    }
    if (response.status == 409 && code == "BucketAlreadyExists") {
      // Some servers (s3rver) answer so to the owner as well, when another of our uploads created
      // the bucket a moment before (a backup's first packs go up at once): one we may list is ours.
      if (bucket_is_listable()) {
        return;
      }
      throw Error(ErrorKind::denied, location_ + ": bucket '" + bucket_ +
                                         "' belongs to someone else: pick another bucket name in the destination");
    }
    expect_success(response, "bucket '" + bucket_ + "' (creating it)");
  }

  /// True if the bucket answers a listing of nothing with these credentials.
  bool bucket_is_listable() const {
    Request request;
    request.query = {{"list-type", "2"}, {"max-keys", "0"}};
    return perform(request, "the listing").status == 200;
  }

  std::string error_code(const Response& response) const {
    return parse_s3_error(as_text(response.body)).code;
  }

  [[noreturn]] void throw_not_found(const std::string& what, const std::string& code) const {
    if (code == "NoSuchBucket") {
      throw Error(ErrorKind::not_found, location_ + ": bucket '" + bucket_ + "' does not exist: create it, or fix the destination");
    }
    throw Error(ErrorKind::not_found, location_ + ": " + what + " does not exist");
  }

  [[noreturn]] void throw_too_large(const std::string& name, std::uint64_t size, std::uint64_t bound) const {
    throw Error(ErrorKind::corrupt, location_ + ": " + name + " is " + std::to_string(size) + " bytes, more than the " +
                                        std::to_string(bound) + " such an object can have (damaged or planted)");
  }

  [[noreturn]] void throw_short(const std::string& name, std::uint64_t offset, std::uint64_t length,
                                std::optional<std::uint64_t> size) const {
    throw Error(ErrorKind::corrupt, location_ + ": " + name + " is shorter than asked for (bytes " +
                                        std::to_string(offset) + "+" + std::to_string(length) +
                                        (size ? " of " + std::to_string(*size) : std::string()) + ")");
  }

  /// Throws the Error a non-2xx reply means.
  void expect_success(const Response& response, const std::string& what) const {
    if (response.status >= 200 && response.status < 300) {
      return;
    }
    const S3ErrorReply reply = parse_s3_error(as_text(response.body));
    const std::string& code = reply.code;
    const std::string detail = " (HTTP " + std::to_string(response.status) + (code.empty() ? "" : " " + code) +
                               (reply.message.empty() ? "" : ": " + reply.message) + ")";
    if (response.status == 404) {
      throw_not_found(what, code);
    }
    if (code == "RequestTimeTooSkewed") {
      throw Error(ErrorKind::denied, location_ + ": this machine's clock is too far from the S3 server's (more than "
                                                 "15 minutes): set the clock right (enable NTP) and try again");
    }
    if (code == "SignatureDoesNotMatch") {
      throw Error(ErrorKind::denied, location_ + ": the server refused the signature: the secret key from " +
                                         credentials_.source + " is wrong for its access key");
    }
    if (code == "InvalidAccessKeyId") {
      throw Error(ErrorKind::denied, location_ + ": the server does not know the access key from " +
                                         credentials_.source + ": check AWS_ACCESS_KEY_ID or the profile");
    }
    if (code == "QuotaExceeded") {
      throw Error(ErrorKind::no_space, location_ + ": the bucket's quota is used up" + detail);
    }
    if (response.status == 403 || response.status == 401) {
      throw Error(ErrorKind::denied, location_ + ": access to " + what + " is denied to the credentials from " +
                                         credentials_.source + detail);
    }
    if (response.status == 429 || response.status >= 500 || response.status == 409 || code == "BadDigest" ||
        code == "XAmzContentSHA256Mismatch" || code == "RequestTimeout" || code == "SlowDown") {
      throw Error(ErrorKind::transient, location_ + ": " + what + ": the server asks to try again" + detail);
    }
    throw Error(ErrorKind::io, location_ + ": " + what + ": the server refused the request" + detail);
  }

  CURL* borrow() const {
    {
      const std::lock_guard lock(pool_mutex_);
      if (!idle_.empty()) {
        CURL* handle = idle_.back();
        idle_.pop_back();
        return handle;
      }
    }
    CURL* handle = curl_easy_init();
    if (handle == nullptr) {
      throw Error(ErrorKind::io, "libcurl could not make a transfer handle (out of memory?)");
    }
    return handle;
  }

  void give_back(CURL* handle) const {
    const std::lock_guard lock(pool_mutex_);
    idle_.push_back(handle);
  }

  std::string url_for(const Request& request) const {
    std::string url = request.key.empty() ? bucket_url_ : base_ + aws_encode(request.key, true);
    std::vector<std::pair<std::string, std::string>> query = request.query;
    std::sort(query.begin(), query.end());  // SigV4 signs the query as sent: it must be in canonical order
    char separator = '?';
    for (const auto& [name, value] : query) {
      url += separator + aws_encode(name, false) + "=" + aws_encode(value, false);
      separator = '&';
    }
    return url;
  }

  /// Sends one request and returns the reply, of any status. `what` and `bound` name the object
  /// and its size bound in the error thrown when the reply is larger. Network failures throw.
  Response perform(const Request& request, const std::string& what = "", std::uint64_t bound = 0) const {
    CURL* handle = borrow();
    struct Return {
      const S3Backend* self;
      CURL* handle;
      ~Return() { self->give_back(handle); }
    } give_back_later{this, handle};
    curl_easy_reset(handle);

    Response response;
    Transfer transfer{&response, request.max_body, request.method == "HEAD", false};
    std::vector<std::string> headers = request.headers;
    headers.push_back("x-amz-content-sha256: " + to_hex(Sha256::hash(request.body)));
    if (!credentials_.session_token.empty()) {
      headers.push_back("x-amz-security-token: " + credentials_.session_token);
    }
    curl_slist* header_list = nullptr;
    for (const std::string& header : headers) {
      curl_slist* grown = curl_slist_append(header_list, header.c_str());
      if (grown == nullptr) {
        curl_slist_free_all(header_list);
        throw Error(ErrorKind::io, "out of memory building an S3 request");
      }
      header_list = grown;
    }
    const std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_owner(header_list, curl_slist_free_all);

    const std::string url = url_for(request);
    const std::string sigv4 = "aws:amz:" + region_ + ":s3";
    char error_text[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
    curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(handle, CURLOPT_USERNAME, credentials_.access_key_id.c_str());
    curl_easy_setopt(handle, CURLOPT_PASSWORD, credentials_.secret_access_key.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header_list);
    // Sends the body without waiting for "100 Continue" (an empty "Expect:" header, the usual way,
    // breaks libcurl 7.88's signature).
    curl_easy_setopt(handle, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    curl_easy_setopt(handle, CURLOPT_BUFFERSIZE, kReceiveBuffer);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);
    if (const std::string ca = url_.option("ca"); !ca.empty()) {
      curl_easy_setopt(handle, CURLOPT_CAINFO, ca.c_str());
    }
    if (request.method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (request.method == "PUT") {
      // The body as "post fields" (not a read callback): libcurl's SigV4 hashes the payload it signs
      // from them, and that hash must equal our x-amz-content-sha256.
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "PUT");
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.empty() ? "" : reinterpret_cast<const char*>(request.body.data()));
    } else if (request.method == "DELETE") {
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "DELETE");
    }

    const CURLcode result = curl_easy_perform(handle);
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
    if (transfer.over_bound) {
      throw_too_large(what.empty() ? "a reply" : what, response.content_length.value_or(response.body.size()),
                      bound == 0 ? request.max_body : bound);
    }
    if (result != CURLE_OK) {
      throw_transfer_error(result, error_text);
    }
    if (request.method == "HEAD" && response.status >= 200 && response.status < 300) {
      curl_off_t length = -1;
      if (curl_easy_getinfo(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length >= 0) {
        response.content_length = static_cast<std::uint64_t>(length);
      }
    }
    return response;
  }

  [[noreturn]] void throw_transfer_error(CURLcode result, const char* error_text) const {
    const std::string reason = error_text[0] != '\0' ? error_text : curl_easy_strerror(result);
    switch (result) {
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CACERT_BADFILE:
        throw Error(ErrorKind::denied, location_ + ": the server's TLS certificate is not trusted (" + reason +
                                           "): if it is signed by your own CA, add ?ca=/path/to/ca.pem to the destination");
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_URL_MALFORMAT:
        throw Error(ErrorKind::usage, location_ + ": " + reason);
      case CURLE_OUT_OF_MEMORY:
        throw Error(ErrorKind::io, location_ + ": out of memory: " + reason);
      default:
        // Resolving, connecting, resets, timeouts, a reply cut short: the network, worth another try.
        throw Error(ErrorKind::transient, location_ + ": " + reason);
    }
  }

  RemoteUrl url_;
  std::string bucket_;
  std::string key_prefix_;  // "" or "a/b/"
  std::string region_;
  bool virtual_style_ = false;
  std::string base_;        // objects are base_ + key
  std::string bucket_url_;  // the bucket itself
  std::string location_;
  AwsCredentials credentials_;
  mutable std::mutex pool_mutex_;
  mutable std::vector<CURL*> idle_;
};

}  // namespace

const std::vector<std::string>& s3_url_options() {
  static const std::vector<std::string> options = {"ca", "profile", "region", "style"};
  return options;
}

void check_s3_url(const RemoteUrl& url) {
  const std::string example = url.scheme + "://" + (url.host.empty() ? "host" : url.host) + "/bucket[/prefix]";
  if (url.path.empty()) {
    throw Error(ErrorKind::usage, "destination " + url.text() + " names no bucket: write " + example);
  }
  const std::size_t slash = url.path.find('/', 1);
  const std::string bucket = url.path.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
  if (!valid_bucket_name(bucket)) {
    throw Error(ErrorKind::usage, "destination " + url.text() + " has a bad bucket name '" + bucket +
                                      "': 3 to 63 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit");
  }
  const std::string style = url.option("style", "path");
  if (style != "path" && style != "virtual") {
    throw Error(ErrorKind::usage, "destination " + url.text() + " has style=" + style + ": write style=path or style=virtual");
  }
}

std::unique_ptr<Backend> make_s3_backend(const RemoteUrl& url) { return std::make_unique<S3Backend>(url); }

}  // namespace mybackup
