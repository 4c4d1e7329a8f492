#include "src/server/store_service.h"

#include <map>
#include <optional>

#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/rpc/status.h"
#include "src/seal/seal.h"

namespace ferry::server {
namespace {

// A Watch stream re-checks cancellation and shutdown at least this often.
constexpr std::chrono::milliseconds kWatchPollInterval{500};
// ... and whether its device was revoked, this often (each check may read the device).
constexpr int64_t kWatchAuthIntervalMs = 5000;
// Sealed bytes held before a batch of chunks is stored.
constexpr size_t kChunkBatchBytesMax = 8u << 20;

absl::Status CheckChunkIds(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  if (static_cast<size_t>(ids.size()) > kChunkIdsPerRequestMax) {
    return absl::InvalidArgumentError(
        StrCat("at most ", kChunkIdsPerRequestMax, " chunk ids per request"));
  }
  for (const std::string& id : ids) {
    if (id.size() != kChunkIdBytes) {
      return absl::InvalidArgumentError("a chunk id is 32 bytes");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::AppendResponse> StoreService::DoAppend(
    const grpc::ServerContext& context, const v1::AppendRequest& request) {
  FERRY_ASSIGN_OR_RETURN(DeviceRecord me, auth_->Authenticate(context));
  FERRY_RETURN_IF_ERROR(auth_->CheckAccess(me, request.collection_id()));
  v1::Envelope envelope;
  FERRY_ASSIGN_OR_RETURN(v1::EnvelopeHeader header,
                         seal::DecodeEnvelope(request.envelope(), &envelope));
  if (header.collection_id() != request.collection_id()) {
    return absl::InvalidArgumentError("envelope is sealed for another collection");
  }
  if (header.device_id() != me.device_id) {
    return absl::PermissionDeniedError("envelope names another device than the caller");
  }
  AppendRecord append;
  append.collection_id = request.collection_id();
  append.tx_id = header.tx_id();
  append.device_id = me.device_id;
  append.base_seq = header.base_seq();
  append.envelope = request.envelope();
  append.chunk_ids.assign(header.chunk_ids().begin(), header.chunk_ids().end());
  append.fencing_token = request.fencing_token();
  append.now_ms = clock_->NowMs();
  FERRY_ASSIGN_OR_RETURN(AppendResult result, backend_->Append(append));
  heads_->Publish(request.collection_id(), result.seq);
  v1::AppendResponse response;
  response.set_seq(result.seq);
  response.set_duplicate(result.duplicate);
  return response;
}

grpc::Status StoreService::Append(grpc::ServerContext* context,
                                  const v1::AppendRequest* request,
                                  v1::AppendResponse* response) {
  absl::StatusOr<v1::AppendResponse> result = DoAppend(*context, *request);
  if (result.ok()) *response = *std::move(result);
  return rpc::ToGrpc(result.status());
}

grpc::Status StoreService::Pull(grpc::ServerContext* context,
                                const v1::PullRequest* request,
                                v1::PullResponse* response) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::Status allowed = auth_->CheckAccess(*me, request->collection_id());
  if (!allowed.ok()) return rpc::ToGrpc(allowed);
  uint32_t limit = request->limit() == 0 || request->limit() > kPullEntriesMax
                       ? kPullEntriesMax
                       : request->limit();
  absl::StatusOr<PullResult> result = backend_->Pull(
      request->collection_id(), request->after_seq(), limit, kPullBytesMax);
  if (!result.ok()) return rpc::ToGrpc(result.status());
  for (LogEntry& entry : result->entries) {
    v1::LogEntry* out = response->add_entries();
    out->set_seq(entry.seq);
    out->set_envelope(std::move(entry.envelope));
  }
  response->set_head_seq(result->head_seq);
  response->set_more(result->more);
  return grpc::Status::OK;
}

grpc::Status StoreService::Head(grpc::ServerContext* context,
                                const v1::HeadRequest* request,
                                v1::HeadResponse* response) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::Status allowed = auth_->CheckAccess(*me, request->collection_id());
  if (!allowed.ok()) return rpc::ToGrpc(allowed);
  absl::StatusOr<uint64_t> head = backend_->Head(request->collection_id());
  if (head.ok()) response->set_head_seq(*head);
  return rpc::ToGrpc(head.status());
}

grpc::Status StoreService::HasChunks(grpc::ServerContext* context,
                                     const v1::HasChunksRequest* request,
                                     v1::HasChunksResponse* response) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::Status allowed = auth_->CheckAccess(*me, request->collection_id());
  if (allowed.ok()) allowed = CheckChunkIds(request->ids());
  if (!allowed.ok()) return rpc::ToGrpc(allowed);
  std::vector<std::string> ids(request->ids().begin(), request->ids().end());
  absl::StatusOr<std::vector<bool>> present =
      backend_->HasChunks(request->collection_id(), ids);
  if (!present.ok()) return rpc::ToGrpc(present.status());
  for (bool p : *present) response->add_present(p);
  return grpc::Status::OK;
}

// Chunks are stored in batches of one collection (bounded in bytes), so that one batch
// costs the backend two flushes, not two per chunk.
absl::Status StoreService::DoPutChunks(const grpc::ServerContext& context,
                                       const std::function<bool(v1::Chunk*)>& next,
                                       v1::PutChunksResponse* response) {
  FERRY_ASSIGN_OR_RETURN(DeviceRecord me, auth_->Authenticate(context));
  std::string collection;  // of the batch; every collection is authorized when first seen
  std::vector<std::pair<std::string, std::string>> batch;
  size_t batch_bytes = 0;
  size_t total = 0;
  auto flush = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    FERRY_ASSIGN_OR_RETURN(size_t stored, backend_->PutChunks(collection, batch));
    response->set_stored(response->stored() + static_cast<uint32_t>(stored));
    response->set_present(response->present() +
                          static_cast<uint32_t>(batch.size() - stored));
    batch.clear();
    batch_bytes = 0;
    return absl::OkStatus();
  };
  v1::Chunk chunk;
  while (next(&chunk)) {
    if (++total > kChunksPerPutMax) {
      return absl::InvalidArgumentError(
          StrCat("at most ", kChunksPerPutMax, " chunks per PutChunks"));
    }
    if (chunk.id().size() != kChunkIdBytes) {
      return absl::InvalidArgumentError("a chunk id is 32 bytes");
    }
    if (chunk.data().empty() || chunk.data().size() > kSealedChunkBytesMax) {
      return absl::InvalidArgumentError("sealed chunk size out of bounds");
    }
    if (chunk.collection_id() != collection) {
      FERRY_RETURN_IF_ERROR(flush());
      FERRY_RETURN_IF_ERROR(auth_->CheckAccess(me, chunk.collection_id()));
      collection = chunk.collection_id();
    }
    batch_bytes += chunk.data().size();
    batch.emplace_back(std::move(*chunk.mutable_id()), std::move(*chunk.mutable_data()));
    if (batch_bytes >= kChunkBatchBytesMax) FERRY_RETURN_IF_ERROR(flush());
  }
  return flush();
}

grpc::Status StoreService::PutChunks(grpc::ServerContext* context,
                                     grpc::ServerReader<v1::Chunk>* reader,
                                     v1::PutChunksResponse* response) {
  return rpc::ToGrpc(DoPutChunks(
      *context, [reader](v1::Chunk* chunk) { return reader->Read(chunk); }, response));
}

absl::Status StoreService::DoGetChunks(
    const grpc::ServerContext& context, const v1::GetChunksRequest& request,
    const std::function<bool(const v1::Chunk&)>& write) {
  FERRY_ASSIGN_OR_RETURN(DeviceRecord me, auth_->Authenticate(context));
  FERRY_RETURN_IF_ERROR(auth_->CheckAccess(me, request.collection_id()));
  FERRY_RETURN_IF_ERROR(CheckChunkIds(request.ids()));
  for (const std::string& id : request.ids()) {
    v1::Chunk chunk;
    FERRY_ASSIGN_OR_RETURN(*chunk.mutable_data(),
                           backend_->GetChunk(request.collection_id(), id));
    chunk.set_collection_id(request.collection_id());
    chunk.set_id(id);
    if (!write(chunk)) return absl::CancelledError("client went away");
  }
  return absl::OkStatus();
}

grpc::Status StoreService::GetChunks(grpc::ServerContext* context,
                                     const v1::GetChunksRequest* request,
                                     grpc::ServerWriter<v1::Chunk>* writer) {
  return rpc::ToGrpc(DoGetChunks(*context, *request, [writer](const v1::Chunk& chunk) {
    return writer->Write(chunk);
  }));
}

absl::Status StoreService::DoWatch(
    const grpc::ServerContext& context, const v1::WatchRequest& request,
    const std::function<bool()>& cancelled,
    const std::function<bool(const v1::HeadChanged&)>& write) {
  FERRY_ASSIGN_OR_RETURN(DeviceRecord me, auth_->Authenticate(context));
  if (request.collection_ids().empty() ||
      static_cast<size_t>(request.collection_ids().size()) > kWatchCollectionsMax) {
    return absl::InvalidArgumentError(
        StrCat("watch 1 to ", kWatchCollectionsMax, " collections"));
  }
  std::map<std::string, std::optional<uint64_t>> told;  // collection -> last head sent
  for (const std::string& id : request.collection_ids()) {
    FERRY_RETURN_IF_ERROR(auth_->CheckAccess(me, id));
    FERRY_ASSIGN_OR_RETURN(uint64_t head, backend_->Head(id));
    heads_->Publish(id, head);
    told[id] = std::nullopt;
  }
  // The version is read before each scan, so a head that moves during the scan wakes
  // the next wait at once. Each wait is bounded, so cancellation is seen promptly.
  uint64_t version = heads_->Version();
  int64_t authenticated_ms = clock_->MonotonicMs();
  while (!cancelled() && !heads_->IsShutDown()) {
    // A device revoked while it watches stops hearing of heads.
    if (clock_->MonotonicMs() - authenticated_ms >= kWatchAuthIntervalMs) {
      FERRY_RETURN_IF_ERROR(auth_->Authenticate(context).status());
      authenticated_ms = clock_->MonotonicMs();
    }
    for (auto& [id, last] : told) {
      uint64_t head = heads_->Head(id);
      if (last.has_value() && *last == head) continue;
      v1::HeadChanged change;
      change.set_collection_id(id);
      change.set_head_seq(head);
      if (!write(change)) return absl::OkStatus();
      last = head;
    }
    version = heads_->Wait(version, kWatchPollInterval);
  }
  return absl::OkStatus();
}

grpc::Status StoreService::Watch(grpc::ServerContext* context,
                                 const v1::WatchRequest* request,
                                 grpc::ServerWriter<v1::HeadChanged>* writer) {
  return rpc::ToGrpc(DoWatch(
      *context, *request, [context] { return context->IsCancelled(); },
      [writer](const v1::HeadChanged& change) { return writer->Write(change); }));
}

}  // namespace ferry::server
