// Fuzzes what the server and every device do with envelope bytes from the network:
// DecodeEnvelope and OpenTransaction with a fixed key, and, by sealing the input as an
// authentic payload, the decompression and checks behind authentication.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "src/seal/seal.h"

namespace {

void Open(std::string_view bytes) {
  using ferry::fuzz::kCollectionId;
  const ferry::seal::CollectionKey& key = ferry::fuzz::Key();
  ferry::v1::Envelope envelope;
  auto header = ferry::seal::DecodeEnvelope(bytes, &envelope);
  auto tx = ferry::seal::OpenTransaction(key, kCollectionId, bytes);
  if (tx.ok() && !header.ok()) std::abort();  // opened what does not decode
  if (!tx.ok()) return;
  // What opened reseals and opens to the same transaction.
  auto resealed = ferry::seal::SealTransaction(key, kCollectionId, *tx, {});
  if (!resealed.ok()) return;  // e.g. it no longer fits when compressed differently
  auto again = ferry::seal::OpenTransaction(key, kCollectionId, *resealed);
  if (!again.ok() || again->SerializeAsString() != tx->SerializeAsString()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::seal::Init();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Open(input);
  Open(ferry::fuzz::SealFuzzPayload(input));
  return 0;
}
