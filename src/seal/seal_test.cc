#include "src/seal/seal.h"

#include <sodium.h>
#include <zstd.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "src/core/limits.h"
#include "src/core/strings.h"

namespace ferry::seal {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr uint8_t kFlips[] = {0x01, 0x80, 0xff};

std::string Repeat(char c, size_t n) { return std::string(n, c); }

v1::Transaction MakeTransaction() {
  v1::Transaction tx;
  tx.set_tx_id(RandomBytes(kTxIdBytes));
  tx.set_device_id("device-1");
  tx.set_base_seq(42);
  tx.set_hlc_time(uint64_t{1700000000000} << 16 | 7);
  v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
  item->set_id("notes/a.txt");
  v1::Field* title = item->add_fields();
  title->set_name("title");
  title->set_bytes("hello");
  v1::Field* body = item->add_fields();
  body->set_name("body");
  v1::ContentRef* content = body->mutable_content();
  v1::ChunkRef* ref = content->add_chunks();
  ref->set_id(Repeat('\x11', kChunkIdBytes));
  ref->set_size(100);
  content->set_size(100);
  content->set_digest(Repeat('\x22', 32));
  v1::PatchOp* patch = tx.add_ops()->mutable_patch();
  patch->set_id("notes/b.txt");
  v1::Field* set = patch->add_set();
  set->set_name("mtime");
  set->set_bytes("12345");
  patch->add_unset("old");
  v1::ContentPatch* splice = patch->add_splice();
  splice->set_field("body");
  v1::Splice* s = splice->add_splices();
  s->set_index(1);
  s->set_remove(2);
  s->add_insert()->set_id(Repeat('\x33', kChunkIdBytes));
  tx.add_ops()->mutable_delete_()->set_id("notes/c.txt");
  v1::MoveOp* move = tx.add_ops()->mutable_move();
  move->set_from_id("notes/d.txt");
  move->set_to_id("notes/e.txt");
  return tx;
}

std::vector<std::string> ChunkIdsOf() {
  return {Repeat('\x11', kChunkIdBytes), Repeat('\x33', kChunkIdBytes)};
}

v1::EnvelopeHeader HeaderFor(const v1::Transaction& tx, std::string_view collection_id,
                             uint32_t epoch, uint32_t compression,
                             uint64_t plaintext_bytes) {
  v1::EnvelopeHeader h;
  h.set_format(kEnvelopeFormat);
  h.set_aead(kAeadXChaCha20Poly1305);
  h.set_compression(compression);
  h.set_plaintext_bytes(plaintext_bytes);
  h.set_key_epoch(epoch);
  h.set_collection_id(std::string(collection_id));
  h.set_tx_id(tx.tx_id());
  h.set_device_id(tx.device_id());
  h.set_base_seq(tx.base_seq());
  for (const std::string& id : ReferencedChunkIds(tx)) h.add_chunk_ids(id);
  return h;
}

// Seals `payload` as a key holder could, with whatever header it likes.
std::string HandSeal(const SecretKey& key, const v1::EnvelopeHeader& header,
                     std::string_view payload) {
  v1::Envelope env;
  env.set_header(header.SerializeAsString());
  std::string nonce = RandomBytes(kNonceBytes);
  std::string ct(payload.size() + kTagBytes, '\0');
  unsigned long long ct_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      reinterpret_cast<uint8_t*>(ct.data()), &ct_len,
      reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
      reinterpret_cast<const uint8_t*>(env.header().data()), env.header().size(), nullptr,
      reinterpret_cast<const uint8_t*>(nonce.data()), key.data());
  env.set_nonce(nonce);
  env.set_ciphertext(ct);
  return env.SerializeAsString();
}

// `zero_bytes` zeros as one zstd frame, built in 1 MiB steps; the frame records its
// content size only when `pledge` is set.
std::string ZstdOfZeros(size_t zero_bytes, bool pledge) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  if (pledge) ZSTD_CCtx_setPledgedSrcSize(cctx, zero_bytes);
  const std::string block(1 << 20, '\0');
  std::string out;
  std::string buf(ZSTD_CStreamOutSize(), '\0');
  size_t left = zero_bytes;
  while (true) {
    size_t n = std::min(left, block.size());
    left -= n;
    ZSTD_inBuffer in{block.data(), n, 0};
    ZSTD_EndDirective mode = left == 0 ? ZSTD_e_end : ZSTD_e_continue;
    size_t remaining = 0;
    do {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      remaining = ZSTD_compressStream2(cctx, &o, &in, mode);
      EXPECT_FALSE(ZSTD_isError(remaining));
      out.append(buf.data(), o.pos);
    } while (mode == ZSTD_e_end ? remaining != 0 : in.pos < in.size);
    if (left == 0) break;
  }
  ZSTD_freeCCtx(cctx);
  return out;
}

std::string Serialize(const v1::Envelope& env) { return env.SerializeAsString(); }

class SealTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Init(); }

  CollectionKey key_{SecretKey::Random(), 3};
  std::string cid_ = RandomId();
  ContentHasher hasher_{key_};

  std::string SealOrDie(const v1::Transaction& tx) {
    absl::StatusOr<std::string> sealed = SealTransaction(key_, cid_, tx, ChunkIdsOf());
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : std::string();
  }

  // `delta` is `edited` sealed against `base`: it names the base, opens only with it,
  // and (when `tamper`) every single-byte change of it is caught.
  void ExpectDeltaOf(const SealedChunk& delta, const std::string& base,
                     const std::string& edited, bool tamper) {
    EXPECT_EQ(delta.id, hasher_.ChunkId(edited));
    EXPECT_EQ(ChunkDeltaBase(delta.data), hasher_.ChunkId(base));
    absl::StatusOr<std::string> opened =
        OpenChunk(key_, hasher_, cid_, delta.id, delta.data, base);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, edited);
    EXPECT_EQ(OpenChunk(key_, hasher_, cid_, delta.id, delta.data).status().code(),
              absl::StatusCode::kFailedPrecondition);
    // Bytes that are not its base are refused (they do not hash to the base's id).
    EXPECT_FALSE(OpenChunk(key_, hasher_, cid_, delta.id, delta.data, edited).ok());
    if (!tamper) return;
    // The base id in the header included.
    for (size_t i = 0; i < delta.data.size(); ++i) {
      std::string tampered = delta.data;
      tampered[i] ^= 0x01;
      EXPECT_FALSE(OpenChunk(key_, hasher_, cid_, delta.id, tampered, base).ok()) << i;
    }
  }
};

// ---- Transactions ----

TEST_F(SealTest, TransactionRoundTrip) {
  v1::Transaction tx = MakeTransaction();
  std::string sealed = SealOrDie(tx);
  absl::StatusOr<v1::Transaction> opened = OpenTransaction(key_, cid_, sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*opened, tx));
}

TEST_F(SealTest, HeaderCopiesTransaction) {
  v1::Transaction tx = MakeTransaction();
  v1::Envelope env;
  absl::StatusOr<v1::EnvelopeHeader> h = DecodeEnvelope(SealOrDie(tx), &env);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->format(), kEnvelopeFormat);
  EXPECT_EQ(h->aead(), kAeadXChaCha20Poly1305);
  EXPECT_EQ(h->collection_id(), cid_);
  EXPECT_EQ(h->key_epoch(), 3u);
  EXPECT_EQ(h->tx_id(), tx.tx_id());
  EXPECT_EQ(h->device_id(), tx.device_id());
  EXPECT_EQ(h->base_seq(), tx.base_seq());
  EXPECT_EQ(h->plaintext_bytes(), tx.ByteSizeLong());
  ASSERT_EQ(h->chunk_ids_size(), 2);
  EXPECT_EQ(h->chunk_ids(1), Repeat('\x33', kChunkIdBytes));
  EXPECT_EQ(env.nonce().size(), kNonceBytes);
  // The payload is not in the clear.
  EXPECT_EQ(env.ciphertext().find("notes/"), std::string::npos);
}

TEST_F(SealTest, CompressibleAndIncompressibleTransactions) {
  v1::Transaction big = MakeTransaction();
  big.mutable_ops(0)->mutable_put()->mutable_item()->mutable_fields(0)->set_bytes(
      Repeat('a', 100000));
  v1::Transaction noise = MakeTransaction();
  noise.clear_ops();
  noise.add_ops()->mutable_put()->mutable_item()->add_fields()->set_bytes(
      RandomBytes(5000));
  for (const auto& [tx, compression] :
       {std::pair{big, kCompressionZstd}, std::pair{noise, kCompressionNone}}) {
    std::string sealed = SealOrDie(tx);
    absl::StatusOr<v1::EnvelopeHeader> h = DecodeEnvelope(sealed, nullptr);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->compression(), compression);
    absl::StatusOr<v1::Transaction> opened = OpenTransaction(key_, cid_, sealed);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_TRUE(MessageDifferencer::Equals(*opened, tx));
  }
  EXPECT_LT(SealOrDie(big).size(), 10000u);
}

TEST_F(SealTest, EveryFieldByteTamperRejected) {
  v1::Envelope original;
  ASSERT_TRUE(original.ParseFromString(SealOrDie(MakeTransaction())));
  using Field = std::function<std::string*(v1::Envelope&)>;
  const std::vector<std::pair<const char*, Field>> fields = {
      {"header", [](v1::Envelope& e) { return e.mutable_header(); }},
      {"nonce", [](v1::Envelope& e) { return e.mutable_nonce(); }},
      {"ciphertext", [](v1::Envelope& e) { return e.mutable_ciphertext(); }},
  };
  int tampers = 0;
  for (const auto& [name, field] : fields) {
    size_t size = field(original)->size();
    for (size_t i = 0; i < size; ++i) {
      for (uint8_t flip : kFlips) {
        v1::Envelope env = original;
        (*field(env))[i] ^= static_cast<char>(flip);
        absl::StatusOr<v1::Transaction> opened =
            OpenTransaction(key_, cid_, Serialize(env));
        EXPECT_FALSE(opened.ok()) << name << " byte " << i << " ^ " << int{flip};
        ++tampers;
      }
    }
  }
  EXPECT_GT(tampers, 500);
}

TEST_F(SealTest, EverySerializedByteTamperRejectedOrHarmless) {
  v1::Transaction tx = MakeTransaction();
  std::string sealed = SealOrDie(tx);
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (uint8_t flip : kFlips) {
      std::string bad = sealed;
      bad[i] ^= static_cast<char>(flip);
      absl::StatusOr<v1::Transaction> opened = OpenTransaction(key_, cid_, bad);
      if (opened.ok()) {
        EXPECT_TRUE(MessageDifferencer::Equals(*opened, tx)) << "byte " << i;
      }
    }
  }
}

TEST_F(SealTest, EveryTruncationRejected) {
  std::string sealed = SealOrDie(MakeTransaction());
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_FALSE(OpenTransaction(key_, cid_, sealed.substr(0, n)).ok()) << n;
  }
}

TEST_F(SealTest, WrongKeyRejected) {
  std::string sealed = SealOrDie(MakeTransaction());
  CollectionKey other{SecretKey::Random(), key_.epoch};
  absl::StatusOr<v1::Transaction> opened = OpenTransaction(other, cid_, sealed);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("failed authentication"));
}

TEST_F(SealTest, WrongEpochRejected) {
  std::string sealed = SealOrDie(MakeTransaction());
  CollectionKey next{key_.key, key_.epoch + 1};
  EXPECT_EQ(OpenTransaction(next, cid_, sealed).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SealTest, EnvelopeMovedToAnotherCollectionRejected) {
  std::string sealed = SealOrDie(MakeTransaction());
  std::string other = RandomId();
  absl::StatusOr<v1::Transaction> opened = OpenTransaction(key_, other, sealed);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(opened.status().message(), HasSubstr("another collection"));

  // Rewriting the header to name the other collection breaks authentication.
  v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(sealed));
  v1::EnvelopeHeader h;
  ASSERT_TRUE(h.ParseFromString(env.header()));
  h.set_collection_id(other);
  env.set_header(h.SerializeAsString());
  EXPECT_EQ(OpenTransaction(key_, other, Serialize(env)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SealTest, RewrittenPlaintextBytesRejected) {
  std::string sealed = SealOrDie(MakeTransaction());
  v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(sealed));
  v1::EnvelopeHeader h;
  ASSERT_TRUE(h.ParseFromString(env.header()));
  for (int64_t delta : {-1, 1, -100, 1000}) {
    v1::EnvelopeHeader changed = h;
    changed.set_plaintext_bytes(h.plaintext_bytes() + delta);
    v1::Envelope bad = env;
    bad.set_header(changed.SerializeAsString());
    EXPECT_EQ(OpenTransaction(key_, cid_, Serialize(bad)).status().code(),
              absl::StatusCode::kDataLoss)
        << delta;
  }
}

TEST_F(SealTest, KeyHolderWithWrongPlaintextBytesRejected) {
  v1::Transaction tx = MakeTransaction();
  std::string plain = tx.SerializeAsString();
  std::string zstd(ZSTD_compressBound(plain.size()), '\0');
  zstd.resize(ZSTD_compress(zstd.data(), zstd.size(), plain.data(), plain.size(), 3));
  for (int64_t delta : {-1, 1}) {
    uint64_t declared = plain.size() + delta;
    for (const auto& [compression, payload] :
         {std::pair{kCompressionNone, plain}, std::pair{kCompressionZstd, zstd}}) {
      std::string sealed = HandSeal(
          key_.key, HeaderFor(tx, cid_, key_.epoch, compression, declared), payload);
      absl::StatusOr<v1::Transaction> opened = OpenTransaction(key_, cid_, sealed);
      EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
    }
  }
  // The honest hand-built envelope opens: the helper matches the format.
  std::string sealed = HandSeal(
      key_.key, HeaderFor(tx, cid_, key_.epoch, kCompressionZstd, plain.size()), zstd);
  EXPECT_TRUE(OpenTransaction(key_, cid_, sealed).ok());
}

TEST_F(SealTest, ZstdBombRejected) {
  v1::Transaction tx = MakeTransaction();
  constexpr size_t kBomb = 100u << 20;
  constexpr size_t kDeclared = 1024;
  for (bool pledge : {true, false}) {
    std::string frame = ZstdOfZeros(kBomb, pledge);
    ASSERT_LT(frame.size(), kEnvelopeBytesMax);
    std::string sealed = HandSeal(
        key_.key, HeaderFor(tx, cid_, key_.epoch, kCompressionZstd, kDeclared), frame);
    absl::StatusOr<v1::Transaction> opened = OpenTransaction(key_, cid_, sealed);
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(
        opened.status().message(),
        HasSubstr(pledge ? "zstd frame declares 104857600 bytes" : "decompression"))
        << opened.status();
  }
}

TEST_F(SealTest, GarbagePayloadFromKeyHolderRejected) {
  v1::Transaction tx = MakeTransaction();
  std::string garbage = "\xff\xff\xff\xff\xff";
  std::string sealed = HandSeal(
      key_.key, HeaderFor(tx, cid_, key_.epoch, kCompressionNone, garbage.size()),
      garbage);
  EXPECT_EQ(OpenTransaction(key_, cid_, sealed).status().code(),
            absl::StatusCode::kDataLoss);
  std::string not_zstd = "plain text, not a zstd frame";
  sealed =
      HandSeal(key_.key, HeaderFor(tx, cid_, key_.epoch, kCompressionZstd, 10), not_zstd);
  EXPECT_EQ(OpenTransaction(key_, cid_, sealed).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SealTest, TransactionDisagreeingWithHeaderRejected) {
  v1::Transaction tx = MakeTransaction();
  std::string plain = tx.SerializeAsString();
  std::vector<std::function<void(v1::EnvelopeHeader&)>> edits = {
      [](v1::EnvelopeHeader& h) { h.set_tx_id(RandomBytes(kTxIdBytes)); },
      [](v1::EnvelopeHeader& h) { h.set_device_id("someone-else"); },
      [](v1::EnvelopeHeader& h) { h.set_base_seq(h.base_seq() + 1); },
  };
  for (const auto& edit : edits) {
    v1::EnvelopeHeader h =
        HeaderFor(tx, cid_, key_.epoch, kCompressionNone, plain.size());
    edit(h);
    absl::StatusOr<v1::Transaction> opened =
        OpenTransaction(key_, cid_, HandSeal(key_.key, h, plain));
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
  }
}

TEST_F(SealTest, HeaderListsEveryReferencedChunk) {
  v1::Transaction tx;
  tx.set_tx_id(RandomBytes(kTxIdBytes));
  tx.set_device_id("device");
  std::string a(kChunkIdBytes, 'a'), b(kChunkIdBytes, 'b'), c(kChunkIdBytes, 'c');
  v1::Field* content = tx.add_ops()->mutable_put()->mutable_item()->add_fields();
  content->set_name("content");
  for (const std::string* id : {&a, &b, &a}) {
    content->mutable_content()->add_chunks()->set_id(*id);
  }
  v1::Splice* splice = tx.add_ops()->mutable_patch()->add_splice()->add_splices();
  splice->add_insert()->set_id(c);
  EXPECT_EQ(ReferencedChunkIds(tx), (std::vector<std::string>{a, b, a, c}));

  absl::StatusOr<std::string> sealed = SealTransaction(key_, cid_, tx, {b});
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  absl::StatusOr<v1::EnvelopeHeader> header = DecodeEnvelope(*sealed, nullptr);
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(
      std::vector<std::string>(header->chunk_ids().begin(), header->chunk_ids().end()),
      (std::vector<std::string>{b, a, c}));
  EXPECT_TRUE(OpenTransaction(key_, cid_, *sealed).ok());

  // A key holder that leaves a referenced chunk out of the header is caught on open.
  std::string plain = tx.SerializeAsString();
  v1::EnvelopeHeader partial =
      HeaderFor(tx, cid_, key_.epoch, kCompressionNone, plain.size());
  partial.clear_chunk_ids();
  partial.add_chunk_ids(a);
  partial.add_chunk_ids(b);
  absl::StatusOr<v1::Transaction> opened =
      OpenTransaction(key_, cid_, HandSeal(key_.key, partial, plain));
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
}

TEST_F(SealTest, TooManyOpsRejected) {
  v1::Transaction tx = MakeTransaction();
  tx.clear_ops();
  for (size_t i = 0; i < kTransactionOpsMax; ++i)
    tx.add_ops()->mutable_delete_()->set_id("x");
  std::string sealed = SealOrDie(tx);
  EXPECT_TRUE(OpenTransaction(key_, cid_, sealed).ok());

  tx.add_ops()->mutable_delete_()->set_id("x");
  absl::StatusOr<std::string> too_many = SealTransaction(key_, cid_, tx, {});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);

  // A key holder who seals it anyway is refused at open.
  std::string plain = tx.SerializeAsString();
  sealed = HandSeal(
      key_.key, HeaderFor(tx, cid_, key_.epoch, kCompressionNone, plain.size()), plain);
  EXPECT_EQ(OpenTransaction(key_, cid_, sealed).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SealTest, SealRejectsBadInputs) {
  v1::Transaction tx = MakeTransaction();
  EXPECT_EQ(SealTransaction(key_, "", tx, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Transaction short_id = tx;
  short_id.set_tx_id("short");
  EXPECT_EQ(SealTransaction(key_, cid_, short_id, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SealTransaction(key_, cid_, tx, {"not 32 bytes"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<std::string> too_many(kEnvelopeChunkIdsMax + 1, Repeat('c', kChunkIdBytes));
  EXPECT_EQ(SealTransaction(key_, cid_, tx, too_many).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<std::string> most(kEnvelopeChunkIdsMax, Repeat('c', kChunkIdBytes));
  EXPECT_TRUE(SealTransaction(key_, cid_, tx, most).ok());
}

TEST_F(SealTest, OversizedTransactionsRejectedAtSeal) {
  v1::Transaction tx = MakeTransaction();
  // Incompressible and larger than an envelope.
  tx.mutable_ops(0)->mutable_put()->mutable_item()->mutable_fields(0)->set_bytes(
      RandomBytes(kEnvelopeBytesMax + 1));
  absl::StatusOr<std::string> sealed = SealTransaction(key_, cid_, tx, {});
  EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument);
  // Compressible, but more plaintext than any envelope may declare.
  tx.mutable_ops(0)->mutable_put()->mutable_item()->mutable_fields(0)->set_bytes(
      Repeat('z', kTransactionBytesMax + 1));
  sealed = SealTransaction(key_, cid_, tx, {});
  EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SealTest, OversizedEnvelopeRejectedByDecode) {
  std::string sealed = SealOrDie(MakeTransaction());
  sealed.append(kEnvelopeBytesMax + 1 - sealed.size(), '\0');
  absl::StatusOr<v1::EnvelopeHeader> h = DecodeEnvelope(sealed, nullptr);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("more than"));
}

TEST_F(SealTest, DecodeRejectsMalformedEnvelopes) {
  v1::Envelope good;
  ASSERT_TRUE(good.ParseFromString(SealOrDie(MakeTransaction())));
  v1::EnvelopeHeader good_header;
  ASSERT_TRUE(good_header.ParseFromString(good.header()));
  using Edit = std::function<void(v1::Envelope&, v1::EnvelopeHeader&)>;
  const std::vector<std::pair<const char*, Edit>> edits = {
      {"format", [](auto&, auto& h) { h.set_format(2); }},
      {"aead", [](auto&, auto& h) { h.set_aead(0); }},
      {"compression", [](auto&, auto& h) { h.set_compression(2); }},
      {"plaintext_bytes",
       [](auto&, auto& h) { h.set_plaintext_bytes(kTransactionBytesMax + 1); }},
      {"chunk id", [](auto&, auto& h) { h.add_chunk_ids("short"); }},
      {"tx_id", [](auto&, auto& h) { h.set_tx_id(RandomBytes(kTxIdBytes + 1)); }},
      {"collection", [](auto&, auto& h) { h.clear_collection_id(); }},
      {"nonce", [](auto& e, auto&) { e.mutable_nonce()->pop_back(); }},
      {"ciphertext",
       [](auto& e, auto&) { e.set_ciphertext(Repeat('c', kTagBytes - 1)); }},
      {"header bytes", [](auto& e, auto&) { e.set_header("\xff\xff\xff"); }},
  };
  for (const auto& [name, edit] : edits) {
    v1::Envelope env = good;
    v1::EnvelopeHeader h = good_header;
    env.set_header("");
    edit(env, h);
    if (env.header().empty()) env.set_header(h.SerializeAsString());
    absl::StatusOr<v1::EnvelopeHeader> decoded = DecodeEnvelope(Serialize(env), nullptr);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_EQ(DecodeEnvelope("\xff\xff\xff\xff", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEnvelope("", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Chunks ----

TEST_F(SealTest, ChunkRoundTrips) {
  const std::vector<std::pair<std::string, uint8_t>> cases = {
      {Repeat('x', 100000), kCompressionZstd},
      {RandomBytes(100000), kCompressionNone},
      {"", kCompressionNone},
      {RandomBytes(kChunkBytesMax), kCompressionNone},
  };
  for (const auto& [plain, compression] : cases) {
    absl::StatusOr<SealedChunk> chunk = SealChunk(key_, hasher_, cid_, plain);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    EXPECT_EQ(chunk->id, hasher_.ChunkId(plain));
    EXPECT_EQ(static_cast<uint8_t>(chunk->data[1]), compression);
    EXPECT_LE(chunk->data.size(), kSealedChunkBytesMax);
    absl::StatusOr<std::string> opened =
        OpenChunk(key_, hasher_, cid_, chunk->id, chunk->data);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plain);
  }
  absl::StatusOr<SealedChunk> small = SealChunk(key_, hasher_, cid_, Repeat('x', 100000));
  ASSERT_TRUE(small.ok());
  EXPECT_LT(small->data.size(), 1000u);
}

TEST_F(SealTest, ChunkSealedWithItsIdGivenOpensUnderThatIdOnly) {
  const std::string plain = Repeat('z', 50000) + RandomBytes(1000);
  const std::string id = hasher_.ChunkId(plain);
  absl::StatusOr<SealedChunk> chunk = SealChunkWithId(key_, cid_, id, plain);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_EQ(chunk->id, id);
  absl::StatusOr<std::string> opened = OpenChunk(key_, hasher_, cid_, id, chunk->data);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, plain);
  // An id that is not the content's seals, but the chunk then opens nowhere.
  const std::string other = hasher_.ChunkId("other");
  absl::StatusOr<SealedChunk> wrong = SealChunkWithId(key_, cid_, other, plain);
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  EXPECT_EQ(OpenChunk(key_, hasher_, cid_, other, wrong->data).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(SealChunkWithId(key_, cid_, "short", plain).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SealTest, OversizedChunkRejectedAtSeal) {
  EXPECT_EQ(
      SealChunk(key_, hasher_, cid_, Repeat('x', kChunkBytesMax + 1)).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SealTest, EveryChunkByteTamperRejected) {
  for (const std::string& plain : {Repeat('y', 3000), RandomBytes(300)}) {
    absl::StatusOr<SealedChunk> chunk = SealChunk(key_, hasher_, cid_, plain);
    ASSERT_TRUE(chunk.ok());
    for (size_t i = 0; i < chunk->data.size(); ++i) {
      for (uint8_t flip : kFlips) {
        std::string bad = chunk->data;
        bad[i] ^= static_cast<char>(flip);
        EXPECT_FALSE(OpenChunk(key_, hasher_, cid_, chunk->id, bad).ok()) << i;
      }
    }
    for (size_t i = 0; i < chunk->id.size(); ++i) {
      std::string bad_id = chunk->id;
      bad_id[i] ^= 1;
      EXPECT_FALSE(OpenChunk(key_, hasher_, cid_, bad_id, chunk->data).ok()) << i;
    }
    for (size_t n = 0; n < chunk->data.size(); ++n) {
      EXPECT_FALSE(
          OpenChunk(key_, hasher_, cid_, chunk->id, chunk->data.substr(0, n)).ok());
    }
  }
}

TEST_F(SealTest, ChunkWrongKeyOrCollectionRejected) {
  absl::StatusOr<SealedChunk> chunk = SealChunk(key_, hasher_, cid_, "some content");
  ASSERT_TRUE(chunk.ok());
  CollectionKey other{SecretKey::Random(), key_.epoch};
  ContentHasher other_hasher(other);
  EXPECT_EQ(OpenChunk(other, other_hasher, cid_, chunk->id, chunk->data).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenChunk(key_, hasher_, RandomId(), chunk->id, chunk->data).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenChunk(key_, hasher_, cid_, "short", chunk->data).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string huge = chunk->data + Repeat('\0', kSealedChunkBytesMax);
  EXPECT_EQ(OpenChunk(key_, hasher_, cid_, chunk->id, huge).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Builds a chunk in the documented format with libsodium directly.
std::string HandSealChunk(const CollectionKey& key, std::string_view cid,
                          std::string_view id, uint8_t compression, uint32_t declared,
                          std::string_view payload) {
  std::string header = {1, static_cast<char>(compression)};
  for (int i = 0; i < 4; ++i) header.push_back(static_cast<char>(declared >> (8 * i)));
  std::string aad = "ferry-chunk-v1";
  aad.append(cid);
  aad.push_back('\0');
  aad.append(id);
  aad.append(header);
  std::string nonce = RandomBytes(kNonceBytes);
  std::string ct(payload.size() + kTagBytes, '\0');
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      reinterpret_cast<uint8_t*>(ct.data()), nullptr,
      reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
      reinterpret_cast<const uint8_t*>(aad.data()), aad.size(), nullptr,
      reinterpret_cast<const uint8_t*>(nonce.data()), key.key.data());
  return header + nonce + ct;
}

TEST_F(SealTest, ChunkFromKeyHolderChecked) {
  std::string id = hasher_.ChunkId("expected");
  // The documented format opens.
  std::string good = HandSealChunk(key_, cid_, id, kCompressionNone, 8, "expected");
  EXPECT_TRUE(OpenChunk(key_, hasher_, cid_, id, good).ok());
  // Content that does not hash to its id.
  std::string wrong = HandSealChunk(key_, cid_, id, kCompressionNone, 8, "unexpect");
  absl::StatusOr<std::string> opened = OpenChunk(key_, hasher_, cid_, id, wrong);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("does not match its id"));
  // A zstd bomb.
  std::string bomb = HandSealChunk(key_, cid_, id, kCompressionZstd, 1024,
                                   ZstdOfZeros(16u << 20, false));
  opened = OpenChunk(key_, hasher_, cid_, id, bomb);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
  // A declared size beyond the limit.
  std::string huge = HandSealChunk(key_, cid_, id, kCompressionZstd, kChunkBytesMax + 1,
                                   ZstdOfZeros(1024, true));
  EXPECT_EQ(OpenChunk(key_, hasher_, cid_, id, huge).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Metadata and wrapped keys ----

TEST_F(SealTest, MetadataRoundTripAndBinding) {
  SecretKey master = SecretKey::Random();
  for (std::string plain : {std::string("{\"name\":\"notes\"}"), std::string()}) {
    absl::StatusOr<std::string> sealed = SealMetadata(master, cid_, plain);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    absl::StatusOr<std::string> opened = OpenMetadata(master, cid_, *sealed);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plain);
    EXPECT_FALSE(OpenMetadata(master, RandomId(), *sealed).ok());
    EXPECT_FALSE(OpenMetadata(SecretKey::Random(), cid_, *sealed).ok());
    for (size_t i = 0; i < sealed->size(); ++i) {
      std::string bad = *sealed;
      bad[i] ^= 0x01;
      EXPECT_FALSE(OpenMetadata(master, cid_, bad).ok()) << i;
    }
  }
  EXPECT_EQ(SealMetadata(master, cid_, Repeat('m', kCollectionMetadataBytesMax))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenMetadata(master, cid_, Repeat('m', kCollectionMetadataBytesMax + 1))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(OpenMetadata(master, cid_, "short").ok());
}

TEST_F(SealTest, KeyWrapRoundTripAndBinding) {
  SecretKey master = SecretKey::Random();
  absl::StatusOr<std::string> wrapped = WrapCollectionKey(master, cid_, key_);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_LE(wrapped->size(), kWrappedKeyBytesMax);
  absl::StatusOr<CollectionKey> unwrapped =
      UnwrapCollectionKey(master, cid_, key_.epoch, *wrapped);
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status();
  EXPECT_EQ(unwrapped->key.view(), key_.key.view());
  EXPECT_EQ(unwrapped->epoch, key_.epoch);
  EXPECT_FALSE(UnwrapCollectionKey(master, cid_, key_.epoch + 1, *wrapped).ok());
  EXPECT_FALSE(UnwrapCollectionKey(master, RandomId(), key_.epoch, *wrapped).ok());
  EXPECT_EQ(UnwrapCollectionKey(SecretKey::Random(), cid_, key_.epoch, *wrapped)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  for (size_t i = 0; i < wrapped->size(); ++i) {
    std::string bad = *wrapped;
    bad[i] ^= 0x01;
    EXPECT_FALSE(UnwrapCollectionKey(master, cid_, key_.epoch, bad).ok()) << i;
  }
  EXPECT_EQ(UnwrapCollectionKey(master, cid_, key_.epoch, *wrapped + "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Account keys ----

TEST_F(SealTest, DeriveAccountKeys) {
  KdfParams params = KdfParams::Fast();
  EXPECT_EQ(params.salt.size(), kSaltBytes);
  absl::StatusOr<AccountKeys> a = DeriveAccountKeys("correct horse", params);
  absl::StatusOr<AccountKeys> b = DeriveAccountKeys("correct horse", params);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->auth_key.view(), b->auth_key.view());
  EXPECT_EQ(a->master_key.view(), b->master_key.view());
  EXPECT_NE(a->auth_key.view(), a->master_key.view());
  EXPECT_NE(a->auth_key.view(), SecretKey().view());

  absl::StatusOr<AccountKeys> other_pass = DeriveAccountKeys("correct horsf", params);
  ASSERT_TRUE(other_pass.ok());
  EXPECT_NE(other_pass->auth_key.view(), a->auth_key.view());
  EXPECT_NE(other_pass->master_key.view(), a->master_key.view());

  KdfParams other_salt = KdfParams::Fast();
  EXPECT_NE(other_salt.salt, params.salt);
  absl::StatusOr<AccountKeys> c = DeriveAccountKeys("correct horse", other_salt);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->auth_key.view(), a->auth_key.view());
  EXPECT_NE(c->master_key.view(), a->master_key.view());
}

TEST_F(SealTest, DeriveAccountKeysRejectsBadParams) {
  std::vector<std::function<void(KdfParams&)>> edits = {
      [](KdfParams& p) { p.salt = "short"; },
      [](KdfParams& p) { p.salt.push_back('x'); },
      [](KdfParams& p) { p.alg = 2; },
      [](KdfParams& p) { p.ops_limit = 0; },
      [](KdfParams& p) { p.mem_limit_bytes = 1024; },
      [](KdfParams& p) { p.mem_limit_bytes = uint64_t{1} << 40; },
  };
  for (const auto& edit : edits) {
    KdfParams p = KdfParams::Fast();
    edit(p);
    EXPECT_EQ(DeriveAccountKeys("pw", p).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(SealTest, ModerateParamsWork) {
  KdfParams p = KdfParams::Moderate();
  EXPECT_EQ(p.alg, kKdfArgon2id13);
  EXPECT_EQ(p.ops_limit, 2u);
  EXPECT_EQ(p.mem_limit_bytes, 64u << 20);
  EXPECT_TRUE(DeriveAccountKeys("pw", p).ok());
}

// ---- Small helpers ----

TEST_F(SealTest, Hex) {
  EXPECT_EQ(ToHex(std::string("\x00\xff\x10\xab", 4)), "00ff10ab");
  EXPECT_EQ(ToHex(""), "");
  absl::StatusOr<std::string> bytes = FromHex("00ff10ab");
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, std::string("\x00\xff\x10\xab", 4));
  EXPECT_EQ(*FromHex("ABCD"), "\xab\xcd");
  EXPECT_EQ(*FromHex(""), "");
  std::string r = RandomBytes(100);
  EXPECT_EQ(*FromHex(ToHex(r)), r);
  for (const char* bad : {"0", "abc", "zz", "0g", "00 ", " 00", "0x00"}) {
    EXPECT_EQ(FromHex(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(FromHex(std::string_view("ab\0d", 4)).ok());
}

TEST_F(SealTest, RandomIdsAndTokens) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string id = RandomId();
    EXPECT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
    std::string token = NewToken();
    EXPECT_EQ(token.size(), 43u);
    EXPECT_EQ(token.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    seen.insert(id);
    seen.insert(token);
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_EQ(RandomBytes(7).size(), 7u);
  EXPECT_EQ(RandomBytes(0).size(), 0u);
}

TEST_F(SealTest, HashesAreDomainSeparated) {
  std::string token = NewToken();
  EXPECT_EQ(HashToken(token).size(), 32u);
  EXPECT_EQ(HashToken(token), HashToken(token));
  EXPECT_NE(HashToken(token), HashAuthKey(token));
  EXPECT_NE(HashToken(token), HashToken(NewToken()));
  EXPECT_EQ(HashAuthKey("k").size(), 32u);
}

TEST_F(SealTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
}

TEST_F(SealTest, ContentHasher) {
  std::string data = "the same bytes";
  EXPECT_EQ(hasher_.ChunkId(data).size(), kChunkIdBytes);
  EXPECT_EQ(hasher_.ContentDigest(data).size(), 32u);
  EXPECT_EQ(hasher_.ChunkId(data), ContentHasher(key_).ChunkId(data));
  EXPECT_NE(hasher_.ChunkId(data), hasher_.ContentDigest(data));
  EXPECT_NE(hasher_.ChunkId(data), hasher_.ChunkId(data + "!"));
  ContentHasher other(CollectionKey{SecretKey::Random(), key_.epoch});
  EXPECT_NE(hasher_.ChunkId(data), other.ChunkId(data));
  EXPECT_NE(hasher_.ContentDigest(data), other.ContentDigest(data));
  // The epoch names the key; it does not change the hashes.
  EXPECT_EQ(hasher_.ChunkId(data),
            ContentHasher({key_.key, key_.epoch + 1}).ChunkId(data));
}

TEST_F(SealTest, SecretKey) {
  SecretKey zero;
  EXPECT_EQ(zero.view(), std::string(kKeyBytes, '\0'));
  SecretKey r = SecretKey::Random();
  SecretKey copy = r;
  EXPECT_EQ(copy.view(), r.view());
  zero = r;
  EXPECT_EQ(zero.view(), r.view());
  std::string raw = RandomBytes(kKeyBytes);
  EXPECT_EQ(SecretKey(raw).view(), raw);
  EXPECT_NE(SecretKey::Random().view(), r.view());
}

TEST_F(SealTest, DeltaChunkOfASmallEditIsSmallAndOpensOnlyWithItsBase) {
  std::string base = RandomBytes(60000);  // incompressible: only the base can help
  std::string edited = base;
  edited.replace(30000, 20, "twenty edited bytes!");
  std::string base_id = hasher_.ChunkId(base);
  absl::StatusOr<SealedChunk> delta =
      SealChunkDelta(key_, hasher_, cid_, edited, base_id, base);
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_LT(delta->data.size(), 1024u);
  ExpectDeltaOf(*delta, base, edited, /*tamper=*/true);
  // A normal chunk has no base; unrelated content makes no delta.
  auto plain = SealChunk(key_, hasher_, cid_, base);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(ChunkDeltaBase(plain->data).has_value());
  std::string unrelated = RandomBytes(60000);
  EXPECT_TRUE(absl::IsNotFound(
      SealChunkDelta(key_, hasher_, cid_, unrelated, base_id, base).status()));
  // A base that is not the chunk it names (a damaged cache) is refused, not sealed.
  std::string damaged = base;
  damaged[7] ^= 1;
  EXPECT_TRUE(absl::IsInvalidArgument(
      SealChunkDelta(key_, hasher_, cid_, edited, base_id, damaged).status()));
}

TEST_F(SealTest, BlockSignaturesCoverWholeBlocksAndAreKeyed) {
  std::string data = RandomBytes(3 * kSigBlockBytes + 100);
  std::string sigs = hasher_.BlockSignatures(data);
  ASSERT_EQ(sigs.size(), 3 * kSigEntryBytes);  // the partial last block has none
  EXPECT_EQ(hasher_.BlockSignatures(data.substr(0, kSigBlockBytes - 1)), "");
  EXPECT_EQ(hasher_.BlockSignatures(data.substr(kSigBlockBytes, kSigBlockBytes)),
            sigs.substr(kSigEntryBytes, kSigEntryBytes));
  ContentHasher other(CollectionKey{SecretKey::Random(), key_.epoch});
  EXPECT_NE(other.BlockSignatures(data), sigs);
  EXPECT_NE(hasher_.BlockHash(data.substr(0, 8)), other.BlockHash(data.substr(0, 8)));
}

// An edited chunk whose base plaintext is gone, sent against the base's signatures:
// each kind of edit of the benchmark, in random (incompressible) and text data.
TEST_F(SealTest, BlockDeltaOfEditsIsSmallAndRebuildsTheChunk) {
  std::string text;
  for (int i = 0; text.size() < 50000; ++i) {
    text += StrCat("line ", i, ": the quick brown fox jumps over the lazy dog\n");
  }
  for (const std::string& base : {RandomBytes(60000), text}) {
    std::string base_id = hasher_.ChunkId(base);
    std::string sigs = hasher_.BlockSignatures(base);
    std::string appended = base + "appended at the end";
    std::string middle = base;
    middle.replace(base.size() / 2, 20, "twenty edited bytes!");
    std::string inserted = "inserted at the start, shifting everything" + base;
    std::string cut = base.substr(0, 10000) + base.substr(10333);
    for (const std::string& edited : {appended, middle, inserted, cut}) {
      absl::StatusOr<SealedChunk> delta =
          SealChunkBlockDelta(key_, hasher_, cid_, edited, base_id, sigs);
      ASSERT_TRUE(delta.ok()) << delta.status();
      EXPECT_LT(delta->data.size(), 2 * kSigBlockBytes + 200) << edited.size();
      ExpectDeltaOf(*delta, base, edited, /*tamper=*/false);
    }
    // Unrelated content makes no delta; signatures of another key find nothing.
    EXPECT_TRUE(absl::IsNotFound(
        SealChunkBlockDelta(key_, hasher_, cid_, RandomBytes(60000), base_id, sigs)
            .status()));
    ContentHasher other(CollectionKey{SecretKey::Random(), key_.epoch});
    EXPECT_TRUE(absl::IsNotFound(SealChunkBlockDelta(key_, hasher_, cid_, appended,
                                                     base_id, other.BlockSignatures(base))
                                     .status()));
    EXPECT_TRUE(absl::IsInvalidArgument(
        SealChunkBlockDelta(key_, hasher_, cid_, appended, base_id, sigs.substr(1))
            .status()));
  }
  // Every single-byte change of a sealed block delta is caught.
  std::string base = RandomBytes(4 * kSigBlockBytes);
  std::string edited = base;
  edited[kSigBlockBytes + 5] ^= 0x40;
  auto delta = SealChunkBlockDelta(key_, hasher_, cid_, edited, hasher_.ChunkId(base),
                                   hasher_.BlockSignatures(base));
  ASSERT_TRUE(delta.ok()) << delta.status();
  ExpectDeltaOf(*delta, base, edited, /*tamper=*/true);
}

}  // namespace
}  // namespace ferry::seal
