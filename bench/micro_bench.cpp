// Throughput of each step a chunk goes through, one core each: FastCDC, SHA-256, HMAC-SHA256
// (chunk ids), zstd at the default level, AES-256-GCM, and the whole seal path; and the catalog's
// recording of a run of small new files (the end of an initial backup).
// Inputs: pseudo-random bytes (incompressible) and generated log-like text (compressible).

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "mybackup/catalog/catalog.hpp"

#include "mybackup/format/chunker.hpp"
#include "mybackup/format/compress.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/format/pack.hpp"

namespace {

using mybackup::Bytes;

constexpr std::size_t kBufferSize = 16 * 1024 * 1024;

Bytes random_bytes_of(std::size_t size) {
  Bytes data(size);
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < size; i += 8) {
    state += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (std::size_t j = 0; j < 8 && i + j < size; ++j) {
      data[i + j] = static_cast<std::uint8_t>(z >> (8 * j));
    }
  }
  return data;
}

Bytes text_of(std::size_t size) {
  static const char* const kWords[] = {"GET", "POST", "/api/v1/items", "200", "404", "user=", "latency_ms=",
                                       "INFO", "WARN", "request", "served", "cache", "miss", "hit"};
  std::string text;
  std::uint64_t counter = 0;
  while (text.size() < size) {
    text += "2026-11-21T12:00:" + std::to_string(counter % 60) + " ";
    for (int i = 0; i < 8; ++i) {
      text += kWords[(counter * 7 + static_cast<std::uint64_t>(i) * 13) % 14];
      text += ' ';
    }
    text += std::to_string(counter++) + "\n";
  }
  text.resize(size);
  return Bytes(text.begin(), text.end());
}

const Bytes& input(bool text) {
  static const Bytes random = random_bytes_of(kBufferSize);
  static const Bytes log = text_of(kBufferSize);
  return text ? log : random;
}

void BM_FastCdc(benchmark::State& state) {
  const Bytes& data = input(false);
  const mybackup::Chunker chunker(mybackup::ChunkerParams{}, mybackup::make_gear_table(Bytes(32, 7)));
  for (auto _ : state) {
    std::size_t offset = 0;
    while (offset < data.size()) {
      offset += chunker.next_cut(mybackup::ByteView(data).subspan(offset), true);
    }
    benchmark::DoNotOptimize(offset);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_FastCdc)->Unit(benchmark::kMillisecond);

void BM_Sha256(benchmark::State& state) {
  const Bytes& data = input(false);
  for (auto _ : state) {
    benchmark::DoNotOptimize(mybackup::Sha256::hash(data));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond);

void BM_HmacChunkId(benchmark::State& state) {
  const Bytes& data = input(false);
  const mybackup::HmacSha256 hmac(Bytes(32, 1));
  const auto chunk = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    for (std::size_t offset = 0; offset + chunk <= data.size(); offset += chunk) {
      benchmark::DoNotOptimize(hmac.mac(mybackup::ByteView(data).subspan(offset, chunk)));
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (data.size() / chunk * chunk)));
}
BENCHMARK(BM_HmacChunkId)->Arg(4 * 1024)->Arg(1024 * 1024)->Unit(benchmark::kMillisecond);

void BM_Zstd(benchmark::State& state) {
  const Bytes& data = input(state.range(0) == 1);
  mybackup::Compressor compressor(3);
  Bytes out;
  constexpr std::size_t kChunk = 1024 * 1024;
  for (auto _ : state) {
    for (std::size_t offset = 0; offset < data.size(); offset += kChunk) {
      benchmark::DoNotOptimize(compressor.compress(mybackup::ByteView(data).subspan(offset, kChunk), out));
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
  state.SetLabel(state.range(0) == 1 ? "text, level 3" : "random, level 3");
}
BENCHMARK(BM_Zstd)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_AesGcmSeal(benchmark::State& state) {
  const Bytes& data = input(false);
  mybackup::AeadKey key{};
  key.fill(3);
  const mybackup::AeadNonce nonce{};
  Bytes out;
  out.reserve(data.size() + 16);
  for (auto _ : state) {
    out.clear();
    mybackup::aes256gcm_seal_append(key, nonce, data, {}, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_AesGcmSeal)->Unit(benchmark::kMillisecond);

// The whole per-chunk path of a backup for compressible text: id, zstd, seal.
void BM_ChunkPipeline(benchmark::State& state) {
  const Bytes& data = input(true);
  const mybackup::HmacSha256 hmac(Bytes(32, 1));
  mybackup::Compressor compressor(3);
  mybackup::AeadKey key{};
  key.fill(3);
  Bytes compressed;
  Bytes blob;
  constexpr std::size_t kChunk = 1024 * 1024;
  for (auto _ : state) {
    for (std::size_t offset = 0; offset < data.size(); offset += kChunk) {
      const mybackup::ByteView chunk = mybackup::ByteView(data).subspan(offset, kChunk);
      const mybackup::ChunkId id = hmac.mac(chunk);
      const bool shrunk = compressor.compress(chunk, compressed);
      blob.clear();
      mybackup::seal_blob(key, id, shrunk ? mybackup::kBlobCompressed : 0, shrunk ? mybackup::ByteView(compressed) : chunk, blob);
      benchmark::DoNotOptimize(blob.data());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChunkPipeline)->Unit(benchmark::kMillisecond);

// Catalog::record_run of an initial backup of `range(0)` new one-chunk files, 100 per folder, in
// two packs, into a new catalog: what the commit of the `small` corpus's first backup costs.
void BM_RecordRun(benchmark::State& state) {
  const auto files = static_cast<std::size_t>(state.range(0));
  mybackup::Manifest manifest;
  manifest.seq = 1;
  manifest.sources = {"/src"};
  const Bytes ids = random_bytes_of(files * 32);
  for (std::size_t i = 0; i < files; ++i) {
    if (i % (files / 2 + 1) == 0) {
      manifest.packs.push_back({std::string(64, static_cast<char>('a' + manifest.packs.size())), 16 << 20, {}});
    }
    mybackup::PackEntry blob;
    std::copy_n(ids.begin() + static_cast<std::ptrdiff_t>(i * 32), 32, blob.id.begin());
    blob.offset = static_cast<std::uint32_t>(manifest.packs.back().blobs.size() * 2000);
    blob.length = 2000;
    blob.raw_length = 3600;
    manifest.packs.back().blobs.push_back(blob);
    mybackup::ManifestVersion version;
    version.path = "/src/folder" + std::to_string(i / 100) + "/file" + std::to_string(i) + ".txt";
    version.number = 1;
    version.mode = 0100644;
    version.size = 3600;
    version.inode = i;
    version.chunks = {blob.id};
    version.meta.recorded = true;
    version.meta.owner = version.meta.group = "root";
    manifest.versions.push_back(std::move(version));
  }
  const std::string dir = std::filesystem::temp_directory_path() / ("record-run-bench-" + std::to_string(::getpid()));
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    {
      mybackup::Catalog catalog(dir + "/catalog.db");
      state.ResumeTiming();
      catalog.record_run(manifest, "snapshots/0000000001", mybackup::RunStats{});
      state.PauseTiming();
    }
    state.ResumeTiming();
  }
  std::filesystem::remove_all(dir);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * files));
}
BENCHMARK(BM_RecordRun)->Arg(20000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
