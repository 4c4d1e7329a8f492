#include "src/engine/transfer.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <mutex>
#include <set>
#include <thread>

#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/engine/items.h"

namespace ferry::engine {
namespace {

// Delta chunks whose base is itself a delta, followed at most this deep.
constexpr int kDeltaDepthMax = 8;
// Sealed bytes per PutChunks call; a call holds at most this much in memory.
constexpr size_t kUploadBatchBytesMax = 4u << 20;
// A content is read and sealed in parts of about this many bytes, each by one worker.
constexpr uint64_t kUploadPartBytes = 4u << 20;

// The ids the store lacks among `ids`, asked in bounded batches.
absl::StatusOr<std::set<std::string>> MissingChunks(const TransferContext& c,
                                                    const std::vector<std::string>& ids) {
  std::set<std::string> missing;
  for (size_t start = 0; start < ids.size(); start += kChunkIdsPerRequestMax) {
    size_t end = std::min(ids.size(), start + kChunkIdsPerRequestMax);
    std::vector<std::string> batch(ids.begin() + start, ids.begin() + end);
    FERRY_ASSIGN_OR_RETURN(std::vector<bool> present,
                           c.client->HasChunks(c.collection_id, batch));
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!present[i]) missing.insert(batch[i]);
    }
  }
  return missing;
}

}  // namespace

std::map<std::string, std::string> DeltaBases(const ItemMap& synced,
                                              const std::vector<v1::Op>& ops) {
  std::map<std::string, std::string> bases;
  for (const v1::Op& op : ops) {
    if (!op.has_patch()) continue;
    auto item = synced.find(op.patch().id());
    if (item == synced.end()) continue;
    for (const v1::ContentPatch& patch : op.patch().splice()) {
      const v1::Field* field = FindField(*item->second, patch.field());
      if (field == nullptr || !field->has_content()) continue;
      const v1::ContentRef& old = field->content();
      for (const v1::Splice& splice : patch.splices()) {
        if (splice.remove() == 0) continue;
        if (splice.index() + splice.remove() > static_cast<uint32_t>(old.chunks_size())) {
          continue;
        }
        // Byte ranges of the removed and the inserted chunks, from the start of the
        // splice. Each new chunk takes the old one it overlaps most, the two lists lined
        // up at their starts (edits in place) or at their ends (bytes inserted or
        // removed before): chunk boundaries move when content does, so lining up by
        // index would pair wrong chunks after the first boundary that moved.
        std::vector<uint64_t> old_start{0};
        for (uint32_t i = 0; i < splice.remove(); ++i) {
          old_start.push_back(old_start.back() +
                              old.chunks(static_cast<int>(splice.index() + i)).size());
        }
        std::vector<uint64_t> new_start{0};
        for (const v1::ChunkRef& ref : splice.insert()) {
          new_start.push_back(new_start.back() + ref.size());
        }
        // Both totals as signed: the shift that lines the ends up.
        int64_t end_shift = static_cast<int64_t>(old_start.back()) -
                            static_cast<int64_t>(new_start.back());
        for (int k = 0; k < splice.insert_size(); ++k) {
          uint64_t best = 0;
          int best_index = -1;
          for (int64_t shift : {int64_t{0}, end_shift}) {
            int64_t a = static_cast<int64_t>(new_start[k]) + shift;
            int64_t b = static_cast<int64_t>(new_start[k + 1]) + shift;
            // The old chunks [a, b) overlaps, found by binary search.
            auto first = std::upper_bound(old_start.begin(), old_start.end(),
                                          static_cast<uint64_t>(std::max<int64_t>(a, 0)));
            for (size_t i = first == old_start.begin() ? 0
                                                       : first - old_start.begin() - 1;
                 i + 1 < old_start.size() && static_cast<int64_t>(old_start[i]) < b;
                 ++i) {
              int64_t lo = std::max<int64_t>(a, static_cast<int64_t>(old_start[i]));
              int64_t hi = std::min<int64_t>(b, static_cast<int64_t>(old_start[i + 1]));
              if (hi > lo && static_cast<uint64_t>(hi - lo) > best) {
                best = static_cast<uint64_t>(hi - lo);
                best_index = static_cast<int>(splice.index() + i);
              }
            }
          }
          if (best_index >= 0) {
            bases.emplace(splice.insert(k).id(), old.chunks(best_index).id());
          }
        }
      }
    }
  }
  return bases;
}

namespace {

absl::Status OtherChunksAnswered() {
  return absl::DataLossError("the store answered for other chunks than asked");
}

// Seals a chunk for upload: as a delta when its base is in the cache and that is
// smaller, else whole. `plain` hashes to `id` (Connector::ReadContent checked it).
// Every uploaded chunk's signatures go into the cache for its next edit, and the
// plaintext of an edited one (one with a base).
absl::StatusOr<seal::SealedChunk> SealForUpload(
    const TransferContext& c, const std::map<std::string, std::string>& delta_base,
    const std::string& id, std::string_view plain) {
  // The contract the sealing below relies on, checked where checks are cheap enough.
  assert(c.hasher->ChunkId(plain) == id);
  absl::StatusOr<seal::SealedChunk> sealed = absl::NotFoundError("no base");
  auto base = delta_base.find(id);
  if (base != delta_base.end()) {
    std::optional<std::string> base_plain = c.cache->Get(base->second);
    if (base_plain.has_value()) {
      sealed = seal::SealChunkDelta(*c.key, *c.hasher, c.collection_id, plain,
                                    base->second, *base_plain);
    } else if (std::optional<std::string> signatures =
                   c.cache->GetSignatures(base->second)) {
      // The base's plaintext is gone (an edit in place of a file synced long ago):
      // copies of its blocks, found by their signatures, and the new bytes.
      sealed = seal::SealChunkBlockDelta(*c.key, *c.hasher, c.collection_id, plain,
                                         base->second, *signatures);
    }
  }
  if (!sealed.ok()) sealed = seal::SealChunkWithId(*c.key, c.collection_id, id, plain);
  if (sealed.ok() && c.cache != nullptr) {
    // Best effort, as in Open; and as there, plaintext only for an edited chunk.
    if (base != delta_base.end()) (void)c.cache->Put(sealed->id, plain);
    (void)c.cache->PutSignatures(sealed->id, c.hasher->BlockSignatures(plain));
  }
  return sealed;
}

}  // namespace

absl::Status UploadMissingChunks(const TransferContext& c, const std::vector<v1::Op>& ops,
                                 const std::map<std::string, LocalItem>& local) {
  std::vector<std::string> ids;
  for (const v1::Op& op : ops) seal::AppendReferencedChunkIds(op, &ids);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  FERRY_ASSIGN_OR_RETURN(std::set<std::string> missing, MissingChunks(c, ids));
  if (missing.empty()) return absl::OkStatus();

  // The items holding missing chunks are read, sealed and uploaded on every core, a
  // large content in parts (so that one large file does not leave the other cores
  // idle); each chunk is claimed by the first worker that reaches it.
  struct Work {
    const LocalItem* item;
    std::string field;
    ContentPart part;
  };
  std::vector<Work> work;
  std::set<std::string> queued;  // item id + '\0' + field
  for (const v1::Op& op : ops) {
    auto it = local.find(OpTarget(op));
    if (it == local.end()) continue;
    for (const v1::Field& field : it->second.item->fields()) {
      if (!field.has_content()) continue;
      if (!queued.insert(it->first + '\0' + field.name()).second) continue;
      const v1::ContentRef& content = field.content();
      ContentPart part;
      uint64_t bytes = 0;  // in `part`
      bool wanted = false;
      for (int i = 0; i < content.chunks_size(); ++i) {
        wanted |= missing.contains(content.chunks(i).id());
        bytes += content.chunks(i).size();
        if (bytes >= kUploadPartBytes || i + 1 == content.chunks_size()) {
          part.end = i + 1;
          if (wanted) work.push_back({&it->second, field.name(), part});
          part = {.begin = i + 1, .end = i + 1, .offset = part.offset + bytes};
          bytes = 0;
          wanted = false;
        }
      }
    }
  }
  std::map<std::string, std::string> delta_base;
  if (c.cache != nullptr && c.synced != nullptr) delta_base = DeltaBases(*c.synced, ops);
  std::mutex mu;  // guards missing, first_error and the report
  absl::Status first_error;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    std::vector<std::pair<std::string, std::string>> batch;
    size_t batch_bytes = 0;
    auto flush = [&]() -> absl::Status {
      if (batch.empty()) return absl::OkStatus();
      FERRY_RETURN_IF_ERROR(c.client->PutChunks(c.collection_id, batch).status());
      std::lock_guard lock(mu);
      c.report->uploaded_chunks += batch.size();
      c.report->pushed_bytes += batch_bytes;
      batch.clear();
      batch_bytes = 0;
      return absl::OkStatus();
    };
    auto failed = [&] {
      std::lock_guard lock(mu);
      return !first_error.ok();
    };
    absl::Status status;
    for (size_t i = next++; status.ok() && i < work.size() && !failed(); i = next++) {
      const v1::Item& item = *work[i].item->item;
      status = c.connector->ReadContent(
          item, work[i].field, work[i].part,
          [&](const v1::ChunkRef& ref, std::string_view plain) {
            {
              std::lock_guard lock(mu);
              if (missing.erase(ref.id()) == 0) return absl::OkStatus();  // claimed
            }
            FERRY_ASSIGN_OR_RETURN(seal::SealedChunk sealed,
                                   SealForUpload(c, delta_base, ref.id(), plain));
            if (sealed.id != ref.id()) {
              return absl::FailedPreconditionError(
                  StrCat(item.id(), " changed while it was being uploaded"));
            }
            batch_bytes += sealed.data.size();
            batch.emplace_back(std::move(sealed.id), std::move(sealed.data));
            if (batch_bytes >= kUploadBatchBytesMax || batch.size() >= kChunksPerPutMax) {
              return flush();
            }
            return absl::OkStatus();
          });
    }
    if (status.ok()) status = flush();
    if (!status.ok()) {
      std::lock_guard lock(mu);
      if (first_error.ok()) first_error = status;
    }
  };
  // Twice as many workers as cores: while one waits for the store to make its batch
  // durable, another reads and seals.
  size_t threads = std::min<size_t>(
      work.size(), 2 * std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (std::thread& t : pool) t.join();
  FERRY_RETURN_IF_ERROR(first_error);
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        StrCat(missing.size(), " chunks could not be read from local data"));
  }
  return absl::OkStatus();
}

EngineChunkSource::EngineChunkSource(const TransferContext& context,
                                     const std::map<std::string, LocalItem>& local)
    : context_(context), local_(&local) {}

// Indexed on first use: a sync with nothing to write (the common case) never pays
// for a map of every chunk of every local item.
std::map<std::string, EngineChunkSource::Place>& EngineChunkSource::Places() const {
  if (!indexed_) {
    indexed_ = true;
    for (const auto& [id, entry] : *local_) {
      for (const v1::Field& field : entry.item->fields()) {
        if (!field.has_content()) continue;
        uint64_t offset = 0;
        for (const v1::ChunkRef& ref : field.content().chunks()) {
          places_.try_emplace(ref.id(), Place{id, field.name(), offset, ref.size()});
          offset += ref.size();
        }
      }
    }
  }
  return places_;
}

std::optional<std::string> EngineChunkSource::ReadLocal(const v1::ChunkRef& ref) {
  auto it = Places().find(ref.id());
  if (it == places_.end()) return std::nullopt;
  const Place& place = it->second;
  absl::StatusOr<std::string> data =
      context_.connector->ReadRange(place.item_id, place.field, place.offset, ref.size());
  // Local data may have changed since the scan: only bytes that hash to the id count.
  if (!data.ok() || context_.hasher->ChunkId(*data) != ref.id()) {
    places_.erase(it);
    return std::nullopt;
  }
  return *std::move(data);
}

absl::StatusOr<std::string> EngineChunkSource::ResolveBase(const std::string& id,
                                                           int depth) {
  auto place = Places().find(id);
  if (place != places_.end()) {
    v1::ChunkRef ref;
    ref.set_id(id);
    ref.set_size(place->second.size);
    std::optional<std::string> local = ReadLocal(ref);
    if (local.has_value()) return *std::move(local);
  }
  if (context_.cache != nullptr) {
    std::optional<std::string> cached = context_.cache->Get(id);
    if (cached.has_value() && context_.hasher->ChunkId(*cached) == id) return *cached;
  }
  if (depth >= kDeltaDepthMax) {
    return absl::DataLossError("a chain of delta chunks is too long");
  }
  v1::ChunkRef ref;
  ref.set_id(id);  // size unknown: Download checks sizes only when they are set
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> base, Download({ref}, depth + 1));
  return std::move(base[0]);
}

absl::StatusOr<std::vector<std::string>> EngineChunkSource::Download(
    const std::vector<v1::ChunkRef>& refs, int depth) {
  std::vector<std::string> ids;
  for (const v1::ChunkRef& ref : refs) ids.push_back(ref.id());
  FERRY_ASSIGN_OR_RETURN(auto sealed,
                         context_.client->GetChunks(context_.collection_id, ids));
  return Open(refs, std::move(sealed), depth);
}

absl::StatusOr<std::string> EngineChunkSource::OpenOne(
    const TransferContext& context, const v1::ChunkRef& ref, std::string_view sealed,
    std::optional<std::string_view> base) {
  FERRY_ASSIGN_OR_RETURN(std::string plain,
                         seal::OpenChunk(*context.key, *context.hasher,
                                         context.collection_id, ref.id(), sealed, base));
  if (ref.size() != 0 && plain.size() != ref.size()) {
    return absl::DataLossError("a downloaded chunk has another size than its reference");
  }
  if (context.cache != nullptr) {
    // Best effort: a chunk missing from the cache costs bandwidth later, nothing else.
    // Signatures of every chunk, which give a block delta for its next edit; the
    // plaintext (a smaller delta) only of an edited chunk, which is likely to be
    // edited again: caching all of a large sync's chunks doubled its writes.
    if (base.has_value()) (void)context.cache->Put(ref.id(), plain);
    (void)context.cache->PutSignatures(ref.id(), context.hasher->BlockSignatures(plain));
  }
  return plain;
}

absl::StatusOr<std::string> EngineChunkSource::OpenWithBase(const v1::ChunkRef& ref,
                                                            std::string_view sealed,
                                                            int depth) {
  std::optional<std::string> base_id = seal::ChunkDeltaBase(sealed);
  std::optional<std::string> base;
  if (base_id.has_value()) {
    FERRY_ASSIGN_OR_RETURN(base, ResolveBase(*base_id, depth));
  }
  return OpenOne(context_, ref, sealed, base);
}

absl::StatusOr<std::vector<std::string>> EngineChunkSource::Open(
    const std::vector<v1::ChunkRef>& refs, SealedChunks sealed, int depth) {
  if (sealed.size() != refs.size()) {
    return OtherChunksAnswered();
  }
  std::vector<std::string> out(refs.size());
  for (size_t j = 0; j < sealed.size(); ++j) {
    context_.report->pulled_bytes += sealed[j].second.size();
    FERRY_ASSIGN_OR_RETURN(out[j], OpenWithBase(refs[j], sealed[j].second, depth));
    std::string().swap(sealed[j].second);
  }
  context_.report->downloaded_chunks += sealed.size();
  return out;
}

std::vector<v1::ChunkRef> EngineChunkSource::Wanted(
    const std::vector<v1::ChunkRef>& refs) const {
  std::vector<v1::ChunkRef> wanted;
  std::set<std::string> seen;
  for (const v1::ChunkRef& ref : refs) {
    if (Places().contains(ref.id()) || !seen.insert(ref.id()).second) continue;
    wanted.push_back(ref);
  }
  return wanted;
}

absl::StatusOr<EngineChunkSource::Fetched> EngineChunkSource::FetchAhead(
    const TransferContext& context, const std::vector<v1::ChunkRef>& wanted) {
  Fetched out;
  out.chunks.reserve(wanted.size());
  for (size_t start = 0; start < wanted.size(); start += kChunkIdsPerRequestMax) {
    size_t end = std::min(wanted.size(), start + kChunkIdsPerRequestMax);
    std::vector<std::string> ids;
    for (size_t i = start; i < end; ++i) ids.push_back(wanted[i].id());
    FERRY_ASSIGN_OR_RETURN(SealedChunks part,
                           context.client->GetChunks(context.collection_id, ids));
    if (part.size() != ids.size()) {
      return OtherChunksAnswered();
    }
    for (auto& chunk : part) out.chunks.push_back(std::move(chunk));
  }
  out.opened.assign(out.chunks.size(), false);
  for (size_t i = 0; i < out.chunks.size(); ++i) {
    std::string& data = out.chunks[i].second;
    out.sealed_bytes += data.size();
    if (seal::ChunkDeltaBase(data).has_value()) continue;  // opened by Install
    FERRY_ASSIGN_OR_RETURN(std::string plain, OpenOne(context, wanted[i], data, {}));
    data = std::move(plain);
    out.opened[i] = true;
  }
  return out;
}

absl::Status EngineChunkSource::Install(const std::vector<v1::ChunkRef>& wanted,
                                        Fetched fetched) {
  prefetched_.clear();
  if (fetched.chunks.size() != wanted.size()) {
    return OtherChunksAnswered();
  }
  context_.report->pulled_bytes += fetched.sealed_bytes;
  context_.report->downloaded_chunks += fetched.chunks.size();
  for (size_t i = 0; i < wanted.size(); ++i) {
    std::string& data = fetched.chunks[i].second;
    if (!fetched.opened[i]) {  // a delta: its base may be in local data
      FERRY_ASSIGN_OR_RETURN(data, OpenWithBase(wanted[i], data, 0));
    }
    prefetched_[wanted[i].id()] = std::move(data);
  }
  return absl::OkStatus();
}

absl::Status EngineChunkSource::Prefetch(const std::vector<v1::ChunkRef>& refs) {
  std::vector<v1::ChunkRef> wanted = Wanted(refs);
  FERRY_ASSIGN_OR_RETURN(Fetched fetched, FetchAhead(context_, wanted));
  return Install(wanted, std::move(fetched));
}

absl::StatusOr<std::vector<std::string>> EngineChunkSource::Fetch(
    const std::vector<v1::ChunkRef>& refs) {
  if (refs.size() > kChunkIdsPerRequestMax) {
    return absl::InvalidArgumentError("too many chunks in one fetch");
  }
  std::vector<std::string> out(refs.size());
  std::vector<v1::ChunkRef> download;
  std::vector<size_t> download_at;
  for (size_t i = 0; i < refs.size(); ++i) {
    auto cached = prefetched_.find(refs[i].id());
    if (cached != prefetched_.end()) {
      out[i] = cached->second;
      continue;
    }
    std::optional<std::string> local = ReadLocal(refs[i]);
    if (local.has_value()) {
      out[i] = *std::move(local);
      context_.report->local_chunks += 1;
    } else {
      download.push_back(refs[i]);
      download_at.push_back(i);
    }
  }
  if (download.empty()) return out;
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> data, Download(download));
  for (size_t j = 0; j < data.size(); ++j) out[download_at[j]] = std::move(data[j]);
  return out;
}

}  // namespace ferry::engine
