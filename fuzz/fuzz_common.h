// Shared by the fuzz targets and the seed writer: a fixed key and collection, and
// helpers that seal fuzz input with that key, so that targets also reach the code
// behind authentication (decompression, parsing, the checks after opening).
#ifndef FERRY_FUZZ_FUZZ_COMMON_H_
#define FERRY_FUZZ_FUZZ_COMMON_H_

#include <sodium.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/ferry/v1/change.pb.h"
#include "src/seal/seal.h"

namespace ferry::fuzz {

inline constexpr std::string_view kCollectionId = "fuzz-collection";
inline constexpr std::string_view kTxId = "0123456789abcdef";
inline constexpr std::string_view kDeviceId = "fuzz-device";
inline constexpr uint64_t kBaseSeq = 7;

inline const seal::CollectionKey& Key() {
  static const seal::CollectionKey* key =
      new seal::CollectionKey{seal::SecretKey(std::string(seal::kKeyBytes, '\x42')), 1};
  return *key;
}

inline const seal::ContentHasher& Hasher() {
  static const seal::ContentHasher* hasher = new seal::ContentHasher(Key());
  return *hasher;
}

inline const uint8_t* U8(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

// nonce || AEAD(payload) with a fixed zero nonce: fine for fuzzing, never elsewhere.
inline std::string FixedNonceSeal(std::string_view aad, std::string_view payload) {
  std::string out(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, '\0');
  std::string ct(payload.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      reinterpret_cast<uint8_t*>(ct.data()), nullptr, U8(payload), payload.size(),
      U8(aad), aad.size(), nullptr, U8(out), Key().key.data());
  return out + ct;
}

// Input: 3 bytes little-endian declared size, 1 byte whose low bit selects zstd, then
// the payload. Returns an authentic envelope for kCollectionId, or "" when too short.
inline std::string SealFuzzPayload(std::string_view input) {
  if (input.size() < 4) return "";
  uint32_t declared = static_cast<uint8_t>(input[0]) |
                      static_cast<uint8_t>(input[1]) << 8 |
                      static_cast<uint32_t>(static_cast<uint8_t>(input[2])) << 16;
  v1::EnvelopeHeader h;
  h.set_format(seal::kEnvelopeFormat);
  h.set_aead(seal::kAeadXChaCha20Poly1305);
  h.set_compression(input[3] & 1 ? seal::kCompressionZstd : seal::kCompressionNone);
  h.set_plaintext_bytes(declared);
  h.set_key_epoch(Key().epoch);
  h.set_collection_id(std::string(kCollectionId));
  h.set_tx_id(std::string(kTxId));
  h.set_device_id(std::string(kDeviceId));
  h.set_base_seq(kBaseSeq);
  v1::Envelope env;
  env.set_header(h.SerializeAsString());
  std::string sealed = FixedNonceSeal(env.header(), input.substr(4));
  env.set_nonce(sealed.substr(0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES));
  env.set_ciphertext(sealed.substr(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES));
  return env.SerializeAsString();
}

// Input: the 6 header bytes of a sealed chunk, then the payload. Returns an authentic
// sealed chunk for `id` in kCollectionId (see the format in seal.cc), or "".
// A chunk's associated data (seal.cc): domain, collection id, NUL, chunk id, header.
inline std::string FuzzChunkAad(std::string_view id, std::string_view header) {
  std::string aad = "ferry-chunk-v1";
  aad.append(kCollectionId);
  aad.push_back('\0');
  aad.append(id);
  aad.append(header);
  return aad;
}

// The base that delta chunks are opened against: 8 KiB of fixed bytes.
inline const std::string& FuzzBase() {
  static const std::string* base = [] {
    auto* b = new std::string(8192, '\0');
    uint32_t x = 1;
    for (char& c : *b) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 24);
    }
    return b;
  }();
  return *base;
}

// A delta chunk made authentic: `input` is its 6 header bytes (version 2) and its
// frame; the header gets FuzzBase()'s id, so opening reaches the frame's decoding.
inline std::string SealFuzzDeltaChunk(std::string_view id, std::string_view input) {
  if (input.size() < 6 || input[0] != 2) return "";
  std::string header(input.substr(0, 6));
  header.append(Hasher().ChunkId(FuzzBase()));
  return header + FixedNonceSeal(FuzzChunkAad(id, header), input.substr(6));
}

inline std::string SealFuzzChunk(std::string_view id, std::string_view input) {
  if (input.size() < 6) return "";
  std::string_view header = input.substr(0, 6);
  return std::string(header) + FixedNonceSeal(FuzzChunkAad(id, header), input.substr(6));
}

}  // namespace ferry::fuzz

#endif  // FERRY_FUZZ_FUZZ_COMMON_H_
