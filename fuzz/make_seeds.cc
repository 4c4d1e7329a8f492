// Writes a seed corpus for the fuzz targets with the fixed fuzz key:
//   ferry_fuzz_seeds DIR  ->  DIR/envelope/* and DIR/chunk/*
// The committed corpus in fuzz/corpus was made this way (nonces are random, so each
// run writes different bytes).
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz/fuzz_common.h"
#include "src/core/limits.h"
#include "src/seal/seal.h"

namespace {

namespace fs = std::filesystem;
using ferry::fuzz::Hasher;
using ferry::fuzz::kCollectionId;
using ferry::fuzz::Key;

bool Write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

ferry::v1::Transaction Transaction(size_t body_bytes) {
  ferry::v1::Transaction tx;
  tx.set_tx_id(std::string(ferry::fuzz::kTxId));
  tx.set_device_id(std::string(ferry::fuzz::kDeviceId));
  tx.set_base_seq(ferry::fuzz::kBaseSeq);
  tx.set_hlc_time(123456789);
  ferry::v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
  item->set_id("a");
  ferry::v1::Field* f = item->add_fields();
  f->set_name("body");
  f->set_bytes(std::string(body_bytes, 'b'));
  ferry::v1::ContentRef* c = item->add_fields()->mutable_content();
  c->add_chunks()->set_id(std::string(ferry::kChunkIdBytes, 'c'));
  tx.add_ops()->mutable_delete_()->set_id("b");
  ferry::v1::MoveOp* m = tx.add_ops()->mutable_move();
  m->set_from_id("c");
  m->set_to_id("d");
  tx.add_ops()->mutable_patch()->add_unset(std::string("e"));
  return tx;
}

std::string Zstd(const std::string& plain) {
  std::string out(ZSTD_compressBound(plain.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), plain.data(), plain.size(), 3));
  return out;
}

// The payload-mode input of envelope_fuzz: 3-byte size, flags, payload.
std::string PayloadInput(const std::string& plain, bool zstd) {
  std::string out;
  for (int i = 0; i < 3; ++i) out.push_back(static_cast<char>(plain.size() >> (8 * i)));
  out.push_back(zstd ? 1 : 0);
  return out + (zstd ? Zstd(plain) : plain);
}

bool EnvelopeSeeds(const fs::path& dir) {
  bool ok = true;
  for (size_t body : {size_t{0}, size_t{10}, size_t{5000}}) {
    auto sealed = ferry::seal::SealTransaction(Key(), kCollectionId, Transaction(body),
                                               {std::string(ferry::kChunkIdBytes, 'c')});
    ok = ok && sealed.ok() && Write(dir / ("sealed_" + std::to_string(body)), *sealed);
  }
  std::string plain = Transaction(300).SerializeAsString();
  ok = ok && Write(dir / "payload_zstd", PayloadInput(plain, true));
  ok = ok && Write(dir / "payload_raw", PayloadInput(plain, false));
  ok = ok && Write(dir / "garbage", "\x0a\x03\x08\x01\x12");
  return ok;
}

bool ChunkSeeds(const fs::path& dir) {
  bool ok = true;
  for (const std::string& plain :
       {std::string(), std::string("hello, chunk"), std::string(20000, 'a')}) {
    auto chunk = ferry::seal::SealChunk(Key(), Hasher(), kCollectionId, plain);
    ok = ok && chunk.ok() &&
         Write(dir / ("sealed_" + std::to_string(plain.size())), chunk->id + chunk->data);
  }
  // Authentic-mode inputs: id, 6 header bytes, payload.
  std::string plain(3000, 'q');
  std::string z = Zstd(plain);
  std::string header = {
      1, 1, static_cast<char>(plain.size() & 0xff), static_cast<char>(plain.size() >> 8),
      0, 0};
  ok = ok && Write(dir / "payload_zstd", Hasher().ChunkId(plain) + header + z);
  header[1] = 0;
  ok = ok && Write(dir / "payload_raw", Hasher().ChunkId(plain) + header + plain);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  ferry::seal::Init();
  fs::path root = argv[1];
  fs::create_directories(root / "envelope");
  fs::create_directories(root / "chunk");
  if (!EnvelopeSeeds(root / "envelope") || !ChunkSeeds(root / "chunk")) {
    std::fprintf(stderr, "writing seeds failed\n");
    return 1;
  }
  return 0;
}
