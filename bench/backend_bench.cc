// The embedded backend's durable operations: appends (one fsynced SQLite commit each),
// pulls and chunk puts.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "src/server/backend/backend.h"

namespace ferry::server {
namespace {

struct Store {
  Store() {
    char pattern[] = "/tmp/ferry-bench-XXXXXX";
    dir = ::mkdtemp(pattern);
    backend = *OpenSqliteBackend(dir);
    (void)backend->CreateAccount({"a", "user", 1, 2, 65536, std::string(16, 's'), "h", 1},
                                 {"d", "a", "dev", "t", 1, 1, false});
    (void)backend->CreateCollection({"c", "a", "m", "k", 1, 1});
  }
  ~Store() {
    backend.reset();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::unique_ptr<Backend> backend;
};

void BM_Append(benchmark::State& state) {
  Store store;
  std::string envelope(static_cast<size_t>(state.range(0)), 'e');
  uint64_t head = 0;
  for (auto _ : state) {
    AppendRecord a;
    a.collection_id = "c";
    a.tx_id = std::to_string(head);
    a.device_id = "d";
    a.base_seq = head;
    a.envelope = envelope;
    auto result = store.backend->Append(a);
    if (!result.ok()) state.SkipWithError(std::string(result.status().message()).c_str());
    head = result->seq;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Append)->Arg(512)->Arg(16 << 10)->Unit(benchmark::kMicrosecond);

void BM_Pull(benchmark::State& state) {
  Store store;
  for (uint64_t i = 0; i < 1000; ++i) {
    AppendRecord a{"c", std::to_string(i), "d", i, std::string(512, 'e'), {}, 0, 0};
    (void)store.backend->Append(a);
  }
  for (auto _ : state) {
    auto page = store.backend->Pull("c", 0, 1000, 8 << 20);
    benchmark::DoNotOptimize(page);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 1000));
}
BENCHMARK(BM_Pull)->Unit(benchmark::kMicrosecond);

void BM_PutChunk(benchmark::State& state) {
  Store store;
  std::string data(static_cast<size_t>(state.range(0)), 'x');
  uint64_t n = 0;
  for (auto _ : state) {
    std::string id(32, '\0');
    for (int i = 0; i < 8; ++i) id[i] = static_cast<char>(n >> (8 * i));
    ++n;
    auto stored = store.backend->PutChunks("c", {{id, data}});
    benchmark::DoNotOptimize(stored);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_PutChunk)->Arg(64 << 10)->Unit(benchmark::kMicrosecond);

// A batch of 64 chunks of 64 KiB, as a PutChunks stream stores them.
void BM_PutChunkBatch(benchmark::State& state) {
  Store store;
  std::string data(64 << 10, 'x');
  uint64_t n = 0;
  for (auto _ : state) {
    std::vector<std::pair<std::string, std::string>> batch;
    for (int i = 0; i < 64; ++i, ++n) {
      std::string id(32, '\0');
      for (int b = 0; b < 8; ++b) id[b] = static_cast<char>(n >> (8 * b));
      batch.emplace_back(id, data);
    }
    auto stored = store.backend->PutChunks("c", batch);
    benchmark::DoNotOptimize(stored);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 64 * data.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 64));
}
BENCHMARK(BM_PutChunkBatch)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ferry::server
