#include "src/chunk/chunker.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "src/core/file_util.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

// Aborts, in every build type, when a documented precondition does not hold.
#define FERRY_CHUNK_CHECK(cond)                                                         \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: FERRY_CHUNK_CHECK failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                              \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace ferry::chunk {
namespace {

static_assert(kChunkBytesMax <= UINT32_MAX, "chunk lengths are uint32_t");
static_assert(kChunkMinBytesFloor < kChunkAvgBytesFloor);

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15;
constexpr size_t kSeedWords = kChunkerSeedBytes / 8;

// splitmix64's output function: a bijection on 64-bit words.
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

uint64_t LoadLittleEndian64(const char* bytes) {
  uint64_t word = 0;
  for (int i = 7; i >= 0; --i) word = (word << 8) | static_cast<uint8_t>(bytes[i]);
  return word;
}

std::array<uint64_t, 256> GearTable(std::string_view seed) {
  FERRY_CHUNK_CHECK(seed.size() == kChunkerSeedBytes);
  std::array<uint64_t, kSeedWords> words;
  for (size_t k = 0; k < kSeedWords; ++k) words[k] = LoadLittleEndian64(&seed[8 * k]);
  std::array<uint64_t, 256> gear;
  for (size_t j = 0; j < gear.size(); ++j) {
    uint64_t value = (j + 1) * kGolden;
    for (uint64_t word : words) value = Mix64(value ^ word);
    gear[j] = value;
  }
  return gear;
}

// The `bits` most significant bits of a 64-bit word: the bits of the gear hash that
// depend on the most bytes.
uint64_t TopBitsMask(int bits) {
  assert(bits > 0 && bits < 64);
  return ~uint64_t{0} << (64 - bits);
}

// Reads until `size` bytes are in `out` or the file ends; returns the bytes read.
absl::StatusOr<size_t> ReadFull(int fd, char* out, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, out + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read", StrCat("fd ", fd));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace

ChunkerParams ChunkerParams::Default() {
  return ChunkerParams{
      .min_bytes = 16u << 10, .avg_bytes = 64u << 10, .max_bytes = 256u << 10};
}

absl::Status ChunkerParams::Validate() const {
  if (min_bytes < kChunkMinBytesFloor) {
    return absl::InvalidArgumentError(
        StrCat("chunker min_bytes ", min_bytes, " < ", kChunkMinBytesFloor));
  }
  if (avg_bytes < kChunkAvgBytesFloor || !std::has_single_bit(avg_bytes)) {
    return absl::InvalidArgumentError(
        StrCat("chunker avg_bytes ", avg_bytes,
               " is not a power of two >= ", kChunkAvgBytesFloor));
  }
  if (!(min_bytes < avg_bytes && avg_bytes < max_bytes)) {
    return absl::InvalidArgumentError(StrCat("chunker needs min < avg < max, got ",
                                             min_bytes, ", ", avg_bytes, ", ",
                                             max_bytes));
  }
  if (max_bytes > kChunkBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("chunker max_bytes ", max_bytes, " > ", kChunkBytesMax));
  }
  return absl::OkStatus();
}

Chunker::Chunker(const ChunkerParams& params, std::string_view seed32)
    : params_(params), gear_(GearTable(seed32)) {
  FERRY_CHUNK_CHECK(params_.Validate().ok());
  const int avg_bits = std::countr_zero(params_.avg_bytes);
  mask_small_ = TopBitsMask(avg_bits + kNormalizationLevel);
  mask_large_ = TopBitsMask(avg_bits - kNormalizationLevel);
}

// The hot loop, two bytes per step: h2 = (h << 2) + ((gear[b0] << 1) + gear[b1]) is the
// hash after both bytes, from h and a sum that does not depend on h, so the serial
// dependency is one shift and one add per two bytes. The hash after b0 alone is still
// tested, so the cuts are exactly those of the byte-at-a-time definition. Measured
// steadier than the plain loop, whose speed swung 2-4 GB/s with code placement
// (docs/chunking.md).
size_t Chunker::Scan(const uint8_t* bytes, size_t begin, size_t end, uint64_t mask,
                     uint64_t& hash) const {
  uint64_t h = hash;
  size_t i = begin;
  for (; i + 2 <= end; i += 2) {
    const uint64_t g0 = gear_[bytes[i]];
    const uint64_t g1 = gear_[bytes[i + 1]];
    const uint64_t h1 = (h << 1) + g0;
    h = (h << 2) + ((g0 << 1) + g1);
    if ((h1 & mask) == 0) {
      hash = h1;
      return i + 1;
    }
    if ((h & mask) == 0) {
      hash = h;
      return i + 2;
    }
  }
  if (i < end) {
    h = (h << 1) + gear_[bytes[i]];
    ++i;
    if ((h & mask) == 0) {
      hash = h;
      return i;
    }
  }
  hash = h;
  return 0;
}

size_t Chunker::NextCut(std::string_view data, bool at_end) const {
  const size_t size = data.size();
  if (size <= params_.min_bytes) return at_end ? size : 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  const size_t end = std::min<size_t>(size, params_.max_bytes);
  const size_t normal = std::min<size_t>(end, params_.avg_bytes);
  uint64_t hash = 0;
  size_t cut = Scan(bytes, params_.min_bytes, normal, mask_small_, hash);
  if (cut == 0) cut = Scan(bytes, normal, end, mask_large_, hash);
  if (cut != 0) {
    assert(cut > params_.min_bytes && cut <= end);
    return cut;
  }
  if (at_end || end == params_.max_bytes) return end;
  return 0;
}

absl::StatusOr<uint64_t> ChunkFile(int fd, const Chunker& chunker,
                                   const ChunkSink& sink) {
  return ChunkStream([fd](char* out, size_t size) { return ReadFull(fd, out, size); },
                     chunker, sink);
}

absl::StatusOr<uint64_t> ChunkStream(const ChunkRead& read, const Chunker& chunker,
                                     const ChunkSink& sink) {
  const size_t max_bytes = chunker.params().max_bytes;
  const size_t capacity = 2 * max_bytes;
  auto buffer = std::make_unique_for_overwrite<char[]>(capacity);
  size_t begin = 0;  // The bytes not yet chunked are buffer[begin, end).
  size_t end = 0;
  uint64_t total = 0;
  bool eof = false;
  for (;;) {
    if (!eof && end - begin < max_bytes) {
      std::memmove(buffer.get(), buffer.get() + begin, end - begin);
      end -= begin;
      begin = 0;
      FERRY_ASSIGN_OR_RETURN(size_t n, read(buffer.get() + end, capacity - end));
      FERRY_CHUNK_CHECK(n <= capacity - end);
      eof = n < capacity - end;
      end += n;
      total += n;
    }
    if (begin == end) return total;
    // Either max_bytes are buffered or the file has ended, so a cut is always found.
    const std::string_view rest(buffer.get() + begin, end - begin);
    const size_t cut = chunker.NextCut(rest, eof);
    FERRY_CHUNK_CHECK(cut > 0 && cut <= rest.size());
    FERRY_RETURN_IF_ERROR(sink(rest.substr(0, cut)));
    begin += cut;
  }
}

std::vector<uint32_t> SplitAll(const Chunker& chunker, std::string_view data) {
  std::vector<uint32_t> lengths;
  lengths.reserve(data.size() / chunker.params().avg_bytes + 1);
  while (!data.empty()) {
    const size_t cut = chunker.NextCut(data, /*at_end=*/true);
    assert(cut > 0 && cut <= chunker.params().max_bytes);
    lengths.push_back(static_cast<uint32_t>(cut));
    data.remove_prefix(cut);
  }
  return lengths;
}

}  // namespace ferry::chunk
