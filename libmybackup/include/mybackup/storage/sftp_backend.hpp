#pragma once
// The SFTP Backend: a repository in a folder of an SSH server, "sftp://[user@]host[:port]/path".
//
// The URL (storage/remote_url.hpp, normalized by the registry):
//   sftp://host/srv/backups          /srv/backups on the server (an absolute path)
//   sftp://host/~/backups            backups in the login folder of the user
//   user@, :port                     default: the local user name, port 22
//   ?identity=/path/to/private_key   log in with this key only (it must not need a passphrase:
//                                    load such a key into ssh-agent instead). Default: ssh-agent
//                                    (SSH_AUTH_SOCK), then ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
//   ?known_hosts=/path               the known_hosts file to check the server against, and the
//                                    only one. Default: ~/.ssh/known_hosts, then
//                                    /etc/ssh/ssh_known_hosts. ~/.ssh/config is not read.
//
// Host keys: checked before anything else is sent, never accepted automatically. An unknown or
// changed key is Error(denied) with its SHA256 fingerprint and how to accept it after comparing
// (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`, and for a changed key
// `ssh-keygen -R '[HOST]:PORT'` first).
//
// How objects are stored: one file per object under the path, folders created as needed (mode
// 0700, files 0600). put() writes ".tmp-<leaf>.<pid>-<thread>-<random>" in the object's folder,
// syncs it with fsync@openssh.com when the server offers it, then
//   Overwrite::no   links it under the name with hardlink@openssh.com, or, without that
//                   extension (or on a file system without hard links), with the plain SFTP
//                   rename, which SFTP v3 servers (OpenSSH among them) refuse onto an existing
//                   name: create-if-absent either way. A server whose plain rename replaces an
//                   existing file would let two racing writers both "win";
//   Overwrite::yes  renames it over the name with posix-rename@openssh.com (atomic). Without
//                   that extension the old object is deleted before the plain rename: a crash
//                   between the two leaves no object under the name.
// Temporaries are never listed; a failed put() removes its own when the connection still works.
// Durability is the server's: SFTP cannot sync a folder, so a rename is as durable as the
// server's file system makes it (ext4 and XFS commit it with their journal).
//
// The server's folder is untrusted: links are never listed or descended into, objects are
// checked with lstat and refused unless they are regular files (so a FIFO cannot hang a read),
// get() checks the size before reading and never reads past the bound, and a listing stops
// (Error(corrupt)) beyond 16 folder levels or 5,000,000 entries. A link in the place of a folder
// on the path of an object read or written by name is followed (SFTP has no O_NOFOLLOW per
// step); what is read there is authenticated by the repository anyway.
//
// Errors (backend.hpp's kinds): connection refused, reset, closed or timed out (60 s without an
// answer) → transient, so the retry decorator tries again on a fresh connection; unknown or
// changed host key, rejected keys, SSH_FX_PERMISSION_DENIED → denied; SSH_FX_NO_SUCH_FILE →
// not_found; the SFTPv5+ codes NO_SPACE_ON_FILESYSTEM and QUOTA_EXCEEDED → no_space (OpenSSH
// reports a full disk as a plain failure: io); a link, folder or special file where an object
// should be → corrupt; anything else → io. Messages name the URL without its options and never
// hold key material or passphrases.
//
// Threads and connections: every method may be called from several threads at once. The backend
// keeps up to 8 connections (an SSH session and its SFTP channel each), opened lazily when a
// thread finds none idle and used by one thread at a time; a thread waits when all 8 are busy.
// A connection that failed is closed and dropped, never reused. Opening the backend does not
// connect. The only global state is libssh's own initialization.

#include <memory>
#include <string>
#include <vector>

#include "mybackup/storage/backend.hpp"
#include "mybackup/storage/remote_url.hpp"

namespace mybackup {

/// The options an sftp:// URL may have: "identity", "known_hosts".
std::vector<std::string> sftp_url_options();

/// Error(usage) unless `url` (parsed with sftp_url_options()) names a folder: it needs a path.
void check_sftp_url(const RemoteUrl& url);

/// The SFTP backend of `url`. Error(usage) as check_sftp_url.
std::unique_ptr<Backend> make_sftp_backend(const RemoteUrl& url);

}  // namespace mybackup
