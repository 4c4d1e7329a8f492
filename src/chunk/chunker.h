// Content-defined chunking: normalized FastCDC (Xia et al., USENIX ATC 2016), level 2.
//
// A chunk ends where a gear rolling hash `h = (h << 1) + gear[byte]` has its top bits
// zero. Between min_bytes and avg_bytes the test needs log2(avg) + 2 zero bits (MaskS,
// cuts are rare), past avg_bytes only log2(avg) - 2 (MaskL, cuts come soon), so chunk
// sizes cluster around avg_bytes; the first min_bytes of a chunk are skipped unhashed
// and no chunk is longer than max_bytes. Because a cut depends only on the bytes just
// before it, an insertion or deletion changes the chunks around the edit and no others.
//
// The gear table is derived from a 32-byte secret seed (see Chunker::Chunker), so the
// boundaries - which the server sees as sealed chunk sizes - are not those of any public
// table: the server cannot recognise a known file by its sequence of chunk sizes. Every
// device with the same seed cuts the same bytes at the same places.
#ifndef FERRY_CHUNK_CHUNKER_H_
#define FERRY_CHUNK_CHUNKER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::chunk {

// Bytes of the secret that the gear table is derived from.
inline constexpr size_t kChunkerSeedBytes = 32;
// Bounds on ChunkerParams, besides max_bytes <= kChunkBytesMax (src/core/limits.h).
// min_bytes is at least the gear hash's window (64 bytes: bit 63 of the hash depends on
// the last 64 bytes only), and avg_bytes leaves MaskL at least 6 bits.
inline constexpr uint32_t kChunkMinBytesFloor = 64;
inline constexpr uint32_t kChunkAvgBytesFloor = 256;
// Bits by which MaskS has more, and MaskL fewer, than log2(avg_bytes): FastCDC's
// normalization level.
inline constexpr int kNormalizationLevel = 2;

struct ChunkerParams {
  uint32_t min_bytes = 0;
  uint32_t avg_bytes = 0;  // A power of two.
  uint32_t max_bytes = 0;

  // The sizes ferry uses: chosen by measurement, see docs/chunking.md.
  static ChunkerParams Default();
  // INVALID_ARGUMENT unless floors <= min < avg < max <= kChunkBytesMax and avg is a
  // power of two.
  absl::Status Validate() const;
};

class Chunker {
 public:
  // `params` must be valid (checked); `seed32` must have kChunkerSeedBytes bytes
  // (checked). The table is gear[j] = F(F(F(F((j + 1) * kGolden ^ w0) ^ w1) ^ w2) ^ w3),
  // where w0..w3 are the seed's four 64-bit little-endian words, kGolden is
  // 0x9e3779b97f4a7c15 and F is splitmix64's output function (a bijection, so the 256
  // entries are distinct).
  Chunker(const ChunkerParams& params, std::string_view seed32);

  // Length of the first chunk of `data`. Only the first max_bytes bytes are looked at.
  // When `at_end` is false and no cut is found in data shorter than max_bytes, returns 0:
  // "need more data". When `at_end` is true, returns a length in [1, data.size()] for
  // nonempty data, and 0 for empty data.
  size_t NextCut(std::string_view data, bool at_end) const;

  const ChunkerParams& params() const { return params_; }

 private:
  // First position in [begin, end) after which `hash` has its `mask` bits zero, or end.
  size_t Scan(const uint8_t* bytes, size_t begin, size_t end, uint64_t mask,
              uint64_t& hash) const;

  ChunkerParams params_;
  uint64_t mask_small_;  // Before avg_bytes: more bits, rarer cuts.
  uint64_t mask_large_;  // From avg_bytes on: fewer bits, likelier cuts.
  std::array<uint64_t, 256> gear_;
};

// The chunk sink of ChunkFile: gets every chunk in order; an error stops ChunkFile. The
// view is valid only during the call.
using ChunkSink = std::function<absl::Status(std::string_view chunk)>;

// Reads `fd` from its current offset to end of file and calls `sink` for each chunk in
// order. At most 2 * max_bytes bytes of the file are buffered. Retries EINTR and short
// reads. Returns the bytes read, or the first read error or sink error.
absl::StatusOr<uint64_t> ChunkFile(int fd, const Chunker& chunker, const ChunkSink& sink);

// Where ChunkStream reads from: fills `out` with up to `size` bytes and returns how
// many; fewer than `size` only at the end of the data.
using ChunkRead = std::function<absl::StatusOr<size_t>(char* out, size_t size)>;

// ChunkFile over any source: `read` is called once per 2 * max_bytes or so, never per
// byte. Returns the bytes read, or the first read error or sink error.
absl::StatusOr<uint64_t> ChunkStream(const ChunkRead& read, const Chunker& chunker,
                                     const ChunkSink& sink);

// Lengths of all chunks of an in-memory buffer, in order; empty for empty data.
std::vector<uint32_t> SplitAll(const Chunker& chunker, std::string_view data);

}  // namespace ferry::chunk

#endif  // FERRY_CHUNK_CHUNKER_H_
