// Fuzzes the Manage service's handlers with requests from the network, called in
// process on the real service over SQLite (fuzz/server_fuzz_common.h): byte 0 picks
// the method, byte 1 the caller, the rest is the request. Every call must end in a
// proper status, and no caller may ever see or change another account: the other
// account's device and collection never show up, and its device is never revoked.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/server_fuzz_common.h"

namespace {

using ferry::fuzz::Check;
using ferry::fuzz::CheckStatus;
using ferry::fuzz::FuzzServer;
namespace v1 = ferry::v1;

template <typename Request>
bool Parse(std::string_view body, Request* request) {
  return request->ParseFromArray(body.data(), static_cast<int>(body.size()));
}

void CheckNoOtherAccount(FuzzServer& s, grpc::ServerContext* context) {
  v1::ListDevicesRequest list;
  v1::ListDevicesResponse devices;
  grpc::Status status = s.manage().ListDevices(context, &list, &devices);
  CheckStatus(status);
  for (const v1::Device& d : devices.devices())
    Check(d.device_id() != s.other_device_id());
  v1::ListCollectionsRequest collections_request;
  v1::ListCollectionsResponse collections;
  status = s.manage().ListCollections(context, &collections_request, &collections);
  CheckStatus(status);
  for (const v1::Collection& c : collections.collections()) {
    Check(c.collection_id() != ferry::fuzz::kOtherCollection);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  FuzzServer& s = FuzzServer::Get();
  auto call = s.Context(data[1]);
  grpc::ServerContext* context = &call->context;
  std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  grpc::Status status;
  switch (data[0] % 11) {
    case 0: {
      v1::CreateAccountRequest request;
      v1::LoginResponse response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().CreateAccount(context, &request, &response);
      if (status.ok()) Check(response.token().size() > 16);
      break;
    }
    case 1: {
      v1::LoginParamsRequest request;
      v1::KdfParams response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().GetLoginParams(context, &request, &response);
      if (status.ok()) Check(response.salt().size() == ferry::seal::kSaltBytes);
      break;
    }
    case 2: {
      v1::LoginRequest request;
      v1::LoginResponse response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().Login(context, &request, &response);
      break;
    }
    case 3: {
      v1::ListDevicesRequest request;
      v1::ListDevicesResponse response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().ListDevices(context, &request, &response);
      break;
    }
    case 4: {
      v1::RenameDeviceRequest request;
      v1::Empty response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().RenameDevice(context, &request, &response);
      break;
    }
    case 5: {
      v1::RevokeDeviceRequest request;
      v1::Empty response;
      if (!Parse(body, &request)) return 0;
      // The fuzzing device does not revoke itself: every later call would then fail
      // authentication and reach nothing (a revoked token is tested in ferryd_test).
      if (request.device_id() == s.device_id()) return 0;
      status = s.manage().RevokeDevice(context, &request, &response);
      break;
    }
    case 6: {
      v1::CreateCollectionRequest request;
      v1::Collection response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().CreateCollection(context, &request, &response);
      break;
    }
    case 7: {
      v1::ListCollectionsRequest request;
      v1::ListCollectionsResponse response;
      if (!Parse(body, &request)) return 0;
      status = s.manage().ListCollections(context, &request, &response);
      break;
    }
    default: {
      v1::LeaseRequest request;
      v1::Lease response;
      if (!Parse(body, &request)) return 0;
      if (data[0] % 11 == 8) {
        status = s.manage().AcquireLease(context, &request, &response);
      } else if (data[0] % 11 == 9) {
        status = s.manage().RenewLease(context, &request, &response);
      } else {
        v1::Empty empty;
        status = s.manage().ReleaseLease(context, &request, &empty);
      }
      if (status.ok() && data[0] % 11 != 10) {
        Check(response.collection_id() == request.collection_id());
      }
      break;
    }
  }
  CheckStatus(status);
  CheckNoOtherAccount(s, &s.Context(ferry::fuzz::kOwnDevice)->context);
  return 0;
}
