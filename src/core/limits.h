// Every bound ferry enforces, in one place. Units come last in names.
// A message, batch or loop that is not bounded here is a bug.
#ifndef FERRY_CORE_LIMITS_H_
#define FERRY_CORE_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace ferry {

// A serialized Envelope as sent to and stored by the data store.
inline constexpr size_t kEnvelopeBytesMax = 4u << 20;
// The plaintext (serialized Transaction) an envelope may declare; decompression never
// produces more than the declared size, and the declared size never exceeds this.
inline constexpr size_t kTransactionBytesMax = 16u << 20;
// Ops in one transaction.
inline constexpr size_t kTransactionOpsMax = 10000;
// Chunk ids listed in one envelope header.
inline constexpr size_t kEnvelopeChunkIdsMax = 65536;
// Plaintext bytes of one chunk; the chunker's maximum chunk size must not exceed it.
inline constexpr size_t kChunkBytesMax = 4u << 20;
// Sealed bytes of one chunk: plaintext + header + nonce + tag + zstd's worst case.
inline constexpr size_t kSealedChunkBytesMax = kChunkBytesMax + (64u << 10);
// Bytes of a chunk id (a keyed BLAKE2b hash).
inline constexpr size_t kChunkIdBytes = 32;
// Ids in one HasChunks or GetChunks request.
inline constexpr size_t kChunkIdsPerRequestMax = 4096;
// Chunks in one PutChunks stream.
inline constexpr size_t kChunksPerPutMax = 4096;
// One gRPC message, either direction.
inline constexpr size_t kGrpcMessageBytesMax = 8u << 20;
// Entries and bytes of one Pull page.
inline constexpr uint32_t kPullEntriesMax = 1000;
inline constexpr size_t kPullBytesMax = 6u << 20;
// Collections in one Watch request.
inline constexpr size_t kWatchCollectionsMax = 1024;
// Encrypted collection metadata and wrapped keys.
inline constexpr size_t kCollectionMetadataBytesMax = 64u << 10;
inline constexpr size_t kWrappedKeyBytesMax = 1024;
// Names chosen by people.
inline constexpr size_t kUserNameBytesMax = 128;
inline constexpr size_t kDeviceNameBytesMax = 128;
// A device name as the server stores it: sealed (nonce, ciphertext, tag).
inline constexpr size_t kSealedDeviceNameBytesMax = 512;
// Devices one account may have, live or revoked.
inline constexpr size_t kDevicesPerAccountMax = 1000;
// Argon2id costs an account may ask of its devices: a KdfParams that arrives with an
// account must not make a device spend unbounded memory or time. The server refuses
// accounts outside these bounds and devices refuse to derive with them.
inline constexpr uint64_t kKdfOpsLimitMax = 16;
inline constexpr uint64_t kKdfMemLimitBytesMin = 8u << 10;
inline constexpr uint64_t kKdfMemLimitBytesMax = uint64_t{1} << 30;
// Collections one account may have.
inline constexpr size_t kCollectionsPerAccountMax = 10000;
// Lease durations granted by the management service.
inline constexpr uint32_t kLeaseTtlMsMin = 1000;
inline constexpr uint32_t kLeaseTtlMsMax = 10 * 60 * 1000;
// Failed logins per user before the server makes the next attempt wait.
inline constexpr int kLoginFailuresFree = 5;
inline constexpr int64_t kLoginLockoutMsMax = 15 * 60 * 1000;

}  // namespace ferry

#endif  // FERRY_CORE_LIMITS_H_
