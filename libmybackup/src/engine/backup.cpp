#include "mybackup/engine/backup.hpp"

#include <nlohmann/json.hpp>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "util/bounded_queue.hpp"
#include "util/buffer_pool.hpp"
#include "engine/run_feed.hpp"
#include "mybackup/engine/change_detection.hpp"
#include "mybackup/engine/commit.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/format/chunk_id_set.hpp"
#include "mybackup/format/chunker.hpp"
#include "mybackup/format/manifest_spool.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/util/env.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/repository/lock.hpp"

namespace mybackup {

namespace {

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
// A reader's batch also goes once this many files were read since its first chunk: the versions
// of those files wait for their chunks to be placed before the catalog can record them.
constexpr std::size_t kBatchFiles = 256;
// What may wait for the recording thread (RunEvent::weight): a few thousand versions.
constexpr std::size_t kRecordQueueBudget = 4 * 1024 * 1024;
constexpr std::size_t kPackBufferSlack = 1024 * 1024;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

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
  ReaderState(Env& env, const Chunker& chunker, const BackupTarget& target, int compression_level)
      : reader(env, chunker, target.keys->id_key), sealer(compression_level, target.keys->enc_key) {}
  ContentReader reader;
  Sealer sealer;
  SealedBatch batch;  // small sealed chunks waiting to go to the writer
  std::size_t batch_bytes = 0;
  std::size_t files_since_batch = 0;  // files read since the batch's first chunk
};

/// A finished pack on its way to the destination, with the writer's number for it.
struct NumberedPack {
  std::uint64_t number = 0;
  FinishedPack pack;
};

/// Error(locked) if the run's writer lock was taken over (its file removed by another writer).
void check_lock(const BackupTarget& target) {
  if (target.lock != nullptr && target.lock->lost()) {
    throw lost_lock_error(target.repository->location(), RunKind::backup);
  }
}

/// Files waiting to be read, handed from the scan to the readers. The largest waiting file is
/// read first, so a big file found late is less likely to finish alone while other cores idle;
/// at most kReadWindow wait (the scan blocks; then one more hand-over), whatever the size of the
/// tree.
class ReadQueue {
 public:
  static constexpr std::size_t kReadWindow = 4096;

  /// Queues `files` (and empties it) under one lock: handing files over one at a time made the
  /// scan and the readers fight for the lock. Blocks while the window is full. False (the
  /// files dropped) once aborted.
  bool push(std::vector<FileToRead>& files) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return aborted_ || waiting_.size() < kReadWindow; });
    if (aborted_) {
      files.clear();
      return false;
    }
    for (FileToRead& file : files) {
      waiting_.push_back(std::move(file));
      std::push_heap(waiting_.begin(), waiting_.end(), smaller);
    }
    files.clear();
    not_empty_.notify_all();
    return true;
  }

  /// Blocks until a file waits, then moves the largest waiting files into `out`: at least one,
  /// at most `max_files`, and more only while they add up to less than `max_bytes`. False once
  /// closed and drained, or aborted.
  bool pop(std::deque<FileToRead>& out, std::size_t max_files, std::uint64_t max_bytes) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return aborted_ || closed_ || !waiting_.empty(); });
    if (aborted_ || waiting_.empty()) {
      return false;
    }
    std::uint64_t bytes = 0;
    do {
      std::pop_heap(waiting_.begin(), waiting_.end(), smaller);
      bytes += waiting_.back().entry.size;
      out.push_back(std::move(waiting_.back()));
      waiting_.pop_back();
    } while (!waiting_.empty() && out.size() < max_files && bytes + waiting_.front().entry.size < max_bytes);
    not_full_.notify_one();
    return true;
  }

  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }

  void abort() {
    std::lock_guard lock(mutex_);
    aborted_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  static bool smaller(const FileToRead& a, const FileToRead& b) { return a.entry.size < b.entry.size; }

  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::vector<FileToRead> waiting_;  // a max-heap by size
  bool closed_ = false;
  bool aborted_ = false;
};

/// Everything the worker threads share. The scan hands it files with add() while it reads and
/// stores them; finish() waits for the last.
class Pipeline {
 public:
  /// `recorder` (none for a dry run) records the run in the catalog as it goes.
  Pipeline(const Catalog& catalog, const std::unordered_set<std::string>& untrusted_packs, const BackupTarget& target,
           const BackupOptions& options, unsigned threads, ManifestSpool& spool, RunRecorder* recorder)
      : catalog_(catalog),
        spool_(spool),
        recorder_(recorder),
        untrusted_packs_(untrusted_packs),
        target_(target),
        options_(options),
        env_(Env::or_default(options.env)),
        chunker_(target.chunker, make_gear_table(target.keys->gear_seed)),
        threads_(threads),
        compress_queue_(kCompressQueueBudget),
        write_queue_(kWriteQueueBudget),
        // One finished pack may wait while another is being stored: storing (write + fsync)
        // overlaps with compression instead of stalling it.
        upload_queue_(target.pack_target_size()),
        record_queue_(kRecordQueueBudget),
        buffers_(kIdleBufferBudget),
        pack_buffers_(PackBuilder::buffer_capacity(target.pack_target_size()) + kPackBufferSlack) {
    if (recorder_ != nullptr) {
      // From the start: the scan records versions that need no reading before any file is read.
      recording_ = std::thread([this] { guarded([this] { record_loop(); }); });
    }
  }

  /// Left by an exception (the walk failed or was cancelled): stops every stage, stores nothing more.
  ~Pipeline() {
    if (started_ || recording_.joinable()) {
      stop_all();
      join();
    }
  }

  /// Queues a file to read (the threads start with the first). Blocks while enough wait. False
  /// once a stage failed or the run was cancelled: finish() says why.
  bool add(FileToRead&& file) {
    if (!started_) {
      start();
    }
    added_bytes_ += file.entry.size;
    to_queue_.push_back(std::move(file));
    if (to_queue_.size() < kHandOverFiles && added_bytes_ < kHandOverBytes) {
      return !stop_;
    }
    added_bytes_ = 0;
    return read_queue_.push(to_queue_);
  }

  /// Waits until every file added is read and stored; rethrows the first stage's error.
  void finish() {
    if (started_) {
      read_queue_.push(to_queue_);
      read_queue_.close();
    }
    join();
    if (failure_) {
      std::rethrow_exception(failure_);
    }
  }

  /// Records a version that needs no reading (from the scan's thread, while files are read).
  void record(ManifestVersion&& version) {
    {
      std::lock_guard lock(mutex_);
      spool_.add(version);
    }
    to_catalog(std::move(version));
  }

  std::vector<ScanProblem> problems;
  std::atomic<std::uint64_t> files_new{0};
  std::atomic<std::uint64_t> files_changed{0};
  std::atomic<std::uint64_t> bytes_read{0};
  std::atomic<std::uint64_t> bytes_new{0};
  std::atomic<std::uint64_t> bytes_stored{0};

 private:
  void start() {
    started_ = true;
    for (unsigned i = 0; i < std::max(1U, options_.uploads); ++i) {
      uploaders_.emplace_back([this] { guarded([this] { upload_loop(); }); });
    }
    writer_ = std::thread([this] { guarded([this] { write_loop(); }); });
    for (unsigned i = 0; i < threads_; ++i) {
      compressors_.emplace_back([this] { guarded([this] { compress_loop(); }); });
    }
    for (unsigned i = 0; i < threads_; ++i) {
      readers_.emplace_back([this] { guarded([this] { read_loop(); }); });
    }
  }

  void join() {
    for (std::thread& thread : readers_) {
      thread.join();
    }
    readers_.clear();
    compress_queue_.close();
    for (std::thread& thread : compressors_) {
      thread.join();
    }
    compressors_.clear();
    write_queue_.close();
    if (writer_.joinable()) {
      writer_.join();
    }
    upload_queue_.close();
    for (std::thread& thread : uploaders_) {
      thread.join();
    }
    uploaders_.clear();
    record_queue_.close();
    if (recording_.joinable()) {
      recording_.join();
    }
  }

  /// Runs a stage; the first exception stops every stage and is rethrown by finish().
  template <typename Body>
  void guarded(Body body) {
    try {
      body();
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!failure_) {
        failure_ = std::current_exception();
      }
      stop_all();
    }
  }

  void stop_all() {
    stop_ = true;
    read_queue_.abort();
    compress_queue_.abort();
    write_queue_.abort();
    upload_queue_.abort();
    record_queue_.abort();
  }

  /// True the first time an id is seen (this run or before): the caller must store the chunk.
  /// A chunk in a pack not to trust is stored again.
  bool claim(const ChunkId& id) {
    std::lock_guard lock(mutex_);
    if (stored_this_run_.contains(id) || (catalog_has_chunks_ && catalog_.has_chunk(id, untrusted_packs_))) {
      return false;
    }
    return stored_this_run_.insert(id);
  }

  void report(FileAction action, const ScanEntry& entry, const std::string& note) {
    if (options_.on_file) {
      options_.on_file(action, entry.type, entry.path, entry.size, note);
    }
  }

  bool cancelled() const { return options_.cancel != nullptr && options_.cancel->load(); }

  void read_loop() {
    ReaderState state(env_, chunker_, target_, options_.compression_level);
    const ContentReader::ChunkSink store_new = [this, &state](const ChunkId& id, ByteView chunk) {
      store_if_new(state, id, chunk);
    };
    const ContentReader::StopCheck stopped = [this] { return stop_ || cancelled(); };
    std::deque<FileToRead> taken;  // files taken from the queue, not yet read
    for (;;) {
      if ((taken.empty() && !read_queue_.pop(taken, kHandOverFiles, kHandOverBytes)) || stop_) {
        flush_batch(state);
        return;
      }
      const FileToRead task = std::move(taken.front());
      taken.pop_front();
      if (cancelled()) {
        throw Error(ErrorKind::interrupted, kInterrupted);
      }
      check_lock(target_);  // a run that lost its lock stops instead of storing more
      ReadResult result;
      for (int attempt = 1; attempt <= kReadAttempts; ++attempt) {
        ManifestVersion version;
        result = state.reader.read(task, version, store_new, stopped);
        if (cancelled()) {
          throw Error(ErrorKind::interrupted, kInterrupted);
        }
        if (stop_) {
          return;  // another stage failed; run() rethrows its error
        }
        if (result.outcome == ReadOutcome::read) {
          bytes_read += version.size;
          ++(task.action == FileAction::added ? files_new : files_changed);
          report(task.action, task.entry, "");
          {
            std::lock_guard lock(mutex_);
            spool_.add(version);
          }
          to_catalog(std::move(version));
          if (!state.batch.empty() && ++state.files_since_batch >= kBatchFiles) {
            flush_batch(state);
          }
          break;
        }
        if (result.outcome != ReadOutcome::changed_while_read) {
          break;
        }
      }
      if (result.outcome != ReadOutcome::read) {
        report(FileAction::skipped, task.entry, result.problem);
        std::lock_guard lock(mutex_);
        problems.push_back({task.entry.path, result.problem});
      }
    }
  }

  /// A chunk of a file being read: stored unless this run or an earlier one already has it.
  void store_if_new(ReaderState& state, const ChunkId& id, ByteView chunk) {
    if (!claim(id)) {
      return;
    }
    bytes_new += chunk.size();
    if (chunk.size() < kInlineChunkLimit) {
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

  void flush_batch(ReaderState& state) {
    if (!state.batch.empty()) {
      write_queue_.push(std::move(state.batch), state.batch_bytes);
      state.batch = SealedBatch();
      state.batch_bytes = 0;
    }
    state.files_since_batch = 0;
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
    std::vector<PackEntry> placed;  // in the pack being filled, not yet told to the catalog
    while (std::optional<SealedBatch> batch = write_queue_.pop()) {
      for (SealedChunk& chunk : *batch) {
        if (!builder.fits(chunk.blob.size())) {
          tell_placed(placed);
          close_pack(builder);
        }
        const PackEntry& entry = builder.add(chunk.id, chunk.blob, chunk.raw_length, chunk.flags);
        if (recorder_ != nullptr) {
          placed.push_back(entry);
        }
        buffers_.release(std::move(chunk.blob));
      }
      tell_placed(placed);
    }
    if (!builder.empty() && !stop_) {
      close_pack(builder);
    }
  }

  /// The catalog learns where the chunks just placed in the current pack are.
  void tell_placed(std::vector<PackEntry>& placed) {
    if (!placed.empty()) {
      RunEvent event;
      event.kind = RunEvent::Kind::chunks_placed;
      event.pack = packs_started_ + 1;
      event.blobs = std::move(placed);
      placed.clear();
      const std::size_t weight = event.weight();
      record_queue_.push(std::move(event), weight);
    }
  }

  void close_pack(PackBuilder& builder) {
    NumberedPack numbered{++packs_started_, builder.finish(target_.keys->enc_key)};
    builder.reuse(pack_buffers_.acquire());
    const std::size_t weight = numbered.pack.bytes.size();
    upload_queue_.push(std::move(numbered), weight);
  }

  void upload_loop() {
    while (std::optional<NumberedPack> numbered = upload_queue_.pop()) {
      store(*numbered);
    }
  }

  void store(NumberedPack& numbered) {
    FinishedPack& pack = numbered.pack;
    if (!options_.dry_run) {
      target_.repository->put_pack(pack);
    }
    bytes_stored += pack.bytes.size();
    ManifestPack record;
    record.name = pack.name;
    record.size = pack.bytes.size();
    record.blobs = std::move(pack.entries);
    pack_buffers_.release(std::move(pack.bytes));
    if (recorder_ != nullptr) {
      RunEvent event;
      event.kind = RunEvent::Kind::pack_stored;
      event.pack = numbered.number;
      event.name = record.name;
      event.size = record.size;
      const std::size_t weight = event.weight();
      record_queue_.push(std::move(event), weight);
    }
    std::lock_guard lock(mutex_);
    spool_.add(record);
  }

  /// Hands a version spooled for the manifest to the recording thread.
  void to_catalog(ManifestVersion&& version) {
    if (recorder_ != nullptr) {
      RunEvent event;
      event.kind = RunEvent::Kind::version;
      event.version = std::move(version);
      const std::size_t weight = event.weight();
      record_queue_.push(std::move(event), weight);
    }
  }

  /// The recording thread: the catalog records the run while it is read and stored.
  void record_loop() {
    RunFeed feed(*recorder_);
    while (std::optional<RunEvent> event = record_queue_.pop()) {
      feed.apply(std::move(*event));
    }
    if (!stop_) {
      feed.finish();
    }
  }

  const Catalog& catalog_;
  ManifestSpool& spool_;  // every version and pack of the run, guarded by mutex_
  RunRecorder* recorder_;  // used by the recording thread only
  const std::unordered_set<std::string>& untrusted_packs_;
  const BackupTarget& target_;
  const BackupOptions& options_;
  Env& env_;
  // Files go from the scan to the queue, and from the queue to a reader, a few at a time.
  static constexpr std::size_t kHandOverFiles = 32;
  static constexpr std::uint64_t kHandOverBytes = 1 << 20;
  std::vector<FileToRead> to_queue_;  // added by the scan, not queued yet
  std::uint64_t added_bytes_ = 0;     // their size
  CompactChunkIdSet stored_this_run_;  // new chunks this run stores (the catalog knows the older ones)
  // False for a first backup: then no chunk needs looking up (a lookup per chunk took a
  // lock of the catalog's file twice, under the pipeline's mutex).
  const bool catalog_has_chunks_ = catalog_.has_chunks();
  Chunker chunker_;
  unsigned threads_;
  BoundedQueue<RawChunk> compress_queue_;
  BoundedQueue<SealedBatch> write_queue_;
  BoundedQueue<NumberedPack> upload_queue_;
  BoundedQueue<RunEvent> record_queue_;
  std::uint64_t packs_started_ = 0;  // by the writer: packs closed so far
  BufferPool buffers_;
  BufferPool pack_buffers_;
  ReadQueue read_queue_;
  bool started_ = false;
  std::vector<std::thread> readers_;
  std::vector<std::thread> compressors_;
  std::thread writer_;
  std::thread recording_;
  std::vector<std::thread> uploaders_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::exception_ptr failure_;
};

/// Error(usage) unless the run has what it needs and the key may still encrypt.
void check_can_run(const Catalog& catalog, const BackupTarget& target, const BackupOptions& options) {
  if (target.keys == nullptr || (!options.dry_run && target.repository == nullptr)) {
    throw Error(ErrorKind::usage, "run_backup needs keys and, unless dry_run, a repository");
  }
  if (catalog.encryptions() >= kEncryptionLimit) {
    throw Error(ErrorKind::usage, "this repository's key has made " + std::to_string(catalog.encryptions()) +
                                      " encryptions, the safe limit for AES-GCM with random nonces: start a new "
                                      "repository with a key of its own (`mybackup --home NEW_HOME init`, then a new "
                                      "destination); this one stays restorable");
  }
}

void report_skipped(BackupReport& report, const FileCallback& on_file, EntryType type, const ScanProblem& problem) {
  report.problems.push_back(problem);
  if (on_file) {
    on_file(FileAction::skipped, type, problem.path, 0, problem.reason);
  }
}

/// Step 0: the packs not to trust this run, checked against one listing of the destination: the
/// catalog places chunks in them, but the destination lacks them, holds them with another size,
/// or `verify --repair` found them damaged. Their chunks are stored again rather than trusted.
struct UntrustedData {
  std::unordered_set<std::string> packs;
  VersionsToReread versions;  // every version using one of their chunks
};

UntrustedData find_untrusted_packs(const Catalog& catalog, const Repository* repository, BackupReport& report) {
  UntrustedData untrusted;
  if (repository == nullptr) {
    return untrusted;  // a dry run before the first backup
  }
  std::unordered_map<std::string, std::uint64_t> stored;
  for (const Repository::StoredPack& pack : repository->list_packs()) {
    stored.emplace(pack.name, pack.size);
  }
  const std::unordered_set<std::string> damaged = catalog.damaged_packs();
  for (const auto& [name, size] : catalog.packs_in_use()) {
    const auto found = stored.find(name);
    std::string reason;
    if (damaged.count(name) != 0) {
      untrusted.packs.insert(name);  // reported by `verify --repair` already
      continue;
    }
    if (found == stored.end()) {
      reason = "missing from the destination";
    } else if (found->second != size) {
      reason = std::to_string(found->second) + " bytes on the destination instead of " + std::to_string(size);
    } else {
      continue;
    }
    untrusted.packs.insert(name);
    report.untrusted_packs.push_back({name, std::move(reason)});
  }
  if (untrusted.packs.empty()) {
    return untrusted;
  }
  std::sort(report.untrusted_packs.begin(), report.untrusted_packs.end(),
            [](const UntrustedPack& a, const UntrustedPack& b) { return a.name < b.name; });
  for (const ChunkUse& use :
       catalog.versions_using(std::vector<std::string>(untrusted.packs.begin(), untrusted.packs.end()), {})) {
    untrusted.versions[use.path].push_back(use.number);
  }
  return untrusted;
}

std::string spool_directory(const BackupOptions& options) {
  if (!options.spool_directory.empty()) {
    return options.spool_directory;
  }
  return temporary_directory();
}

/// The catalog's side of the comparison, read ahead on a thread of its own: on two cores the
/// walk (system calls) and the catalog (SQLite) overlap instead of taking turns. Holds at most a
/// few batches of rows. The cursor is used by that thread only.
class LatestReadAhead {
 public:
  explicit LatestReadAhead(std::unique_ptr<Catalog::LatestCursor> cursor)
      : cursor_(std::move(cursor)), thread_([this] { read(); }) {}

  ~LatestReadAhead() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  /// LatestSource: the next row; rethrows what the reading thread met.
  bool next(std::string& path, LatestVersion& version) {
    if (position_ == current_.size()) {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return !ready_.empty() || done_; });
      if (ready_.empty()) {
        if (failure_) {
          std::rethrow_exception(failure_);
        }
        return false;
      }
      current_ = std::move(ready_.front());
      ready_.pop_front();
      position_ = 0;
      changed_.notify_all();
    }
    path = std::move(current_[position_].first);
    version = std::move(current_[position_].second);
    ++position_;
    return true;
  }

 private:
  using Batch = std::vector<std::pair<std::string, LatestVersion>>;
  static constexpr std::size_t kBatchRows = 2048;
  static constexpr std::size_t kBatches = 4;

  void read() {
    try {
      bool more = true;
      while (more) {
        Batch batch;
        batch.reserve(kBatchRows);
        std::pair<std::string, LatestVersion> row;
        while (batch.size() < kBatchRows && (more = cursor_->next(row.first, row.second))) {
          batch.push_back(std::move(row));
        }
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stopped_ || ready_.size() < kBatches; });
        if (stopped_) {
          return;
        }
        if (!batch.empty()) {
          ready_.push_back(std::move(batch));
        }
        changed_.notify_all();
      }
    } catch (...) {
      std::lock_guard lock(mutex_);
      failure_ = std::current_exception();
    }
    std::lock_guard lock(mutex_);
    done_ = true;
    changed_.notify_all();
  }

  std::unique_ptr<Catalog::LatestCursor> cursor_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  bool done_ = false;
  bool stopped_ = false;
  std::exception_ptr failure_;
  Batch current_;  // the consumer's
  std::size_t position_ = 0;
  std::thread thread_;  // last: starts once the rest is set up
};

/// Thrown through the walk when the pipeline stopped taking files (it failed: finish() says why).
struct PipelineStopped {};

/// One source's walk as it goes: problems to the report, entries to the comparison with the
/// catalog, files to read to the pipeline.
class SourceScan final : public ScanSink {
 public:
  SourceScan(ChangePlanner& planner, BackupReport& report, const BackupOptions& options)
      : planner_(planner), report_(report), options_(options) {}

  void entry(ScanEntry&& entry) override {
    if (options_.cancel != nullptr && options_.cancel->load()) {
      throw Error(ErrorKind::interrupted, kInterrupted);
    }
    planner_.entry(std::move(entry));
  }

  void problem(ScanProblem&& problem) override {
    report_skipped(report_, options_.on_file, EntryType::file, problem);
    planner_.problem(std::move(problem));
  }

 private:
  ChangePlanner& planner_;
  BackupReport& report_;
  const BackupOptions& options_;
};

/// Steps 1 and 2, overlapped: walks every source, compares it with the catalog as both stream by,
/// and reads and stores the new and changed files while the walk goes on. Scan problems go to
/// the report; files are counted (new, changed or skipped).
void scan_and_store(const Catalog& catalog, const BackupTarget& target, const BackupOptions& options,
                    const UntrustedData& untrusted, ManifestSpool& spool, RunRecorder* recorder, BackupReport& report) {
  const auto started = std::chrono::steady_clock::now();
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  Pipeline pipeline(catalog, untrusted.packs, target, options, options.threads != 0 ? options.threads : cores, spool,
                    recorder);
  const auto record = [&pipeline](ManifestVersion&& version) { pipeline.record(std::move(version)); };
  const auto to_pipeline = [&pipeline](FileToRead&& file) {
    if (!pipeline.add(std::move(file))) {
      throw PipelineStopped{};
    }
  };
  try {
    for (const BackupSource& source : options.sources) {
      LatestReadAhead latest(catalog.latest_cursor(source.path));
      ChangePlanner planner([&latest](std::string& path, LatestVersion& version) { return latest.next(path, version); },
                            untrusted.versions, report.stats, options.on_file, to_pipeline, record);
      SourceScan scan(planner, report, options);
      try {
        scan_tree(source.path, ExcludeMatcher(source.exclude), scan, options.env);
      } catch (const Error& error) {
        if (error.kind() != ErrorKind::not_found) {
          throw;
        }
        // A missing source (unmounted disk, renamed folder) is skipped, not taken as deleted.
        report_skipped(report, options.on_file, EntryType::directory,
                       {source.path, "source not found (is its disk mounted? stop backing it up with `mybackup remove " +
                                         source.path + "`)"});
        continue;
      }
      planner.finish();
    }
  } catch (const PipelineStopped&) {
    // finish() below rethrows the stage's error
  }
  report.scan_seconds = seconds_since(started);
  const auto scanned = std::chrono::steady_clock::now();
  pipeline.finish();
  report.store_seconds = seconds_since(scanned);
  for (ScanProblem& problem : pipeline.problems) {
    report.problems.push_back(std::move(problem));
  }
  report.stats.files_new += pipeline.files_new;
  report.stats.files_changed += pipeline.files_changed;
  report.stats.bytes_read = pipeline.bytes_read;
  report.stats.bytes_new = pipeline.bytes_new;
  report.stats.bytes_stored = pipeline.bytes_stored;
  report.packs_written = spool.pack_count();
}

}  // namespace

BackupReport run_backup(Catalog& catalog, const BackupTarget& target, const BackupOptions& options) {
  check_can_run(catalog, target, options);
  const Clock& clock = Env::or_default(options.env);
  BackupReport report;
  report.started_ns = clock.now_ns();

  // 1 and 2. Scan and compare with the catalog; read and store what changed meanwhile.
  const UntrustedData untrusted = find_untrusted_packs(catalog, target.repository, report);
  const auto spool = std::make_shared<ManifestSpool>(spool_directory(options));
  // The catalog records the run while it is read and stored, in a transaction committed only
  // after the manifest (commit_run); a run that fails here leaves it rolled back.
  std::optional<RunRecorder> recorder;
  if (!options.dry_run) {
    recorder.emplace(catalog);
  }
  scan_and_store(catalog, target, options, untrusted, *spool, recorder ? &*recorder : nullptr, report);
  // The pipeline's buffers (about 100 MiB, freed by now) go back to the system before the
  // manifest and the catalog need memory of their own: the peak is the larger of the two, not
  // their sum.
  ::malloc_trim(0);
  report.stats.files_skipped = report.problems.size();
  report.stats.status = report.problems.empty() ? "ok" : "partial";
  if (options.cancel != nullptr && options.cancel->load()) {
    throw Error(ErrorKind::interrupted, kInterrupted);
  }

  // 3. Manifest, then catalog: the catalog only ever points at data that is durable.
  const auto phase = std::chrono::steady_clock::now();
  report.finished_ns = clock.now_ns();
  if (options.dry_run) {
    report.commit_seconds = seconds_since(phase);
    return report;
  }
  Manifest manifest;
  manifest.kind = RunKind::backup;
  manifest.started_ns = report.started_ns;
  manifest.finished_ns = report.finished_ns;
  for (const BackupSource& source : options.sources) {
    manifest.sources.push_back(source.path);
  }
  manifest.spooled = spool;
  manifest.config = options.config;
  const CommittedRun committed = commit_run(catalog, *target.repository, target.lock, manifest, report.stats, &*recorder);
  report.manifest_key = committed.manifest_key;
  report.seq = committed.seq;
  report.commit_seconds = seconds_since(phase);
  return report;
}

void to_json(nlohmann::ordered_json& json, const BackupReport& report) {
  const RunStats& stats = report.stats;
  nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
  for (const ScanProblem& problem : report.problems) {
    skipped.push_back({{"path", problem.path}, {"reason", problem.reason}});
  }
  nlohmann::ordered_json untrusted = nlohmann::ordered_json::array();
  for (const UntrustedPack& pack : report.untrusted_packs) {
    untrusted.push_back({{"pack", pack.name}, {"reason", pack.reason}});
  }
  json = {
      {"status", stats.status},
      {"seconds", seconds_between(report.started_ns, report.finished_ns)},
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
      {"untrusted_packs", std::move(untrusted)},
      {"timing",
       {{"scan_seconds", report.scan_seconds},
        {"store_seconds", report.store_seconds},
        {"commit_seconds", report.commit_seconds}}},
  };
}

}  // namespace mybackup
