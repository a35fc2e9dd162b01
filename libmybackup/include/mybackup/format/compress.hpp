#pragma once
// zstd compression of single chunks, and of streams (manifests).

#include <cstdint>
#include <functional>

#include "mybackup/util/bytes.hpp"

namespace mybackup {

constexpr int kMinCompressionLevel = 1;
constexpr int kMaxCompressionLevel = 22;

/// Compresses `input` at `level` (1..22). Returns true and fills `out` (replacing its content)
/// only when the result is strictly smaller than the input; returns false when compression does
/// not pay (the caller then stores the data raw). Reusable, one per thread (holds a ZSTD_CCtx).
class Compressor {
 public:
  explicit Compressor(int level);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  bool compress(ByteView input, Bytes& out);

 private:
  struct Impl;
  Impl* impl_;
};

/// Compresses a stream given in pieces into one zstd frame (its size is not declared in the
/// frame header; decompress() accepts that). For data too large to hold twice in memory.
class StreamCompressor {
 public:
  explicit StreamCompressor(int level);
  ~StreamCompressor();
  StreamCompressor(const StreamCompressor&) = delete;
  StreamCompressor& operator=(const StreamCompressor&) = delete;

  /// Compresses `input`, appending what zstd has ready to `out`.
  void add(ByteView input, Bytes& out);
  /// Ends the frame, appending the rest to `out`. The compressor is spent.
  void finish(Bytes& out);

 private:
  void run(ByteView input, Bytes& out, bool end);
  struct Impl;
  Impl* impl_;
};

/// Decompresses one zstd frame given in pieces, handing the output to a sink in pieces of at
/// most about 128 KiB: for data too large to hold. add() and finish() throw Error(corrupt) for
/// a malformed frame, data after it, or more or fewer bytes than `expected_size` in all.
class StreamDecompressor {
 public:
  explicit StreamDecompressor(std::uint64_t expected_size);
  ~StreamDecompressor();
  StreamDecompressor(const StreamDecompressor&) = delete;
  StreamDecompressor& operator=(const StreamDecompressor&) = delete;

  void add(ByteView input, const std::function<void(ByteView)>& sink);
  /// The frame must be complete and the size the one expected.
  void finish();

 private:
  struct Impl;
  Impl* impl_;
};

/// Decompresses a zstd frame whose content size must equal `expected_size`. A frame that records
/// no size (StreamCompressor's) is decoded as a stream: memory grows with its real output only.
/// Throws Error(corrupt) on malformed input or a size mismatch.
Bytes decompress(ByteView input, std::size_t expected_size);

}  // namespace mybackup
