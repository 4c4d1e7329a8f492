// Fuzzes the Store service's handlers with requests from the network, called in
// process on the real service over SQLite (fuzz/server_fuzz_common.h): byte 0 picks
// the method, byte 1 the caller, the rest is the request. PutChunks reads the rest as
// chunks, each a 2-byte little-endian length and a serialized Chunk. Every call must
// end in a proper status; what succeeds must be consistent (seqs, heads, one answer
// per chunk id asked).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/server_fuzz_common.h"
#include "src/core/limits.h"
#include "src/seal/seal.h"

namespace {

using ferry::fuzz::Check;
using ferry::fuzz::CheckStatus;
using ferry::fuzz::FuzzServer;
namespace v1 = ferry::v1;

constexpr size_t kPutChunksMax = 64;

// Rewrites the placeholder device id of an envelope's header to the caller's.
void FixDevice(v1::AppendRequest* request, const std::string& device_id) {
  v1::Envelope envelope;
  v1::EnvelopeHeader header;
  if (!envelope.ParseFromString(request->envelope()) ||
      !header.ParseFromString(envelope.header()) ||
      header.device_id() != ferry::fuzz::kDevicePlaceholder) {
    return;
  }
  header.set_device_id(device_id);
  envelope.set_header(header.SerializeAsString());
  request->set_envelope(envelope.SerializeAsString());
}

void Append(FuzzServer& s, grpc::ServerContext* context, std::string_view body) {
  v1::AppendRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
  FixDevice(&request, s.device_id());
  v1::AppendResponse response;
  grpc::Status status = s.store().Append(context, &request, &response);
  CheckStatus(status);
  if (status.ok()) Check(response.seq() > 0);
}

void Pull(FuzzServer& s, grpc::ServerContext* context, std::string_view body) {
  v1::PullRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
  v1::PullResponse response;
  grpc::Status status = s.store().Pull(context, &request, &response);
  CheckStatus(status);
  if (!status.ok()) return;
  Check(static_cast<size_t>(response.entries_size()) <= ferry::kPullEntriesMax);
  uint64_t last = request.after_seq();
  for (const v1::LogEntry& entry : response.entries()) {
    Check(entry.seq() == last + 1 && entry.seq() <= response.head_seq());
    last = entry.seq();
  }
}

void Head(FuzzServer& s, grpc::ServerContext* context, std::string_view body) {
  v1::HeadRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
  v1::HeadResponse response;
  CheckStatus(s.store().Head(context, &request, &response));
}

void HasChunks(FuzzServer& s, grpc::ServerContext* context, std::string_view body) {
  v1::HasChunksRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
  v1::HasChunksResponse response;
  grpc::Status status = s.store().HasChunks(context, &request, &response);
  CheckStatus(status);
  if (status.ok()) Check(response.present_size() == request.ids_size());
}

void PutChunks(FuzzServer& s, grpc::ServerContext* context, std::string_view body) {
  std::vector<v1::Chunk> chunks;
  while (body.size() >= 2 && chunks.size() < kPutChunksMax) {
    size_t n = static_cast<uint8_t>(body[0]) |
               static_cast<size_t>(static_cast<uint8_t>(body[1])) << 8;
    body.remove_prefix(2);
    n = std::min(n, body.size());
    v1::Chunk chunk;
    if (!chunk.ParseFromArray(body.data(), static_cast<int>(n))) return;
    chunks.push_back(std::move(chunk));
    body.remove_prefix(n);
  }
  size_t next = 0;
  v1::PutChunksResponse response;
  absl::Status status = s.store().DoPutChunks(
      *context,
      [&](v1::Chunk* chunk) {
        if (next == chunks.size()) return false;
        *chunk = chunks[next++];
        return true;
      },
      &response);
  CheckStatus(status);
  if (status.ok()) Check(response.stored() + response.present() == chunks.size());
}

void GetChunks(FuzzServer& s, grpc::ServerContext* context, std::string_view body,
               bool client_leaves) {
  v1::GetChunksRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
  int written = 0;
  absl::Status status =
      s.store().DoGetChunks(*context, request, [&](const v1::Chunk& chunk) {
        Check(chunk.collection_id() == request.collection_id());
        Check(chunk.id() == request.ids(written));
        ++written;
        return !client_leaves;
      });
  CheckStatus(status);
  if (status.ok()) Check(written == request.ids_size());
}

void Watch(FuzzServer& s, grpc::ServerContext* context, std::string_view body) {
  v1::WatchRequest request;
  if (!request.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
  // The client leaves at the first message, so the call never waits.
  absl::Status status = s.store().DoWatch(
      *context, request, [] { return false; },
      [](const v1::HeadChanged&) { return false; });
  CheckStatus(status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  FuzzServer& s = FuzzServer::Get();
  auto call = s.Context(data[1]);
  grpc::ServerContext* context = &call->context;
  std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  switch (data[0] % 8) {
    case 0:
      Append(s, context, body);
      break;
    case 1:
      Pull(s, context, body);
      break;
    case 2:
      Head(s, context, body);
      break;
    case 3:
      HasChunks(s, context, body);
      break;
    case 4:
      PutChunks(s, context, body);
      break;
    case 5:
    case 6:
      GetChunks(s, context, body, data[0] % 8 == 6);
      break;
    default:
      Watch(s, context, body);
      break;
  }
  return 0;
}
