// The Store gRPC service: the per-collection log, chunks and watch.
#ifndef FERRY_SERVER_STORE_SERVICE_H_
#define FERRY_SERVER_STORE_SERVICE_H_

#include <functional>

#include "proto/ferry/v1/store.grpc.pb.h"
#include "src/core/clock.h"
#include "src/server/auth.h"
#include "src/server/backend/backend.h"
#include "src/server/head_notifier.h"

namespace ferry::server {

class StoreService final : public v1::Store::Service {
 public:
  StoreService(Backend* backend, Authenticator* auth, Clock* clock, HeadNotifier* heads)
      : backend_(backend), auth_(auth), clock_(clock), heads_(heads) {}

  grpc::Status Append(grpc::ServerContext* context, const v1::AppendRequest* request,
                      v1::AppendResponse* response) override;
  grpc::Status Pull(grpc::ServerContext* context, const v1::PullRequest* request,
                    v1::PullResponse* response) override;
  grpc::Status Head(grpc::ServerContext* context, const v1::HeadRequest* request,
                    v1::HeadResponse* response) override;
  grpc::Status HasChunks(grpc::ServerContext* context,
                         const v1::HasChunksRequest* request,
                         v1::HasChunksResponse* response) override;
  grpc::Status PutChunks(grpc::ServerContext* context,
                         grpc::ServerReader<v1::Chunk>* reader,
                         v1::PutChunksResponse* response) override;
  grpc::Status GetChunks(grpc::ServerContext* context,
                         const v1::GetChunksRequest* request,
                         grpc::ServerWriter<v1::Chunk>* writer) override;
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::HeadChanged>* writer) override;

  // The streaming calls apart from gRPC's stream types, so that they can be driven in
  // process (fuzz/store_request_fuzz.cc): `next` reads the next message into its
  // argument (false at the end of the stream), `write` sends one (false once the
  // client went away), `cancelled` says whether the call was cancelled.
  absl::Status DoPutChunks(const grpc::ServerContext& context,
                           const std::function<bool(v1::Chunk*)>& next,
                           v1::PutChunksResponse* response);
  absl::Status DoGetChunks(const grpc::ServerContext& context,
                           const v1::GetChunksRequest& request,
                           const std::function<bool(const v1::Chunk&)>& write);
  absl::Status DoWatch(const grpc::ServerContext& context,
                       const v1::WatchRequest& request,
                       const std::function<bool()>& cancelled,
                       const std::function<bool(const v1::HeadChanged&)>& write);

 private:
  absl::StatusOr<v1::AppendResponse> DoAppend(const grpc::ServerContext& context,
                                              const v1::AppendRequest& request);

  Backend* const backend_;
  Authenticator* const auth_;
  Clock* const clock_;
  HeadNotifier* const heads_;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_STORE_SERVICE_H_
