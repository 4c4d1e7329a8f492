// Content-defined chunking: throughput on random data, in memory and through a file,
// and the chunk size distribution. Results and the choice of sizes: docs/chunking.md.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "src/chunk/chunker.h"

namespace ferry::chunk {
namespace {

constexpr size_t kDataBytes = 64u << 20;

const std::string& RandomData() {
  static const std::string* data = [] {
    std::mt19937_64 random(42);
    auto* out = new std::string(kDataBytes, '\0');
    for (size_t i = 0; i + 8 <= out->size(); i += 8) {
      const uint64_t word = random();
      for (int b = 0; b < 8; ++b) (*out)[i + b] = static_cast<char>(word >> (8 * b));
    }
    return out;
  }();
  return *data;
}

std::string Seed() { return std::string(kChunkerSeedBytes, '\x5a'); }

// min = avg / 4, max = avg * 4, the shape of ChunkerParams::Default().
ChunkerParams ParamsForAvgKib(int64_t avg_kib) {
  const auto avg = static_cast<uint32_t>(avg_kib << 10);
  return ChunkerParams{.min_bytes = avg / 4, .avg_bytes = avg, .max_bytes = avg * 4};
}

void BM_SplitAll(benchmark::State& state) {
  const Chunker chunker(ParamsForAvgKib(state.range(0)), Seed());
  const std::string& data = RandomData();
  for (auto _ : state) {
    std::vector<uint32_t> lengths = SplitAll(chunker, data);
    benchmark::DoNotOptimize(lengths.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_SplitAll)
    ->Arg(16)
    ->Arg(32)
    ->Arg(64)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond);

void BM_SplitAllDefault(benchmark::State& state) {
  const Chunker chunker(ChunkerParams::Default(), Seed());
  const std::string& data = RandomData();
  for (auto _ : state) {
    std::vector<uint32_t> lengths = SplitAll(chunker, data);
    benchmark::DoNotOptimize(lengths.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_SplitAllDefault)->Unit(benchmark::kMillisecond);

// Through ChunkFile from a temporary file that is in the page cache: read() copies and
// the buffer's compaction included, no disk.
void BM_ChunkFile(benchmark::State& state) {
  const Chunker chunker(ChunkerParams::Default(), Seed());
  const std::string& data = RandomData();
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/chunker_benchXXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0 ||
      ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    state.SkipWithError("cannot write a temporary file");
    return;
  }
  ::unlink(path.c_str());
  for (auto _ : state) {
    ::lseek(fd, 0, SEEK_SET);
    auto total = ChunkFile(fd, chunker, [](std::string_view chunk) {
      benchmark::DoNotOptimize(chunk.data());
      return absl::OkStatus();
    });
    if (!total.ok()) state.SkipWithError("ChunkFile failed");
  }
  ::close(fd);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChunkFile)->Unit(benchmark::kMillisecond);

// Not a timing: the chunk size distribution on random data, as counters (sizes in KiB,
// shares in percent of chunks).
void BM_SizeDistribution(benchmark::State& state) {
  const ChunkerParams params =
      state.range(0) == 0 ? ChunkerParams::Default() : ParamsForAvgKib(state.range(0));
  const Chunker chunker(params, Seed());
  std::vector<uint32_t> lengths;
  for (auto _ : state) lengths = SplitAll(chunker, RandomData());
  lengths.pop_back();  // The last chunk is cut by the end of the data.
  std::sort(lengths.begin(), lengths.end());
  double sum = 0, sum_squares = 0;
  for (uint32_t length : lengths) {
    sum += length;
    sum_squares += static_cast<double>(length) * length;
  }
  const double n = static_cast<double>(lengths.size());
  const double mean = sum / n;
  auto kib = [](double bytes) { return bytes / 1024; };
  auto percentile = [&](double p) {
    return kib(lengths[static_cast<size_t>(p / 100 * (n - 1))]);
  };
  state.counters["chunks"] = n;
  state.counters["avg_kib"] = kib(params.avg_bytes);
  state.counters["mean_kib"] = kib(mean);
  state.counters["stddev_kib"] = kib(std::sqrt(sum_squares / n - mean * mean));
  state.counters["p1_kib"] = percentile(1);
  state.counters["p10_kib"] = percentile(10);
  state.counters["p50_kib"] = percentile(50);
  state.counters["p90_kib"] = percentile(90);
  state.counters["p99_kib"] = percentile(99);
  state.counters["at_max_pct"] =
      100.0 *
      static_cast<double>(std::count(lengths.begin(), lengths.end(), params.max_bytes)) /
      n;
}
BENCHMARK(BM_SizeDistribution)
    ->Arg(0)
    ->Arg(16)
    ->Arg(64)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ferry::chunk
