// Sealing: the only code in ferry that touches libsodium and zstd.
//
// A transaction is sealed as protobuf -> zstd -> XChaCha20-Poly1305, with the exact
// bytes of the cleartext EnvelopeHeader as associated data: the server can route,
// order and deduplicate by the header, and any change to it (or a move of the
// envelope to another collection) makes opening fail.
//
// All functions are thread-safe. Inputs from the network are bounded by the limits in
// src/core/limits.h before any allocation that depends on them.
#ifndef FERRY_SEAL_SEAL_H_
#define FERRY_SEAL_SEAL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/ferry/v1/change.pb.h"

namespace ferry::seal {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kSaltBytes = 16;
inline constexpr size_t kTxIdBytes = 16;
inline constexpr uint32_t kKdfArgon2id13 = 1;
inline constexpr uint32_t kAeadXChaCha20Poly1305 = 1;
inline constexpr uint32_t kCompressionNone = 0;
inline constexpr uint32_t kCompressionZstd = 1;
inline constexpr uint32_t kEnvelopeFormat = 1;

// Must be called once before any other function here; safe to call again.
void Init();

// A 32-byte secret, wiped when destroyed.
class SecretKey {
 public:
  SecretKey();                                 // all zero
  explicit SecretKey(std::string_view bytes);  // REQUIRES: bytes.size() == kKeyBytes
  ~SecretKey();
  SecretKey(const SecretKey&);
  SecretKey& operator=(const SecretKey&);

  const uint8_t* data() const { return bytes_.data(); }
  uint8_t* data() { return bytes_.data(); }
  std::string_view view() const {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }
  static SecretKey Random();

 private:
  std::array<uint8_t, kKeyBytes> bytes_;
};

// A collection key and the epoch that names it in envelope headers.
struct CollectionKey {
  SecretKey key;
  uint32_t epoch = 1;
};

// Argon2id cost. Moderate() is used for accounts; Fast() only where a caller asks for it
// (tests), and the chosen values travel with the account so they can change.
struct KdfParams {
  uint32_t alg = kKdfArgon2id13;
  uint64_t ops_limit = 0;
  uint64_t mem_limit_bytes = 0;
  std::string salt;             // kSaltBytes
  static KdfParams Moderate();  // fresh random salt
  static KdfParams Fast();      // fresh random salt, the minimum cost libsodium allows
};

struct AccountKeys {
  SecretKey auth_key;    // sent once at login, over TLS; the server keeps its hash
  SecretKey master_key;  // never leaves the device
};

// Argon2id(passphrase, salt) -> two independent subkeys. Rejects unknown algorithms,
// short salts and costs outside libsodium's bounds with INVALID_ARGUMENT.
absl::StatusOr<AccountKeys> DeriveAccountKeys(std::string_view passphrase,
                                              const KdfParams& params);

// Random bytes from the operating system.
std::string RandomBytes(size_t n);
// 16 random bytes as 32 lowercase hex digits: account, device and collection ids.
std::string RandomId();
// A bearer token: 32 random bytes, base64url without padding.
std::string NewToken();
// Server side: the stored form of an auth key or a token (BLAKE2b-256, domain-separated).
std::string HashAuthKey(std::string_view auth_key);
std::string HashToken(std::string_view token);
// Compares in time independent of the contents. Different sizes compare unequal.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// Lowercase hex and back.
std::string ToHex(std::string_view bytes);
absl::StatusOr<std::string> FromHex(std::string_view hex);

// The collection key sealed with the master key, bound to the collection id and epoch.
absl::StatusOr<std::string> WrapCollectionKey(const SecretKey& master_key,
                                              std::string_view collection_id,
                                              const CollectionKey& key);
absl::StatusOr<CollectionKey> UnwrapCollectionKey(const SecretKey& master_key,
                                                  std::string_view collection_id,
                                                  uint32_t epoch,
                                                  std::string_view wrapped);

// Collection metadata (name, kind, ...) sealed with the master key, bound to the id.
absl::StatusOr<std::string> SealMetadata(const SecretKey& master_key,
                                         std::string_view collection_id,
                                         std::string_view plaintext);
absl::StatusOr<std::string> OpenMetadata(const SecretKey& master_key,
                                         std::string_view collection_id,
                                         std::string_view sealed);

// A device's name sealed with the master key: the server stores and lists it, and
// cannot read it. At most kDeviceNameBytesMax bytes of name.
absl::StatusOr<std::string> SealDeviceName(const SecretKey& master_key,
                                           std::string_view name);
absl::StatusOr<std::string> OpenDeviceName(const SecretKey& master_key,
                                           std::string_view sealed);

// Keyed hashes of content, with a key derived from the collection key. Equal content in
// one collection has equal ids; the server learns nothing else.
// Block signatures (rsync's idea, kept by the device that synced a chunk rather than
// sent by a receiver): for each whole kSigBlockBytes block of a chunk's plaintext, a
// rolling checksum (4 bytes) and a keyed 64-bit hash (8 bytes), little-endian. With
// them an edited chunk travels as copies of its base's blocks plus the new bytes even
// when the base's plaintext is gone from this device (the file was edited in place);
// the receiver has the base. 12 bytes per 512: 2.3% of the data, kept only locally.
inline constexpr size_t kSigBlockBytes = 512;
inline constexpr size_t kSigEntryBytes = 12;

class ContentHasher {
 public:
  explicit ContentHasher(const CollectionKey& key);
  // kChunkIdBytes (32) bytes.
  std::string ChunkId(std::string_view plaintext) const;
  // Digest of a whole content (a file), 32 bytes; differs from ChunkId of the same bytes.
  std::string ContentDigest(std::string_view plaintext) const;
  // kSigEntryBytes per whole kSigBlockBytes block of `plaintext` (a partial last block
  // has none); "" for less than one block.
  std::string BlockSignatures(std::string_view plaintext) const;
  // The keyed 64-bit hash of one block, as in BlockSignatures.
  uint64_t BlockHash(std::string_view block) const;

 private:
  SecretKey chunk_key_;
  SecretKey digest_key_;
  SecretKey block_key_;  // its first crypto_shorthash_KEYBYTES bytes key SipHash
};

// Every chunk id the ops of `tx` reference: the chunks of whole contents (put, patch
// set) and the chunks spliced in. Chunks a splice keeps from the base are not listed:
// the store has them from an earlier transaction.
std::vector<std::string> ReferencedChunkIds(const v1::Transaction& tx);
// The same for one op, appended to `ids`.
void AppendReferencedChunkIds(const v1::Op& op, std::vector<std::string>* ids);

// Seals `tx` for `collection_id`. The header copies tx_id, device_id and base_seq from
// the transaction and lists `chunk_ids` plus every chunk the ops reference
// (ReferencedChunkIds), each once; the store refuses the envelope unless all are
// stored. Returns a serialized Envelope. INVALID_ARGUMENT when a limit is exceeded.
absl::StatusOr<std::string> SealTransaction(const CollectionKey& key,
                                            std::string_view collection_id,
                                            const v1::Transaction& tx,
                                            const std::vector<std::string>& chunk_ids);

// Decodes an envelope without a key, as the server does: checks sizes, format,
// algorithm ids and limits. Fills `envelope` and returns the parsed header.
absl::StatusOr<v1::EnvelopeHeader> DecodeEnvelope(std::string_view envelope_bytes,
                                                  v1::Envelope* envelope);

// Opens an envelope sealed for `collection_id`: decodes, authenticates header and
// payload, decompresses no more than the declared size, parses, and checks that the
// transaction agrees with the header (ids, base, every referenced chunk listed).
// Errors say which check failed: INVALID_ARGUMENT for an envelope that does not
// decode or exceeds a limit, PERMISSION_DENIED for another collection's envelope,
// FAILED_PRECONDITION for another key epoch, DATA_LOSS for failed authentication or
// a payload that disagrees with its header.
absl::StatusOr<v1::Transaction> OpenTransaction(const CollectionKey& key,
                                                std::string_view collection_id,
                                                std::string_view envelope_bytes);

struct SealedChunk {
  std::string id;    // ContentHasher::ChunkId of the plaintext
  std::string data;  // sealed bytes as stored by the server
};

// Seals one chunk of content (at most kChunkBytesMax bytes). Compresses with zstd
// unless that does not make it smaller.
absl::StatusOr<SealedChunk> SealChunk(const CollectionKey& key,
                                      const ContentHasher& hasher,
                                      std::string_view collection_id,
                                      std::string_view plaintext);
// The same for a chunk whose id the caller has just computed from these very bytes
// (ContentHasher::ChunkId), so that they are not hashed a second time. The id is bound
// to the sealed bytes as given: a wrong one makes a chunk that opens nowhere.
absl::StatusOr<SealedChunk> SealChunkWithId(const CollectionKey& key,
                                            std::string_view collection_id,
                                            std::string_view id,
                                            std::string_view plaintext);

// Seals `plaintext` as a delta against another chunk of the collection that the
// receiver is likely to have (the chunk it replaces in an edited file): zstd with
// `base_plaintext` as its dictionary, so a small edit costs bytes, not a chunk. The
// sealed bytes name the base (ChunkDeltaBase) and bind it as associated data. Returns
// NOT_FOUND when a delta is no smaller than SealChunk would be (seal normally then);
// INVALID_ARGUMENT when `base_plaintext` does not hash to `base_id`.
absl::StatusOr<SealedChunk> SealChunkDelta(const CollectionKey& key,
                                           const ContentHasher& hasher,
                                           std::string_view collection_id,
                                           std::string_view plaintext,
                                           std::string_view base_id,
                                           std::string_view base_plaintext);

// The same when this device no longer has the base's plaintext but kept its
// `base_signatures` (ContentHasher::BlockSignatures): the chunk is sent as copies of
// the base's whole blocks, found with a rolling checksum, and the bytes between them,
// compressed. NOT_FOUND when that is no smaller than SealChunk would be;
// INVALID_ARGUMENT for malformed signatures.
absl::StatusOr<SealedChunk> SealChunkBlockDelta(const CollectionKey& key,
                                                const ContentHasher& hasher,
                                                std::string_view collection_id,
                                                std::string_view plaintext,
                                                std::string_view base_id,
                                                std::string_view base_signatures);

// The id of the chunk a sealed delta chunk needs to be opened, or nullopt for a chunk
// that opens alone. Reads only the cleartext header.
std::optional<std::string> ChunkDeltaBase(std::string_view sealed);

// Opens a sealed chunk and checks that its plaintext hashes to `id`. A delta chunk
// needs `base_plaintext`, the plaintext of ChunkDeltaBase(sealed), which is checked
// against that id too; FAILED_PRECONDITION when it is not given.
absl::StatusOr<std::string> OpenChunk(
    const CollectionKey& key, const ContentHasher& hasher, std::string_view collection_id,
    std::string_view id, std::string_view sealed,
    std::optional<std::string_view> base_plaintext = std::nullopt);

}  // namespace ferry::seal

#endif  // FERRY_SEAL_SEAL_H_
