#pragma once
// Destinations as the user writes them (config.yaml, `config set destination`, `init --from`),
// and the Backend each one opens. A destination is either a local path ("/mnt/backups") or a
// URL whose scheme picks the backend:
//
//   /mnt/backups, file:///mnt/backups   a local or mounted folder (make_local_backend)
//   sftp://[user@]host[:port]/path      a folder on an SSH server (make_sftp_backend in
//                                       sftp_backend.hpp: options identity=, known_hosts=)
//   s3://host[:port]/bucket[/prefix]    an S3 bucket over HTTPS; s3+http:// for plain HTTP
//                                       (make_s3_backend in s3_backend.hpp: options region=,
//                                       style=, ca=, profile=)
//
// Every other scheme is refused with the list of supported ones. Adding a backend means adding
// one row to the table in registry.cpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"

namespace mybackup {

/// The schemes open_backend() accepts ("file", …), in table order.
std::vector<std::string> supported_schemes();

/// The canonical spelling of a destination, to store in config.yaml: a local path made absolute
/// and normalized (relative to the current directory), a URL checked and normalized
/// ("file:///a/../b" → "file:///b"). Empty text stays empty (no destination).
/// Error(usage) for an unknown scheme (naming the supported ones) or a malformed URL.
std::string normalize_destination(const std::string& text);

/// The local folder a destination is, or nullopt for a remote one. REQUIRES: normalized.
std::optional<std::string> local_destination_path(const std::string& destination);

/// True if two (normalized) destinations name the same place ("/b" and "file:///b").
bool same_destination(const std::string& a, const std::string& b);

/// How a destination is reached (config.yaml's transfer.*).
struct TransferOptions {
  std::uint64_t upload_limit = 0;  // bytes per second for put(); 0: no limit
};

/// Opens the backend of a (normalized) destination, wrapped in the retry decorator (and the
/// throttle, when `transfer` limits uploads). Error(usage) for an unknown scheme or a remote
/// destination without credentials. Opening does not touch the storage yet.
std::unique_ptr<Backend> open_backend(const std::string& destination, const TransferOptions& transfer = {});

}  // namespace mybackup
