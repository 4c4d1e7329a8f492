#include "src/connectors/files/files_connector.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "src/connectors/files/mem_env.h"
#include "src/connectors/files/mem_file_system.h"
#include "src/connectors/files/root_dir.h"
#include "src/engine/items.h"

namespace ferry::files {
namespace {

namespace fs = std::filesystem;

// Chunks by id, as the engine would resolve them.
class MapChunks final : public ChunkSource {
 public:
  absl::StatusOr<std::vector<std::string>> Fetch(
      const std::vector<v1::ChunkRef>& refs) override {
    std::vector<std::string> out;
    for (const v1::ChunkRef& ref : refs) {
      auto it = chunks.find(ref.id());
      if (it == chunks.end()) return absl::NotFoundError("no such chunk");
      out.push_back(it->second);
    }
    return out;
  }
  std::map<std::string, std::string> chunks;
};

// The number of chunks of a file item's content.
int Chunks(const v1::Item& item) {
  return engine::FindField(item, "content")->content().chunks_size();
}

// Chunks [begin, end) of a file item's content, with their offset.
ContentPart Part(const v1::Item& item, int begin, int end) {
  ContentPart part{.begin = begin, .end = end};
  for (int i = 0; i < begin; ++i) {
    part.offset += engine::FindField(item, "content")->content().chunks(i).size();
  }
  return part;
}

// Bytes that cut into several chunks.
std::string Noise(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  for (char& c : out) {
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    c = static_cast<char>(seed >> 56);
  }
  return out;
}

// Every case runs on a folder on disk and on one in a MemFileSystem.
// A directory item (mode 0755), and a symbolic link item.
v1::Item Dir(const std::string& id) {
  v1::Item item;
  item.set_id(id);
  engine::SetBytesField(&item, "type", "dir");
  engine::SetBytesField(&item, "mode", "493");
  return item;
}
v1::Item Link(const std::string& id, const std::string& target) {
  v1::Item item;
  item.set_id(id);
  engine::SetBytesField(&item, "type", "symlink");
  engine::SetBytesField(&item, "mode", "0");
  engine::SetBytesField(&item, "target", target);
  return item;
}

class FilesConnectorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    seal::Init();
    if (disk()) {
      char pattern[] = "/tmp/ferry-connector-XXXXXX";
      ASSERT_NE(::mkdtemp(pattern), nullptr);
      root_ = pattern;
    } else {
      root_ = "/sync";
      ASSERT_TRUE(mem_.Mkdir(root_).ok());
    }
    WriteRaw("ok.txt", "fine");
  }
  void TearDown() override {
    if (disk()) fs::remove_all(root_);
  }

  bool disk() const { return GetParam() == "disk"; }
  std::string P(const std::string& rel) const { return root_ + "/" + rel; }

  // Another program's access to the folder.
  void WriteRaw(const std::string& rel, std::string_view data) {
    if (disk()) {
      fs::create_directories(fs::path(P(rel)).parent_path());
      std::ofstream(P(rel), std::ios::binary) << data;
    } else {
      ASSERT_TRUE(mem_.WriteFile(P(rel), data).ok());
    }
  }
  void SymlinkRaw(const std::string& target, const std::string& rel) {
    if (disk()) {
      ASSERT_EQ(::symlink(target.c_str(), P(rel).c_str()), 0);
    } else {
      ASSERT_TRUE(mem_.Symlink(P(rel), target).ok());
    }
  }
  std::optional<FileStat> StatRaw(const std::string& rel) {
    auto root = disk() ? RootDir::Open(root_) : mem_.OpenRoot(root_);
    EXPECT_TRUE(root.ok());
    auto stat = (*root)->Stat(rel);
    EXPECT_TRUE(stat.ok());
    return stat.ok() ? *stat : std::nullopt;
  }
  bool Exists(const std::string& rel) { return StatRaw(rel).has_value(); }
  bool IsDir(const std::string& rel) {
    std::optional<FileStat> stat = StatRaw(rel);
    return stat.has_value() && stat->type == FileStat::kDir;
  }
  std::string ReadRaw(const std::string& rel) {
    if (!disk()) {
      absl::StatusOr<std::string> data = mem_.ReadFile(P(rel));
      return data.ok() ? *data : "";
    }
    std::ifstream in(P(rel), std::ios::binary);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
  }
  size_t EntriesAtTop() {
    if (!disk()) return mem_.List(root_)->size();
    size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(root_)) ++entries;
    return entries;
  }

  FilesOptions Options(std::optional<bool> case_insensitive) {
    FilesOptions options;
    options.root = root_;
    options.case_insensitive = case_insensitive;
    options.env = disk() ? nullptr : &env_;
    return options;
  }
  std::unique_ptr<FilesConnector> Make(std::optional<bool> case_insensitive) {
    return std::make_unique<FilesConnector>(Options(case_insensitive), &hasher_,
                                            ChunkerSeed(hasher_));
  }

  std::string root_;
  MemFileSystem mem_;
  MemFsEnv env_{&mem_};
  seal::CollectionKey key_{seal::SecretKey::Random(), 1};
  seal::ContentHasher hasher_{key_};
};

INSTANTIATE_TEST_SUITE_P(Both, FilesConnectorTest, ::testing::Values("disk", "mem"),
                         [](const auto& test) { return test.param; });

TEST_P(FilesConnectorTest, CaseCollisionsRefusedOnlyWhereCaseIsIgnored) {
  v1::Item upper = Dir("OK.TXT");
  auto insensitive = Make(true);
  ASSERT_TRUE(insensitive->Scan({}, {}).ok());
  auto refused = insensitive->Apply("OK.TXT", "", &upper, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_FALSE(Exists("OK.TXT"));

  auto sensitive = Make(false);
  ASSERT_TRUE(sensitive->Scan({}, {}).ok());
  EXPECT_TRUE(sensitive->Apply("OK.TXT", "", &upper, nullptr).ok());
  EXPECT_TRUE(IsDir("OK.TXT"));
}

TEST_P(FilesConnectorTest, ProbeFindsThisFileSystemCaseSensitiveAndLeavesNothing) {
  auto probed = Make(std::nullopt);
  auto scan = probed->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->items.size(), 1u);  // ok.txt; the probe file is gone
  EXPECT_EQ(EntriesAtTop(), 1u);
  // The test folder is on a case-sensitive file system (ext4, tmpfs, overlayfs, memory).
  v1::Item upper = Dir("OK.TXT");
  EXPECT_TRUE(probed->Apply("OK.TXT", "", &upper, nullptr).ok());
}

TEST_P(FilesConnectorTest, StaleTemporaryFilesAreRemovedFreshOnesKept) {
  WriteRaw(".ferry-tmp-leftover", "half a file");
  WriteRaw("dir/.ferry-tmp-other", "half another");
  auto keeping = Make(false);  // default age: an hour
  ASSERT_TRUE(keeping->Scan({}, {}).ok());
  EXPECT_TRUE(Exists(".ferry-tmp-leftover"));
  FilesOptions options = Options(false);
  options.leftover_temps.age_ms = -1000;  // everything counts as stale
  FilesConnector cleaning(options, &hasher_, ChunkerSeed(hasher_));
  auto scan = cleaning.Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_FALSE(Exists(".ferry-tmp-leftover"));
  EXPECT_FALSE(Exists("dir/.ferry-tmp-other"));
  EXPECT_TRUE(Exists("ok.txt"));
  EXPECT_EQ(scan->items.count(".ferry-tmp-leftover"), 0u);

  // With the folder's lock held, a fresh one is a leftover too.
  WriteRaw("dir/.ferry-tmp-fresh", "half a third");
  options = Options(false);
  options.leftover_temps.all = true;
  FilesConnector locked(options, &hasher_, ChunkerSeed(hasher_));
  ASSERT_TRUE(locked.Scan({}, {}).ok());
  EXPECT_FALSE(Exists("dir/.ferry-tmp-fresh"));
}

TEST_P(FilesConnectorTest, ScanReadContentAndApplyRoundTrip) {
  const std::string big = Noise(300'000, 7);
  WriteRaw("dir/big.bin", big);
  SymlinkRaw("../elsewhere", "link");
  auto connector = Make(false);
  auto scan = connector->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_EQ(scan->items.size(), 4u);  // ok.txt, dir, dir/big.bin, link
  EXPECT_EQ(engine::BytesField(*scan->items["dir"].item, "type"), "dir");
  EXPECT_EQ(engine::BytesField(*scan->items["link"].item, "target"), "../elsewhere");
  EXPECT_EQ(scan->bytes_read, big.size() + 4);
  const v1::Item& item = *scan->items["dir/big.bin"].item;
  ASSERT_GT(engine::FindField(item, "content")->content().chunks_size(), 1);

  MapChunks chunks;
  std::string read;
  ASSERT_TRUE(connector
                  ->ReadContent(item, "content", Part(item, 0, Chunks(item)),
                                [&](const v1::ChunkRef& ref, std::string_view data) {
                                  chunks.chunks[ref.id()] = std::string(data);
                                  read += data;
                                  return absl::OkStatus();
                                })
                  .ok());
  EXPECT_EQ(read, big);
  auto range = connector->ReadRange("dir/big.bin", "content", 1000, 50);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(*range, big.substr(1000, 50));
  EXPECT_FALSE(connector->ReadRange("dir/big.bin", "content", big.size() - 10, 50).ok());

  v1::Item copy = item;
  copy.set_id("copy/of-big.bin");
  auto stamp = connector->Apply(copy.id(), "", &copy, &chunks);
  ASSERT_TRUE(stamp.ok()) << stamp.status();
  EXPECT_EQ(ReadRaw("copy/of-big.bin"), big);
  auto moved = connector->Move("copy/of-big.bin", *stamp, "moved.bin");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_FALSE(Exists("copy/of-big.bin"));
  EXPECT_EQ(ReadRaw("moved.bin"), big);
  EXPECT_TRUE(connector->Apply("moved.bin", *moved, nullptr, nullptr).ok());
  EXPECT_FALSE(Exists("moved.bin"));
}

TEST_P(FilesConnectorTest, ReadContentInParts) {
  const std::string big = Noise(300'000, 13);
  WriteRaw("big.bin", big);
  auto connector = Make(false);
  auto scan = connector->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  const v1::Item item = *scan->items["big.bin"].item;
  const int n = Chunks(item);
  ASSERT_GE(n, 3);
  auto read = [&](int begin, int end, std::string* out) {
    ContentPart part = Part(item, std::max(begin, 0), std::max(begin, end));
    part.begin = begin;
    part.end = end;
    return connector->ReadContent(item, "content", part,
                                  [&](const v1::ChunkRef&, std::string_view data) {
                                    out->append(data);
                                    return absl::OkStatus();
                                  });
  };
  std::string parts;
  for (auto [begin, end] : {std::pair{0, 1}, {1, 1}, {1, n - 1}, {n - 1, n}}) {
    ASSERT_TRUE(read(begin, end, &parts).ok()) << begin << ".." << end;
  }
  EXPECT_EQ(parts, big);
  std::string ignored;
  EXPECT_TRUE(absl::IsInvalidArgument(read(-1, 1, &ignored)));
  EXPECT_TRUE(absl::IsInvalidArgument(read(2, 1, &ignored)));
  EXPECT_TRUE(absl::IsInvalidArgument(read(0, n + 1, &ignored)));
  // An offset that is not the part's reads other bytes, which do not hash to the ids.
  ContentPart shifted = Part(item, 1, 2);
  shifted.offset += 1;
  EXPECT_TRUE(absl::IsFailedPrecondition(connector->ReadContent(
      item, "content", shifted,
      [](const v1::ChunkRef&, std::string_view) { return absl::OkStatus(); })));
  // Bytes appended since the scan: only the part that ends the content sees them.
  WriteRaw("big.bin", big + "more");
  EXPECT_TRUE(read(0, n - 1, &ignored).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(read(n - 1, n, &ignored)));
}

TEST_P(FilesConnectorTest, ReadContentRefusesAFileChangedSinceTheScan) {
  const std::string big = Noise(300'000, 11);
  std::string flipped = big;
  flipped[200'000] ^= 1;  // same size, one byte in a later chunk
  const std::vector<std::string> changes = {flipped, big + "more", big.substr(0, 250'000),
                                            ""};
  for (const std::string& change : changes) {
    WriteRaw("big.bin", big);
    auto connector = Make(false);
    auto scan = connector->Scan({}, {});
    ASSERT_TRUE(scan.ok()) << scan.status();
    const v1::Item item = *scan->items["big.bin"].item;
    ASSERT_GT(engine::FindField(item, "content")->content().chunks_size(), 1);
    WriteRaw("big.bin", change);
    // Whatever reaches the sink before the change is found is the scanned bytes.
    size_t offset = 0;
    absl::Status read = connector->ReadContent(
        item, "content", Part(item, 0, Chunks(item)),
        [&](const v1::ChunkRef& ref, std::string_view data) {
          EXPECT_EQ(ref.size(), data.size());
          EXPECT_TRUE(data == std::string_view(big).substr(offset, ref.size()));
          offset += ref.size();
          return absl::OkStatus();
        });
    EXPECT_TRUE(absl::IsFailedPrecondition(read)) << change.size() << ": " << read;
  }
}

TEST_P(FilesConnectorTest, BatchWritesAndChangeSinceScanIsAborted) {
  WriteRaw("a.txt", "version one");
  auto connector = Make(false);
  auto scan = connector->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  const LocalItem ok = scan->items["ok.txt"];
  const LocalItem a = scan->items["a.txt"];
  MapChunks chunks;
  for (const char* id : {"ok.txt", "a.txt"}) {
    ASSERT_TRUE(
        connector
            ->ReadContent(*scan->items[id].item, "content",
                          Part(*scan->items[id].item, 0, Chunks(*scan->items[id].item)),
                          [&](const v1::ChunkRef& ref, std::string_view data) {
                            chunks.chunks[ref.id()] = std::string(data);
                            return absl::OkStatus();
                          })
            .ok());
  }
  // The user edits a.txt between the scan and the apply.
  WriteRaw("a.txt", "edited meanwhile");
  v1::Item ok_as_a = *ok.item;  // a.txt would become "fine"
  ok_as_a.set_id("a.txt");
  v1::Item a_as_b = *a.item;
  a_as_b.set_id("b.txt");
  auto results = connector->ApplyBatch(
      {{"a.txt", a.stamp, &ok_as_a}, {"b.txt", "", &a_as_b}}, &chunks);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(absl::IsAborted(results[0].status())) << results[0].status();
  EXPECT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_EQ(ReadRaw("a.txt"), "edited meanwhile");
  EXPECT_EQ(ReadRaw("b.txt"), "version one");
  EXPECT_TRUE(
      absl::IsAborted(connector->Apply("a.txt", a.stamp, nullptr, nullptr).status()));
  EXPECT_TRUE(Exists("a.txt"));
}

// The in-memory file system only: faults and crashes.
class FilesConnectorMemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    ASSERT_TRUE(mem_.Mkdir("/sync").ok());
    ASSERT_TRUE(mem_.WriteFile("/sync/f.txt", "kept").ok());
    mem_.SyncAll();
    FilesOptions options;
    options.root = "/sync";
    options.case_insensitive = false;
    options.env = &env_;
    connector_ =
        std::make_unique<FilesConnector>(options, &hasher_, ChunkerSeed(hasher_));
    auto scan = connector_->Scan({}, {});
    ASSERT_TRUE(scan.ok()) << scan.status();
    scan_ = *std::move(scan);
  }

  MemFileSystem mem_;
  MemFsEnv env_{&mem_};
  seal::CollectionKey key_{seal::SecretKey::Random(), 1};
  seal::ContentHasher hasher_{key_};
  std::unique_ptr<FilesConnector> connector_;
  ScanResult scan_;
};

// A clock the test holds still or moves: the file system's and the connector's.
class StoppedClockEnv final : public Env {
 public:
  int64_t NowMs() override { return now_ms; }
  std::string RandomBytes(size_t n) override { return Env::Default()->RandomBytes(n); }
  int64_t now_ms = 1'790'000'000'000;
};

TEST(FilesConnectorStampTest, ASameSizeRewriteInTheSameClockTickIsSeen) {
  seal::Init();
  StoppedClockEnv clock;
  MemFileSystem mem([&] { return clock.now_ms * int64_t{1000000}; });
  MemFsEnv env(&mem, &clock);
  ASSERT_TRUE(mem.Mkdir("/sync").ok());
  ASSERT_TRUE(mem.WriteFile("/sync/f.txt", "one").ok());
  seal::CollectionKey key{seal::SecretKey::Random(), 1};
  seal::ContentHasher hasher{key};
  FilesOptions options;
  options.root = "/sync";
  options.case_insensitive = false;
  options.env = &env;
  FilesConnector connector(options, &hasher, ChunkerSeed(hasher));

  auto first = connector.Scan({}, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const LocalItem one = first->items.at("f.txt");
  EXPECT_EQ(one.stamp.back(), kRacyMark);
  // Same size, same inode, and the clock has not ticked: only the bytes differ.
  ASSERT_TRUE(mem.WriteFile("/sync/f.txt", "two").ok());
  std::map<std::string, ItemPtr> synced = {{"f.txt", one.item}};
  std::map<std::string, std::string> stamps = {{"f.txt", one.stamp}};
  auto second = connector.Scan(synced, stamps);
  ASSERT_TRUE(second.ok()) << second.status();
  const LocalItem two = second->items.at("f.txt");
  EXPECT_EQ(second->bytes_read, 3u);
  EXPECT_NE(engine::FindField(*two.item, "content")->DebugString(),
            engine::FindField(*one.item, "content")->DebugString());

  // Once the file has aged, its stamp is trusted and it is not read again.
  clock.now_ms += kRacyWindowMs + 1;
  synced["f.txt"] = two.item;
  stamps["f.txt"] = two.stamp;
  auto third = connector.Scan(synced, stamps);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->bytes_read, 3u);
  EXPECT_NE(third->items.at("f.txt").stamp.back(), kRacyMark);
  stamps["f.txt"] = third->items.at("f.txt").stamp;
  auto fourth = connector.Scan(synced, stamps);
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(fourth->bytes_read, 0u);
  EXPECT_EQ(fourth->items.at("f.txt").item, two.item);
}

TEST_F(FilesConnectorMemTest, DiskFullLeavesTheTargetAsItWas) {
  const LocalItem f = scan_.items["f.txt"];
  MapChunks chunks;
  const std::string data = Noise(100'000, 3);
  v1::Item item;
  item.set_id("f.txt");
  engine::SetBytesField(&item, "type", "file");
  engine::SetBytesField(&item, "mode", "420");
  v1::Field content;
  content.set_name("content");
  v1::ChunkRef* ref = content.mutable_content()->add_chunks();
  ref->set_id(hasher_.ChunkId(data));
  ref->set_size(static_cast<uint32_t>(data.size()));
  content.mutable_content()->set_size(data.size());
  engine::SetField(&item, std::move(content));
  chunks.chunks[ref->id()] = data;

  mem_.InjectFault({.op = FsOp::kWrite,
                    .path_prefix = "/sync/f.txt",
                    .status = absl::ResourceExhaustedError("No space left on device")});
  auto failed = connector_->Apply("f.txt", f.stamp, &item, &chunks);
  EXPECT_TRUE(absl::IsResourceExhausted(failed.status())) << failed.status();
  EXPECT_EQ(failed.status().message(), "write /sync/f.txt: No space left on device");
  EXPECT_EQ(*mem_.ReadFile("/sync/f.txt"), "kept");
  EXPECT_EQ(mem_.List("/sync")->size(), 1u);  // no temporary file left

  auto written = connector_->Apply("f.txt", f.stamp, &item, &chunks);
  ASSERT_TRUE(written.ok()) << written.status();
  mem_.Crash();  // Apply made it durable
  EXPECT_EQ(*mem_.ReadFile("/sync/f.txt"), data);
}

// A batch whose every write failed may still have made parent directories on the way:
// it flushes them before it reports, so no later operation reported done rests on a
// directory a crash would take away.
TEST_F(FilesConnectorMemTest, ABatchFlushesTheDirectoriesItMadeEvenWhenItsWritesFail) {
  v1::Item dir = Dir("made/new");
  // Expected to exist as scanned (a stamp of f.txt's): it does not, so the write is
  // refused, after its parents were made.
  v1::Item file = Dir("parents/of/f.txt");
  engine::SetBytesField(&file, "type", "file");
  v1::Field content;
  content.set_name("content");
  content.mutable_content();  // empty: refused before anything is read
  engine::SetField(&file, std::move(content));
  auto results = connector_->ApplyBatch(
      {{"parents/of/f.txt", scan_.items["f.txt"].stamp, &file}}, nullptr);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  mem_.Crash();
  EXPECT_TRUE(mem_.Stat("/sync/parents/of")->has_value());

  // Directories made in a batch are durable once it reports them.
  FilesOptions options;
  options.root = "/sync";
  options.case_insensitive = false;
  options.env = &env_;
  FilesConnector again(options, &hasher_, ChunkerSeed(hasher_));
  ASSERT_TRUE(again.Scan({}, {}).ok());
  results = again.ApplyBatch({{"made/new", "", &dir}}, nullptr);
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  mem_.Crash();
  EXPECT_TRUE(mem_.Stat("/sync/made/new")->has_value());

  // So are links, with the parents made for them, in a batch of links only: they are
  // not flushed each on its own, the batch's one flush covers them.
  FilesConnector third(options, &hasher_, ChunkerSeed(hasher_));
  ASSERT_TRUE(third.Scan({}, {}).ok());
  v1::Item link = Link("links/deep/l", "elsewhere");
  v1::Item other = Link("links/m", "../x");
  results = third.ApplyBatch({{link.id(), "", &link}, {other.id(), "", &other}}, nullptr);
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  ASSERT_TRUE(results[1].ok()) << results[1].status();
  mem_.Crash();
  EXPECT_TRUE(mem_.Stat("/sync/links/deep/l")->has_value());
  EXPECT_TRUE(mem_.Stat("/sync/links/m")->has_value());
}

// When the batch's flush fails, nothing in the batch is reported done: a link made
// under a directory the batch made unflushed is not durable either.
TEST_F(FilesConnectorMemTest, AFailedBatchFlushFailsEveryItemOfTheBatch) {
  v1::Item dir = Dir("d");
  v1::Item link = Link("d/l", "elsewhere");
  // A batch's directories and links are flushed by its one SyncAll, which fails.
  mem_.InjectFault({.op = FsOp::kSync, .path_prefix = "/sync", .skip = 0});
  auto results = connector_->ApplyBatch({{"d", "", &dir}, {"d/l", "", &link}}, nullptr);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_FALSE(results[1].ok()) << "reported done, though d may vanish in a crash";
}

// A directory removed, replaced or chmod'ed since it was scanned is a local change: a
// remote write of it is refused as ABORTED rather than undoing it.
TEST_F(FilesConnectorMemTest, ADirectoryChangedSinceTheScanIsNotWrittenOver) {
  ASSERT_TRUE(mem_.Mkdir("/sync/d").ok());
  auto scan = connector_->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  const std::string stamp = scan->items.at("d").stamp;
  v1::Item dir = *scan->items.at("d").item;
  engine::SetBytesField(&dir, "mode", "448");  // 0700, their change
  ASSERT_TRUE(mem_.RemoveAll("/sync/d").ok());
  auto gone = connector_->Apply("d", stamp, &dir, nullptr);
  EXPECT_TRUE(absl::IsAborted(gone.status())) << gone.status();
  EXPECT_FALSE(mem_.Stat("/sync/d")->has_value());
  ASSERT_TRUE(mem_.Mkdir("/sync/d").ok());  // another directory now
  auto other = connector_->Apply("d", stamp, &dir, nullptr);
  EXPECT_TRUE(absl::IsAborted(other.status())) << other.status();
}

// ScanUnchanged reads nothing: it hands back the synced items with their stamps, but a
// stamp a scan would not trust (racy) makes it scan for real.
TEST_F(FilesConnectorMemTest, ScanUnchangedTrustsOnlyWhatAScanWould) {
  std::map<std::string, ItemPtr> synced;
  std::map<std::string, std::string> stamps;
  for (const auto& [id, local] : scan_.items) {
    synced[id] = local.item;
    stamps[id] = local.stamp;
  }
  ASSERT_TRUE(mem_.WriteFile("/sync/new.txt", "not scanned").ok());
  if (!stamps["f.txt"].empty() && stamps["f.txt"].back() == kRacyMark) {
    stamps["f.txt"].pop_back();
  }
  auto trusted = connector_->ScanUnchanged(synced, stamps);
  ASSERT_TRUE(trusted.ok()) << trusted.status();
  EXPECT_EQ(trusted->items.size(), 1u);  // new.txt was not looked for
  EXPECT_EQ(trusted->items.at("f.txt").stamp, stamps["f.txt"]);
  EXPECT_EQ(trusted->bytes_read, 0u);

  stamps["f.txt"] += kRacyMark;
  auto scanned = connector_->ScanUnchanged(synced, stamps);
  ASSERT_TRUE(scanned.ok()) << scanned.status();
  EXPECT_TRUE(scanned->items.contains("new.txt"));  // a real scan
}

TEST_P(FilesConnectorTest, ALinkOrFileReplacesAnEmptyDirectoryOnly) {
  auto connector = Make(false);
  v1::Item dir = Dir("d");
  auto made = connector->Apply("d", "", &dir, nullptr);
  ASSERT_TRUE(made.ok()) << made.status();
  v1::Item link = Link("d", "/elsewhere");
  auto linked = connector->Apply("d", *made, &link, nullptr);
  ASSERT_TRUE(linked.ok()) << linked.status();
  ASSERT_TRUE(StatRaw("d").has_value());
  EXPECT_EQ(StatRaw("d")->type, FileStat::kSymlink);

  // A directory that is not empty stays, and so does what is in it.
  v1::Item full = Dir("full");
  auto full_made = connector->Apply("full", "", &full, nullptr);
  ASSERT_TRUE(full_made.ok()) << full_made.status();
  WriteRaw("full/kept.txt", "kept");
  auto stamp = connector->Scan({}, {});
  ASSERT_TRUE(stamp.ok()) << stamp.status();
  link.set_id("full");
  auto refused = connector->Apply("full", stamp->items.at("full").stamp, &link, nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(IsDir("full"));
  EXPECT_EQ(ReadRaw("full/kept.txt"), "kept");
}

}  // namespace
}  // namespace ferry::files
