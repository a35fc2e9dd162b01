#pragma once
// The S3 servers of the remote tests, which CTest starts once per run (the fixture `s3_server`,
// tests/servers/s3_server.sh): a Ceph RADOS Gateway over plain HTTP, described in
// MYBACKUP_S3_SERVER_DIR/env, and s3rver over TLS, described in MYBACKUP_S3_SERVER_DIR/s3rver.env.
// The tests that use them are named to match MYBACKUP_S3_TESTS (tests/CMakeLists.txt), so that
// they require the fixture. Header-only.

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>

#ifndef MYBACKUP_S3_SERVER_DIR
#error "MYBACKUP_S3_SERVER_DIR must name the folder tests/servers/s3_server.sh start writes"
#endif

namespace mybackup::testing {

/// The "export NAME=value" lines of `file` (one the fixture wrote) as a map.
inline std::map<std::string, std::string> read_exports(const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    throw std::runtime_error("no S3 test server: " + file +
                             " is missing; run the tests through ctest (fixture s3_server) or start the servers with "
                             "tests/servers/s3_server.sh start " MYBACKUP_S3_SERVER_DIR);
  }
  std::map<std::string, std::string> values;
  for (std::string line; std::getline(in, line);) {
    const std::size_t equals = line.find('=');
    if (line.rfind("export ", 0) == 0 && equals != std::string::npos) {
      values[line.substr(7, equals - 7)] = line.substr(equals + 1);
    }
  }
  return values;
}

struct S3TestServer {
  std::string host_port;  // "127.0.0.1:PORT"
  std::string access_key_id;
  std::string secret_access_key;
};

/// The Ceph RADOS Gateway; the first call also exports its keys into this process's environment
/// (children inherit them). Throws, saying how to start it, if it is not running.
inline const S3TestServer& s3_test_server() {
  static const S3TestServer server = [] {
    std::map<std::string, std::string> values = read_exports(std::string(MYBACKUP_S3_SERVER_DIR) + "/env");
    const std::string endpoint = values["S3_ENDPOINT"];
    S3TestServer found{endpoint.substr(endpoint.find("://") + 3), values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]};
    if (endpoint.rfind("http://", 0) != 0 || found.access_key_id.empty() || found.secret_access_key.empty()) {
      throw std::runtime_error(std::string(MYBACKUP_S3_SERVER_DIR) + "/env lacks S3_ENDPOINT or the key pair");
    }
    ::setenv("AWS_ACCESS_KEY_ID", found.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", found.secret_access_key.c_str(), 1);
    ::unsetenv("AWS_SESSION_TOKEN");
    ::unsetenv("AWS_PROFILE");
    return found;
  }();
  return server;
}

/// A prefix no other test uses ("t-<16 hex>"), so tests share one bucket without seeing each other.
inline std::string unique_s3_prefix() {
  std::random_device device;
  const std::uint64_t value = (static_cast<std::uint64_t>(device()) << 32) | device();
  static const char* const hex = "0123456789abcdef";
  std::string text = "t-";
  for (int shift = 60; shift >= 0; shift -= 4) {
    text += hex[(value >> shift) & 15];
  }
  return text;
}

/// The destination URL of a fresh store on the Ceph RADOS Gateway.
inline std::string s3_test_url(const std::string& bucket = "mybackup-tests") {
  return "s3+http://" + s3_test_server().host_port + "/" + bucket + "/" + unique_s3_prefix();
}

/// The destination URL of a fresh store on s3rver, over TLS with the run's own CA, its keys taken
/// from the profile [s3rver] of the fixture's credentials file (named in this process's
/// AWS_SHARED_CREDENTIALS_FILE by the first call). `virtual_hosted`: addressed as
/// https://BUCKET.s3.localhost:PORT/ (style=virtual) instead of https://127.0.0.1:PORT/BUCKET/.
inline std::string s3rver_test_url(const std::string& bucket = "mybackup-tests", bool virtual_hosted = false) {
  static const std::map<std::string, std::string> values = [] {
    std::map<std::string, std::string> read = read_exports(std::string(MYBACKUP_S3_SERVER_DIR) + "/s3rver.env");
    if (read["S3RVER_ENDPOINT"].rfind("https://", 0) != 0 || read["S3RVER_CA"].empty()) {
      throw std::runtime_error(std::string(MYBACKUP_S3_SERVER_DIR) + "/s3rver.env lacks S3RVER_ENDPOINT or S3RVER_CA");
    }
    ::setenv("AWS_SHARED_CREDENTIALS_FILE", (std::string(MYBACKUP_S3_SERVER_DIR) + "/credentials").c_str(), 1);
    return read;
  }();
  std::string host_port = values.at("S3RVER_ENDPOINT").substr(8);
  if (virtual_hosted) {
    host_port = "s3.localhost" + host_port.substr(host_port.rfind(':'));
  }
  return "s3://" + host_port + "/" + bucket + "/" + unique_s3_prefix() + "?ca=" + values.at("S3RVER_CA") +
         "&profile=s3rver" + (virtual_hosted ? "&style=virtual" : "");
}

}  // namespace mybackup::testing
