#include "mybackup/format/compress.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;
using testing::random_data;
using testing::to_bytes;

Bytes text_like(std::size_t size) {
  Bytes out;
  std::size_t n = 0;
  while (out.size() < size) {
    const std::string line = "entry " + std::to_string(n++ % 1000) + ": the quick brown fox jumps over the lazy dog\n";
    out.insert(out.end(), line.begin(), line.end());
  }
  out.resize(size);
  return out;
}

TEST(StreamCompress, pieces_make_one_frame_that_decompresses_whole) {
  std::string text;
  for (int i = 0; i < 50'000; ++i) {
    text += "/home/ana/photos/" + std::to_string(i) + ".jpg\n";
  }
  const Bytes plain = to_bytes(text);
  const Bytes noise = random_data(200'000, 3);
  Bytes all = plain;
  all.insert(all.end(), noise.begin(), noise.end());
  StreamCompressor compressor(3);
  Bytes out;
  for (std::size_t at = 0; at < all.size(); at += 100'003) {
    compressor.add(ByteView(all).subspan(at, std::min<std::size_t>(100'003, all.size() - at)), out);
  }
  compressor.finish(out);
  EXPECT_LT(out.size(), all.size());
  EXPECT_EQ(decompress(out, all.size()), all);
  EXPECT_EQ(error_kind([&] { decompress(out, all.size() - 1); }), ErrorKind::corrupt);
}

Bytes decompress_in_pieces(const Bytes& frame, std::uint64_t expected, std::size_t piece) {
  StreamDecompressor decompressor(expected);
  Bytes out;
  for (std::size_t at = 0; at < frame.size(); at += piece) {
    decompressor.add(ByteView(frame).subspan(at, std::min(piece, frame.size() - at)),
                     [&out](ByteView data) { out.insert(out.end(), data.begin(), data.end()); });
  }
  decompressor.finish();
  return out;
}

TEST(StreamDecompress, any_piece_size_gives_the_whole_and_checks_the_size) {
  const Bytes plain = text_like(3'000'000);  // more than zstd's output buffer many times over
  StreamCompressor compressor(3);
  Bytes frame;
  compressor.add(plain, frame);
  compressor.finish(frame);
  for (const std::size_t piece : {std::size_t{1}, std::size_t{1000}, frame.size()}) {
    EXPECT_EQ(decompress_in_pieces(frame, plain.size(), piece), plain) << piece;
  }
  EXPECT_EQ(error_kind([&] { decompress_in_pieces(frame, plain.size() - 1, 4096); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress_in_pieces(frame, plain.size() + 1, 4096); }), ErrorKind::corrupt);
  const Bytes cut(frame.begin(), frame.end() - 3);
  EXPECT_EQ(error_kind([&] { decompress_in_pieces(cut, plain.size(), 4096); }), ErrorKind::corrupt);
  Bytes longer = frame;
  longer.push_back(0);  // a byte after the frame
  EXPECT_EQ(error_kind([&] { decompress_in_pieces(longer, plain.size(), 4096); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress_in_pieces(to_bytes("not zstd at all"), 10, 4); }), ErrorKind::corrupt);
}

TEST(Compress, round_trip_at_levels_1_3_and_19) {
  const Bytes input = text_like(300'000);
  for (const int level : {1, 3, 19}) {
    Compressor compressor(level);
    Bytes compressed;
    ASSERT_TRUE(compressor.compress(input, compressed)) << "level " << level;
    EXPECT_LT(compressed.size(), input.size() / 4) << "level " << level;
    EXPECT_EQ(decompress(compressed, input.size()), input) << "level " << level;
  }
}

TEST(Compress, a_compressor_is_reusable_and_replaces_the_output) {
  Compressor compressor(3);
  Bytes out = to_bytes("old content that must disappear");
  const Bytes first = text_like(10'000);
  ASSERT_TRUE(compressor.compress(first, out));
  EXPECT_EQ(decompress(out, first.size()), first);
  const Bytes second = Bytes(50'000, 'z');
  ASSERT_TRUE(compressor.compress(second, out));
  EXPECT_EQ(decompress(out, second.size()), second);
}

TEST(Compress, higher_levels_do_not_compress_worse_on_text) {
  const Bytes input = text_like(200'000);
  Bytes fast;
  Bytes strong;
  ASSERT_TRUE(Compressor(1).compress(input, fast));
  ASSERT_TRUE(Compressor(19).compress(input, strong));
  EXPECT_LE(strong.size(), fast.size());
}

TEST(Compress, incompressible_data_returns_false) {
  for (const int level : {1, 3, 19}) {
    Compressor compressor(level);
    for (const std::size_t size : {std::size_t{1}, std::size_t{16}, std::size_t{1000}, std::size_t{200'000}}) {
      Bytes out;
      EXPECT_FALSE(compressor.compress(random_data(size, static_cast<std::uint32_t>(size)), out))
          << "level " << level << " size " << size;
    }
  }
}

TEST(Compress, empty_input_returns_false) {
  Compressor compressor(3);
  Bytes out;
  EXPECT_FALSE(compressor.compress(Bytes{}, out));
  EXPECT_FALSE(compressor.compress(ByteView{}, out));
}

TEST(Compress, invalid_level_is_usage) {
  for (const int level : {0, -1, 23, 100}) {
    EXPECT_EQ(error_kind([&] { Compressor compressor(level); }), ErrorKind::usage) << level;
  }
  EXPECT_NO_THROW(Compressor{kMinCompressionLevel});
  EXPECT_NO_THROW(Compressor{kMaxCompressionLevel});
}

TEST(Compress, decompress_with_the_wrong_expected_size_is_corrupt) {
  const Bytes input = text_like(20'000);
  Bytes compressed;
  ASSERT_TRUE(Compressor(3).compress(input, compressed));
  EXPECT_EQ(error_kind([&] { decompress(compressed, input.size() - 1); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress(compressed, input.size() + 1); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress(compressed, 0); }), ErrorKind::corrupt);
}

// A manifest's frame records no size and its expected size travels outside the authenticated
// bytes: a forged size of gigabytes is refused without allocating it first.
TEST(Compress, a_frame_without_its_size_is_not_trusted_with_a_huge_expected_size) {
  const Bytes input = text_like(20'000);
  StreamCompressor compressor(3);
  Bytes frame;
  compressor.add(input, frame);
  compressor.finish(frame);
  EXPECT_EQ(decompress(frame, input.size()), input);
  EXPECT_EQ(error_kind([&] { decompress(frame, std::size_t{1} << 40); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress(frame, input.size() - 1); }), ErrorKind::corrupt);
}

TEST(Compress, decompress_of_garbage_is_corrupt) {
  EXPECT_EQ(error_kind([&] { decompress(to_bytes("this is not a zstd frame"), 24); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress(random_data(1000, 5), 1000); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress(Bytes{}, 10); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { decompress(Bytes{}, 0); }), ErrorKind::corrupt);
}

TEST(Compress, decompress_of_a_damaged_frame_is_corrupt) {
  const Bytes input = text_like(20'000);
  Bytes compressed;
  ASSERT_TRUE(Compressor(3).compress(input, compressed));
  // Cut short at every length.
  for (std::size_t length = 0; length < compressed.size(); ++length) {
    const Bytes prefix(compressed.begin(), compressed.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_EQ(error_kind([&] { decompress(prefix, input.size()); }), ErrorKind::corrupt) << "length " << length;
  }
  // A byte changed in the frame: either detected, or (without a checksum) a different result,
  // never a crash. The magic number and header are always detected.
  Bytes bad_magic = compressed;
  bad_magic[0] ^= 0xff;
  EXPECT_EQ(error_kind([&] { decompress(bad_magic, input.size()); }), ErrorKind::corrupt);
  for (std::size_t i = 4; i < compressed.size(); i += 7) {
    Bytes damaged = compressed;
    damaged[i] ^= 0x55;
    const auto kind = error_kind([&] { decompress(damaged, input.size()); });
    EXPECT_TRUE(!kind.has_value() || *kind == ErrorKind::corrupt) << "byte " << i;
  }
}

}  // namespace
}  // namespace mybackup
