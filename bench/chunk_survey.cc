// chunk_survey: measures candidate chunk sizes on real files, for docs/chunking.md.
//
//   chunk_survey CORPUS_LIST EDIT_LIST [MIN:AVG:MAX ...]   (sizes in KiB)
//
// CORPUS_LIST and EDIT_LIST hold one path a line. For each candidate it prints, over the
// corpus: chunks (each one a ChunkRef in a transaction and a sealed object on the
// server), the share of bytes that whole-chunk dedup saves and chunking throughput; over
// the edit files: their mean chunk size, and the bytes and chunks a device uploads after
// 20 bytes are inserted in the middle of each file (chunks of the edited file not among
// the original's). Runs single-threaded; the seed is fixed (32 bytes of 0x5a);
// throughput is the fastest of three passes over the corpus in memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <unordered_set>
#include <vector>

#include "src/chunk/chunker.h"

namespace ferry::chunk {
namespace {

constexpr size_t kEditBytes = 20;
constexpr size_t kChunkRefBytes = 40;  // Id, size and framing of one ChunkRef.
constexpr int kTimingPasses = 3;       // The fastest pass counts.

std::vector<std::string> ReadLines(const char* path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> LoadFiles(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    files.emplace_back(std::istreambuf_iterator<char>(in),
                       std::istreambuf_iterator<char>());
  }
  return files;
}

std::vector<std::string_view> Pieces(const Chunker& chunker, std::string_view data) {
  std::vector<std::string_view> pieces;
  for (uint32_t length : SplitAll(chunker, data)) {
    pieces.push_back(data.substr(0, length));
    data.remove_prefix(length);
  }
  return pieces;
}

struct CorpusResult {
  size_t chunks = 0;
  uint64_t unique_bytes = 0;
  double seconds = 0;
};

CorpusResult MeasureCorpus(const Chunker& chunker,
                           const std::vector<std::string>& files) {
  CorpusResult result;
  result.seconds = 1e9;
  for (int pass = 0; pass < kTimingPasses; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    size_t chunks = 0;
    for (const std::string& file : files) chunks += SplitAll(chunker, file).size();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    result.seconds = std::min(result.seconds, took.count());
    result.chunks = chunks;
  }
  std::unordered_set<std::string_view> seen;
  for (const std::string& file : files) {
    for (std::string_view piece : Pieces(chunker, file)) {
      if (seen.insert(piece).second) result.unique_bytes += piece.size();
    }
  }
  return result;
}

struct EditResult {
  std::vector<uint64_t> new_bytes;  // Per file.
  size_t new_chunks = 0;
  size_t original_chunks = 0;  // Of all edit files before the edit.
  size_t original_at_max = 0;  // Of those, chunks cut at max_bytes.
};

EditResult MeasureEdits(const Chunker& chunker, const std::vector<std::string>& files) {
  EditResult result;
  const std::string inserted(kEditBytes, '#');
  for (const std::string& original : files) {
    const std::vector<std::string_view> before = Pieces(chunker, original);
    result.original_chunks += before.size();
    for (std::string_view piece : before) {
      result.original_at_max += piece.size() == chunker.params().max_bytes;
    }
    const std::unordered_set<std::string_view> known(before.begin(), before.end());
    std::string edited = original;
    edited.insert(edited.size() / 2, inserted);
    uint64_t new_bytes = 0;
    for (std::string_view piece : Pieces(chunker, edited)) {
      if (known.contains(piece)) continue;
      new_bytes += piece.size();
      ++result.new_chunks;
    }
    result.new_bytes.push_back(new_bytes);
  }
  return result;
}

bool ParseParams(const char* text, ChunkerParams& params) {
  unsigned min = 0, avg = 0, max = 0;
  if (std::sscanf(text, "%u:%u:%u", &min, &avg, &max) != 3) return false;
  params = {.min_bytes = min << 10, .avg_bytes = avg << 10, .max_bytes = max << 10};
  return params.Validate().ok();
}

std::vector<ChunkerParams> Candidates(int argc, char** argv) {
  std::vector<ChunkerParams> candidates;
  for (int i = 3; i < argc; ++i) {
    ChunkerParams params;
    if (!ParseParams(argv[i], params)) {
      std::fprintf(stderr, "bad candidate %s (want MIN:AVG:MAX in KiB)\n", argv[i]);
      std::exit(2);
    }
    candidates.push_back(params);
  }
  if (candidates.empty()) {
    for (uint32_t avg_kib : {8, 16, 32, 64, 128, 256}) {
      const uint32_t avg = avg_kib << 10;
      candidates.push_back(
          {.min_bytes = avg / 4, .avg_bytes = avg, .max_bytes = avg * 4});
    }
  }
  return candidates;
}

uint64_t TotalBytes(const std::vector<std::string>& files) {
  uint64_t total = 0;
  for (const std::string& file : files) total += file.size();
  return total;
}

void PrintRow(const ChunkerParams& params, const std::vector<std::string>& corpus,
              const std::vector<std::string>& edits) {
  const std::string seed(kChunkerSeedBytes, '\x5a');
  const Chunker chunker(params, seed);
  const CorpusResult c = MeasureCorpus(chunker, corpus);
  EditResult e = MeasureEdits(chunker, edits);
  std::sort(e.new_bytes.begin(), e.new_bytes.end());
  uint64_t edit_total = 0;
  for (uint64_t bytes : e.new_bytes) edit_total += bytes;
  const double corpus_bytes = static_cast<double>(TotalBytes(corpus));
  const double files = static_cast<double>(edits.size());
  const double big_mean = static_cast<double>(TotalBytes(edits)) / e.original_chunks;
  std::printf(
      "| %u/%u/%u | %zu | %.0f | %.1f | %.1f%% | %.2f%% | %.2f | %.1f | %.1f | %.1f | "
      "%.2f "
      "|\n",
      params.min_bytes >> 10, params.avg_bytes >> 10, params.max_bytes >> 10, c.chunks,
      c.chunks * kChunkRefBytes / 1024.0, big_mean / 1024,
      100.0 * static_cast<double>(e.original_at_max) / e.original_chunks,
      100.0 * (1 - static_cast<double>(c.unique_bytes) / corpus_bytes),
      corpus_bytes / c.seconds / 1e9, edit_total / files / 1024,
      e.new_bytes[e.new_bytes.size() / 2] / 1024.0, e.new_bytes.back() / 1024.0,
      e.new_chunks / files);
}

int Main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS_LIST EDIT_LIST [MIN:AVG:MAX KiB ...]\n",
                 argv[0]);
    return 2;
  }
  const std::vector<std::string> corpus = LoadFiles(ReadLines(argv[1]));
  const std::vector<std::string> edits = LoadFiles(ReadLines(argv[2]));
  if (corpus.empty() || edits.empty()) {
    std::fprintf(stderr, "no readable files\n");
    return 1;
  }
  std::printf("corpus: %zu files, %.1f MiB; edits: %zu files, %.1f MiB\n\n",
              corpus.size(), TotalBytes(corpus) / 1048576.0, edits.size(),
              TotalBytes(edits) / 1048576.0);
  std::printf(
      "| min/avg/max KiB | chunks | ChunkRefs KiB | big-file mean chunk KiB "
      "| big-file chunks at max | dedup saved | GB/s "
      "| edit KiB mean | edit KiB median | edit KiB max | edit chunks mean |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const ChunkerParams& params : Candidates(argc, argv)) {
    PrintRow(params, corpus, edits);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace ferry::chunk

int main(int argc, char** argv) { return ferry::chunk::Main(argc, argv); }
