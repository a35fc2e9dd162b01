#include "mybackup/engine/backup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "util/bounded_queue.hpp"
#include "util/buffer_pool.hpp"
#include "mybackup/format/chunker.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/util/env.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/repository/lock.hpp"

namespace mybackup {

namespace {

constexpr std::size_t kReadBlock = 1024 * 1024;
constexpr std::size_t kCompressQueueBudget = 16 * 1024 * 1024;
constexpr std::size_t kWriteQueueBudget = 16 * 1024 * 1024;
constexpr int kReadAttempts = 3;
constexpr const char* kInterrupted = "interrupted: nothing of this run was recorded (run the backup again to finish it)";
constexpr std::size_t kIdleBufferBudget = 12 * 1024 * 1024;
// Chunks below this size (in practice: small files) are compressed and sealed by the reader
// itself and handed to the writer in batches: a queue handoff per 4 KiB file would cost more in
// thread wake-ups than the work it moves.
constexpr std::size_t kInlineChunkLimit = 256 * 1024;
constexpr std::size_t kBatchBytes = 1024 * 1024;
constexpr std::size_t kPackBufferSlack = 1024 * 1024;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A file the change detector decided to read.
struct FileTask {
  ScanEntry entry;
  std::uint32_t number = 0;
  bool is_new = false;
};

struct RawChunk {
  ChunkId id{};
  Bytes data;
};

struct SealedChunk {
  ChunkId id{};
  Bytes blob;
  std::uint32_t raw_length = 0;
  std::uint8_t flags = 0;
};
using SealedBatch = std::vector<SealedChunk>;

/// Compresses (when it pays) and encrypts chunks; one per thread (it owns a zstd context).
class Sealer {
 public:
  Sealer(int compression_level, const AeadKey& key) : key_(key) {
    if (compression_level > 0) {
      compressor_.emplace(compression_level);
    }
  }

  SealedChunk seal(const ChunkId& id, ByteView data, Bytes blob_buffer) {
    SealedChunk sealed;
    sealed.id = id;
    sealed.raw_length = static_cast<std::uint32_t>(data.size());
    const bool shrunk = compressor_ && compressor_->compress(data, compressed_);
    sealed.flags = shrunk ? kBlobCompressed : 0;
    sealed.blob = std::move(blob_buffer);
    seal_blob(key_, id, sealed.flags, shrunk ? ByteView(compressed_) : data, sealed.blob);
    return sealed;
  }

 private:
  const AeadKey& key_;
  std::optional<Compressor> compressor_;
  Bytes compressed_;
};

/// What one reader thread keeps between files.
struct ReaderState {
  ReaderState(const BackupTarget& target, int compression_level)
      : hmac(target.keys->id_key),
        buffer(2 * static_cast<std::size_t>(target.chunker.max_size) + kReadBlock),
        sealer(compression_level, target.keys->enc_key) {}
  HmacSha256 hmac;
  Bytes buffer;
  Sealer sealer;
  SealedBatch batch;  // small sealed chunks waiting to go to the writer
  std::size_t batch_bytes = 0;
};

/// Error(locked) if the run's writer lock was taken over (its file removed by another writer).
void check_lock(const BackupTarget& target) {
  if (target.lock != nullptr && target.lock->lost()) {
    throw Error(ErrorKind::locked, "the lock on " + target.repository->location() +
                                       " was taken over by another writer during this run (was the computer asleep?): "
                                       "nothing was recorded, run the backup again");
  }
}

std::int64_t mtime_of(const struct stat& info) {
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

/// Everything the worker threads share.
class Pipeline {
 public:
  Pipeline(const BackupTarget& target, const BackupOptions& options, ChunkIdSet known, unsigned threads)
      : target_(target),
        options_(options),
        env_(Env::or_default(options.env)),
        known_(std::move(known)),
        chunker_(target.chunker, make_gear_table(target.keys->gear_seed)),
        threads_(threads),
        compress_queue_(kCompressQueueBudget),
        write_queue_(kWriteQueueBudget),
        // One finished pack may wait while another is being stored: storing (write + fsync)
        // overlaps with compression instead of stalling it.
        upload_queue_(target.pack_target_size()),
        buffers_(kIdleBufferBudget),
        pack_buffers_(target.pack_target_size() + kPackBufferSlack) {}

  /// Processes every task; fills `versions` (file versions), `problems`, `packs` and stats.
  void run(std::vector<FileTask>& tasks) {
    // Largest files first, so one big file does not finish alone at the end while other cores idle.
    std::stable_sort(tasks.begin(), tasks.end(),
                     [](const FileTask& a, const FileTask& b) { return a.entry.size > b.entry.size; });
    tasks_ = &tasks;
    std::vector<std::thread> readers;
    std::vector<std::thread> compressors;
    std::thread uploader([this] { guarded([this] { upload_loop(); }); });
    std::thread writer([this] { guarded([this] { write_loop(); }); });
    for (unsigned i = 0; i < threads_; ++i) {
      compressors.emplace_back([this] { guarded([this] { compress_loop(); }); });
    }
    for (unsigned i = 0; i < threads_; ++i) {
      readers.emplace_back([this] { guarded([this] { read_loop(); }); });
    }
    for (std::thread& thread : readers) {
      thread.join();
    }
    compress_queue_.close();
    for (std::thread& thread : compressors) {
      thread.join();
    }
    write_queue_.close();
    writer.join();
    upload_queue_.close();
    uploader.join();
    if (failure_) {
      std::rethrow_exception(failure_);
    }
  }

  std::vector<ManifestVersion> versions;
  std::vector<ScanProblem> problems;
  std::vector<ManifestPack> packs;
  std::atomic<std::uint64_t> bytes_read{0};
  std::atomic<std::uint64_t> bytes_new{0};
  std::atomic<std::uint64_t> bytes_stored{0};

 private:
  /// Runs a stage; the first exception stops every stage and is rethrown by run().
  template <typename Body>
  void guarded(Body body) {
    try {
      body();
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!failure_) {
        failure_ = std::current_exception();
      }
      stop_ = true;
      compress_queue_.abort();
      write_queue_.abort();
      upload_queue_.abort();
    }
  }

  /// True the first time an id is seen (this run or before): the caller must store the chunk.
  bool claim(const ChunkId& id) {
    std::lock_guard lock(mutex_);
    return known_.insert(id).second;
  }

  void report(FileAction action, const ScanEntry& entry, const std::string& note) {
    if (options_.on_file) {
      options_.on_file(action, entry.type, entry.path, entry.size, note);
    }
  }

  bool cancelled() const { return options_.cancel != nullptr && options_.cancel->load(); }

  void read_loop() {
    ReaderState state(target_, options_.compression_level);
    for (;;) {
      const std::size_t index = next_task_.fetch_add(1);
      if (index >= tasks_->size() || stop_) {
        flush_batch(state);
        return;
      }
      if (cancelled()) {
        throw Error(ErrorKind::interrupted, kInterrupted);
      }
      check_lock(target_);  // a run that lost its lock stops instead of storing more
      FileTask& task = (*tasks_)[index];
      std::string problem;
      for (int attempt = 1; attempt <= kReadAttempts; ++attempt) {
        ManifestVersion version;
        problem = read_file(task, state, version);
        if (cancelled()) {
          throw Error(ErrorKind::interrupted, kInterrupted);
        }
        if (stop_) {
          return;  // another stage failed; run() rethrows its error
        }
        if (problem.empty()) {
          report(task.is_new ? FileAction::added : FileAction::changed, task.entry, "");
          std::lock_guard lock(mutex_);
          versions.push_back(std::move(version));
          break;
        }
        if (problem != "changed while being read") {
          break;
        }
      }
      if (!problem.empty()) {
        report(FileAction::skipped, task.entry, problem);
        std::lock_guard lock(mutex_);
        problems.push_back({task.entry.path, problem});
      }
    }
  }

  /// Reads one file into `version`. Returns "" on success or the reason it was skipped.
  std::string read_file(FileTask& task, ReaderState& state, ManifestVersion& version) {
    Bytes& buffer = state.buffer;
    const int fd = env_.open_for_reading(AT_FDCWD, task.entry.path.c_str());
    if (fd < 0) {
      return fd == -ENOENT ? "vanished before it could be read" : std::string("cannot open: ") + std::strerror(-fd);
    }
    const EnvFd file(env_, fd);
    struct stat before {};
    if (env_.stat_fd(file.get(), before) != 0 || !S_ISREG(before.st_mode)) {
      return "is no longer a regular file";
    }
    Sha256 file_hash;
    std::vector<ChunkId> chunks;
    std::uint64_t total = 0;
    std::size_t start = 0;
    std::size_t end = 0;
    bool at_eof = false;
    const std::size_t max_size = target_.chunker.max_size;
    while (!stop_ && !cancelled()) {
      // Keep at least max_size bytes ahead of `start` (or everything up to EOF): then next_cut
      // always finds a cut.
      while (!at_eof && end - start < max_size) {
        if (end + kReadBlock > buffer.size()) {
          std::memmove(buffer.data(), buffer.data() + start, end - start);
          end -= start;
          start = 0;
        }
        const std::int64_t n = env_.read(file.get(), buffer.data() + end, kReadBlock);
        if (n < 0) {
          return std::string("cannot read: ") + std::strerror(static_cast<int>(-n));
        }
        if (n == 0) {
          at_eof = true;
        }
        end += static_cast<std::size_t>(n);
      }
      if (start == end) {
        break;
      }
      const ByteView window(buffer.data() + start, end - start);
      const std::size_t cut = chunker_.next_cut(window, at_eof);
      const ByteView chunk = window.first(cut);
      file_hash.update(chunk);
      const ChunkId id = state.hmac.mac(chunk);
      chunks.push_back(id);
      total += cut;
      if (claim(id)) {
        bytes_new += cut;
        if (cut < kInlineChunkLimit) {
          SealedChunk sealed = state.sealer.seal(id, chunk, buffers_.acquire());
          state.batch_bytes += sealed.blob.capacity();
          state.batch.push_back(std::move(sealed));
          if (state.batch_bytes >= kBatchBytes) {
            flush_batch(state);
          }
        } else {
          RawChunk raw{id, buffers_.acquire()};
          raw.data.assign(chunk.begin(), chunk.end());
          const std::size_t weight = raw.data.capacity();  // what it really occupies
          compress_queue_.push(std::move(raw), weight);
        }
      }
      start += cut;
    }
    if (stop_ || cancelled()) {
      return "interrupted";  // the run is being abandoned; read_loop reports why
    }
    struct stat after {};
    if (env_.stat_fd(file.get(), after) != 0 || after.st_size != before.st_size || mtime_of(after) != mtime_of(before) ||
        total != static_cast<std::uint64_t>(before.st_size)) {
      return "changed while being read";
    }
    bytes_read += total;
    version.path = task.entry.path;
    version.type = EntryType::file;
    version.number = task.number;
    version.mode = static_cast<std::uint32_t>(before.st_mode & 07777);
    version.mtime_ns = mtime_of(before);
    version.size = total;
    version.inode = static_cast<std::uint64_t>(before.st_ino);
    version.sha256 = file_hash.finish();
    version.chunks = std::move(chunks);
    // What the catalog compares next time is what was actually read.
    task.entry.mtime_ns = version.mtime_ns;
    return "";
  }

  void flush_batch(ReaderState& state) {
    if (!state.batch.empty()) {
      write_queue_.push(std::move(state.batch), state.batch_bytes);
      state.batch = SealedBatch();
      state.batch_bytes = 0;
    }
  }

  void compress_loop() {
    Sealer sealer(options_.compression_level, target_.keys->enc_key);
    while (std::optional<RawChunk> chunk = compress_queue_.pop()) {
      SealedBatch batch;
      batch.push_back(sealer.seal(chunk->id, chunk->data, buffers_.acquire()));
      const std::size_t weight = batch.front().blob.capacity();
      buffers_.release(std::move(chunk->data));  // before blocking on the writer
      chunk.reset();
      write_queue_.push(std::move(batch), weight);
    }
  }

  void write_loop() {
    PackBuilder builder(target_.pack_target_size());
    while (std::optional<SealedBatch> batch = write_queue_.pop()) {
      for (SealedChunk& chunk : *batch) {
        if (!builder.fits(chunk.blob.size())) {
          close_pack(builder);
        }
        builder.add(chunk.id, chunk.blob, chunk.raw_length, chunk.flags);
        buffers_.release(std::move(chunk.blob));
      }
    }
    if (!builder.empty() && !stop_) {
      close_pack(builder);
    }
  }

  void close_pack(PackBuilder& builder) {
    FinishedPack pack = builder.finish(target_.keys->enc_key);
    builder.reuse(pack_buffers_.acquire());
    const std::size_t weight = pack.bytes.size();
    upload_queue_.push(std::move(pack), weight);
  }

  void upload_loop() {
    while (std::optional<FinishedPack> pack = upload_queue_.pop()) {
      store(*pack);
    }
  }

  void store(FinishedPack& pack) {
    if (!options_.dry_run) {
      target_.repository->put_pack(pack);
    }
    bytes_stored += pack.bytes.size();
    ManifestPack record;
    record.name = pack.name;
    record.size = pack.bytes.size();
    record.blobs = std::move(pack.entries);
    pack_buffers_.release(std::move(pack.bytes));
    std::lock_guard lock(mutex_);
    packs.push_back(std::move(record));
  }

  const BackupTarget& target_;
  const BackupOptions& options_;
  Env& env_;
  ChunkIdSet known_;
  Chunker chunker_;
  unsigned threads_;
  BoundedQueue<RawChunk> compress_queue_;
  BoundedQueue<SealedBatch> write_queue_;
  BoundedQueue<FinishedPack> upload_queue_;
  BufferPool buffers_;
  BufferPool pack_buffers_;
  std::vector<FileTask>* tasks_ = nullptr;
  std::atomic<std::size_t> next_task_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::exception_ptr failure_;
};

bool is_at_or_below(const std::string& path, const std::string& root) {
  if (path == root) {
    return true;
  }
  const std::string prefix = root == "/" ? "/" : root + "/";
  return path.compare(0, prefix.size(), prefix) == 0;
}

/// The outcome of comparing one source's scan with its latest recorded state.
struct SourcePlan {
  std::vector<FileTask> reads;
  std::vector<ManifestVersion> direct;  // directories, symlinks and deletion markers: no data to read
};

ManifestVersion metadata_version(const ScanEntry& entry, std::uint32_t number) {
  ManifestVersion version;
  version.path = entry.path;
  version.type = entry.type;
  version.number = number;
  version.mode = entry.mode;
  version.mtime_ns = entry.mtime_ns;
  version.size = entry.size;
  version.inode = entry.inode;
  version.link_target = entry.link_target;
  return version;
}

void plan_source(const ScanResult& scan, const std::unordered_map<std::string, LatestVersion>& latest,
                 BackupReport& report, SourcePlan& plan, const FileCallback& on_file) {
  std::unordered_set<std::string> seen;
  seen.reserve(scan.entries.size());
  for (const ScanEntry& entry : scan.entries) {
    seen.insert(entry.path);
    const auto found = latest.find(entry.path);
    const bool existed = found != latest.end() && found->second.type != EntryType::deleted;
    const std::uint32_t number = found == latest.end() ? 1 : found->second.number + 1;
    if (entry.type == EntryType::file) {
      report.stats.bytes_scanned += entry.size;
    }
    if (existed) {
      const LatestVersion& last = found->second;
      const bool same_kind = last.type == entry.type;
      bool unchanged = same_kind && last.mode == entry.mode && last.mtime_ns == entry.mtime_ns;
      if (entry.type == EntryType::file) {
        unchanged = unchanged && last.size == entry.size && last.inode == entry.inode;
      } else if (entry.type == EntryType::symlink) {
        // A link's mode means nothing on Linux; its target and time do (restore sets both).
        unchanged = same_kind && last.link_target == entry.link_target && last.mtime_ns == entry.mtime_ns;
      }
      if (unchanged) {
        if (entry.type != EntryType::directory) {
          ++report.stats.files_unchanged;
        }
        continue;
      }
    }
    if (entry.type == EntryType::file) {
      plan.reads.push_back({entry, number, !existed});
      continue;
    }
    plan.direct.push_back(metadata_version(entry, number));
    if (entry.type != EntryType::directory) {
      ++(existed ? report.stats.files_changed : report.stats.files_new);
    }
    if (on_file) {
      on_file(existed ? FileAction::changed : FileAction::added, entry.type, entry.path, entry.size, "");
    }
  }
  // Whatever the catalog has and the scan did not find is gone, unless it lies under something
  // the scan could not read (then its fate is unknown and its history stays as it is).
  for (const auto& [path, last] : latest) {
    if (last.type == EntryType::deleted || seen.count(path) != 0) {
      continue;
    }
    const bool unknown = std::any_of(scan.problems.begin(), scan.problems.end(),
                                     [&path = path](const ScanProblem& problem) { return is_at_or_below(path, problem.path); });
    if (unknown) {
      continue;
    }
    ManifestVersion marker;
    marker.path = path;
    marker.type = EntryType::deleted;
    marker.number = last.number + 1;
    plan.direct.push_back(std::move(marker));
    if (last.type != EntryType::directory) {
      ++report.stats.files_deleted;
    }
    if (on_file) {
      on_file(FileAction::deleted, last.type, path, last.size, "");
    }
  }
}

}  // namespace

BackupReport run_backup(Catalog& catalog, const BackupTarget& target, const BackupOptions& options) {
  if (target.keys == nullptr || (!options.dry_run && target.repository == nullptr)) {
    throw Error(ErrorKind::usage, "run_backup needs keys and, unless dry_run, a repository");
  }
  if (catalog.encryptions() >= kEncryptionLimit) {
    throw Error(ErrorKind::usage, "this repository's key has made " + std::to_string(catalog.encryptions()) +
                                      " encryptions, the safe limit for AES-GCM with random nonces: start a new "
                                      "repository with a key of its own (`mybackup --home NEW_HOME init`, then a new "
                                      "destination); this one stays restorable");
  }
  const Clock& clock = Env::or_default(options.env);
  BackupReport report;
  report.started_ns = clock.now_ns();

  // 1. Scan and compare with the catalog.
  auto phase = std::chrono::steady_clock::now();
  SourcePlan plan;
  for (const BackupSource& source : options.sources) {
    ScanResult scan;
    try {
      scan = scan_tree(source.path, ExcludeMatcher(source.exclude), options.env);
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::not_found) {
        throw;
      }
      // A missing source (unmounted disk, renamed folder) is skipped, not taken as deleted.
      const ScanProblem problem{source.path, "source not found (is its disk mounted? stop backing it up with `mybackup remove " +
                                                 source.path + "`)"};
      report.problems.push_back(problem);
      if (options.on_file) {
        options.on_file(FileAction::skipped, EntryType::directory, problem.path, 0, problem.reason);
      }
      continue;
    }
    for (const ScanProblem& problem : scan.problems) {
      report.problems.push_back(problem);
      if (options.on_file) {
        options.on_file(FileAction::skipped, EntryType::file, problem.path, 0, problem.reason);
      }
    }
    plan_source(scan, catalog.latest_under(source.path), report, plan, options.on_file);
  }
  report.scan_seconds = seconds_since(phase);

  // 2. Read and store what changed.
  phase = std::chrono::steady_clock::now();
  std::vector<ManifestVersion> versions = std::move(plan.direct);
  std::vector<ManifestPack> packs;
  if (!plan.reads.empty()) {
    const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    Pipeline pipeline(target, options, catalog.known_chunks(), options.threads != 0 ? options.threads : cores);
    pipeline.run(plan.reads);
    for (const FileTask& task : plan.reads) {
      ++(task.is_new ? report.stats.files_new : report.stats.files_changed);
    }
    for (const ScanProblem& problem : pipeline.problems) {
      report.problems.push_back(problem);
    }
    versions.insert(versions.end(), std::make_move_iterator(pipeline.versions.begin()),
                    std::make_move_iterator(pipeline.versions.end()));
    packs = std::move(pipeline.packs);
    report.stats.bytes_read = pipeline.bytes_read;
    report.stats.bytes_new = pipeline.bytes_new;
    report.stats.bytes_stored = pipeline.bytes_stored;
    report.packs_written = packs.size();
    // Files that were skipped were counted as new or changed above; count them as skipped only.
    for (const ScanProblem& problem : pipeline.problems) {
      const auto task = std::find_if(plan.reads.begin(), plan.reads.end(),
                                     [&](const FileTask& t) { return t.entry.path == problem.path; });
      if (task != plan.reads.end()) {
        --(task->is_new ? report.stats.files_new : report.stats.files_changed);
      }
    }
  }
  report.stats.files_skipped = report.problems.size();
  report.stats.status = report.problems.empty() ? "ok" : "partial";
  report.store_seconds = seconds_since(phase);
  if (options.cancel != nullptr && options.cancel->load()) {
    throw Error(ErrorKind::interrupted, kInterrupted);
  }

  // 3. Manifest, then catalog: the catalog only ever points at data that is durable.
  phase = std::chrono::steady_clock::now();
  std::sort(versions.begin(), versions.end(),
            [](const ManifestVersion& a, const ManifestVersion& b) { return a.path < b.path; });
  report.finished_ns = clock.now_ns();
  if (options.dry_run) {
    report.commit_seconds = seconds_since(phase);
    return report;
  }
  Manifest manifest;
  manifest.kind = RunKind::backup;
  manifest.host = host_name();
  manifest.started_ns = report.started_ns;
  manifest.finished_ns = report.finished_ns;
  for (const BackupSource& source : options.sources) {
    manifest.sources.push_back(source.path);
  }
  manifest.packs = std::move(packs);
  manifest.versions = std::move(versions);
  manifest.config = options.config;
  check_lock(target);
  if (!manifest.versions.empty() || !manifest.packs.empty()) {
    std::array<std::uint8_t, 8> run_id{};
    random_bytes(run_id);
    manifest.run_id = to_hex(run_id);
    manifest.seq = std::max(target.repository->next_manifest_seq(), catalog.last_seq() + 1);
    report.manifest_key = target.repository->put_manifest(manifest);
    report.seq = manifest.seq;
  }
  catalog.record_run(manifest, report.manifest_key, report.stats);
  report.commit_seconds = seconds_since(phase);
  return report;
}


void to_json(nlohmann::ordered_json& json, const BackupReport& report) {
  const RunStats& stats = report.stats;
  nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
  for (const ScanProblem& problem : report.problems) {
    skipped.push_back({{"path", problem.path}, {"reason", problem.reason}});
  }
  json = {
      {"status", stats.status},
      {"seconds", static_cast<double>(report.finished_ns - report.started_ns) / 1e9},
      {"files_new", stats.files_new},
      {"files_changed", stats.files_changed},
      {"files_deleted", stats.files_deleted},
      {"files_unchanged", stats.files_unchanged},
      {"files_skipped", stats.files_skipped},
      {"bytes_scanned", stats.bytes_scanned},
      {"bytes_read", stats.bytes_read},
      {"bytes_new", stats.bytes_new},
      {"bytes_stored", stats.bytes_stored},
      {"packs", report.packs_written},
      {"manifest", report.manifest_key},
      {"skipped", std::move(skipped)},
      {"timing",
       {{"scan_seconds", report.scan_seconds},
        {"store_seconds", report.store_seconds},
        {"commit_seconds", report.commit_seconds}}},
  };
}

}  // namespace mybackup
