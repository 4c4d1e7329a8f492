#include "src/client/device.h"

#include <toml++/toml.h>

#include <chrono>
#include <sstream>

#include "src/core/clock.h"
#include "src/core/file_util.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::client {
namespace {

constexpr char kStateFile[] = "/device.toml";
constexpr char kCertFile[] = "/server.pem";
constexpr int kAppendAttemptsMax = 16;

int64_t NowMs() { return SystemClock().NowMs(); }

absl::Status SaveHome(const std::string& home, const DeviceState& s,
                      const std::string& cert_pem) {
  FERRY_RETURN_IF_ERROR(MakeDirs(home, 0700));
  toml::table table{
      {"server", s.server},
      {"user", s.user},
      {"account_id", s.account_id},
      {"device_id", s.device_id},
      {"device_name", s.device_name},
      {"token", s.token},
      {"master_key", seal::ToHex(s.master_key.view())},
  };
  std::ostringstream out;
  out << "# ferry device state. Secret: keep this file private.\n" << table << "\n";
  FERRY_RETURN_IF_ERROR(WriteFileAtomic(home + kCertFile, cert_pem, 0644));
  return WriteFileAtomic(home + kStateFile, out.str(), 0600);
}

absl::StatusOr<std::pair<DeviceState, std::string>> LoadHome(const std::string& home) {
  std::string path = home + kStateFile;
  absl::StatusOr<std::string> text = ReadFile(path, 1 << 20);
  if (absl::IsNotFound(text.status())) {
    return absl::FailedPreconditionError(StrCat(
        "no device in ", home, ": run `ferry login` or `ferry account create` first"));
  }
  FERRY_RETURN_IF_ERROR(text.status());
  toml::table table;
  try {
    table = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    return absl::DataLossError(StrCat(path, " is damaged: ", e.description()));
  }
  DeviceState s;
  s.server = table["server"].value_or("");
  s.user = table["user"].value_or("");
  s.account_id = table["account_id"].value_or("");
  s.device_id = table["device_id"].value_or("");
  s.device_name = table["device_name"].value_or("");
  s.token = table["token"].value_or("");
  absl::StatusOr<std::string> key = seal::FromHex(table["master_key"].value_or(""));
  if (s.server.empty() || s.device_id.empty() || s.token.empty() || !key.ok() ||
      key->size() != seal::kKeyBytes) {
    return absl::DataLossError(StrCat(path, " is incomplete: log in again"));
  }
  s.master_key = seal::SecretKey(*key);
  FERRY_ASSIGN_OR_RETURN(std::string cert, ReadFile(home + kCertFile, 1 << 20));
  return std::make_pair(std::move(s), std::move(cert));
}

// Connects for account creation or login. A home that already trusts a certificate
// for this server keeps trusting only that one, unless the person names the new
// certificate with --fingerprint (a reinstalled server).
absl::StatusOr<std::unique_ptr<net::Client>> ConnectFirst(const LoginOptions& options) {
  net::ConnectOptions connect;
  connect.server = options.server;
  connect.expected_fingerprint = options.fingerprint;
  connect.timeout_ms = options.call_timeout_ms;
  if (options.fingerprint.empty()) {
    absl::StatusOr<std::pair<DeviceState, std::string>> previous = LoadHome(options.home);
    if (previous.ok() && previous->first.server == options.server) {
      connect.pinned_cert_pem = previous->second;
    }
  }
  return net::Client::Connect(connect);
}

DeviceState StateFromLogin(const LoginOptions& options, const v1::LoginResponse& response,
                           const seal::AccountKeys& keys) {
  DeviceState s;
  s.server = options.server;
  s.user = options.user;
  s.account_id = response.account_id();
  s.device_id = response.device_id();
  s.device_name = options.device_name;
  s.token = response.token();
  s.master_key = keys.master_key;
  return s;
}

// A device name is sealed with the master key before it leaves the device.
absl::StatusOr<std::string> SealName(const seal::SecretKey& master_key,
                                     const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("a device needs a name");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("a device name holds a control character");
    }
  }
  return seal::SealDeviceName(master_key, name);
}

absl::Status CheckPassphrase(const std::string& passphrase) {
  if (passphrase.empty()) return absl::InvalidArgumentError("the passphrase is empty");
  return absl::OkStatus();
}

}  // namespace

std::string DefaultHome() { return DefaultDataDir("ferry"); }

absl::StatusOr<std::unique_ptr<Device>> Device::Open(const std::string& home) {
  seal::Init();
  FERRY_ASSIGN_OR_RETURN(auto loaded, LoadHome(home));
  net::ConnectOptions connect;
  connect.server = loaded.first.server;
  connect.pinned_cert_pem = loaded.second;
  connect.token = loaded.first.token;
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<net::Client> client,
                         net::Client::Connect(connect));
  return std::unique_ptr<Device>(
      new Device(home, std::move(loaded.first), std::move(client)));
}

absl::StatusOr<std::unique_ptr<Device>> Device::CreateAccount(
    const LoginOptions& options) {
  seal::Init();
  FERRY_RETURN_IF_ERROR(CheckPassphrase(options.passphrase));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<net::Client> client, ConnectFirst(options));
  seal::KdfParams kdf =
      options.fast_kdf ? seal::KdfParams::Fast() : seal::KdfParams::Moderate();
  FERRY_ASSIGN_OR_RETURN(seal::AccountKeys keys,
                         seal::DeriveAccountKeys(options.passphrase, kdf));
  v1::CreateAccountRequest request;
  request.set_user(options.user);
  request.mutable_kdf()->set_alg(kdf.alg);
  request.mutable_kdf()->set_ops_limit(kdf.ops_limit);
  request.mutable_kdf()->set_mem_limit_bytes(kdf.mem_limit_bytes);
  request.mutable_kdf()->set_salt(kdf.salt);
  request.set_auth_key(std::string(keys.auth_key.view()));
  FERRY_ASSIGN_OR_RETURN(*request.mutable_device_name(),
                         SealName(keys.master_key, options.device_name));
  FERRY_ASSIGN_OR_RETURN(v1::LoginResponse response, client->CreateAccount(request));
  DeviceState state = StateFromLogin(options, response, keys);
  FERRY_RETURN_IF_ERROR(SaveHome(options.home, state, client->server_cert_pem()));
  client->set_token(state.token);
  return std::unique_ptr<Device>(
      new Device(options.home, std::move(state), std::move(client)));
}

absl::StatusOr<std::unique_ptr<Device>> Device::Login(const LoginOptions& options) {
  seal::Init();
  FERRY_RETURN_IF_ERROR(CheckPassphrase(options.passphrase));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<net::Client> client, ConnectFirst(options));
  FERRY_ASSIGN_OR_RETURN(v1::KdfParams params, client->GetLoginParams(options.user));
  seal::KdfParams kdf;
  kdf.alg = params.alg();
  kdf.ops_limit = params.ops_limit();
  kdf.mem_limit_bytes = params.mem_limit_bytes();
  kdf.salt = params.salt();
  FERRY_ASSIGN_OR_RETURN(seal::AccountKeys keys,
                         seal::DeriveAccountKeys(options.passphrase, kdf));
  v1::LoginRequest request;
  request.set_user(options.user);
  request.set_auth_key(std::string(keys.auth_key.view()));
  FERRY_ASSIGN_OR_RETURN(*request.mutable_device_name(),
                         SealName(keys.master_key, options.device_name));
  FERRY_ASSIGN_OR_RETURN(v1::LoginResponse response, client->Login(request));
  DeviceState state = StateFromLogin(options, response, keys);
  FERRY_RETURN_IF_ERROR(SaveHome(options.home, state, client->server_cert_pem()));
  client->set_token(state.token);
  return std::unique_ptr<Device>(
      new Device(options.home, std::move(state), std::move(client)));
}

absl::StatusOr<CollectionInfo> Device::CreateCollection(const std::string& name,
                                                        const std::string& kind) {
  if (name.empty()) return absl::InvalidArgumentError("a collection needs a name");
  absl::StatusOr<CollectionInfo> existing = FindCollection(name);
  if (existing.ok()) {
    return absl::AlreadyExistsError(StrCat("collection '", name, "' exists"));
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  CollectionInfo info;
  info.collection_id = seal::RandomId();
  info.name = name;
  info.kind = kind;
  info.key.key = seal::SecretKey::Random();
  info.key.epoch = 1;
  v1::CollectionMetadata metadata;
  metadata.set_name(name);
  metadata.set_kind(kind);
  v1::Collection c;
  c.set_collection_id(info.collection_id);
  c.set_key_epoch(info.key.epoch);
  FERRY_ASSIGN_OR_RETURN(*c.mutable_metadata(),
                         seal::SealMetadata(state_.master_key, info.collection_id,
                                            metadata.SerializeAsString()));
  FERRY_ASSIGN_OR_RETURN(
      *c.mutable_wrapped_key(),
      seal::WrapCollectionKey(state_.master_key, info.collection_id, info.key));
  FERRY_RETURN_IF_ERROR(client_->CreateCollection(c).status());
  return info;
}

absl::StatusOr<std::vector<CollectionInfo>> Device::ListCollections() {
  FERRY_ASSIGN_OR_RETURN(std::vector<v1::Collection> list, client_->ListCollections());
  std::vector<CollectionInfo> out;
  for (const v1::Collection& c : list) {
    FERRY_ASSIGN_OR_RETURN(
        std::string plain,
        seal::OpenMetadata(state_.master_key, c.collection_id(), c.metadata()));
    v1::CollectionMetadata metadata;
    if (!metadata.ParseFromString(plain)) {
      return absl::DataLossError(
          StrCat("metadata of ", c.collection_id(), " is damaged"));
    }
    CollectionInfo info;
    info.collection_id = c.collection_id();
    info.name = metadata.name();
    info.kind = metadata.kind();
    FERRY_ASSIGN_OR_RETURN(info.key,
                           seal::UnwrapCollectionKey(state_.master_key, c.collection_id(),
                                                     c.key_epoch(), c.wrapped_key()));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<CollectionInfo> Device::FindCollection(const std::string& name) {
  FERRY_ASSIGN_OR_RETURN(std::vector<CollectionInfo> all, ListCollections());
  for (CollectionInfo& c : all) {
    if (c.name == name) return std::move(c);
  }
  return absl::NotFoundError(StrCat("no collection named '", name, "'"));
}

absl::StatusOr<uint64_t> Device::AppendOps(const CollectionInfo& collection,
                                           const std::vector<v1::Op>& ops) {
  v1::Transaction tx;
  tx.set_tx_id(seal::RandomBytes(seal::kTxIdBytes));
  tx.set_device_id(state_.device_id);
  tx.set_hlc_time(static_cast<uint64_t>(NowMs()) << 16);
  for (const v1::Op& op : ops) *tx.add_ops() = op;
  for (int attempt = 0; attempt < kAppendAttemptsMax; ++attempt) {
    FERRY_ASSIGN_OR_RETURN(uint64_t head, client_->Head(collection.collection_id));
    tx.set_base_seq(head);
    FERRY_ASSIGN_OR_RETURN(
        std::string envelope,
        seal::SealTransaction(collection.key, collection.collection_id, tx, {}));
    absl::StatusOr<v1::AppendResponse> appended =
        client_->Append(collection.collection_id, envelope, 0);
    if (appended.ok()) return appended->seq();
    if (!absl::IsAborted(appended.status())) return appended.status();
  }
  return absl::AbortedError("lost the append race too many times; try again");
}

absl::StatusOr<std::vector<std::pair<uint64_t, v1::Transaction>>> Device::ReadLog(
    const CollectionInfo& collection, uint64_t after_seq) {
  std::vector<std::pair<uint64_t, v1::Transaction>> out;
  uint64_t cursor = after_seq;
  // Each page advances the cursor by at least one entry; the head bounds the loop.
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(v1::PullResponse page,
                           client_->Pull(collection.collection_id, cursor, 0));
    for (const v1::LogEntry& entry : page.entries()) {
      if (entry.seq() != cursor + 1) {
        return absl::DataLossError(
            StrCat("log gap: expected seq ", cursor + 1, ", got ", entry.seq()));
      }
      FERRY_ASSIGN_OR_RETURN(
          v1::Transaction tx,
          seal::OpenTransaction(collection.key, collection.collection_id,
                                entry.envelope()));
      out.emplace_back(entry.seq(), std::move(tx));
      cursor = entry.seq();
    }
    if (!page.more() || page.entries().empty()) break;
  }
  return out;
}

}  // namespace ferry::client
