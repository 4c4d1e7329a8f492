// Fuzzes OpenChunk on bytes from the server. Input: a 32-byte chunk id, then the sealed
// chunk. The rest is also sealed as an authentic chunk (header bytes + payload), and as
// an authentic delta chunk against a fixed base, to reach the decompression, the
// delta decoders and the id check behind authentication.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "src/core/limits.h"
#include "src/seal/seal.h"

namespace {

void Open(std::string_view id, std::string_view sealed,
          std::optional<std::string_view> base = std::nullopt) {
  auto plain = ferry::seal::OpenChunk(ferry::fuzz::Key(), ferry::fuzz::Hasher(),
                                      ferry::fuzz::kCollectionId, id, sealed, base);
  if (plain.ok() && plain->size() > ferry::kChunkBytesMax) std::abort();
  if (plain.ok() && ferry::fuzz::Hasher().ChunkId(*plain) != id) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::seal::Init();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.size() < ferry::kChunkIdBytes) {
    Open(input, input);
    return 0;
  }
  std::string_view id = input.substr(0, ferry::kChunkIdBytes);
  std::string_view rest = input.substr(ferry::kChunkIdBytes);
  Open(id, rest);
  Open(id, rest, ferry::fuzz::FuzzBase());
  Open(id, ferry::fuzz::SealFuzzChunk(id, rest));
  // A delta chunk's frame (zstd against the base, or block copies) behind
  // authentication.
  Open(id, ferry::fuzz::SealFuzzDeltaChunk(id, rest), ferry::fuzz::FuzzBase());
  return 0;
}
