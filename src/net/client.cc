#include "src/net/client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "proto/ferry/v1/manage.grpc.pb.h"
#include "proto/ferry/v1/store.grpc.pb.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/rpc/status.h"
#include "src/tls/tls.h"

namespace ferry::net {
namespace {

// Prefixes the server address to connection failures and to the server running out
// of something (its disk is full), so a person sees where: a full disk here and one at
// ferryd say the same "No space left on device".
absl::Status Annotate(const grpc::Status& status, const std::string& server) {
  absl::Status s = rpc::FromGrpc(status);
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) ||
      absl::IsResourceExhausted(s)) {
    return absl::Status(s.code(), StrCat("ferryd at ", server, ": ", s.message()));
  }
  return s;
}

class GrpcWatchStream final : public WatchStream {
 public:
  GrpcWatchStream(std::unique_ptr<grpc::ClientContext> context,
                  std::unique_ptr<grpc::ClientReader<v1::HeadChanged>> reader)
      : context_(std::move(context)), reader_(std::move(reader)) {}
  ~GrpcWatchStream() override {
    context_->TryCancel();
    // A cancelled stream's status says only that it was cancelled.
    if (!finished_) (void)reader_->Finish();
  }
  bool Next(v1::HeadChanged* change) override { return reader_->Read(change); }
  void Cancel() override { context_->TryCancel(); }
  absl::Status Finish() override {
    if (finished_) return status_;
    finished_ = true;
    status_ = rpc::FromGrpc(reader_->Finish());
    return status_;
  }

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<v1::HeadChanged>> reader_;
  bool finished_ = false;  // gRPC allows Finish() once
  absl::Status status_;
};

class GrpcClient final : public Client {
 public:
  GrpcClient(const ConnectOptions& options, std::string cert_pem, std::string fingerprint)
      : server_(options.server),
        cert_pem_(std::move(cert_pem)),
        fingerprint_(std::move(fingerprint)),
        token_(options.token),
        timeout_ms_(options.timeout_ms) {
    channel_ = OpenPinnedChannel(server_, cert_pem_);
    manage_ = v1::Manage::NewStub(channel_);
    store_ = v1::Store::NewStub(channel_);
  }

  const std::string& server_cert_pem() const override { return cert_pem_; }
  const std::string& fingerprint() const override { return fingerprint_; }
  void set_token(std::string token) override { token_ = std::move(token); }

  absl::StatusOr<v1::KdfParams> GetLoginParams(const std::string& user) override {
    v1::LoginParamsRequest request;
    request.set_user(user);
    return Call(&v1::Manage::Stub::GetLoginParams, manage_.get(), request);
  }
  absl::StatusOr<v1::LoginResponse> CreateAccount(
      const v1::CreateAccountRequest& request) override {
    return Call(&v1::Manage::Stub::CreateAccount, manage_.get(), request);
  }
  absl::StatusOr<v1::LoginResponse> Login(const v1::LoginRequest& request) override {
    return Call(&v1::Manage::Stub::Login, manage_.get(), request);
  }
  absl::StatusOr<std::vector<v1::Device>> ListDevices() override {
    FERRY_ASSIGN_OR_RETURN(
        v1::ListDevicesResponse response,
        Call(&v1::Manage::Stub::ListDevices, manage_.get(), v1::ListDevicesRequest()));
    return std::vector<v1::Device>(response.devices().begin(), response.devices().end());
  }
  absl::Status RenameDevice(const std::string& device_id,
                            const std::string& name) override {
    v1::RenameDeviceRequest request;
    request.set_device_id(device_id);
    request.set_name(name);
    return Call(&v1::Manage::Stub::RenameDevice, manage_.get(), request).status();
  }
  absl::Status RevokeDevice(const std::string& device_id) override {
    v1::RevokeDeviceRequest request;
    request.set_device_id(device_id);
    return Call(&v1::Manage::Stub::RevokeDevice, manage_.get(), request).status();
  }
  absl::StatusOr<v1::Collection> CreateCollection(const v1::Collection& c) override {
    v1::CreateCollectionRequest request;
    *request.mutable_collection() = c;
    return Call(&v1::Manage::Stub::CreateCollection, manage_.get(), request);
  }
  absl::StatusOr<std::vector<v1::Collection>> ListCollections() override {
    FERRY_ASSIGN_OR_RETURN(v1::ListCollectionsResponse response,
                           Call(&v1::Manage::Stub::ListCollections, manage_.get(),
                                v1::ListCollectionsRequest()));
    return std::vector<v1::Collection>(response.collections().begin(),
                                       response.collections().end());
  }
  absl::StatusOr<v1::Lease> AcquireLease(const std::string& collection_id,
                                         uint32_t ttl_ms) override {
    return Call(&v1::Manage::Stub::AcquireLease, manage_.get(),
                LeaseRequest(collection_id, 0, ttl_ms));
  }
  absl::StatusOr<v1::Lease> RenewLease(const std::string& collection_id,
                                       uint64_t fencing_token, uint32_t ttl_ms) override {
    return Call(&v1::Manage::Stub::RenewLease, manage_.get(),
                LeaseRequest(collection_id, fencing_token, ttl_ms));
  }
  absl::Status ReleaseLease(const std::string& collection_id,
                            uint64_t fencing_token) override {
    return Call(&v1::Manage::Stub::ReleaseLease, manage_.get(),
                LeaseRequest(collection_id, fencing_token, 0))
        .status();
  }

  absl::StatusOr<v1::AppendResponse> Append(const std::string& collection_id,
                                            const std::string& envelope,
                                            uint64_t fencing_token) override {
    v1::AppendRequest request;
    request.set_collection_id(collection_id);
    request.set_envelope(envelope);
    request.set_fencing_token(fencing_token);
    return Call(&v1::Store::Stub::Append, store_.get(), request);
  }
  absl::StatusOr<v1::PullResponse> Pull(const std::string& collection_id,
                                        uint64_t after_seq, uint32_t limit) override {
    v1::PullRequest request;
    request.set_collection_id(collection_id);
    request.set_after_seq(after_seq);
    request.set_limit(limit);
    return Call(&v1::Store::Stub::Pull, store_.get(), request);
  }
  absl::StatusOr<uint64_t> Head(const std::string& collection_id) override {
    v1::HeadRequest request;
    request.set_collection_id(collection_id);
    FERRY_ASSIGN_OR_RETURN(v1::HeadResponse response,
                           Call(&v1::Store::Stub::Head, store_.get(), request));
    return response.head_seq();
  }
  absl::StatusOr<std::vector<bool>> HasChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) override {
    v1::HasChunksRequest request;
    request.set_collection_id(collection_id);
    for (const std::string& id : ids) request.add_ids(id);
    FERRY_ASSIGN_OR_RETURN(v1::HasChunksResponse response,
                           Call(&v1::Store::Stub::HasChunks, store_.get(), request));
    if (static_cast<size_t>(response.present_size()) != ids.size()) {
      return absl::DataLossError("HasChunks answered for a different number of chunks");
    }
    return std::vector<bool>(response.present().begin(), response.present().end());
  }

  absl::StatusOr<v1::PutChunksResponse> PutChunks(
      const std::string& collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) override {
    grpc::ClientContext context;
    Prepare(&context);
    v1::PutChunksResponse response;
    auto writer = store_->PutChunks(&context, &response);
    v1::Chunk chunk;
    chunk.set_collection_id(collection_id);
    for (const auto& [id, data] : chunks) {
      chunk.set_id(id);
      chunk.set_data(data);
      if (!writer->Write(chunk)) break;  // the server ended the stream; Finish says why
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (!status.ok()) return Annotate(status, server_);
    return response;
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) override {
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetChunksRequest request;
    request.set_collection_id(collection_id);
    for (const std::string& id : ids) request.add_ids(id);
    auto reader = store_->GetChunks(&context, request);
    std::vector<std::pair<std::string, std::string>> out;
    v1::Chunk chunk;
    while (out.size() < ids.size() && reader->Read(&chunk)) {
      out.emplace_back(std::move(*chunk.mutable_id()), std::move(*chunk.mutable_data()));
    }
    grpc::Status status = reader->Finish();
    if (!status.ok()) return Annotate(status, server_);
    if (out.size() != ids.size()) {
      return absl::DataLossError("GetChunks returned fewer chunks than asked");
    }
    return out;
  }

  bool WaitForConnected(int timeout_ms) override {
    return channel_->WaitForConnected(std::chrono::system_clock::now() +
                                      std::chrono::milliseconds(timeout_ms));
  }

  std::unique_ptr<WatchStream> Watch(
      const std::vector<std::string>& collection_ids) override {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
    v1::WatchRequest request;
    for (const std::string& id : collection_ids) request.add_collection_ids(id);
    auto reader = store_->Watch(context.get(), request);
    return std::make_unique<GrpcWatchStream>(std::move(context), std::move(reader));
  }

 private:
  static v1::LeaseRequest LeaseRequest(const std::string& collection_id, uint64_t token,
                                       uint32_t ttl_ms) {
    v1::LeaseRequest request;
    request.set_collection_id(collection_id);
    request.set_fencing_token(token);
    request.set_ttl_ms(ttl_ms);
    return request;
  }

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(timeout_ms_));
    if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  }

  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                             const Request&, Response*),
                                Stub* stub, const Request& request) {
    grpc::ClientContext context;
    Prepare(&context);
    Response response;
    grpc::Status status = (stub->*method)(&context, request, &response);
    if (!status.ok()) return Annotate(status, server_);
    return response;
  }

  const std::string server_;
  const std::string cert_pem_;
  const std::string fingerprint_;
  std::string token_;
  const int timeout_ms_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Manage::Stub> manage_;
  std::unique_ptr<v1::Store::Stub> store_;
};

}  // namespace

std::shared_ptr<grpc::Channel> OpenPinnedChannel(const std::string& server,
                                                 const std::string& cert_pem) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = cert_pem;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(tls::kServerName);
  args.SetMaxReceiveMessageSize(static_cast<int>(kGrpcMessageBytesMax));
  args.SetMaxSendMessageSize(static_cast<int>(kGrpcMessageBytesMax));
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(ssl), args);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ConnectOptions& options) {
  FERRY_ASSIGN_OR_RETURN(std::string presented,
                         tls::FetchServerCertificate(options.server, options.timeout_ms));
  FERRY_ASSIGN_OR_RETURN(std::string presented_fp, tls::FingerprintOfPem(presented));
  if (!options.expected_fingerprint.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::string expected,
                           tls::NormalizeFingerprint(options.expected_fingerprint));
    if (expected != presented_fp) {
      return absl::FailedPreconditionError(
          StrCat("ferryd at ", options.server, " presents certificate ", presented_fp,
                 ", not the expected ", expected, ": refusing to connect"));
    }
  }
  std::string trusted = presented;
  if (!options.pinned_cert_pem.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::string pinned_fp,
                           tls::FingerprintOfPem(options.pinned_cert_pem));
    if (pinned_fp != presented_fp) {
      return absl::FailedPreconditionError(StrCat(
          "the certificate of ferryd at ", options.server, " changed: pinned ", pinned_fp,
          ", now presented ", presented_fp,
          ". Refusing to connect. If the server was really reinstalled, log in again "
          "with --fingerprint ",
          presented_fp));
    }
    trusted = options.pinned_cert_pem;
  }
  return std::unique_ptr<Client>(new GrpcClient(options, trusted, presented_fp));
}

}  // namespace ferry::net
