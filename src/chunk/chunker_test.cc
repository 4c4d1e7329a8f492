#include "src/chunk/chunker.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>

#include "gtest/gtest.h"
#include "src/core/limits.h"

namespace ferry::chunk {
namespace {

// Small sizes, so that buffers hold many chunks and file tests cross many refills.
constexpr ChunkerParams kSmall{.min_bytes = 256, .avg_bytes = 1024, .max_bytes = 4096};

std::string Seed(uint8_t first) {
  std::string seed(kChunkerSeedBytes, '\0');
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<char>(first + 7 * i);
  return seed;
}

// Deterministic pseudo-random bytes: the tests must be able to fail but never flake.
std::string RandomBytes(size_t size, uint64_t prng_seed) {
  std::mt19937_64 random(prng_seed);
  std::string out(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word = random();
    for (int b = 0; b < 8; ++b) out[i + b] = static_cast<char>(word >> (8 * b));
  }
  for (; i < size; ++i) out[i] = static_cast<char>(random());
  return out;
}

std::vector<std::string_view> Pieces(std::string_view data,
                                     const std::vector<uint32_t>& lengths) {
  std::vector<std::string_view> pieces;
  for (uint32_t length : lengths) {
    pieces.push_back(data.substr(0, length));
    data.remove_prefix(length);
  }
  return pieces;
}

// Every chunk but the last is within [min, max]; the last is within [1, max].
void ExpectWithinBounds(const ChunkerParams& params,
                        const std::vector<uint32_t>& lengths) {
  for (size_t i = 0; i < lengths.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_LE(lengths[i], params.max_bytes);
    EXPECT_GE(lengths[i], i + 1 == lengths.size() ? 1u : params.min_bytes);
  }
}

// The definition, one byte at a time, straight from the header's documentation: the gear
// table from the seed, then FastCDC's two-mask scan.
class ReferenceChunker {
 public:
  ReferenceChunker(const ChunkerParams& params, std::string_view seed) : params_(params) {
    uint64_t words[4] = {};
    for (int k = 0; k < 4; ++k) {
      for (int b = 0; b < 8; ++b) {
        words[k] |= uint64_t{static_cast<uint8_t>(seed[8 * k + b])} << (8 * b);
      }
    }
    for (uint64_t j = 0; j < 256; ++j) {
      uint64_t value = (j + 1) * 0x9e3779b97f4a7c15;
      for (uint64_t word : words) value = SplitMix64Output(value ^ word);
      gear_[j] = value;
    }
  }

  size_t NextCut(std::string_view data) const {
    const int bits = std::countr_zero(params_.avg_bytes);
    const uint64_t mask_small = ~uint64_t{0} << (64 - bits - 2);
    const uint64_t mask_large = ~uint64_t{0} << (64 - bits + 2);
    if (data.size() <= params_.min_bytes) return data.size();
    const size_t end = std::min<size_t>(data.size(), params_.max_bytes);
    uint64_t hash = 0;
    for (size_t i = params_.min_bytes; i < end; ++i) {
      hash = (hash << 1) + gear_[static_cast<uint8_t>(data[i])];
      const uint64_t mask = i < params_.avg_bytes ? mask_small : mask_large;
      if ((hash & mask) == 0) return i + 1;
    }
    return end;
  }

 private:
  static uint64_t SplitMix64Output(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }

  ChunkerParams params_;
  uint64_t gear_[256];
};

TEST(ChunkerTest, MatchesByteAtATimeReference) {
  for (const ChunkerParams& params : {kSmall, ChunkerParams::Default()}) {
    SCOPED_TRACE(params.avg_bytes);
    const std::string data = RandomBytes(4u << 20, 20);
    const Chunker chunker(params, Seed(20));
    const ReferenceChunker reference(params, Seed(20));
    std::string_view rest = data;
    // Cuts at even and odd offsets, in both masks' ranges, and the final short chunk.
    size_t odd = 0, past_avg = 0;
    while (!rest.empty()) {
      const size_t cut = chunker.NextCut(rest, true);
      ASSERT_EQ(cut, reference.NextCut(rest)) << data.size() - rest.size();
      odd += cut % 2;
      past_avg += cut > params.avg_bytes;
      rest.remove_prefix(cut);
    }
    EXPECT_GT(odd, 0u);
    EXPECT_GT(past_avg, 0u);
  }
}

// Boundaries must never change between versions: devices that cut the same file
// differently share none of its chunks. mt19937_64's output is fixed by the standard.
TEST(ChunkerTest, GoldenBoundaries) {
  const std::string data = RandomBytes(24u << 10, 21);
  const std::vector<uint32_t> lengths = SplitAll(Chunker(kSmall, Seed(21)), data);
  const std::vector<uint32_t> golden = {1070, 1818, 1135, 1243, 438,  1040, 1205, 1093,
                                        1548, 1241, 1116, 1132, 476,  1155, 1141, 772,
                                        1092, 621,  1288, 1441, 1345, 1166};
  EXPECT_EQ(lengths, golden);
}

TEST(ChunkerParamsTest, DefaultIsValid) {
  EXPECT_TRUE(ChunkerParams::Default().Validate().ok());
  EXPECT_TRUE(kSmall.Validate().ok());
  EXPECT_LE(ChunkerParams::Default().max_bytes, kChunkBytesMax);
}

TEST(ChunkerParamsTest, ValidateRejectsBadParams) {
  auto with = [](uint32_t min, uint32_t avg, uint32_t max) {
    return ChunkerParams{.min_bytes = min, .avg_bytes = avg, .max_bytes = max}.Validate();
  };
  EXPECT_TRUE(with(64, 256, 257).ok());
  EXPECT_TRUE(with(1u << 20, 2u << 20, kChunkBytesMax).ok());
  const absl::StatusCode invalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(with(0, 0, 0).code(), invalid);
  EXPECT_EQ(with(0, 1024, 4096).code(), invalid);     // min below floor
  EXPECT_EQ(with(63, 1024, 4096).code(), invalid);    // min below floor
  EXPECT_EQ(with(256, 1000, 4096).code(), invalid);   // avg not a power of two
  EXPECT_EQ(with(64, 128, 4096).code(), invalid);     // avg below floor
  EXPECT_EQ(with(1024, 1024, 4096).code(), invalid);  // min == avg
  EXPECT_EQ(with(2048, 1024, 4096).code(), invalid);  // min > avg
  EXPECT_EQ(with(256, 1024, 1024).code(), invalid);   // avg == max
  EXPECT_EQ(with(256, 1024, 512).code(), invalid);    // max < avg
  EXPECT_EQ(with(1u << 20, 2u << 20, kChunkBytesMax + 1).code(), invalid);
  EXPECT_EQ(with(1u << 20, 4u << 20, 8u << 20).code(), invalid);  // max too large
}

TEST(ChunkerDeathTest, RejectsSeedOfWrongSize) {
  EXPECT_DEATH(Chunker(kSmall, "short seed"), "FERRY_CHUNK_CHECK");
  EXPECT_DEATH(Chunker(kSmall, Seed(1) + "x"), "FERRY_CHUNK_CHECK");
}

TEST(ChunkerDeathTest, RejectsInvalidParams) {
  ChunkerParams bad{.min_bytes = 256, .avg_bytes = 1000, .max_bytes = 4096};
  EXPECT_DEATH(Chunker(bad, Seed(1)), "FERRY_CHUNK_CHECK");
}

TEST(ChunkerTest, SameSeedSameBoundaries) {
  const std::string data = RandomBytes(4u << 20, 1);
  for (const ChunkerParams& params : {kSmall, ChunkerParams::Default()}) {
    EXPECT_EQ(SplitAll(Chunker(params, Seed(3)), data),
              SplitAll(Chunker(params, Seed(3)), data));
  }
}

TEST(ChunkerTest, DifferentSeedDifferentBoundaries) {
  const std::string data = RandomBytes(4u << 20, 2);
  std::string other_seed = Seed(3);
  other_seed[31] ^= 1;  // One bit of the last word.
  const std::vector<uint32_t> a = SplitAll(Chunker(kSmall, Seed(3)), data);
  const std::vector<uint32_t> b = SplitAll(Chunker(kSmall, other_seed), data);
  EXPECT_NE(a, b);
  // Cut offsets common to both are rare: chance, or a chunk of max bytes after a common
  // cut.
  std::vector<uint64_t> offsets_a(a.size()), offsets_b(b.size());
  std::partial_sum(a.begin(), a.end(), offsets_a.begin());
  std::partial_sum(b.begin(), b.end(), offsets_b.begin());
  const std::set<uint64_t> set_a(offsets_a.begin(), offsets_a.end());
  size_t common = 0;
  for (uint64_t offset : offsets_b) common += set_a.count(offset);
  EXPECT_LT(common, a.size() / 10) << common << " of " << a.size();
}

TEST(ChunkerTest, ChunksWithinBoundsAndConcatenateToInput) {
  for (const ChunkerParams& params : {kSmall, ChunkerParams::Default()}) {
    for (size_t size :
         {size_t{0}, size_t{1}, size_t{params.min_bytes}, size_t{params.min_bytes} + 1,
          size_t{params.max_bytes}, size_t{params.max_bytes} + 1, size_t{5} << 20}) {
      SCOPED_TRACE(size);
      const std::string data = RandomBytes(size, size);
      const std::vector<uint32_t> lengths = SplitAll(Chunker(params, Seed(5)), data);
      ExpectWithinBounds(params, lengths);
      std::string joined;
      for (std::string_view piece : Pieces(data, lengths)) joined.append(piece);
      EXPECT_EQ(joined, data);
      EXPECT_EQ(lengths.empty(), data.empty());
    }
  }
}

TEST(ChunkerTest, UniformDataIsCutAtMax) {
  // Constant bytes drive the gear hash to a constant, which (for this seed) never has
  // its top bits zero: the only cuts are forced ones.
  const std::string data(10 * kSmall.max_bytes + 5, '\0');
  const std::vector<uint32_t> lengths = SplitAll(Chunker(kSmall, Seed(5)), data);
  ASSERT_EQ(lengths.size(), 11u);
  for (size_t i = 0; i + 1 < lengths.size(); ++i) EXPECT_EQ(lengths[i], kSmall.max_bytes);
  EXPECT_EQ(lengths.back(), 5u);
}

TEST(ChunkerTest, NextCutNeedsMoreDataOnlyWhenItMust) {
  const Chunker chunker(kSmall, Seed(6));
  const std::string data = RandomBytes(8 * kSmall.max_bytes, 6);
  EXPECT_EQ(chunker.NextCut("", true), 0u);
  EXPECT_EQ(chunker.NextCut("", false), 0u);
  EXPECT_EQ(chunker.NextCut(std::string_view(data).substr(0, 10), true), 10u);
  EXPECT_EQ(chunker.NextCut(std::string_view(data).substr(0, 10), false), 0u);
  const size_t cut = chunker.NextCut(data, false);
  ASSERT_GT(cut, kSmall.min_bytes);
  ASSERT_LE(cut, kSmall.max_bytes);
  // Every prefix either finds the same cut or asks for more data, never another cut.
  for (size_t size = 0; size <= kSmall.max_bytes + 1; ++size) {
    const std::string_view prefix = std::string_view(data).substr(0, size);
    const size_t partial = chunker.NextCut(prefix, false);
    if (size < cut) {
      EXPECT_EQ(partial, 0u) << size;
      EXPECT_EQ(chunker.NextCut(prefix, true), size) << size;
    } else {
      EXPECT_EQ(partial, cut) << size;
      EXPECT_EQ(chunker.NextCut(prefix, true), cut) << size;
    }
  }
}

TEST(ChunkerTest, AverageNearTarget) {
  // 32 MiB of pseudo-random bytes gives ~500 chunks at the default size and ~30000 at
  // the small one; the standard error of the mean is a few percent at most.
  const std::string data = RandomBytes(32u << 20, 7);
  for (const ChunkerParams& params : {kSmall, ChunkerParams::Default()}) {
    const std::vector<uint32_t> lengths = SplitAll(Chunker(params, Seed(7)), data);
    const double mean = static_cast<double>(data.size()) / lengths.size();
    EXPECT_GT(mean, 0.65 * params.avg_bytes) << params.avg_bytes;
    EXPECT_LT(mean, 1.35 * params.avg_bytes) << params.avg_bytes;
    // Normalization keeps sizes off the bounds: few chunks are forced at max.
    size_t at_max = 0;
    for (uint32_t length : lengths) at_max += length == params.max_bytes;
    EXPECT_LT(at_max, lengths.size() / 100 + 1) << params.avg_bytes;
  }
}

// Fraction of `original`'s chunks (by count and by bytes) found verbatim in `edited`.
std::pair<double, double> SharedFraction(const Chunker& chunker,
                                         std::string_view original,
                                         std::string_view edited) {
  const std::vector<std::string_view> after = Pieces(edited, SplitAll(chunker, edited));
  const std::unordered_set<std::string_view> after_set(after.begin(), after.end());
  const std::vector<std::string_view> before =
      Pieces(original, SplitAll(chunker, original));
  size_t count = 0, bytes = 0;
  for (std::string_view piece : before) {
    if (after_set.contains(piece)) {
      ++count;
      bytes += piece.size();
    }
  }
  return {static_cast<double>(count) / before.size(),
          static_cast<double>(bytes) / original.size()};
}

TEST(ChunkerTest, InsertionChangesOnlyNearbyChunks) {
  const std::string original = RandomBytes(8u << 20, 8);
  const std::string inserted = RandomBytes(20, 9);
  for (const ChunkerParams& params : {kSmall, ChunkerParams::Default()}) {
    SCOPED_TRACE(params.avg_bytes);
    const Chunker chunker(params, Seed(8));
    for (size_t at : {size_t{0}, original.size() / 2}) {
      SCOPED_TRACE(at);
      std::string edited = original;
      edited.insert(at, inserted);
      const auto [count, bytes] = SharedFraction(chunker, original, edited);
      EXPECT_GE(count, 0.9);
      EXPECT_GE(bytes, 0.9);
      // Only the chunks around the edit change: at most a handful.
      const size_t chunks = SplitAll(chunker, original).size();
      EXPECT_GE(count * chunks, chunks - 4.0);
    }
  }
}

// Writes `data` to a fresh temporary file and returns its descriptor at offset 0.
int TempFile(std::string_view data) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/chunker_testXXXXXX";
  const int fd = ::mkstemp(path.data());
  EXPECT_GE(fd, 0);
  ::unlink(path.c_str());
  EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  EXPECT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  return fd;
}

struct FileChunks {
  absl::StatusOr<uint64_t> total;
  std::vector<std::string> chunks;
};

FileChunks ChunkFd(int fd, const Chunker& chunker) {
  FileChunks out;
  out.total = ChunkFile(fd, chunker, [&](std::string_view chunk) {
    out.chunks.emplace_back(chunk);
    return absl::OkStatus();
  });
  return out;
}

std::vector<uint32_t> Lengths(const std::vector<std::string>& chunks) {
  std::vector<uint32_t> lengths;
  for (const std::string& chunk : chunks)
    lengths.push_back(static_cast<uint32_t>(chunk.size()));
  return lengths;
}

TEST(ChunkFileTest, MatchesSplitAll) {
  for (const ChunkerParams& params : {kSmall, ChunkerParams::Default()}) {
    const Chunker chunker(params, Seed(10));
    const size_t min = params.min_bytes, max = params.max_bytes;
    // Empty, below min, and sizes around one and two buffer fills (2 * max).
    for (size_t size :
         {size_t{0}, size_t{1}, min - 1, min, min + 1, max - 1, max, max + 1, 2 * max - 1,
          2 * max, 2 * max + 1, 3 * max + 17, 4 * max, size_t{3} << 20}) {
      SCOPED_TRACE(size);
      const std::string data = RandomBytes(size, size + 1);
      const int fd = TempFile(data);
      const FileChunks got = ChunkFd(fd, chunker);
      ::close(fd);
      ASSERT_TRUE(got.total.ok()) << got.total.status();
      EXPECT_EQ(*got.total, size);
      EXPECT_EQ(Lengths(got.chunks), SplitAll(chunker, data));
      std::string joined;
      for (const std::string& chunk : got.chunks) joined += chunk;
      EXPECT_EQ(joined, data);
    }
  }
}

TEST(ChunkFileTest, StartsAtCurrentOffset) {
  const Chunker chunker(kSmall, Seed(11));
  const std::string data = RandomBytes(50000, 11);
  const int fd = TempFile(data);
  ASSERT_EQ(::lseek(fd, 1234, SEEK_SET), 1234);
  const FileChunks got = ChunkFd(fd, chunker);
  ::close(fd);
  ASSERT_TRUE(got.total.ok());
  EXPECT_EQ(*got.total, data.size() - 1234);
  EXPECT_EQ(Lengths(got.chunks), SplitAll(chunker, std::string_view(data).substr(1234)));
}

TEST(ChunkFileTest, PipeWithShortReads) {
  // A pipe returns at most what the writer has put in, so reads come back short.
  const Chunker chunker(kSmall, Seed(12));
  const std::string data = RandomBytes(1u << 20, 12);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    for (size_t at = 0; at < data.size();) {
      const size_t piece = std::min<size_t>(data.size() - at, 1 + at % 5000);
      const ssize_t n = ::write(fds[1], data.data() + at, piece);
      if (n <= 0) break;
      at += static_cast<size_t>(n);
    }
    ::close(fds[1]);
  });
  const FileChunks got = ChunkFd(fds[0], chunker);
  writer.join();
  ::close(fds[0]);
  ASSERT_TRUE(got.total.ok());
  EXPECT_EQ(*got.total, data.size());
  EXPECT_EQ(Lengths(got.chunks), SplitAll(chunker, data));
}

TEST(ChunkFileTest, StopsAtSinkError) {
  const Chunker chunker(kSmall, Seed(13));
  const int fd = TempFile(RandomBytes(100000, 13));
  int calls = 0;
  absl::StatusOr<uint64_t> total = ChunkFile(fd, chunker, [&](std::string_view) {
    return ++calls == 3 ? absl::DataLossError("sink full") : absl::OkStatus();
  });
  ::close(fd);
  EXPECT_EQ(total.status(), absl::DataLossError("sink full"));
  EXPECT_EQ(calls, 3);
}

TEST(ChunkFileTest, ReportsReadError) {
  const Chunker chunker(kSmall, Seed(14));
  absl::StatusOr<uint64_t> total =
      ChunkFile(-1, chunker, [](std::string_view) { return absl::OkStatus(); });
  EXPECT_FALSE(total.ok());
}

}  // namespace
}  // namespace ferry::chunk
