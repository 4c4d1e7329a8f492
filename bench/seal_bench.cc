// Sealing costs: transactions, chunks, keyed hashes and key derivation.
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>

#include "src/seal/seal.h"

namespace ferry::seal {
namespace {

// Text-like content (compresses) or random bytes (does not).
std::string Content(size_t bytes, bool compressible) {
  std::mt19937_64 random(42);
  std::string out(bytes, '\0');
  static constexpr char kWords[] = "the quick brown fox jumps over the lazy dog ";
  for (size_t i = 0; i < bytes; ++i) {
    out[i] = compressible ? kWords[(i + random() % 3) % (sizeof(kWords) - 1)]
                          : static_cast<char>(random());
  }
  return out;
}

v1::Transaction MakeTransaction(int ops) {
  v1::Transaction tx;
  tx.set_tx_id(RandomBytes(kTxIdBytes));
  tx.set_device_id(RandomId());
  tx.set_base_seq(12345);
  for (int i = 0; i < ops; ++i) {
    v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
    item->set_id("Documents/projects/report-" + std::to_string(i) + ".md");
    v1::Field* f = item->add_fields();
    f->set_name("content");
    for (int c = 0; c < 4; ++c) {
      v1::ChunkRef* ref = f->mutable_content()->add_chunks();
      ref->set_id(RandomBytes(32));
      ref->set_size(65536);
    }
    v1::Field* mode = item->add_fields();
    mode->set_name("mode");
    mode->set_bytes("0644");
  }
  return tx;
}

CollectionKey Key() {
  Init();
  return CollectionKey{SecretKey::Random(), 1};
}

void BM_SealTransaction(benchmark::State& state) {
  CollectionKey key = Key();
  v1::Transaction tx = MakeTransaction(static_cast<int>(state.range(0)));
  size_t bytes = tx.ByteSizeLong();
  for (auto _ : state) {
    auto sealed = SealTransaction(key, "c", tx, {});
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_SealTransaction)->Arg(1)->Arg(100)->Arg(1000);

void BM_OpenTransaction(benchmark::State& state) {
  CollectionKey key = Key();
  v1::Transaction tx = MakeTransaction(static_cast<int>(state.range(0)));
  std::string sealed = *SealTransaction(key, "c", tx, {});
  for (auto _ : state) {
    auto opened = OpenTransaction(key, "c", sealed);
    benchmark::DoNotOptimize(opened);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tx.ByteSizeLong()));
  state.counters["sealed_bytes"] = static_cast<double>(sealed.size());
}
BENCHMARK(BM_OpenTransaction)->Arg(1)->Arg(100)->Arg(1000);

void BM_SealChunk(benchmark::State& state) {
  CollectionKey key = Key();
  ContentHasher hasher(key);
  std::string content = Content(static_cast<size_t>(state.range(0)), state.range(1) != 0);
  size_t sealed_bytes = 0;
  for (auto _ : state) {
    auto sealed = SealChunk(key, hasher, "c", content);
    sealed_bytes = sealed->data.size();
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * content.size()));
  state.counters["ratio"] = static_cast<double>(sealed_bytes) / content.size();
}
BENCHMARK(BM_SealChunk)->ArgsProduct({{64 << 10, 1 << 20}, {0, 1}});

// Real text (the first 16 MiB of headers under /usr/include, in 64 KiB chunks, the
// default average) through zstd at a level: what choosing the level trades.
const std::string& RealText() {
  static const std::string* text = [] {
    auto* out = new std::string;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator("/usr/include/linux")) {
      if (!entry.is_regular_file() || out->size() >= (16u << 20)) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      out->append(std::istreambuf_iterator<char>(in), {});
    }
    out->resize(std::min<size_t>(out->size(), 16u << 20));
    return out;
  }();
  return *text;
}

void BM_ZstdLevel(benchmark::State& state) {
  const std::string& text = RealText();
  const int level = static_cast<int>(state.range(0));
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(),
                                                          &ZSTD_freeCCtx);
  std::string out(ZSTD_compressBound(64 << 10), '\0');
  size_t compressed = 0, offset = 0, read = 0;
  for (auto _ : state) {
    size_t n = std::min<size_t>(64 << 10, text.size() - offset);
    size_t made = ZSTD_compressCCtx(cctx.get(), out.data(), out.size(),
                                    text.data() + offset, n, level);
    if (ZSTD_isError(made)) std::abort();
    compressed += made;
    read += n;
    offset = offset + n >= text.size() ? 0 : offset + n;
  }
  state.SetBytesProcessed(static_cast<int64_t>(read));
  state.counters["ratio"] = static_cast<double>(compressed) / static_cast<double>(read);
}
BENCHMARK(BM_ZstdLevel)->Arg(-1)->Arg(1)->Arg(2)->Arg(3)->Arg(6);

// What every chunk a device uploads or downloads costs on top: its block signatures.
void BM_BlockSignatures(benchmark::State& state) {
  ContentHasher hasher(Key());
  std::string content = Content(64 << 10, true);
  for (auto _ : state) benchmark::DoNotOptimize(hasher.BlockSignatures(content));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * content.size()));
}
BENCHMARK(BM_BlockSignatures);

// An edited 64 KiB chunk (20 bytes overwritten) against its base's signatures: the
// rolling search, the instructions, zstd and AEAD.
void BM_SealChunkBlockDelta(benchmark::State& state) {
  CollectionKey key = Key();
  ContentHasher hasher(key);
  std::string base = Content(64 << 10, state.range(0) != 0);
  std::string edited = base;
  edited.replace(30000, 20, "twenty edited bytes!");
  std::string base_id = hasher.ChunkId(base);
  std::string signatures = hasher.BlockSignatures(base);
  size_t sealed_bytes = 0;
  for (auto _ : state) {
    auto sealed = SealChunkBlockDelta(key, hasher, "c", edited, base_id, signatures);
    if (!sealed.ok()) std::abort();
    sealed_bytes = sealed->data.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * edited.size()));
  state.counters["sealed_bytes"] = static_cast<double>(sealed_bytes);
}
BENCHMARK(BM_SealChunkBlockDelta)->Arg(0)->Arg(1);

void BM_OpenChunk(benchmark::State& state) {
  CollectionKey key = Key();
  ContentHasher hasher(key);
  std::string content = Content(static_cast<size_t>(state.range(0)), state.range(1) != 0);
  SealedChunk sealed = *SealChunk(key, hasher, "c", content);
  for (auto _ : state) {
    auto opened = OpenChunk(key, hasher, "c", sealed.id, sealed.data);
    benchmark::DoNotOptimize(opened);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * content.size()));
}
BENCHMARK(BM_OpenChunk)->ArgsProduct({{64 << 10, 1 << 20}, {0, 1}});

void BM_ChunkId(benchmark::State& state) {
  CollectionKey key = Key();
  ContentHasher hasher(key);
  std::string content = Content(static_cast<size_t>(state.range(0)), false);
  for (auto _ : state) benchmark::DoNotOptimize(hasher.ChunkId(content));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * content.size()));
}
BENCHMARK(BM_ChunkId)->Arg(64 << 10)->Arg(1 << 20);

void BM_DeriveAccountKeys(benchmark::State& state) {
  Init();
  KdfParams params = KdfParams::Moderate();
  for (auto _ : state) benchmark::DoNotOptimize(DeriveAccountKeys("passphrase", params));
}
BENCHMARK(BM_DeriveAccountKeys)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ferry::seal
