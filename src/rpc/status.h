// Conversions between absl::Status and grpc::Status. The codes are the same numbers,
// so a status crosses the RPC boundary unchanged.
#ifndef FERRY_RPC_STATUS_H_
#define FERRY_RPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace ferry::rpc {

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

inline absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace ferry::rpc

#endif  // FERRY_RPC_STATUS_H_
