#include "src/seal/seal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <sodium.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

// Aborts, in every build type, when an internal invariant or a documented precondition
// does not hold.
#define FERRY_SEAL_CHECK(cond)                                                         \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: FERRY_SEAL_CHECK failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                             \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace ferry::seal {
namespace {

constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kHashBytes = 32;  // BLAKE2b-256
constexpr int kZstdLevel = 3;

static_assert(kKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(kKeyBytes == crypto_kdf_KEYBYTES);
static_assert(kSaltBytes == crypto_pwhash_SALTBYTES);
static_assert(kNonceBytes == 24);
static_assert(kChunkIdBytes == kHashBytes);

// crypto_kdf contexts: exactly crypto_kdf_CONTEXTBYTES (8) characters each.
constexpr char kKdfContextAuth[] = "ferryaut";
constexpr char kKdfContextMaster[] = "ferrymst";
constexpr char kKdfContextChunkId[] = "ferrycid";
constexpr char kKdfContextDigest[] = "ferrydig";
constexpr char kKdfContextBlockSig[] = "ferrysig";
static_assert(sizeof(kKdfContextBlockSig) - 1 == crypto_kdf_CONTEXTBYTES);
static_assert(crypto_shorthash_BYTES == 8 && crypto_shorthash_KEYBYTES <= kKeyBytes);
static_assert(sizeof(kKdfContextAuth) - 1 == crypto_kdf_CONTEXTBYTES);
static_assert(sizeof(kKdfContextMaster) - 1 == crypto_kdf_CONTEXTBYTES);
static_assert(sizeof(kKdfContextChunkId) - 1 == crypto_kdf_CONTEXTBYTES);
static_assert(sizeof(kKdfContextDigest) - 1 == crypto_kdf_CONTEXTBYTES);

// Associated-data and hash domains. Each is followed by variable data and, where the
// same key could see two of them, none is a prefix of another.
constexpr std::string_view kChunkAadDomain = "ferry-chunk-v1";
constexpr std::string_view kWrapAadDomain{"ferry-collection-key-v1\0", 24};
constexpr std::string_view kMetadataAadDomain{"ferry-collection-metadata-v1\0", 29};
constexpr std::string_view kAuthKeyHashDomain{"ferry-auth-key-hash-v1\0", 23};
constexpr std::string_view kTokenHashDomain{"ferry-token-hash-v1\0", 20};

// Sealed chunk layout:
//   [0]      version, 1
//   [1]      compression, kCompressionNone or kCompressionZstd
//   [2..5]   plaintext size, little-endian uint32
//   [6..29]  XChaCha20-Poly1305 nonce (24 bytes)
//   [30..]   ciphertext of the (possibly compressed) plaintext, with its 16-byte tag
// Associated data: "ferry-chunk-v1" || collection_id || '\0' || chunk id || bytes [0..5].
// Everything after collection_id has a fixed length, so the encoding is unambiguous.
//
// A delta chunk (version 2) has the id of its base chunk after the size:
//   [0] 2, [1] method, [2..5] size, [6..37] base chunk id, [38..61] nonce, ...
// and its associated data ends with bytes [0..37], so the base is authenticated too.
// Methods: kChunkDeltaZstd, a zstd frame with the base as dictionary; kChunkDeltaBlocks,
// a zstd frame of instructions, each a varint (n << 1 | copy) followed, for a copy,
// by a varint offset (n bytes of the base from there), else by n new bytes.
constexpr uint8_t kChunkVersion = 1;
constexpr uint8_t kChunkDeltaVersion = 2;
constexpr uint8_t kChunkDeltaZstd = 2;    // zstd with the base chunk as dictionary
constexpr uint8_t kChunkDeltaBlocks = 3;  // copies of the base's blocks and new bytes
constexpr size_t kChunkHeaderBytes = 6;
constexpr size_t kChunkDeltaHeaderBytes = kChunkHeaderBytes + kChunkIdBytes;
constexpr size_t kChunkPrefixBytes = kChunkHeaderBytes + kNonceBytes;
// A delta is made only while base and chunk together fit zstd's default window.
constexpr size_t kChunkDeltaInputBytesMax = 1u << 20;
static_assert(kChunkBytesMax <= UINT32_MAX);

constexpr size_t kWrappedKeyBytes = kNonceBytes + kKeyBytes + kTagBytes;
static_assert(kWrappedKeyBytes <= kWrappedKeyBytesMax);

const uint8_t* U8(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}
uint8_t* U8(std::string& s) { return reinterpret_cast<uint8_t*>(s.data()); }

absl::Status CheckCollectionId(std::string_view collection_id) {
  if (collection_id.empty()) return absl::InvalidArgumentError("empty collection id");
  return absl::OkStatus();
}

absl::Status CheckChunkId(std::string_view id) {
  if (id.size() != kChunkIdBytes) {
    return absl::InvalidArgumentError(
        StrCat("chunk id of ", id.size(), " bytes, want ", kChunkIdBytes));
  }
  return absl::OkStatus();
}

SecretKey DeriveSubkey(const SecretKey& root, uint64_t id, const char* context) {
  SecretKey out;
  int rc = crypto_kdf_derive_from_key(out.data(), kKeyBytes, id, context, root.data());
  FERRY_SEAL_CHECK(rc == 0);
  return out;
}

// BLAKE2b-256 of `domain || data`, keyed when `key` is not null.
std::string Blake2b(const SecretKey* key, std::string_view domain,
                    std::string_view data) {
  crypto_generichash_state state;
  int rc = crypto_generichash_init(&state, key ? key->data() : nullptr,
                                   key ? kKeyBytes : 0, kHashBytes);
  FERRY_SEAL_CHECK(rc == 0);
  crypto_generichash_update(&state, U8(domain), domain.size());
  crypto_generichash_update(&state, U8(data), data.size());
  std::string out(kHashBytes, '\0');
  crypto_generichash_final(&state, U8(out), out.size());
  sodium_memzero(&state, sizeof(state));
  return out;
}

// Returns nonce || AEAD(plaintext) under `key` with associated data `aad`.
std::string AeadSeal(const SecretKey& key, std::string_view aad,
                     std::string_view plaintext) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  uint8_t* nonce = U8(out);
  randombytes_buf(nonce, kNonceBytes);
  unsigned long long ct_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + kNonceBytes, &ct_len, U8(plaintext),
                                             plaintext.size(), U8(aad), aad.size(),
                                             nullptr, nonce, key.data());
  FERRY_SEAL_CHECK(ct_len == plaintext.size() + kTagBytes);
  return out;
}

// Opens `ciphertext` (with its tag). The caller has bounded its size.
absl::StatusOr<std::string> AeadOpen(const SecretKey& key, std::string_view aad,
                                     std::string_view nonce, std::string_view ciphertext,
                                     std::string_view what) {
  FERRY_SEAL_CHECK(nonce.size() == kNonceBytes);
  FERRY_SEAL_CHECK(ciphertext.size() >= kTagBytes);
  std::string plaintext(ciphertext.size() - kTagBytes, '\0');
  unsigned long long pt_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          U8(plaintext), &pt_len, nullptr, U8(ciphertext), ciphertext.size(), U8(aad),
          aad.size(), U8(nonce), key.data()) != 0) {
    return absl::DataLossError(
        StrCat(what, " failed authentication (tampered or wrong key)"));
  }
  FERRY_SEAL_CHECK(pt_len == plaintext.size());
  return plaintext;
}

// Opens nonce || ciphertext as made by AeadSeal.
absl::StatusOr<std::string> AeadOpenJoined(const SecretKey& key, std::string_view aad,
                                           std::string_view sealed,
                                           std::string_view what) {
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return absl::InvalidArgumentError(StrCat(what, " is too short"));
  }
  return AeadOpen(key, aad, sealed.substr(0, kNonceBytes), sealed.substr(kNonceBytes),
                  what);
}

// One zstd context per thread and direction, kept for the thread's life: setting a
// context up costs more than compressing a small transaction.
ZSTD_CCtx* CompressContext() {
  thread_local std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> context(
      ZSTD_createCCtx(), &ZSTD_freeCCtx);
  FERRY_SEAL_CHECK(context != nullptr);
  return context.get();
}

ZSTD_DCtx* DecompressContext() {
  thread_local std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> context(
      ZSTD_createDCtx(), &ZSTD_freeDCtx);
  FERRY_SEAL_CHECK(context != nullptr);
  return context.get();
}

// Compresses with zstd; returns kCompressionNone and the input when that is not smaller.
// One zstd frame of `data` (its size declared), with the thread's reused context.
std::string Compress(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compressCCtx(CompressContext(), out.data(), out.size(), data.data(),
                               data.size(), kZstdLevel);
  FERRY_SEAL_CHECK(!ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::pair<uint32_t, std::string> MaybeCompress(std::string_view plaintext) {
  std::string out = Compress(plaintext);
  if (out.size() >= plaintext.size()) return {kCompressionNone, std::string(plaintext)};
  return {kCompressionZstd, std::move(out)};
}

// Decompresses `frame` into exactly `declared` bytes, never allocating more; fails
// when the frame announces or produces any other size.
absl::StatusOr<std::string> DecompressBounded(std::string_view frame, size_t declared,
                                              size_t max, std::string_view what) {
  FERRY_SEAL_CHECK(declared <= max);
  unsigned long long frame_size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (frame_size == ZSTD_CONTENTSIZE_ERROR) {
    return absl::DataLossError(StrCat(what, " payload is not a zstd frame"));
  }
  if (frame_size != ZSTD_CONTENTSIZE_UNKNOWN && frame_size != declared) {
    return absl::DataLossError(StrCat(what, " zstd frame declares ", frame_size,
                                      " bytes but the header declares ", declared));
  }
  std::string out(declared, '\0');
  size_t n = ZSTD_decompressDCtx(DecompressContext(), out.data(), out.size(),
                                 frame.data(), frame.size());
  if (ZSTD_isError(n)) {
    return absl::DataLossError(StrCat(what, " zstd decompression into the declared ",
                                      declared, " bytes failed: ", ZSTD_getErrorName(n)));
  }
  if (n != declared) {
    return absl::DataLossError(StrCat(what, " decompressed to ", n,
                                      " bytes but the header declares ", declared));
  }
  return out;
}

// Undoes MaybeCompress, bounded by `declared`.
absl::StatusOr<std::string> DecodePayload(uint32_t compression, std::string payload,
                                          size_t declared, size_t max,
                                          std::string_view what) {
  if (compression == kCompressionZstd) {
    return DecompressBounded(payload, declared, max, what);
  }
  FERRY_SEAL_CHECK(compression == kCompressionNone);
  if (payload.size() != declared) {
    return absl::DataLossError(StrCat(what, " holds ", payload.size(),
                                      " bytes but the header declares ", declared));
  }
  return payload;
}

bool KnownCompression(uint32_t c) {
  return c == kCompressionNone || c == kCompressionZstd;
}

void AppendLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t ReadLe32(std::string_view s) {
  FERRY_SEAL_CHECK(s.size() >= 4);
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

std::string WrapAad(std::string_view collection_id, uint32_t epoch) {
  std::string aad = StrCat(kWrapAadDomain, collection_id);
  AppendLe32(aad, epoch);
  return aad;
}

std::string MetadataAad(std::string_view collection_id) {
  return StrCat(kMetadataAadDomain, collection_id);
}

std::string ChunkAad(std::string_view collection_id, std::string_view id,
                     std::string_view header) {
  FERRY_SEAL_CHECK(id.size() == kChunkIdBytes);
  FERRY_SEAL_CHECK(header.size() == kChunkHeaderBytes ||
                   header.size() == kChunkDeltaHeaderBytes);
  return StrCat(kChunkAadDomain, collection_id, std::string_view("\0", 1), id, header);
}

absl::Status CheckChunkIds(const std::vector<std::string>& chunk_ids) {
  if (chunk_ids.size() > kEnvelopeChunkIdsMax) {
    return absl::InvalidArgumentError(StrCat("transaction references ", chunk_ids.size(),
                                             " chunks, more than ",
                                             kEnvelopeChunkIdsMax));
  }
  for (const std::string& id : chunk_ids) FERRY_RETURN_IF_ERROR(CheckChunkId(id));
  return absl::OkStatus();
}

absl::Status CheckTransactionForSeal(const v1::Transaction& tx) {
  if (tx.tx_id().size() != kTxIdBytes) {
    return absl::InvalidArgumentError(
        StrCat("tx_id of ", tx.tx_id().size(), " bytes, want ", kTxIdBytes));
  }
  if (static_cast<size_t>(tx.ops_size()) > kTransactionOpsMax) {
    return absl::InvalidArgumentError(StrCat("transaction has ", tx.ops_size(),
                                             " ops, more than ", kTransactionOpsMax));
  }
  if (tx.ByteSizeLong() > kTransactionBytesMax) {
    return absl::InvalidArgumentError(StrCat("transaction is ", tx.ByteSizeLong(),
                                             " bytes, more than ", kTransactionBytesMax));
  }
  return absl::OkStatus();
}

// The header lists `chunk_ids` and then every chunk the ops reference that is not
// among them, each once.
v1::EnvelopeHeader MakeHeader(const CollectionKey& key, std::string_view collection_id,
                              const v1::Transaction& tx, uint32_t compression,
                              size_t plaintext_bytes,
                              const std::vector<std::string>& chunk_ids) {
  v1::EnvelopeHeader header;
  header.set_format(kEnvelopeFormat);
  header.set_aead(kAeadXChaCha20Poly1305);
  header.set_compression(compression);
  header.set_plaintext_bytes(plaintext_bytes);
  header.set_key_epoch(key.epoch);
  header.set_collection_id(std::string(collection_id));
  header.set_tx_id(tx.tx_id());
  header.set_device_id(tx.device_id());
  header.set_base_seq(tx.base_seq());
  std::set<std::string_view> listed;
  for (const std::string& id : chunk_ids) {
    if (listed.insert(id).second) header.add_chunk_ids(id);
  }
  const std::vector<std::string> referenced = ReferencedChunkIds(tx);
  for (const std::string& id : referenced) {
    if (listed.insert(id).second) header.add_chunk_ids(id);
  }
  return header;
}

// An opened transaction may reference only chunks its header lists: the server checked
// that those are stored before it accepted the envelope.
absl::Status CheckReferencesListed(const v1::EnvelopeHeader& header,
                                   const v1::Transaction& tx) {
  std::set<std::string_view> listed(header.chunk_ids().begin(), header.chunk_ids().end());
  for (const std::string& id : ReferencedChunkIds(tx)) {
    if (!listed.contains(id)) {
      return absl::DataLossError(
          "transaction references a chunk its header does not list");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHeader(const v1::EnvelopeHeader& h) {
  if (h.format() != kEnvelopeFormat) {
    return absl::InvalidArgumentError(StrCat("unknown envelope format ", h.format()));
  }
  if (h.aead() != kAeadXChaCha20Poly1305) {
    return absl::InvalidArgumentError(StrCat("unknown envelope aead ", h.aead()));
  }
  if (!KnownCompression(h.compression())) {
    return absl::InvalidArgumentError(
        StrCat("unknown envelope compression ", h.compression()));
  }
  if (h.plaintext_bytes() > kTransactionBytesMax) {
    return absl::InvalidArgumentError(StrCat("envelope declares ", h.plaintext_bytes(),
                                             " plaintext bytes, more than ",
                                             kTransactionBytesMax));
  }
  if (static_cast<size_t>(h.chunk_ids_size()) > kEnvelopeChunkIdsMax) {
    return absl::InvalidArgumentError(StrCat("envelope lists ", h.chunk_ids_size(),
                                             " chunk ids, more than ",
                                             kEnvelopeChunkIdsMax));
  }
  for (const std::string& id : h.chunk_ids()) {
    if (id.size() != kChunkIdBytes) {
      return absl::InvalidArgumentError(
          StrCat("envelope lists a chunk id of ", id.size(), " bytes"));
    }
  }
  if (h.tx_id().size() != kTxIdBytes) {
    return absl::InvalidArgumentError(
        StrCat("envelope tx_id of ", h.tx_id().size(), " bytes, want ", kTxIdBytes));
  }
  if (h.collection_id().empty()) {
    return absl::InvalidArgumentError("envelope has an empty collection id");
  }
  return absl::OkStatus();
}

absl::Status CheckOpenedTransaction(const v1::EnvelopeHeader& h,
                                    const v1::Transaction& tx) {
  if (static_cast<size_t>(tx.ops_size()) > kTransactionOpsMax) {
    return absl::InvalidArgumentError(StrCat("transaction has ", tx.ops_size(),
                                             " ops, more than ", kTransactionOpsMax));
  }
  if (tx.tx_id() != h.tx_id() || tx.device_id() != h.device_id() ||
      tx.base_seq() != h.base_seq()) {
    return absl::DataLossError(
        "transaction disagrees with its envelope header (tx_id, device_id or base_seq)");
  }
  return absl::OkStatus();
}

absl::Status CheckKdfParams(const KdfParams& p) {
  if (p.alg != kKdfArgon2id13) {
    return absl::InvalidArgumentError(StrCat("unknown kdf algorithm ", p.alg));
  }
  if (p.salt.size() != kSaltBytes) {
    return absl::InvalidArgumentError(
        StrCat("kdf salt of ", p.salt.size(), " bytes, want ", kSaltBytes));
  }
  if (p.ops_limit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
      p.ops_limit > kKdfOpsLimitMax) {
    return absl::InvalidArgumentError(StrCat("kdf ops limit ", p.ops_limit, " outside [",
                                             crypto_pwhash_argon2id_OPSLIMIT_MIN, ", ",
                                             kKdfOpsLimitMax, "]"));
  }
  if (p.mem_limit_bytes < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      p.mem_limit_bytes > kKdfMemLimitBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("kdf memory limit ", p.mem_limit_bytes, " outside [",
               crypto_pwhash_argon2id_MEMLIMIT_MIN, ", ", kKdfMemLimitBytesMax, "]"));
  }
  return absl::OkStatus();
}

KdfParams MakeKdfParams(uint64_t ops_limit, uint64_t mem_limit_bytes) {
  KdfParams p;
  p.ops_limit = ops_limit;
  p.mem_limit_bytes = mem_limit_bytes;
  p.salt = RandomBytes(kSaltBytes);
  return p;
}

}  // namespace

void Init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) {
      std::fprintf(stderr, "ferry: sodium_init failed\n");
      std::abort();
    }
  });
}

// ---- SecretKey ----

SecretKey::SecretKey() { bytes_.fill(0); }

SecretKey::SecretKey(std::string_view bytes) {
  FERRY_SEAL_CHECK(bytes.size() == kKeyBytes);
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

SecretKey::SecretKey(const SecretKey& other) : bytes_(other.bytes_) {}

SecretKey& SecretKey::operator=(const SecretKey& other) {
  bytes_ = other.bytes_;
  return *this;
}

SecretKey SecretKey::Random() {
  SecretKey key;
  randombytes_buf(key.data(), kKeyBytes);
  return key;
}

// ---- Account keys ----

// Moderate: Argon2id with libsodium's INTERACTIVE costs (2 passes over 64 MiB), about
// 0.1 s on this project's machines. Fast: the minimum libsodium accepts (1 pass over
// 8 KiB).
KdfParams KdfParams::Moderate() {
  return MakeKdfParams(crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
                       crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE);
}

KdfParams KdfParams::Fast() {
  return MakeKdfParams(crypto_pwhash_argon2id_OPSLIMIT_MIN,
                       crypto_pwhash_argon2id_MEMLIMIT_MIN);
}

absl::StatusOr<AccountKeys> DeriveAccountKeys(std::string_view passphrase,
                                              const KdfParams& params) {
  FERRY_RETURN_IF_ERROR(CheckKdfParams(params));
  if (passphrase.size() > crypto_pwhash_argon2id_PASSWD_MAX) {
    return absl::InvalidArgumentError("passphrase is too long");
  }
  SecretKey root;
  if (crypto_pwhash(root.data(), kKeyBytes, passphrase.data(), passphrase.size(),
                    U8(params.salt), params.ops_limit,
                    static_cast<size_t>(params.mem_limit_bytes),
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("argon2id failed (out of memory?)");
  }
  AccountKeys keys;
  keys.auth_key = DeriveSubkey(root, 1, kKdfContextAuth);
  keys.master_key = DeriveSubkey(root, 1, kKdfContextMaster);
  return keys;
}

// ---- Small helpers ----

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

std::string RandomId() { return ToHex(RandomBytes(16)); }

std::string NewToken() {
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  constexpr size_t kRawBytes = 32;
  std::string raw = RandomBytes(kRawBytes);
  std::string out(sodium_base64_ENCODED_LEN(kRawBytes, kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), U8(raw), raw.size(), kVariant);
  sodium_memzero(raw.data(), raw.size());
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::string HashAuthKey(std::string_view auth_key) {
  return Blake2b(nullptr, kAuthKeyHashDomain, auth_key);
}

std::string HashToken(std::string_view token) {
  return Blake2b(nullptr, kTokenHashDomain, token);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string ToHex(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), U8(bytes), bytes.size());
  out.resize(bytes.size() * 2);
  return out;
}

absl::StatusOr<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError("hex string of odd length");
  }
  std::string out(hex.size() / 2, '\0');
  size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(U8(out), out.size(), hex.data(), hex.size(), nullptr, &bin_len,
                     &end) != 0 ||
      end != hex.data() + hex.size() || bin_len != out.size()) {
    return absl::InvalidArgumentError("not a hex string");
  }
  return out;
}

// ---- Wrapped keys and metadata ----

absl::StatusOr<std::string> WrapCollectionKey(const SecretKey& master_key,
                                              std::string_view collection_id,
                                              const CollectionKey& key) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  return AeadSeal(master_key, WrapAad(collection_id, key.epoch), key.key.view());
}

absl::StatusOr<CollectionKey> UnwrapCollectionKey(const SecretKey& master_key,
                                                  std::string_view collection_id,
                                                  uint32_t epoch,
                                                  std::string_view wrapped) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  if (wrapped.size() != kWrappedKeyBytes) {
    return absl::InvalidArgumentError(
        StrCat("wrapped key of ", wrapped.size(), " bytes, want ", kWrappedKeyBytes));
  }
  FERRY_ASSIGN_OR_RETURN(
      std::string raw, AeadOpenJoined(master_key, WrapAad(collection_id, epoch), wrapped,
                                      "wrapped collection key"));
  CollectionKey key{SecretKey(raw), epoch};
  sodium_memzero(raw.data(), raw.size());
  return key;
}

absl::StatusOr<std::string> SealMetadata(const SecretKey& master_key,
                                         std::string_view collection_id,
                                         std::string_view plaintext) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  if (plaintext.size() > kCollectionMetadataBytesMax - kNonceBytes - kTagBytes) {
    return absl::InvalidArgumentError(
        StrCat("collection metadata of ", plaintext.size(), " bytes is too large"));
  }
  return AeadSeal(master_key, MetadataAad(collection_id), plaintext);
}

absl::StatusOr<std::string> OpenMetadata(const SecretKey& master_key,
                                         std::string_view collection_id,
                                         std::string_view sealed) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  if (sealed.size() > kCollectionMetadataBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("sealed metadata of ", sealed.size(), " bytes is too large"));
  }
  return AeadOpenJoined(master_key, MetadataAad(collection_id), sealed,
                        "collection metadata");
}

// Device names are sealed like collection metadata, bound to a fixed pseudo-id that
// no collection can have (collection ids are 32 hex digits).
constexpr std::string_view kDeviceNameId = "device-name";

absl::StatusOr<std::string> SealDeviceName(const SecretKey& master_key,
                                           std::string_view name) {
  if (name.size() > kDeviceNameBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("a device name is at most ", kDeviceNameBytesMax, " bytes"));
  }
  return SealMetadata(master_key, kDeviceNameId, name);
}

absl::StatusOr<std::string> OpenDeviceName(const SecretKey& master_key,
                                           std::string_view sealed) {
  return OpenMetadata(master_key, kDeviceNameId, sealed);
}

// ---- ContentHasher ----

ContentHasher::ContentHasher(const CollectionKey& key)
    : chunk_key_(DeriveSubkey(key.key, 1, kKdfContextChunkId)),
      digest_key_(DeriveSubkey(key.key, 1, kKdfContextDigest)),
      block_key_(DeriveSubkey(key.key, 1, kKdfContextBlockSig)) {}

namespace {

// rsync's rolling checksum over a window of kSigBlockBytes: a = sum of the bytes,
// b = sum of the running sums a, each mod 2^16; moving the window one byte is O(1).
struct RollingSum {
  uint32_t a = 0, b = 0;
  // b is also the sum of (n - i) * byte i, whose terms do not depend on each other:
  // with SSE2 16 bytes are added at a time (~3x the serial loop's 2.2 GB/s here), to
  // exactly the same a and b (both mod 2^32), which Roll() then continues.
  void Init(std::string_view block) {
    a = b = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(block.data());
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    // The weight of byte k of a 16-byte step within that step: 16 - k.
    const __m128i low_weights = _mm_setr_epi16(16, 15, 14, 13, 12, 11, 10, 9);
    const __m128i high_weights = _mm_setr_epi16(8, 7, 6, 5, 4, 3, 2, 1);
    __m128i sum = zero;          // a so far (in the low 32 bits of each 64-bit half)
    __m128i sum_of_sums = zero;  // the a before each step, summed over the steps
    __m128i weighted = zero;     // the bytes times their weight within their step
    for (; i + 16 <= block.size(); i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      sum_of_sums = _mm_add_epi32(sum_of_sums, sum);
      sum = _mm_add_epi32(sum, _mm_sad_epu8(v, zero));
      weighted = _mm_add_epi32(
          weighted,
          _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi8(v, zero), low_weights),
                        _mm_madd_epi16(_mm_unpackhi_epi8(v, zero), high_weights)));
    }
    const auto lanes = [](__m128i x) {
      x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
      x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
      return static_cast<uint32_t>(_mm_cvtsi128_si32(x));
    };
    a = lanes(sum);
    b = lanes(weighted) + 16 * lanes(sum_of_sums);
#endif
    for (; i < block.size(); ++i) {
      a += p[i];
      b += a;
    }
  }
  void Roll(unsigned char out, unsigned char in) {
    a += in - out;
    b += a - static_cast<uint32_t>(kSigBlockBytes) * out;
  }
  uint32_t Value() const { return (a & 0xffff) | (b << 16); }
};

void AppendLe64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t ReadLe64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(s[i]);
  return v;
}
void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
// Reads a varint at `*pos`; false when `in` ends first or it exceeds 63 bits.
bool ReadVarint(std::string_view in, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 63; shift += 7) {
    if (*pos >= in.size()) return false;
    uint8_t byte = static_cast<uint8_t>(in[(*pos)++]);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

uint64_t ContentHasher::BlockHash(std::string_view block) const {
  uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, U8(block), block.size(), block_key_.data());
  return ReadLe64(std::string_view(reinterpret_cast<const char*>(out), sizeof out));
}

std::string ContentHasher::BlockSignatures(std::string_view plaintext) const {
  std::string out;
  out.reserve(plaintext.size() / kSigBlockBytes * kSigEntryBytes);
  for (size_t at = 0; at + kSigBlockBytes <= plaintext.size(); at += kSigBlockBytes) {
    std::string_view block = plaintext.substr(at, kSigBlockBytes);
    RollingSum sum;
    sum.Init(block);
    AppendLe32(out, sum.Value());
    AppendLe64(out, BlockHash(block));
  }
  return out;
}

std::string ContentHasher::ChunkId(std::string_view plaintext) const {
  return Blake2b(&chunk_key_, {}, plaintext);
}

std::string ContentHasher::ContentDigest(std::string_view plaintext) const {
  return Blake2b(&digest_key_, {}, plaintext);
}

// ---- Envelopes ----
// The payload is sealed with the collection key itself; the AAD (the exact header
// bytes, which start with the format field) cannot be mistaken for a chunk's AAD.

void AppendReferencedChunkIds(const v1::Op& op, std::vector<std::string>* ids) {
  auto add_content = [ids](const v1::Field& field) {
    if (!field.has_content()) return;
    for (const v1::ChunkRef& ref : field.content().chunks()) ids->push_back(ref.id());
  };
  if (op.has_put()) {
    for (const v1::Field& f : op.put().item().fields()) add_content(f);
  } else if (op.has_patch()) {
    for (const v1::Field& f : op.patch().set()) add_content(f);
    for (const v1::ContentPatch& p : op.patch().splice()) {
      for (const v1::Splice& splice : p.splices()) {
        for (const v1::ChunkRef& ref : splice.insert()) ids->push_back(ref.id());
      }
    }
  }
}

std::vector<std::string> ReferencedChunkIds(const v1::Transaction& tx) {
  std::vector<std::string> ids;
  for (const v1::Op& op : tx.ops()) AppendReferencedChunkIds(op, &ids);
  return ids;
}

absl::StatusOr<std::string> SealTransaction(const CollectionKey& key,
                                            std::string_view collection_id,
                                            const v1::Transaction& tx,
                                            const std::vector<std::string>& chunk_ids) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  FERRY_RETURN_IF_ERROR(CheckTransactionForSeal(tx));
  FERRY_RETURN_IF_ERROR(CheckChunkIds(chunk_ids));
  std::string plaintext = tx.SerializeAsString();
  auto [compression, payload] = MaybeCompress(plaintext);
  v1::EnvelopeHeader header =
      MakeHeader(key, collection_id, tx, compression, plaintext.size(), chunk_ids);
  FERRY_RETURN_IF_ERROR(CheckHeader(header));  // as the store will check it
  v1::Envelope envelope;
  envelope.set_header(header.SerializeAsString());
  std::string sealed = AeadSeal(key.key, envelope.header(), payload);
  envelope.set_nonce(sealed.substr(0, kNonceBytes));
  envelope.set_ciphertext(sealed.substr(kNonceBytes));
  std::string out = envelope.SerializeAsString();
  if (out.size() > kEnvelopeBytesMax) {
    return absl::InvalidArgumentError(StrCat("sealed envelope is ", out.size(),
                                             " bytes, more than ", kEnvelopeBytesMax));
  }
  return out;
}

absl::StatusOr<v1::EnvelopeHeader> DecodeEnvelope(std::string_view envelope_bytes,
                                                  v1::Envelope* envelope) {
  if (envelope_bytes.size() > kEnvelopeBytesMax) {
    return absl::InvalidArgumentError(StrCat("envelope is ", envelope_bytes.size(),
                                             " bytes, more than ", kEnvelopeBytesMax));
  }
  v1::Envelope local;
  if (envelope == nullptr) envelope = &local;
  if (!envelope->ParseFromArray(envelope_bytes.data(),
                                static_cast<int>(envelope_bytes.size()))) {
    return absl::InvalidArgumentError("envelope does not parse");
  }
  v1::EnvelopeHeader header;
  if (!header.ParseFromString(envelope->header())) {
    return absl::InvalidArgumentError("envelope header does not parse");
  }
  FERRY_RETURN_IF_ERROR(CheckHeader(header));
  if (envelope->nonce().size() != kNonceBytes) {
    return absl::InvalidArgumentError(StrCat(
        "envelope nonce of ", envelope->nonce().size(), " bytes, want ", kNonceBytes));
  }
  if (envelope->ciphertext().size() < kTagBytes) {
    return absl::InvalidArgumentError("envelope ciphertext is shorter than its tag");
  }
  return header;
}

absl::StatusOr<v1::Transaction> OpenTransaction(const CollectionKey& key,
                                                std::string_view collection_id,
                                                std::string_view envelope_bytes) {
  v1::Envelope envelope;
  FERRY_ASSIGN_OR_RETURN(v1::EnvelopeHeader header,
                         DecodeEnvelope(envelope_bytes, &envelope));
  if (header.collection_id() != collection_id) {
    return absl::PermissionDeniedError("envelope belongs to another collection");
  }
  if (header.key_epoch() != key.epoch) {
    return absl::FailedPreconditionError(StrCat(
        "envelope sealed with key epoch ", header.key_epoch(), ", have ", key.epoch));
  }
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         AeadOpen(key.key, envelope.header(), envelope.nonce(),
                                  envelope.ciphertext(), "envelope"));
  FERRY_ASSIGN_OR_RETURN(
      std::string plaintext,
      DecodePayload(header.compression(), std::move(payload), header.plaintext_bytes(),
                    kTransactionBytesMax, "envelope"));
  v1::Transaction tx;
  if (!tx.ParseFromString(plaintext)) {
    return absl::DataLossError("envelope payload is not a transaction");
  }
  FERRY_RETURN_IF_ERROR(CheckOpenedTransaction(header, tx));
  FERRY_RETURN_IF_ERROR(CheckReferencesListed(header, tx));
  return tx;
}

// ---- Chunks ----

absl::StatusOr<SealedChunk> SealChunk(const CollectionKey& key,
                                      const ContentHasher& hasher,
                                      std::string_view collection_id,
                                      std::string_view plaintext) {
  return SealChunkWithId(key, collection_id, hasher.ChunkId(plaintext), plaintext);
}

absl::StatusOr<SealedChunk> SealChunkWithId(const CollectionKey& key,
                                            std::string_view collection_id,
                                            std::string_view id,
                                            std::string_view plaintext) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  if (plaintext.size() > kChunkBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("chunk of ", plaintext.size(), " bytes, more than ", kChunkBytesMax));
  }
  FERRY_RETURN_IF_ERROR(CheckChunkId(id));
  SealedChunk chunk;
  chunk.id = std::string(id);
  auto [compression, payload] = MaybeCompress(plaintext);
  std::string header;
  header.push_back(static_cast<char>(kChunkVersion));
  header.push_back(static_cast<char>(compression));
  AppendLe32(header, static_cast<uint32_t>(plaintext.size()));
  chunk.data =
      header + AeadSeal(key.key, ChunkAad(collection_id, chunk.id, header), payload);
  FERRY_SEAL_CHECK(chunk.data.size() <= kSealedChunkBytesMax);
  return chunk;
}

namespace {

// zstd of `plaintext` with `base` as a raw-content dictionary (a prefix); fresh
// contexts, since a prefix applies to one frame only.
std::string CompressAgainst(std::string_view plaintext, std::string_view base) {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(),
                                                          &ZSTD_freeCCtx);
  FERRY_SEAL_CHECK(cctx != nullptr);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, kZstdLevel);
  ZSTD_CCtx_refPrefix(cctx.get(), base.data(), base.size());
  std::string out(ZSTD_compressBound(plaintext.size()), '\0');
  size_t n = ZSTD_compress2(cctx.get(), out.data(), out.size(), plaintext.data(),
                            plaintext.size());
  FERRY_SEAL_CHECK(!ZSTD_isError(n));
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> DecompressAgainst(std::string_view frame,
                                              std::string_view base, size_t declared) {
  unsigned long long frame_size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (frame_size == ZSTD_CONTENTSIZE_ERROR || frame_size != declared) {
    return absl::DataLossError("delta chunk frame does not declare the chunk's size");
  }
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(),
                                                          &ZSTD_freeDCtx);
  FERRY_SEAL_CHECK(dctx != nullptr);
  ZSTD_DCtx_refPrefix(dctx.get(), base.data(), base.size());
  std::string out(declared, '\0');
  size_t n =
      ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != declared) {
    return absl::DataLossError("delta chunk does not decompress against its base");
  }
  return out;
}

absl::Status CheckChunkArgs(std::string_view collection_id, std::string_view id,
                            std::string_view sealed) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  FERRY_RETURN_IF_ERROR(CheckChunkId(id));
  if (sealed.size() > kSealedChunkBytesMax) {
    return absl::InvalidArgumentError(StrCat("sealed chunk of ", sealed.size(),
                                             " bytes, more than ", kSealedChunkBytesMax));
  }
  if (sealed.size() < kChunkPrefixBytes + kTagBytes) {
    return absl::InvalidArgumentError("sealed chunk is too short");
  }
  return absl::OkStatus();
}

// Instructions of a kChunkDeltaBlocks delta may take at most this many bytes for a
// chunk of `declared` bytes (an honest sender needs a few bytes per block more than
// the new bytes).
size_t BlockDeltaBytesMax(size_t declared) { return 2 * declared + 64; }

// Rebuilds a chunk of `declared` bytes from a kChunkDeltaBlocks frame and its base.
absl::StatusOr<std::string> ApplyBlockDelta(std::string_view frame, std::string_view base,
                                            size_t declared) {
  unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
      size > BlockDeltaBytesMax(declared)) {
    return absl::DataLossError("block delta chunk: bad instruction frame");
  }
  FERRY_ASSIGN_OR_RETURN(
      std::string ops,
      DecompressBounded(frame, size, BlockDeltaBytesMax(kChunkBytesMax), "block delta"));
  std::string out;
  out.reserve(declared);
  size_t pos = 0;
  while (pos < ops.size()) {
    uint64_t tag = 0, offset = 0;
    if (!ReadVarint(ops, &pos, &tag)) {
      return absl::DataLossError("block delta chunk: truncated instruction");
    }
    const uint64_t n = tag >> 1;
    if (n > declared - out.size()) {
      return absl::DataLossError("block delta chunk: more bytes than declared");
    }
    if ((tag & 1) != 0) {
      if (!ReadVarint(ops, &pos, &offset) || offset > base.size() ||
          n > base.size() - offset) {
        return absl::DataLossError("block delta chunk: a copy outside its base");
      }
      out.append(base.substr(offset, n));
    } else {
      if (n > ops.size() - pos) {
        return absl::DataLossError("block delta chunk: truncated new bytes");
      }
      out.append(ops, pos, n);
      pos += n;
    }
  }
  if (out.size() != declared) {
    return absl::DataLossError("block delta chunk: fewer bytes than declared");
  }
  return out;
}

absl::StatusOr<std::string> OpenDeltaChunk(const CollectionKey& key,
                                           const ContentHasher& hasher,
                                           std::string_view collection_id,
                                           std::string_view id, std::string_view sealed,
                                           std::optional<std::string_view> base) {
  if (sealed.size() < kChunkDeltaHeaderBytes + kNonceBytes + kTagBytes) {
    return absl::InvalidArgumentError("sealed delta chunk is too short");
  }
  std::string_view header = sealed.substr(0, kChunkDeltaHeaderBytes);
  uint32_t declared = ReadLe32(header.substr(2));
  std::string_view base_id = header.substr(kChunkHeaderBytes, kChunkIdBytes);
  const uint8_t method = static_cast<uint8_t>(header[1]);
  if ((method != kChunkDeltaZstd && method != kChunkDeltaBlocks) ||
      declared > kChunkBytesMax) {
    return absl::InvalidArgumentError("malformed delta chunk header");
  }
  if (!base.has_value()) {
    return absl::FailedPreconditionError("a delta chunk opens only with its base chunk");
  }
  if (!ConstantTimeEquals(hasher.ChunkId(*base), base_id)) {
    return absl::InvalidArgumentError("the base given is not this delta chunk's base");
  }
  FERRY_ASSIGN_OR_RETURN(
      std::string frame,
      AeadOpen(key.key, ChunkAad(collection_id, id, header),
               sealed.substr(kChunkDeltaHeaderBytes, kNonceBytes),
               sealed.substr(kChunkDeltaHeaderBytes + kNonceBytes), "chunk"));
  std::string plaintext;
  if (method == kChunkDeltaZstd) {
    FERRY_ASSIGN_OR_RETURN(plaintext, DecompressAgainst(frame, *base, declared));
  } else {
    FERRY_ASSIGN_OR_RETURN(plaintext, ApplyBlockDelta(frame, *base, declared));
  }
  if (!ConstantTimeEquals(hasher.ChunkId(plaintext), id)) {
    return absl::DataLossError("chunk content does not match its id");
  }
  return plaintext;
}

// Seals `frame`, a delta of `plaintext` against `base_id` made by `method`, unless it
// is no smaller than the chunk sealed alone (NOT_FOUND).
absl::StatusOr<SealedChunk> SealDeltaFrame(const CollectionKey& key,
                                           const ContentHasher& hasher,
                                           std::string_view collection_id,
                                           std::string_view plaintext, uint8_t method,
                                           std::string_view base_id,
                                           const std::string& frame) {
  auto [compression, payload] = MaybeCompress(plaintext);
  if (frame.size() + kChunkIdBytes >= payload.size()) {
    return absl::NotFoundError("a delta would not be smaller");
  }
  SealedChunk chunk;
  chunk.id = hasher.ChunkId(plaintext);
  std::string header;
  header.push_back(static_cast<char>(kChunkDeltaVersion));
  header.push_back(static_cast<char>(method));
  AppendLe32(header, static_cast<uint32_t>(plaintext.size()));
  header.append(base_id);
  chunk.data =
      header + AeadSeal(key.key, ChunkAad(collection_id, chunk.id, header), frame);
  FERRY_SEAL_CHECK(chunk.data.size() <= kSealedChunkBytesMax);
  return chunk;
}

}  // namespace

absl::StatusOr<SealedChunk> SealChunkDelta(const CollectionKey& key,
                                           const ContentHasher& hasher,
                                           std::string_view collection_id,
                                           std::string_view plaintext,
                                           std::string_view base_id,
                                           std::string_view base_plaintext) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  if (plaintext.size() > kChunkBytesMax || base_id.size() != kChunkIdBytes) {
    return absl::InvalidArgumentError("delta chunk: bad size or base id");
  }
  if (plaintext.size() + base_plaintext.size() > kChunkDeltaInputBytesMax) {
    return absl::NotFoundError("chunk and base too large for a delta");
  }
  // A delta against the wrong bytes would be stored for good and open nowhere: the
  // base (from a cache, say) must be the chunk it claims to be.
  if (!ConstantTimeEquals(hasher.ChunkId(base_plaintext), base_id)) {
    return absl::InvalidArgumentError("the base given is not the chunk it names");
  }
  return SealDeltaFrame(key, hasher, collection_id, plaintext, kChunkDeltaZstd, base_id,
                        CompressAgainst(plaintext, base_plaintext));
}

absl::StatusOr<SealedChunk> SealChunkBlockDelta(const CollectionKey& key,
                                                const ContentHasher& hasher,
                                                std::string_view collection_id,
                                                std::string_view plaintext,
                                                std::string_view base_id,
                                                std::string_view base_signatures) {
  FERRY_RETURN_IF_ERROR(CheckCollectionId(collection_id));
  if (plaintext.size() > kChunkBytesMax || base_id.size() != kChunkIdBytes ||
      base_signatures.size() % kSigEntryBytes != 0 ||
      base_signatures.size() / kSigEntryBytes > kChunkBytesMax / kSigBlockBytes) {
    return absl::InvalidArgumentError(
        "block delta chunk: bad size, base id or signatures");
  }
  // Blocks of the base by rolling checksum; a checksum's blocks in order.
  const size_t blocks = base_signatures.size() / kSigEntryBytes;
  std::vector<std::pair<uint32_t, uint32_t>> by_sum;  // (checksum, block)
  by_sum.reserve(blocks);
  for (size_t i = 0; i < blocks; ++i) {
    by_sum.emplace_back(ReadLe32(base_signatures.substr(i * kSigEntryBytes)),
                        static_cast<uint32_t>(i));
  }
  std::sort(by_sum.begin(), by_sum.end());
  auto strong = [&](uint32_t block) {
    return ReadLe64(base_signatures.substr(block * kSigEntryBytes + 4));
  };

  std::string ops;
  size_t literal_from = 0;  // new bytes not yet written out start here
  uint64_t copy_offset = 0, copy_bytes = 0;
  auto flush_copy = [&] {
    if (copy_bytes == 0) return;
    AppendVarint(ops, copy_bytes << 1 | 1);
    AppendVarint(ops, copy_offset);
    copy_bytes = 0;
  };
  auto flush_literal = [&](size_t to) {
    if (to == literal_from) return;
    flush_copy();
    AppendVarint(ops, static_cast<uint64_t>(to - literal_from) << 1);
    ops.append(plaintext.substr(literal_from, to - literal_from));
    literal_from = to;
  };
  size_t at = 0;
  RollingSum sum;
  bool rolled = false;  // `sum` holds the window at `at`
  while (blocks > 0 && at + kSigBlockBytes <= plaintext.size()) {
    if (!rolled) {
      sum.Init(plaintext.substr(at, kSigBlockBytes));
      rolled = true;
    }
    auto range = std::equal_range(
        by_sum.begin(), by_sum.end(), std::make_pair(sum.Value(), uint32_t{0}),
        [](const auto& x, const auto& y) { return x.first < y.first; });
    std::optional<uint32_t> match;
    if (range.first != range.second) {
      const uint64_t hash = hasher.BlockHash(plaintext.substr(at, kSigBlockBytes));
      // The block right after the last copy first, so that copies run on.
      const uint64_t next =
          copy_bytes > 0 ? (copy_offset + copy_bytes) / kSigBlockBytes : blocks;
      for (auto it = range.first; it != range.second; ++it) {
        if (strong(it->second) != hash) continue;
        if (!match.has_value() || it->second == next) match = it->second;
      }
    }
    if (match.has_value()) {
      flush_literal(at);
      const uint64_t offset = uint64_t{*match} * kSigBlockBytes;
      if (copy_bytes > 0 && copy_offset + copy_bytes == offset) {
        copy_bytes += kSigBlockBytes;
      } else {
        flush_copy();
        copy_offset = offset;
        copy_bytes = kSigBlockBytes;
      }
      at += kSigBlockBytes;
      literal_from = at;
      rolled = false;
      continue;
    }
    if (at + kSigBlockBytes < plaintext.size()) {
      sum.Roll(static_cast<unsigned char>(plaintext[at]),
               static_cast<unsigned char>(plaintext[at + kSigBlockBytes]));
    }
    ++at;
  }
  flush_literal(plaintext.size());
  flush_copy();

  return SealDeltaFrame(key, hasher, collection_id, plaintext, kChunkDeltaBlocks, base_id,
                        Compress(ops));
}

std::optional<std::string> ChunkDeltaBase(std::string_view sealed) {
  if (sealed.size() < kChunkDeltaHeaderBytes ||
      static_cast<uint8_t>(sealed[0]) != kChunkDeltaVersion) {
    return std::nullopt;
  }
  return std::string(sealed.substr(kChunkHeaderBytes, kChunkIdBytes));
}

absl::StatusOr<std::string> OpenChunk(const CollectionKey& key,
                                      const ContentHasher& hasher,
                                      std::string_view collection_id, std::string_view id,
                                      std::string_view sealed,
                                      std::optional<std::string_view> base_plaintext) {
  FERRY_RETURN_IF_ERROR(CheckChunkArgs(collection_id, id, sealed));
  if (static_cast<uint8_t>(sealed[0]) == kChunkDeltaVersion) {
    return OpenDeltaChunk(key, hasher, collection_id, id, sealed, base_plaintext);
  }
  std::string_view header = sealed.substr(0, kChunkHeaderBytes);
  uint8_t version = static_cast<uint8_t>(header[0]);
  uint8_t compression = static_cast<uint8_t>(header[1]);
  uint32_t declared = ReadLe32(header.substr(2));
  if (version != kChunkVersion) {
    return absl::InvalidArgumentError(StrCat("unknown chunk version ", version));
  }
  if (!KnownCompression(compression)) {
    return absl::InvalidArgumentError(StrCat("unknown chunk compression ", compression));
  }
  if (declared > kChunkBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("chunk declares ", declared, " bytes, more than ", kChunkBytesMax));
  }
  FERRY_ASSIGN_OR_RETURN(std::string payload,
                         AeadOpen(key.key, ChunkAad(collection_id, id, header),
                                  sealed.substr(kChunkHeaderBytes, kNonceBytes),
                                  sealed.substr(kChunkPrefixBytes), "chunk"));
  FERRY_ASSIGN_OR_RETURN(
      std::string plaintext,
      DecodePayload(compression, std::move(payload), declared, kChunkBytesMax, "chunk"));
  if (!ConstantTimeEquals(hasher.ChunkId(plaintext), id)) {
    return absl::DataLossError("chunk content does not match its id");
  }
  return plaintext;
}

}  // namespace ferry::seal
