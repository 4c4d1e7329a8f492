// The engine's per-sync costs that grow with the number of items: loading the shadow,
// scanning an unchanged tree, and diffing records against the shadow.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "src/connectors/files/files_connector.h"
#include "src/connectors/pim/record.h"
#include "src/core/strings.h"
#include "src/engine/items.h"
#include "src/engine/shadow_store.h"
#include "src/seal/seal.h"

namespace {

namespace fs = std::filesystem;
using ferry::ItemPtr;
using ferry::StrCat;
using ferry::v1::Item;

// A fresh directory, removed at exit.
fs::path TempDir() {
  char pattern[] = "/tmp/ferry-engine-bench-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) std::abort();
  return pattern;
}

// A file's item as the files connector makes it: type, mode, mtime, one chunk.
Item FileItem(int i) {
  Item item;
  item.set_id(StrCat("dir", i / 1000, "/file", i, ".txt"));
  ferry::engine::SetBytesField(&item, "type", "file");
  ferry::engine::SetBytesField(&item, "mode", "420");
  ferry::engine::SetBytesField(&item, "mtime", "1700000000000000000");
  ferry::v1::Field content;
  content.set_name("content");
  ferry::v1::ChunkRef* ref = content.mutable_content()->add_chunks();
  ref->set_id(std::string(32, static_cast<char>(i)));
  ref->set_size(1234);
  content.mutable_content()->set_size(1234);
  ferry::engine::SetField(&item, std::move(content));
  return item;
}

// Loading every synced item and stamp, as each sync starts.
void BM_ShadowLoad(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  fs::path dir = TempDir();
  auto shadow = ferry::engine::ShadowStore::Open((dir / "shadow.db").string());
  if (!shadow.ok()) std::abort();
  ferry::engine::ShadowUpdate update;
  for (int i = 0; i < n; ++i) {
    update.put.emplace_back(FileItem(i),
                            StrCat("file:1234:1700000000000000000:", i, ":420"));
  }
  if (!(*shadow)->Commit(update).ok()) std::abort();
  for (auto _ : state) {
    ferry::engine::ItemMap items;
    ferry::engine::StampMap stamps;
    if (!(*shadow)->Load(&items, &stamps).ok()) std::abort();
    benchmark::DoNotOptimize(items);
  }
  state.SetItemsProcessed(state.iterations() * n);
  shadow->reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_ShadowLoad)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// A scan of a tree where nothing changed since the last sync: a walk with one lstat
// per entry, stamps compared, nothing read (files aged past the racy window).
void BM_ScanUnchanged(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  fs::path dir = TempDir();
  const auto hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (int i = 0; i < n; ++i) {
    fs::path file = dir / StrCat("dir", i / 1000) / StrCat("file", i, ".txt");
    if (i % 1000 == 0) fs::create_directories(file.parent_path());
    std::ofstream(file) << "content of file " << i << "\n";
    fs::last_write_time(file, hour_ago);
  }
  ferry::seal::Init();
  ferry::seal::CollectionKey key{ferry::seal::SecretKey::Random(), 1};
  ferry::seal::ContentHasher hasher(key);
  ferry::files::FilesOptions options;
  options.root = dir.string();
  ferry::files::FilesConnector connector(options, &hasher,
                                         ferry::files::ChunkerSeed(hasher));
  auto first = connector.Scan({}, {});
  if (!first.ok()) std::abort();
  std::map<std::string, ItemPtr> synced;
  std::map<std::string, std::string> stamps;
  for (const auto& [id, local] : first->items) {
    synced[id] = local.item;
    stamps[id] = local.stamp;
  }
  for (auto _ : state) {
    auto scan = connector.Scan(synced, stamps);
    if (!scan.ok() || scan->bytes_read != 0) std::abort();  // nothing may be read
    benchmark::DoNotOptimize(scan);
  }
  state.SetItemsProcessed(state.iterations() * n);
  fs::remove_all(dir);
}
BENCHMARK(BM_ScanUnchanged)->Arg(10'000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The differ on 10,000 contacts, 1% of them edited in one field: every local item
// compared with its synced version (SameItem), a patch made for each changed one.
void BM_DiffRecords(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::map<std::string, ItemPtr> synced, local;
  for (int i = 0; i < n; ++i) {
    std::string text =
        StrCat("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:contact-", i, "\r\nFN:Person ", i,
               "\r\nN:", i, ";Person;;;\r\nEMAIL;TYPE=home:person", i,
               "@example.org\r\nTEL;TYPE=cell:+1 555 01", i % 100,
               "\r\nNOTE:met at the conference\\, year ", 2000 + i % 25,
               "\r\nREV:20250101T120000Z\r\nEND:VCARD\r\n");
    auto record = ferry::pim::ParseRecord(ferry::pim::RecordKind::kContact, text);
    if (!record.ok()) std::abort();
    Item item;
    item.set_id(StrCat("contact-", i));
    for (const auto& [name, value] : record->fields) {
      ferry::engine::SetBytesField(&item, name, value);
    }
    const std::string id = item.id();
    auto base = std::make_shared<const Item>(item);
    synced[id] = base;
    if (i % 100 == 0) {
      ferry::engine::SetBytesField(&item, "VCARD/NOTE", "NOTE:edited");
      local[id] = std::make_shared<const Item>(std::move(item));
    } else {
      local[id] = base;  // unchanged items share the synced one, as in a scan
    }
  }
  for (auto _ : state) {
    size_t patches = 0;
    for (const auto& [id, item] : local) {
      const ItemPtr& base = synced.at(id);
      if (base == item || ferry::engine::SameItem(*base, *item)) continue;
      ferry::v1::Op op = ferry::engine::MakePatch(*base, *item);
      patches += op.ByteSizeLong() > 0;
    }
    if (patches != static_cast<size_t>((n + 99) / 100)) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_DiffRecords)->Arg(10'000)->Unit(benchmark::kMicrosecond);

}  // namespace
