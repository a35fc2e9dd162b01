#include "mybackup/format/compress.hpp"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_estimateCCtxSize, ZSTD_initStaticCCtx
#include <zstd.h>
#include <zstd_errors.h>

#include <memory>
#include <new>
#include <string>

#include "mybackup/util/error.hpp"

namespace mybackup {

struct Compressor::Impl {
  // One workspace for the compressor's life, large enough for any input at its level: a context
  // of zstd's own frees and reallocates its tables as inputs go from large to small and back,
  // and each fresh page is a page fault (a costly one in a virtual machine). Not zeroed when
  // allocated: zstd touches the pages it uses.
  std::unique_ptr<std::uint8_t[]> workspace;
  ZSTD_CCtx* context = nullptr;  // inside workspace, never freed on its own
  int level = 3;
};

Compressor::Compressor(int level) : impl_(new Impl) {
  if (level < kMinCompressionLevel || level > kMaxCompressionLevel) {
    delete impl_;
    throw Error(ErrorKind::usage, "compression level must be between 1 and 22, got " + std::to_string(level));
  }
  impl_->level = level;
  const std::size_t size = ZSTD_estimateCCtxSize(level);
  impl_->workspace.reset(new (std::nothrow) std::uint8_t[size]);
  impl_->context = impl_->workspace ? ZSTD_initStaticCCtx(impl_->workspace.get(), size) : nullptr;
  if (impl_->context == nullptr) {
    delete impl_;
    throw Error(ErrorKind::io, "cannot allocate a zstd compression context");
  }
}

Compressor::~Compressor() { delete impl_; }

bool Compressor::compress(ByteView input, Bytes& out) {
  if (input.empty()) {
    return false;
  }
  // Only a strictly smaller result is worth keeping, so the output buffer never needs to be
  // larger than the input: zstd reports dstSize_tooSmall when it would not shrink the data.
  out.resize(input.size() - 1);
  const std::size_t written = ZSTD_compressCCtx(impl_->context, out.data(), out.size(), input.data(),
                                                input.size(), impl_->level);
  if (ZSTD_isError(written) != 0U) {
    if (ZSTD_getErrorCode(written) == ZSTD_error_dstSize_tooSmall) {
      return false;
    }
    throw Error(ErrorKind::io, std::string("zstd compression failed: ") + ZSTD_getErrorName(written));
  }
  out.resize(written);
  return true;
}

struct StreamCompressor::Impl {
  ZSTD_CCtx* context = nullptr;
};

StreamCompressor::StreamCompressor(int level) : impl_(new Impl) {
  impl_->context = ZSTD_createCCtx();
  if (impl_->context == nullptr || ZSTD_isError(ZSTD_CCtx_setParameter(impl_->context, ZSTD_c_compressionLevel, level)) != 0U) {
    ZSTD_freeCCtx(impl_->context);
    delete impl_;
    throw Error(ErrorKind::io, "cannot set up a zstd compression stream at level " + std::to_string(level));
  }
}

StreamCompressor::~StreamCompressor() {
  ZSTD_freeCCtx(impl_->context);
  delete impl_;
}

void StreamCompressor::add(ByteView input, Bytes& out) { run(input, out, false); }

void StreamCompressor::finish(Bytes& out) { run({}, out, true); }

void StreamCompressor::run(ByteView input, Bytes& out, bool end) {
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  const std::size_t step = ZSTD_CStreamOutSize();
  for (;;) {
    const std::size_t used = out.size();
    out.resize(used + step);
    ZSTD_outBuffer buffer{out.data() + used, step, 0};
    const std::size_t left = ZSTD_compressStream2(impl_->context, &buffer, &in, end ? ZSTD_e_end : ZSTD_e_continue);
    out.resize(used + buffer.pos);
    if (ZSTD_isError(left) != 0U) {
      throw Error(ErrorKind::io, std::string("zstd compression failed: ") + ZSTD_getErrorName(left));
    }
    if (end ? left == 0 : in.pos == in.size) {
      return;
    }
  }
}

struct StreamDecompressor::Impl {
  ZSTD_DCtx* context = nullptr;
  std::uint64_t expected = 0;
  std::uint64_t produced = 0;
  bool frame_done = false;
  Bytes out;
};

namespace {
[[noreturn]] void malformed_stream() { throw Error(ErrorKind::corrupt, "compressed stream is malformed or has the wrong size"); }
}  // namespace

StreamDecompressor::StreamDecompressor(std::uint64_t expected_size) : impl_(new Impl) {
  impl_->context = ZSTD_createDCtx();
  if (impl_->context == nullptr) {
    delete impl_;
    throw Error(ErrorKind::io, "cannot allocate a zstd decompression context");
  }
  impl_->expected = expected_size;
  impl_->out.resize(ZSTD_DStreamOutSize());
}

StreamDecompressor::~StreamDecompressor() {
  ZSTD_freeDCtx(impl_->context);
  delete impl_;
}

void StreamDecompressor::add(ByteView input, const std::function<void(ByteView)>& sink) {
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  bool output_pending = false;  // the last call filled the buffer: zstd may hold more
  while (in.pos < in.size || output_pending) {
    if (impl_->frame_done) {
      malformed_stream();  // bytes after the frame
    }
    ZSTD_outBuffer out{impl_->out.data(), impl_->out.size(), 0};
    const std::size_t hint = ZSTD_decompressStream(impl_->context, &out, &in);
    if (ZSTD_isError(hint) != 0U) {
      malformed_stream();
    }
    impl_->produced += out.pos;
    if (impl_->produced > impl_->expected) {
      malformed_stream();
    }
    impl_->frame_done = hint == 0;
    output_pending = !impl_->frame_done && out.pos == out.size;  // 0: decoded and fully flushed
    if (out.pos > 0) {
      sink(ByteView(impl_->out.data(), out.pos));
    }
  }
}

void StreamDecompressor::finish() {
  if (!impl_->frame_done || impl_->produced != impl_->expected) {
    malformed_stream();
  }
}

Bytes decompress(ByteView input, std::size_t expected_size) {
  const unsigned long long declared = ZSTD_getFrameContentSize(input.data(), input.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != expected_size)) {
    throw Error(ErrorKind::corrupt, "compressed chunk is malformed or has the wrong size");
  }
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    // A streamed frame (a manifest) records no size, and `expected_size` may come from outside
    // the authenticated bytes: the output grows with what the frame really holds, up to it.
    Bytes out;
    StreamDecompressor stream(expected_size);
    stream.add(input, [&out](ByteView piece) { out.insert(out.end(), piece.begin(), piece.end()); });
    stream.finish();
    return out;
  }
  // One context per thread, kept: ZSTD_decompress would create and free one per chunk, which
  // cost more than decompressing a chunk of a few kilobytes.
  struct ContextOfThread {
    ZSTD_DCtx* context = ZSTD_createDCtx();
    ~ContextOfThread() { ZSTD_freeDCtx(context); }
  };
  thread_local ContextOfThread thread_context;
  if (thread_context.context == nullptr) {
    throw Error(ErrorKind::io, "cannot allocate a zstd decompression context");
  }
  Bytes out(expected_size);
  const std::size_t written = ZSTD_decompressDCtx(thread_context.context, out.data(), out.size(), input.data(), input.size());
  if (ZSTD_isError(written) != 0U || written != expected_size) {
    throw Error(ErrorKind::corrupt, "compressed chunk cannot be decompressed");
  }
  return out;
}

}  // namespace mybackup
