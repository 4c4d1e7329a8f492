#include "src/server/server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include "src/core/file_util.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/seal/seal.h"
#include "src/server/manage_service.h"
#include "src/server/store_service.h"
#include "src/tls/tls.h"

namespace ferry::server {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(2);

// An exclusive lock on DATA/ferryd.lock for the life of the process.
absl::StatusOr<int> LockDataDir(const std::string& dir) {
  std::string path = dir + "/ferryd.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        StrCat("another ferryd is using ", dir, " (", path, " is locked)"));
  }
  return fd;
}

// A 32-byte secret of this server, made on first start.
absl::StatusOr<std::string> LoadOrCreateSecret(const std::string& dir) {
  std::string path = dir + "/server.secret";
  absl::StatusOr<std::string> secret = ReadFile(path, 1024);
  if (secret.ok() && secret->size() == seal::kKeyBytes) return secret;
  if (secret.ok() || !absl::IsNotFound(secret.status())) {
    return absl::FailedPreconditionError(StrCat(path, " is unreadable or damaged"));
  }
  std::string fresh = seal::RandomBytes(seal::kKeyBytes);
  FERRY_RETURN_IF_ERROR(WriteFileAtomic(path, fresh, 0600));
  return fresh;
}

absl::StatusOr<std::unique_ptr<Backend>> OpenBackend(const ServerOptions& options) {
  std::string_view backend = options.backend;
  if (backend.empty() || backend == "sqlite") return OpenSqliteBackend(options.data_dir);
  if (backend.starts_with("postgresql://") || backend.starts_with("postgres://")) {
    return OpenPostgresBackend(backend, options.db_connections_max);
  }
  return absl::InvalidArgumentError(
      StrCat("unknown backend '", backend, "': use sqlite or a postgresql:// URI"));
}

class FerrydImpl final : public Ferryd {
 public:
  ~FerrydImpl() override {
    Shutdown();
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  absl::Status Init(const ServerOptions& options) {
    seal::Init();
    FERRY_RETURN_IF_ERROR(MakeDirs(options.data_dir, 0700));
    FERRY_ASSIGN_OR_RETURN(lock_fd_, LockDataDir(options.data_dir));
    FERRY_ASSIGN_OR_RETURN(std::string secret, LoadOrCreateSecret(options.data_dir));
    FERRY_ASSIGN_OR_RETURN(tls::CertificateFiles cert,
                           tls::LoadOrCreateServerCertificate(options.data_dir));
    fingerprint_ = cert.fingerprint;
    FERRY_ASSIGN_OR_RETURN(backend_, OpenBackend(options));
    // Appends made through other ferryd sharing the database wake this one's watches.
    // After a gap in the notifications, the heads watched here are read again.
    FERRY_RETURN_IF_ERROR(backend_->FollowHeads(
        [this](const std::string& id, uint64_t head) { heads_.Publish(id, head); },
        [this] {
          for (const std::string& id : heads_.Collections()) {
            absl::StatusOr<uint64_t> head = backend_->Head(id);
            if (head.ok()) heads_.Publish(id, *head);
          }
        }));
    Clock* clock = options.clock != nullptr ? options.clock : &system_clock_;
    auth_ = std::make_unique<Authenticator>(backend_.get(), clock);
    manage_ = std::make_unique<ManageService>(backend_.get(), auth_.get(), clock,
                                              std::move(secret));
    store_ = std::make_unique<StoreService>(backend_.get(), auth_.get(), clock, &heads_);

    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({cert.key_pem, cert.cert_pem});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options.listen, grpc::SslServerCredentials(ssl), &port);
    builder.SetMaxReceiveMessageSize(static_cast<int>(kGrpcMessageBytesMax));
    builder.SetMaxSendMessageSize(static_cast<int>(kGrpcMessageBytesMax));
    builder.RegisterService(manage_.get());
    builder.RegisterService(store_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return absl::UnavailableError(
          StrCat("cannot listen on ", options.listen, " (address in use or not local?)"));
    }
    std::string host = options.listen.substr(0, options.listen.rfind(':'));
    address_ = StrCat(host, ":", port);
    return absl::OkStatus();
  }

  std::string address() const override { return address_; }
  std::string fingerprint() const override { return fingerprint_; }

  void Shutdown() override {
    std::call_once(shutdown_once_, [this] {
      heads_.Shutdown();
      if (server_ != nullptr) {
        server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
      }
    });
  }

  void Wait() override {
    if (server_ != nullptr) server_->Wait();
  }

 private:
  SystemClock system_clock_;
  HeadNotifier heads_;
  int lock_fd_ = -1;
  std::string fingerprint_;
  std::string address_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<ManageService> manage_;
  std::unique_ptr<StoreService> store_;
  std::unique_ptr<grpc::Server> server_;
  std::once_flag shutdown_once_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Ferryd>> Ferryd::Start(const ServerOptions& options) {
  auto server = std::make_unique<FerrydImpl>();
  FERRY_RETURN_IF_ERROR(server->Init(options));
  return server;
}

}  // namespace ferry::server
