// Writes the seed corpora of fuzz/corpus/<harness>/ with the product's own code: two backups and a
// clean of a few small files into a repository held in memory under the harnesses' test key
// (markers, packs, manifests), a lock file, a wrapped key with a cheap scrypt cost, config.yaml
// and schedule files, and the date forms of util/date_parse.hpp.
//
//   fuzz_make_seeds <corpus directory>       (scripts/fuzz seeds)
//
// The output changes from run to run (random nonces, ids and times); the committed corpus is one
// such run.
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "mybackup/catalog/catalog.hpp"
#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/engine/backup.hpp"
#include "mybackup/engine/clean.hpp"
#include "mybackup/home/config.hpp"
#include "mybackup/legacy/schedule_book.hpp"
#include "mybackup/repository/lock.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/repository/repository.hpp"
#include "mybackup/storage/sftp_wire.hpp"
#include "mybackup/util/fs.hpp"

namespace fs = std::filesystem;
using namespace mybackup;

namespace {

void write_seed(const fs::path& corpus, const std::string& harness, const std::string& name, ByteView bytes) {
  fs::create_directories(corpus / harness);
  std::ofstream out(corpus / harness / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    throw Error(ErrorKind::io, "cannot write " + (corpus / harness / name).string());
  }
}

void write_seed(const fs::path& corpus, const std::string& harness, const std::string& name, std::string_view text) {
  write_seed(corpus, harness, name, as_bytes(text));
}

void write_text(const fs::path& path, const std::string& text) {
  write_file_atomic(path.string(), as_bytes(text));
}

/// The plaintext of a pack header (pack.hpp's grammar) behind the blob area's size, as
/// pack_header_fuzz.cpp takes it.
Bytes pack_header_seed(const std::vector<PackEntry>& entries) {
  std::uint32_t blobs = 0;
  for (const PackEntry& entry : entries) {
    blobs = std::max(blobs, entry.offset + entry.length);
  }
  Bytes seed;
  const auto put = [&seed](std::uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) {
      seed.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    }
  };
  put(blobs, 2);
  put(1, 1);  // header version
  put(entries.size(), 4);
  for (const PackEntry& entry : entries) {
    seed.insert(seed.end(), entry.id.begin(), entry.id.end());
    put(entry.offset, 4);
    put(entry.length, 4);
    put(entry.raw_length, 4);
    put(entry.flags, 1);
  }
  return seed;
}

/// Two backups (a file added, one changed, one deleted) and a clean keeping one version.
void repository_seeds(const fs::path& corpus, const fs::path& scratch, const std::string& config_text) {
  const fs::path source = scratch / "source";
  fs::create_directories(source / "docs" / "empty");
  std::string text;
  for (int line = 0; line < 60; ++line) {
    text += "line " + std::to_string(line) + " of a compressible text file\n";
  }
  write_text(source / "docs" / "notes.txt", text);
  std::array<std::uint8_t, 3000> noise{};
  random_bytes(noise);
  write_file_atomic((source / "docs" / "noise.bin").string(), noise);
  fs::create_symlink("notes.txt", source / "docs" / "link");

  auto owned = std::make_unique<fuzz::MemoryBackend>();
  fuzz::MemoryBackend& backend = *owned;
  RepositoryOptions options;
  options.chunker = RepositoryOptions::chunker_for(RepositoryOptions::kMinAverageChunkSize);
  options.pack_target_size = RepositoryOptions::kMinPackTargetSize;
  auto repository = Repository::open(std::move(owned), fuzz::test_key(), CreateIfMissing::yes, options);
  Catalog catalog((scratch / "catalog.db").string());

  BackupOptions backup;
  backup.sources = {{source.string(), {}}};
  backup.threads = 1;
  backup.config = config_text;
  run_backup(catalog, BackupTarget::writing_to(*repository), backup);
  write_text(source / "docs" / "notes.txt", text + "one more line\n");
  fs::remove(source / "docs" / "noise.bin");
  run_backup(catalog, BackupTarget::writing_to(*repository), backup);
  // The packs before the clean, while they still hold the deleted file.
  int packs = 0;
  for (const Repository::StoredPack& pack : repository->list_packs()) {
    if (packs++ == 3) {
      break;  // a few are enough
    }
    const Bytes bytes = repository->read_pack(pack.name, pack.size);
    write_seed(corpus, "pack", pack.name.substr(0, 16) + ".enc", bytes);
    write_seed(corpus, "pack_header", pack.name.substr(0, 16) + ".bin",
               pack_header_seed(read_pack_header(repository->keys().enc_key, bytes)));
  }
  CleanOptions clean;
  clean.policy.keep_days = 0;
  clean.policy.keep_versions = 1;
  run_clean(catalog, *repository, nullptr, clean);

  write_seed(corpus, "marker", "mybackup-repo.json", backend.get(object_names::kMarker, object_names::kMaxMarkerSize));
  for (const std::string& key : repository->manifest_keys()) {
    const std::string name = key.substr(key.rfind('/') + 1);
    // manifest_object_fuzz.cpp stores its input under one fixed name, and the blob id is bound
    // to the name: seal the seed again under that name.
    Manifest manifest = repository->read_manifest(key);
    write_seed(corpus, "manifest", name + ".bin", encode_manifest(manifest));
    manifest.seq = 1;
    manifest.run_id = "0123456789abcdef";
    const std::string fixed = repository->put_manifest(manifest);
    write_seed(corpus, "manifest_object", name, backend.get(fixed, object_names::kMaxManifestSize));
    backend.remove(fixed);
  }
}

void lock_seeds(const fs::path& corpus) {
  fuzz::MemoryBackend backend;
  const RepositoryLock lock(backend, "backup");
  write_seed(corpus, "lock", "held.json", backend.get(lock.key(), object_names::kMaxLockSize));
}

void wrapped_key_seeds(const fs::path& corpus) {
  const ScryptParams cheap{16, 1, 1};
  const WrappedKey key = wrap_master_key(fuzz::test_key(), "fuzz passphrase", cheap,
                                         {"2026-11-21T13:43:00Z", "laptop", "offsite"});
  write_seed(corpus, "wrapped_key", key.id + ".json", key.text);
}

std::string config_seeds(const fs::path& corpus, const fs::path& scratch) {
  Config config;
  config.created_at = "2026-01-20T14:30:00";
  config.sources = {{"/home/me/Documents", {"*.tmp", "cache/"}, "2026-01-20T14:31:00"}};
  set_config_value(config, "destination", "/mnt/backups");
  set_config_value(config, "destinations.secondary", "file:///mnt/offsite");
  set_config_value(config, "repository.chunk_size", "64KiB");
  set_config_value(config, "notify.command", "notify-send mybackup '{message}'");
  set_config_value(config, "schedule.file", "/home/me/schedules.txt");
  const fs::path full = scratch / "config.yaml";
  save_config(full.string(), config);
  const std::string text(as_text(read_file(full.string())));
  write_seed(corpus, "config", "full.yaml", text);
  const fs::path defaults = scratch / "defaults.yaml";
  save_config(defaults.string(), Config());
  write_seed(corpus, "config", "defaults.yaml", read_file(defaults.string()));
  return text;
}

void schedule_seeds(const fs::path& corpus) {
  ScheduleBook book = ScheduleBook::parse("# Comments and blank lines stay.\n\n documents ; 09:00 ; docs_morning\r\n", "seed");
  book.add(parse_schedule("/home/me/photos;18:30;photos_evening"));
  book.add(parse_schedule("relative/path with spaces;23:59;late.night-1"));
  write_seed(corpus, "schedule", "backup_schedules.txt", book.serialize());
}

void date_seeds(const fs::path& corpus) {
  const std::vector<std::string> forms = {"2026-11-21",          "2026-11-21T13:45",          "2026-11-21 13:45:30",
                                          "2026-11-21T13:45Z",   "2026-11-21T13:45:30+05:30", "2026-11-21T13:45:30.25-0800",
                                          "2024-02-29T02:30:00", "2026-03-29T02:30",          "2026-10-25T02:30"};
  for (std::size_t i = 0; i < forms.size(); ++i) {
    write_seed(corpus, "date_parse", "form" + std::to_string(i), forms[i]);
  }
}

}  // namespace

/// What S3 servers answer (shapes seen from Ceph RGW and AWS), and a shared credentials file.
void s3_seeds(const fs::path& corpus) {
  write_seed(corpus, "s3_xml", "list_page.xml",
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/"
             "2006-03-01/\"><Name>b</Name><Prefix>p/data/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
             "<IsTruncated>true</IsTruncated><Contents><Key>p/data/ab/ab01.enc</Key><LastModified>2026-12-02T10:00:00"
             ".000Z</LastModified><ETag>&quot;9e107d9d372bb6826bd81d3542a419d6&quot;</ETag><Size>16777216</Size>"
             "<StorageClass>STANDARD</StorageClass></Contents><Contents><Key>p/data/cd/cd02.enc</Key><Size>0</Size>"
             "</Contents><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
             "</ListBucketResult>");
  write_seed(corpus, "s3_xml", "list_last.xml",
             "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>");
  write_seed(corpus, "s3_xml", "error.xml",
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key "
             "does not exist.</Message><BucketName>b</BucketName><RequestId>tx0001</RequestId></Error>");
  write_seed(corpus, "aws_credentials", "credentials",
             "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n\n"
             "# temporary\n[backup]\r\naws_access_key_id=ASIAEXAMPLE\r\naws_secret_access_key=abc\r\n"
             "aws_session_token = FwoGZXIvYXdzEXAMPLE\r\n");
}

/// What an OpenSSH sftp-server answers, each after the harness's selector byte.
void sftp_seeds(const fs::path& corpus) {
  using namespace mybackup::sftp;
  const auto seed = [&](const std::string& name, std::uint8_t which, const Bytes& body) {
    Bytes bytes{which};
    bytes.insert(bytes.end(), body.begin(), body.end());
    write_seed(corpus, "sftp_wire", name, bytes);
  };
  seed("header", 0, Bytes{0, 0, 0, 0x1c, kStatus, 0, 0, 0, 3});
  Bytes version;
  for (const char* extension : {"posix-rename@openssh.com", "hardlink@openssh.com", "fsync@openssh.com", "limits@openssh.com"}) {
    put_string(version, std::string(extension));
    put_string(version, std::string("1"));
  }
  seed("version", 1, version);
  Bytes status;
  put_u32(status, Status::no_such_file);
  put_string(status, std::string("No such file"));
  put_string(status, std::string(""));
  seed("status", 2, status);
  Bytes handle;
  put_string(handle, std::string("\0\0\0\1", 4));
  seed("handle", 3, handle);
  Bytes attributes;
  put_u32(attributes, 0x1 | 0x2 | 0x4 | 0x8);
  put_u64(attributes, 16777216);
  put_u64(attributes, 0);
  put_u32(attributes, 0100600);
  put_u64(attributes, 0);
  seed("attrs", 4, attributes);
  Bytes names;
  put_u32(names, 2);
  for (const char* name : {"ab", "mybackup-repo.json"}) {
    put_string(names, std::string(name));
    put_string(names, std::string("-rw------- 1 u u 0 Dec  2 10:00 ") + name);
    names.insert(names.end(), attributes.begin(), attributes.end());
  }
  seed("names", 5, names);
  Bytes data;
  put_string(data, std::string(100, 'x'));
  seed("data", 6, data);
  Bytes limits;
  put_u64(limits, 262144);
  put_u64(limits, 261120);
  put_u64(limits, 261120);
  put_u64(limits, 0);
  seed("limits", 7, limits);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds <corpus directory>\n");
    return 2;
  }
  const fs::path corpus = argv[1];
  const fs::path scratch = fs::temp_directory_path() / ("mybackup-seeds-" + std::to_string(::getpid()));
  try {
    fs::create_directories(scratch);
    const std::string config_text = config_seeds(corpus, scratch);
    repository_seeds(corpus, scratch, config_text);
    lock_seeds(corpus);
    wrapped_key_seeds(corpus);
    schedule_seeds(corpus);
    date_seeds(corpus);
    s3_seeds(corpus);
    sftp_seeds(corpus);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", error.what());
    fs::remove_all(scratch);
    return 1;
  }
  fs::remove_all(scratch);
  return 0;
}
