// ferryd end to end through the client library: a real ferryd process on 127.0.0.1
// with TLS, real SQLite, real files.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "gtest/gtest.h"
#include "src/client/device.h"
#include "src/core/limits.h"
#include "src/core/strings.h"
#include "src/seal/seal.h"
#include "src/sqlite/sqlite.h"
#include "src/tls/tls.h"
#include "tests/process.h"

namespace ferry {
namespace {

using client::CollectionInfo;
using client::Device;
using testing::FerrydProcess;
using testing::TempDir;

class FerrydTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    server_ = std::make_unique<FerrydProcess>(dir_ / "server");
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  std::unique_ptr<Device> NewAccount(const std::string& user, const std::string& device) {
    client::LoginOptions options{dir_ / (user + "-" + device),
                                 server_->address(),
                                 user,
                                 "passphrase of " + user,
                                 device,
                                 server_->fingerprint(),
                                 true};
    auto created = Device::CreateAccount(options);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *std::move(created) : nullptr;
  }

  std::unique_ptr<Device> LoginDevice(const std::string& user,
                                      const std::string& device) {
    client::LoginOptions options{dir_ / (user + "-" + device),
                                 server_->address(),
                                 user,
                                 "passphrase of " + user,
                                 device,
                                 "",
                                 false};
    auto logged_in = Device::Login(options);
    EXPECT_TRUE(logged_in.ok()) << logged_in.status();
    return logged_in.ok() ? *std::move(logged_in) : nullptr;
  }

  // A sealed one-op transaction of `device` on `base`.
  static std::string Envelope(Device& device, const CollectionInfo& c, uint64_t base,
                              const std::string& value,
                              const std::vector<std::string>& chunk_ids = {}) {
    v1::Transaction tx;
    tx.set_tx_id(seal::RandomBytes(seal::kTxIdBytes));
    tx.set_device_id(device.state().device_id);
    tx.set_base_seq(base);
    v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
    item->set_id("item");
    v1::Field* field = item->add_fields();
    field->set_name("value");
    field->set_bytes(value);
    auto sealed = seal::SealTransaction(c.key, c.collection_id, tx, chunk_ids);
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : "";
  }

  TempDir dir_;
  std::unique_ptr<FerrydProcess> server_;
};

TEST_F(FerrydTest, CompareAndAppendRefusesAStaleBase) {
  auto a = NewAccount("alice", "laptop");
  auto b = LoginDevice("alice", "phone");
  ASSERT_TRUE(a && b);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok()) << c.status();
  auto first = a->client().Append(c->collection_id, Envelope(*a, *c, 0, "a"), 0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->seq(), 1u);
  auto c_on_b = b->FindCollection("Docs");
  ASSERT_TRUE(c_on_b.ok());
  auto lost = b->client().Append(c->collection_id, Envelope(*b, *c_on_b, 0, "b"), 0);
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kAborted) << lost.status();
  auto retried = b->client().Append(c->collection_id, Envelope(*b, *c_on_b, 1, "b"), 0);
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->seq(), 2u);
  // Both devices read the same linear log.
  auto log = b->ReadLog(*c_on_b, 0);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].second.base_seq(), 0u);
  EXPECT_EQ((*log)[1].second.base_seq(), 1u);
  EXPECT_EQ((*log)[1].second.ops(0).put().item().fields(0).bytes(), "b");
}

TEST_F(FerrydTest, RetryOfTheSameTransactionIsIdempotent) {
  auto a = NewAccount("alice", "laptop");
  ASSERT_TRUE(a);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok());
  std::string envelope = Envelope(*a, *c, 0, "once");
  auto first = a->client().Append(c->collection_id, envelope, 0);
  ASSERT_TRUE(first.ok());
  auto again = a->client().Append(c->collection_id, envelope, 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->seq(), first->seq());
  EXPECT_TRUE(again->duplicate());
  EXPECT_EQ(*a->client().Head(c->collection_id), 1u);
}

TEST_F(FerrydTest, AppendReferencingAMissingChunkIsRefused) {
  auto a = NewAccount("alice", "laptop");
  ASSERT_TRUE(a);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok());
  seal::ContentHasher hasher(c->key);
  auto chunk = seal::SealChunk(c->key, hasher, c->collection_id, "chunk content");
  ASSERT_TRUE(chunk.ok());
  std::string envelope = Envelope(*a, *c, 0, "with chunk", {chunk->id});
  auto refused = a->client().Append(c->collection_id, envelope, 0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_EQ(*a->client().Head(c->collection_id), 0u);

  auto has = a->client().HasChunks(c->collection_id, {chunk->id});
  ASSERT_TRUE(has.ok());
  EXPECT_FALSE((*has)[0]);
  auto put = a->client().PutChunks(c->collection_id, {{chunk->id, chunk->data}});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored(), 1u);
  EXPECT_TRUE((*a->client().HasChunks(c->collection_id, {chunk->id}))[0]);
  auto got = a->client().GetChunks(c->collection_id, {chunk->id});
  ASSERT_TRUE(got.ok()) << got.status();
  auto opened =
      seal::OpenChunk(c->key, hasher, c->collection_id, chunk->id, (*got)[0].second);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "chunk content");
  EXPECT_TRUE(a->client().Append(c->collection_id, envelope, 0).ok());
}

TEST_F(FerrydTest, AnotherAccountsCollectionIsOutOfReach) {
  auto a = NewAccount("alice", "laptop");
  auto b = NewAccount("bob", "laptop");
  ASSERT_TRUE(a && b);
  auto c = a->CreateCollection("Private", "files");
  ASSERT_TRUE(c.ok());
  std::string id = c->collection_id;
  ASSERT_TRUE(a->client().Append(id, Envelope(*a, *c, 0, "secret"), 0).ok());
  net::Client& bob = b->client();
  auto denied = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kPermissionDenied;
  };
  // bob seals with his own key but names alice's collection.
  CollectionInfo forged = *c;
  forged.key.key = seal::SecretKey::Random();
  EXPECT_TRUE(denied(bob.Append(id, Envelope(*b, forged, 1, "x"), 0).status()));
  EXPECT_TRUE(denied(bob.Pull(id, 0, 0).status()));
  EXPECT_TRUE(denied(bob.Head(id).status()));
  EXPECT_TRUE(denied(bob.HasChunks(id, {std::string(32, 'a')}).status()));
  EXPECT_TRUE(denied(bob.PutChunks(id, {{std::string(32, 'a'), "x"}}).status()));
  EXPECT_TRUE(denied(bob.GetChunks(id, {std::string(32, 'a')}).status()));
  EXPECT_TRUE(denied(bob.AcquireLease(id, 5000).status()));
  EXPECT_TRUE(denied(bob.RenewLease(id, 1, 5000).status()));
  EXPECT_TRUE(denied(bob.ReleaseLease(id, 1)));
  auto watch = bob.Watch({id});
  v1::HeadChanged change;
  EXPECT_FALSE(watch->Next(&change));
  EXPECT_TRUE(denied(watch->Finish()));
  // Nor can bob see, rename or revoke alice's devices.
  auto bobs = bob.ListDevices();
  ASSERT_TRUE(bobs.ok());
  EXPECT_EQ(bobs->size(), 1u);
  EXPECT_FALSE(bob.RevokeDevice(a->state().device_id).ok());
  EXPECT_FALSE(bob.RenameDevice(a->state().device_id, "pwned").ok());
  auto collections = bob.ListCollections();
  ASSERT_TRUE(collections.ok());
  EXPECT_TRUE(collections->empty());
  // alice is untouched.
  EXPECT_EQ(*a->client().Head(id), 1u);
  auto name = seal::OpenDeviceName(a->state().master_key,
                                   a->client().ListDevices()->at(0).name());
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, "laptop");
}

TEST_F(FerrydTest, RevokedDeviceIsRefusedAtOnce) {
  auto a = NewAccount("alice", "laptop");
  auto b = LoginDevice("alice", "phone");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(b->client().ListDevices().ok());
  ASSERT_TRUE(a->client().RevokeDevice(b->state().device_id).ok());
  auto refused = b->client().ListDevices();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(refused.status().message().find("revoked"), std::string::npos);
  EXPECT_EQ(b->client().ListCollections().status().code(),
            absl::StatusCode::kUnauthenticated);
  auto listed = a->client().ListDevices();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_TRUE(listed->at(1).revoked());
}

TEST_F(FerrydTest, LeaseFencesOtherDevicesAndStaleTokens) {
  auto a = NewAccount("alice", "laptop");
  auto b = LoginDevice("alice", "phone");
  ASSERT_TRUE(a && b);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok());
  std::string id = c->collection_id;
  auto lease = a->client().AcquireLease(id, 60000);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(b->client().AcquireLease(id, 60000).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b->client().Append(id, Envelope(*b, *c, 0, "b"), 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(
      a->client().Append(id, Envelope(*a, *c, 0, "a"), lease->fencing_token()).ok());
  auto renewed = a->client().RenewLease(id, lease->fencing_token(), 60000);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->fencing_token(), lease->fencing_token());
  ASSERT_TRUE(a->client().ReleaseLease(id, lease->fencing_token()).ok());
  auto taken = b->client().AcquireLease(id, 60000);
  ASSERT_TRUE(taken.ok());
  EXPECT_GT(taken->fencing_token(), lease->fencing_token());
  // a's token is stale now: refused even with a correct base.
  EXPECT_EQ(a->client()
                .Append(id, Envelope(*a, *c, 1, "late"), lease->fencing_token())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      b->client().Append(id, Envelope(*b, *c, 1, "b"), taken->fencing_token()).ok());
  EXPECT_EQ(a->client().AcquireLease(id, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A Watch stream of device `on`, cancelled if it is still open after 30 s, so that a
// test waiting on it is bounded.
class BoundedWatch {
 public:
  BoundedWatch(client::Device& on, const std::string& collection_id)
      : watch_(on.client().Watch({collection_id})), watchdog_([this] {
          for (int i = 0; i < 300 && !finished_; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          if (!finished_) watch_->Cancel();
        }) {}
  ~BoundedWatch() {
    finished_ = true;
    watchdog_.join();
  }
  net::WatchStream& operator*() { return *watch_; }
  net::WatchStream* operator->() { return watch_.get(); }

 private:
  std::unique_ptr<net::WatchStream> watch_;
  std::atomic<bool> finished_{false};
  std::thread watchdog_;
};

// Alice's devices a and b, her collection Docs, and b watching it with its first
// message (the head then) read.
class FerrydWatchTest : public FerrydTest {
 protected:
  void SetUp() override {
    FerrydTest::SetUp();
    a_ = NewAccount("alice", "laptop");
    b_ = LoginDevice("alice", "phone");
    ASSERT_TRUE(a_ && b_);
    auto created = a_->CreateCollection("Docs", "files");
    ASSERT_TRUE(created.ok()) << created.status();
    c_ = *std::move(created);
    watch_ = std::make_unique<BoundedWatch>(*b_, c_.collection_id);
    ASSERT_TRUE((*watch_)->Next(&first_));
  }
  void TearDown() override {
    watch_.reset();
    FerrydTest::TearDown();
  }

  std::unique_ptr<client::Device> a_, b_;
  client::CollectionInfo c_;
  std::unique_ptr<BoundedWatch> watch_;
  v1::HeadChanged first_;
};

TEST_F(FerrydWatchTest, TellsWhenTheHeadMoves) {
  EXPECT_EQ(first_.head_seq(), 0u);
  ASSERT_TRUE(a_->client().Append(c_.collection_id, Envelope(*a_, c_, 0, "x"), 0).ok());
  v1::HeadChanged change;
  ASSERT_TRUE((*watch_)->Next(&change));
  EXPECT_EQ(change.collection_id(), c_.collection_id);
  EXPECT_EQ(change.head_seq(), 1u);
  (*watch_)->Cancel();
}

// A device revoked while it watches stops hearing of heads: its open stream ends with
// UNAUTHENTICATED once the server checks again (every 5 s; this test waits at most 30).
TEST_F(FerrydWatchTest, EndsForARevokedDevice) {
  ASSERT_TRUE(a_->client().RevokeDevice(b_->state().device_id).ok());
  // Heads moving meanwhile may still be told until the check; then the stream ends.
  for (uint64_t seq = 0; seq < 3; ++seq) {
    ASSERT_TRUE(
        a_->client().Append(c_.collection_id, Envelope(*a_, c_, seq, "x"), 0).ok());
  }
  int told = 0;
  v1::HeadChanged change;
  while ((*watch_)->Next(&change)) ++told;
  absl::Status ended = (*watch_)->Finish();
  EXPECT_EQ(ended.code(), absl::StatusCode::kUnauthenticated)
      << ended << " after " << told << " messages";
}

TEST_F(FerrydTest, FailedLoginsAreRateLimited) {
  auto a = NewAccount("alice", "laptop");
  ASSERT_TRUE(a);
  net::ConnectOptions options{server_->address(), "", server_->fingerprint(), "", 15000};
  auto raw = net::Client::Connect(options);
  ASSERT_TRUE(raw.ok());
  v1::LoginRequest wrong;
  wrong.set_user("alice");
  wrong.set_auth_key(std::string(32, 'w'));
  wrong.set_device_name("thief");
  for (int i = 0; i < kLoginFailuresFree; ++i) {
    EXPECT_EQ((*raw)->Login(wrong).status().code(), absl::StatusCode::kUnauthenticated);
  }
  EXPECT_EQ((*raw)->Login(wrong).status().code(), absl::StatusCode::kUnauthenticated);
  // Now the account waits; even the right passphrase is not checked until then.
  EXPECT_EQ((*raw)->Login(wrong).status().code(), absl::StatusCode::kResourceExhausted);
  client::LoginOptions right{dir_ / "alice-phone",
                             server_->address(),
                             "alice",
                             "passphrase of alice",
                             "phone",
                             "",
                             false};
  auto blocked = Device::Login(right);
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kResourceExhausted)
      << blocked.status();
  EXPECT_NE(blocked.status().message().find("retry in"), std::string::npos)
      << blocked.status();
  // An unknown user looks like a real one: plausible parameters, stable salt.
  auto p1 = (*raw)->GetLoginParams("nobody");
  auto p2 = (*raw)->GetLoginParams("nobody");
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(p1->salt(), p2->salt());
  EXPECT_EQ(p1->salt().size(), seal::kSaltBytes);
}

TEST_F(FerrydTest, AcknowledgedAppendsSurviveKill9) {
  auto a = NewAccount("alice", "laptop");
  ASSERT_TRUE(a);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok());
  constexpr int kAppends = 20;
  for (int i = 0; i < kAppends; ++i) {
    ASSERT_TRUE(a->client()
                    .Append(c->collection_id, Envelope(*a, *c, i, std::to_string(i)), 0)
                    .ok());
  }
  server_->Kill9();  // right after the last acknowledgement
  server_ = std::make_unique<FerrydProcess>(dir_ / "server");
  ASSERT_TRUE(server_->ok()) << server_->error();
  net::ConnectOptions options{server_->address(), a->client().server_cert_pem(), "",
                              a->state().token, 15000};
  auto reconnected = net::Client::Connect(options);
  ASSERT_TRUE(reconnected.ok()) << reconnected.status();
  auto page = (*reconnected)->Pull(c->collection_id, 0, 0);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries_size(), kAppends);
  auto last = seal::OpenTransaction(c->key, c->collection_id,
                                    page->entries(kAppends - 1).envelope());
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->ops(0).put().item().fields(0).bytes(), std::to_string(kAppends - 1));
}

TEST_F(FerrydTest, ServerHoldsNoPlaintext) {
  const std::string kMarkers[] = {"MARKER-NAME-7d1f", "MARKER-FIELD-93ab",
                                  "MARKER-CHUNK-c4e2", "MARKER-COLLECTION-55aa",
                                  "MARKER-DEVICE-0b3c"};
  auto a = NewAccount("alice", kMarkers[4]);  // device names are sealed too
  ASSERT_TRUE(a);
  auto c = a->CreateCollection(kMarkers[3], "files");
  ASSERT_TRUE(c.ok());
  seal::ContentHasher hasher(c->key);
  std::string content;
  for (int i = 0; i < 1000; ++i) content += kMarkers[2];
  auto chunk = seal::SealChunk(c->key, hasher, c->collection_id, content);
  ASSERT_TRUE(chunk.ok());
  ASSERT_TRUE(a->client().PutChunks(c->collection_id, {{chunk->id, chunk->data}}).ok());
  v1::Transaction tx;
  tx.set_tx_id(seal::RandomBytes(seal::kTxIdBytes));
  tx.set_device_id(a->state().device_id);
  v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
  item->set_id(kMarkers[0]);
  item->add_fields()->set_bytes(kMarkers[1]);
  auto envelope = seal::SealTransaction(c->key, c->collection_id, tx, {chunk->id});
  ASSERT_TRUE(envelope.ok());
  ASSERT_TRUE(a->client().Append(c->collection_id, *envelope, 0).ok());
  ASSERT_EQ(server_->Stop(), 0);
  int files = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(server_->data_dir())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::string bytes = testing::ReadWholeFile(entry.path());
    for (const std::string& marker : kMarkers) {
      EXPECT_EQ(bytes.find(marker), std::string::npos)
          << marker << " in " << entry.path();
    }
  }
  EXPECT_GE(files, 3);  // database, chunk, certificate at least
}

class RawCallTest : public FerrydTest {
 protected:
  // Sends raw bytes as the request of `method`, with `authorization: <scheme><token>`
  // unless the token is empty.
  grpc::Status CallRaw(const std::string& method, const std::string& bytes,
                       const std::string& token, const std::string& scheme = "Bearer ") {
    grpc::SslCredentialsOptions ssl;
    auto pem = tls::LoadOrCreateServerCertificate(server_->data_dir());
    EXPECT_TRUE(pem.ok());
    ssl.pem_root_certs = pem->cert_pem;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(tls::kServerName);
    args.SetMaxSendMessageSize(64 << 20);
    auto channel =
        grpc::CreateCustomChannel(server_->address(), grpc::SslCredentials(ssl), args);
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
    if (!token.empty()) context.AddMetadata("authorization", scheme + token);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::Status status;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     std::lock_guard lock(mu);
                     status = s;
                     done = true;
                     cv.notify_one();
                   });
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return done; });
    return status;
  }
};

TEST_F(RawCallTest, BadInputGetsClearErrorsAndLosesNothing) {
  auto a = NewAccount("alice", "laptop");
  ASSERT_TRUE(a);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(a->client().Append(c->collection_id, Envelope(*a, *c, 0, "kept"), 0).ok());
  std::string token = a->state().token;
  // Not a protobuf at all.
  grpc::Status malformed =
      CallRaw("/ferry.v1.Store/Append", "\xff\xff\xff\xff garbage", token);
  EXPECT_FALSE(malformed.ok());
  // A well-formed request whose envelope is garbage.
  v1::AppendRequest request;
  request.set_collection_id(c->collection_id);
  request.set_envelope("not an envelope");
  grpc::Status bad_envelope =
      CallRaw("/ferry.v1.Store/Append", request.SerializeAsString(), token);
  EXPECT_EQ(bad_envelope.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << bad_envelope.error_message();
  // Larger than any message ferryd accepts.
  request.set_envelope(std::string(kGrpcMessageBytesMax + 1024, 'x'));
  grpc::Status oversized =
      CallRaw("/ferry.v1.Store/Append", request.SerializeAsString(), token);
  EXPECT_EQ(oversized.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << oversized.error_message();
  // No token, and a made-up one.
  v1::HeadRequest head;
  head.set_collection_id(c->collection_id);
  EXPECT_EQ(CallRaw("/ferry.v1.Store/Head", head.SerializeAsString(), "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(
      CallRaw("/ferry.v1.Store/Head", head.SerializeAsString(), "made-up").error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  // Nothing was lost and the server still serves.
  auto log = a->ReadLog(*c, 0);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].second.ops(0).put().item().fields(0).bytes(), "kept");
}

// Fencing tokens and device tokens are secrets of the device that holds them: no status
// and no line of ferryd's log repeats one, whichever wrong, stale or other device's
// token a call carries. ferryd logs at trace, its most verbose level.
TEST_F(RawCallTest, TokensAreNeverEchoedInErrorsOrTheLog) {
  auto a = NewAccount("alice", "laptop");
  auto b = LoginDevice("alice", "phone");
  auto bob = NewAccount("bob", "laptop");
  ASSERT_TRUE(a && b && bob);
  auto c = a->CreateCollection("Docs", "files");
  ASSERT_TRUE(c.ok()) << c.status();
  auto c_on_b = b->FindCollection("Docs");
  ASSERT_TRUE(c_on_b.ok()) << c_on_b.status();
  const std::string id = c->collection_id;
  // Fencing tokens count from 1, and "1" or "2" is in any message with a digit. So the
  // collection's lease row is given a token far from every other number ferryd prints
  // (as a long-lived collection has), with ferryd stopped; it restarts on the same
  // address.
  constexpr uint64_t kIssuedBefore = 7'340'982'165'301;
  const std::string address = server_->address();
  ASSERT_EQ(server_->Stop(), 0);
  {
    auto db = sqlite::Database::Open(dir_ / "server/ferry.db");
    ASSERT_TRUE(db.ok()) << db.status();
    auto insert = (*db)->Prepare(
        "INSERT INTO leases(collection_id, device_id, fencing_token, expires_ms)"
        " VALUES(?1, '', ?2, 0)");
    ASSERT_TRUE(insert.ok()) << insert.status();
    ASSERT_TRUE(
        insert->BindText(1, id).Bind(2, static_cast<int64_t>(kIssuedBefore)).Run().ok());
  }
  server_ = std::make_unique<FerrydProcess>(
      dir_ / "server", std::vector<std::string>{"--log-level", "trace"}, address);
  ASSERT_TRUE(server_->ok()) << server_->error();

  using absl::StatusCode;
  std::vector<std::string> said;  // every message ferryd answered
  auto refused = [&](const absl::Status& status, StatusCode code) {
    EXPECT_EQ(status.code(), code) << status;
    said.emplace_back(status.message());
  };
  net::Client& on_a = a->client();
  net::Client& on_b = b->client();
  auto lease_a = on_a.AcquireLease(id, 60000);
  ASSERT_TRUE(lease_a.ok()) << lease_a.status();
  const uint64_t t_a = lease_a->fencing_token();
  ASSERT_EQ(t_a, kIssuedBefore + 1);
  const uint64_t never = t_a + 1'000'003;
  // a holds the lease: b calls with a's token, a with one never issued, bob (another
  // account) with a's.
  refused(on_b.RenewLease(id, t_a, 60000).status(), StatusCode::kFailedPrecondition);
  refused(on_b.ReleaseLease(id, t_a), StatusCode::kFailedPrecondition);
  refused(on_b.Append(id, Envelope(*b, *c_on_b, 0, "b"), t_a).status(),
          StatusCode::kFailedPrecondition);
  refused(on_b.AcquireLease(id, 60000).status(), StatusCode::kFailedPrecondition);
  refused(on_a.RenewLease(id, never, 60000).status(), StatusCode::kFailedPrecondition);
  refused(on_a.ReleaseLease(id, never), StatusCode::kFailedPrecondition);
  refused(on_a.Append(id, Envelope(*a, *c, 0, "a"), never).status(),
          StatusCode::kFailedPrecondition);
  refused(bob->client().RenewLease(id, t_a, 60000).status(),
          StatusCode::kPermissionDenied);
  refused(bob->client().ReleaseLease(id, t_a), StatusCode::kPermissionDenied);
  // b takes the lease: a calls with b's token and with its own, now stale.
  ASSERT_TRUE(on_a.ReleaseLease(id, t_a).ok());
  auto lease_b = on_b.AcquireLease(id, 60000);
  ASSERT_TRUE(lease_b.ok()) << lease_b.status();
  const uint64_t t_b = lease_b->fencing_token();
  ASSERT_GT(t_b, t_a);
  refused(on_a.Append(id, Envelope(*a, *c, 0, "a"), t_b).status(),
          StatusCode::kFailedPrecondition);
  refused(on_a.RenewLease(id, t_b, 60000).status(), StatusCode::kFailedPrecondition);
  refused(on_a.ReleaseLease(id, t_b), StatusCode::kFailedPrecondition);
  refused(on_a.RenewLease(id, t_a, 60000).status(), StatusCode::kFailedPrecondition);
  refused(on_a.ReleaseLease(id, t_a), StatusCode::kFailedPrecondition);
  refused(on_a.AcquireLease(id, 60000).status(), StatusCode::kFailedPrecondition);
  // b lets go: a's old token is stale.
  ASSERT_TRUE(on_b.ReleaseLease(id, t_b).ok());
  refused(on_a.Append(id, Envelope(*a, *c, 0, "a"), t_a).status(),
          StatusCode::kFailedPrecondition);
  refused(on_a.Append(id, Envelope(*a, *c, 0, "a"), never).status(),
          StatusCode::kFailedPrecondition);

  // Device tokens: a's with its last character changed, a made-up one, one too long,
  // a's without the Bearer scheme, each on calls of both services that carry t_b.
  std::string near = a->state().token;
  near.back() = near.back() == 'A' ? 'B' : 'A';
  const std::string made_up = seal::NewToken();
  std::string too_long;
  while (too_long.size() <= 256) too_long += seal::NewToken();
  v1::HeadRequest head;
  head.set_collection_id(id);
  v1::LeaseRequest renew;
  renew.set_collection_id(id);
  renew.set_fencing_token(t_b);
  renew.set_ttl_ms(60000);
  v1::AppendRequest append;
  append.set_collection_id(id);
  append.set_envelope(Envelope(*a, *c, 0, "a"));
  append.set_fencing_token(t_b);
  const std::pair<std::string, std::string> calls[] = {
      {"/ferry.v1.Store/Head", head.SerializeAsString()},
      {"/ferry.v1.Store/Append", append.SerializeAsString()},
      {"/ferry.v1.Manage/RenewLease", renew.SerializeAsString()},
      {"/ferry.v1.Manage/ListDevices", ""}};
  for (const auto& [method, request] : calls) {
    for (const std::string& token : {near, made_up, too_long}) {
      grpc::Status status = CallRaw(method, request, token);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
      said.push_back(status.error_message());
    }
    grpc::Status status = CallRaw(method, request, a->state().token, "Token ");
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    said.push_back(status.error_message());
  }
  // b's own token once b is revoked.
  ASSERT_TRUE(on_a.RevokeDevice(b->state().device_id).ok());
  refused(on_b.RenewLease(id, t_b, 60000).status(), StatusCode::kUnauthenticated);
  refused(on_b.Append(id, Envelope(*b, *c_on_b, 0, "b"), t_b).status(),
          StatusCode::kUnauthenticated);
  // And a wrong passphrase's auth key.
  v1::LoginRequest login;
  login.set_user("alice");
  login.set_auth_key(seal::RandomBytes(32));
  login.set_device_name("thief");
  refused(on_a.Login(login).status(), StatusCode::kUnauthenticated);

  // What must never be repeated: each fencing token in decimal and in hex, and every
  // 12 characters of each device token (a part would be a leak too), and the key.
  std::vector<std::string> secrets;
  for (uint64_t token : {t_a, t_b, never}) {
    secrets.push_back(std::to_string(token));
    secrets.push_back(Hex64(token));
  }
  for (const std::string& token :
       {a->state().token, b->state().token, near, made_up, too_long}) {
    for (size_t at = 0; at + 12 <= token.size(); ++at) {
      secrets.push_back(token.substr(at, 12));
    }
  }
  secrets.push_back(login.auth_key());
  secrets.push_back(Hex(login.auth_key()));
  const std::string log = testing::ReadWholeFile(dir_ / "server.log");
  ASSERT_NE(log.find("serving on"), std::string::npos) << "not ferryd's log: " << log;
  ASSERT_EQ(said.size(), 36u);
  for (const std::string& message : said) {
    EXPECT_FALSE(message.empty());
    for (const std::string& secret : secrets) {
      EXPECT_EQ(message.find(secret), std::string::npos)
          << "\"" << message << "\" repeats a token";
    }
  }
  for (const std::string& secret : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "ferryd's log repeats a token";
  }
}

}  // namespace
}  // namespace ferry
