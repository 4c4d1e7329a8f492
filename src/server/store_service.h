// The Store gRPC service: the per-collection log, chunks and watch.
#ifndef FERRY_SERVER_STORE_SERVICE_H_
#define FERRY_SERVER_STORE_SERVICE_H_

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

 private:
  absl::StatusOr<v1::AppendResponse> DoAppend(const grpc::ServerContext& context,
                                              const v1::AppendRequest& request);
  absl::Status DoPutChunks(grpc::ServerContext* context,
                           grpc::ServerReader<v1::Chunk>* reader,
                           v1::PutChunksResponse* response);
  absl::Status DoGetChunks(const grpc::ServerContext& context,
                           const v1::GetChunksRequest& request,
                           grpc::ServerWriter<v1::Chunk>* writer);
  absl::Status DoWatch(grpc::ServerContext* context, const v1::WatchRequest& request,
                       grpc::ServerWriter<v1::HeadChanged>* writer);

  Backend* const backend_;
  Authenticator* const auth_;
  Clock* const clock_;
  HeadNotifier* const heads_;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_STORE_SERVICE_H_
