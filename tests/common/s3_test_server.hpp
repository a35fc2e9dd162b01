#pragma once
// The S3 server of the remote tests: a Ceph RADOS Gateway that CTest starts once per run (the
// fixture `s3_server`, tests/servers/s3_server.sh) and describes in MYBACKUP_S3_SERVER_DIR/env.
// Tests whose names contain "S3" require that fixture (tests/CMakeLists.txt). Header-only.

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#ifndef MYBACKUP_S3_SERVER_DIR
#error "MYBACKUP_S3_SERVER_DIR must name the folder tests/servers/s3_server.sh start writes"
#endif

namespace mybackup::testing {

struct S3TestServer {
  std::string host_port;  // "127.0.0.1:PORT"
  std::string access_key_id;
  std::string secret_access_key;
};

/// The running server; the first call also exports its credentials into this process's
/// environment (children inherit them). Throws, saying how to start it, if it is not running.
inline const S3TestServer& s3_test_server() {
  static const S3TestServer server = [] {
    const std::string env_file = std::string(MYBACKUP_S3_SERVER_DIR) + "/env";
    std::ifstream in(env_file);
    if (!in) {
      throw std::runtime_error("no S3 test server: " + env_file +
                               " is missing; run the tests through ctest (fixture s3_server) or start one with "
                               "tests/servers/s3_server.sh start " MYBACKUP_S3_SERVER_DIR);
    }
    S3TestServer found;
    for (std::string line; std::getline(in, line);) {
      const std::string prefix = "export ";
      const std::size_t equals = line.find('=');
      if (line.rfind(prefix, 0) != 0 || equals == std::string::npos) {
        continue;
      }
      const std::string name = line.substr(prefix.size(), equals - prefix.size());
      const std::string value = line.substr(equals + 1);
      if (name == "AWS_ACCESS_KEY_ID") {
        found.access_key_id = value;
      } else if (name == "AWS_SECRET_ACCESS_KEY") {
        found.secret_access_key = value;
      } else if (name == "S3_ENDPOINT") {
        found.host_port = value.substr(value.find("://") + 3);
      }
    }
    if (found.host_port.empty() || found.access_key_id.empty() || found.secret_access_key.empty()) {
      throw std::runtime_error(env_file + " lacks S3_ENDPOINT or the key pair");
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

/// The destination URL of a fresh store in the shared test bucket.
inline std::string s3_test_url(const std::string& bucket = "mybackup-tests") {
  return "s3+http://" + s3_test_server().host_port + "/" + bucket + "/" + unique_s3_prefix();
}

}  // namespace mybackup::testing
