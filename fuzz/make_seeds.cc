// Writes a seed corpus for the fuzz targets with the fixed fuzz key:
//   ferry_fuzz_seeds DIR  ->  DIR/<target>/* for envelope, chunk, transaction, path,
//                             store_request and manage_request
// The committed corpus in fuzz/corpus was made this way (nonces are random, so each
// run writes different bytes).
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "proto/ferry/v1/manage.pb.h"
#include "proto/ferry/v1/store.pb.h"
#include "src/core/limits.h"
#include "src/seal/seal.h"

namespace {

namespace fs = std::filesystem;
using ferry::fuzz::Hasher;
using ferry::fuzz::kCollectionId;
using ferry::fuzz::Key;

bool Write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

ferry::v1::Transaction Transaction(size_t body_bytes) {
  ferry::v1::Transaction tx;
  tx.set_tx_id(std::string(ferry::fuzz::kTxId));
  tx.set_device_id(std::string(ferry::fuzz::kDeviceId));
  tx.set_base_seq(ferry::fuzz::kBaseSeq);
  tx.set_hlc_time(123456789);
  ferry::v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
  item->set_id("a");
  ferry::v1::Field* f = item->add_fields();
  f->set_name("body");
  f->set_bytes(std::string(body_bytes, 'b'));
  ferry::v1::ContentRef* c = item->add_fields()->mutable_content();
  c->add_chunks()->set_id(std::string(ferry::kChunkIdBytes, 'c'));
  tx.add_ops()->mutable_delete_()->set_id("b");
  ferry::v1::MoveOp* m = tx.add_ops()->mutable_move();
  m->set_from_id("c");
  m->set_to_id("d");
  tx.add_ops()->mutable_patch()->add_unset(std::string("e"));
  return tx;
}

std::string Zstd(const std::string& plain) {
  std::string out(ZSTD_compressBound(plain.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), plain.data(), plain.size(), 3));
  return out;
}

// The payload-mode input of envelope_fuzz: 3-byte size, flags, payload.
std::string PayloadInput(const std::string& plain, bool zstd) {
  std::string out;
  for (int i = 0; i < 3; ++i) out.push_back(static_cast<char>(plain.size() >> (8 * i)));
  out.push_back(zstd ? 1 : 0);
  return out + (zstd ? Zstd(plain) : plain);
}

bool EnvelopeSeeds(const fs::path& dir) {
  bool ok = true;
  for (size_t body : {size_t{0}, size_t{10}, size_t{5000}}) {
    auto sealed = ferry::seal::SealTransaction(Key(), kCollectionId, Transaction(body),
                                               {std::string(ferry::kChunkIdBytes, 'c')});
    ok = ok && sealed.ok() && Write(dir / ("sealed_" + std::to_string(body)), *sealed);
  }
  std::string plain = Transaction(300).SerializeAsString();
  ok = ok && Write(dir / "payload_zstd", PayloadInput(plain, true));
  ok = ok && Write(dir / "payload_raw", PayloadInput(plain, false));
  ok = ok && Write(dir / "garbage", "\x0a\x03\x08\x01\x12");
  return ok;
}

bool ChunkSeeds(const fs::path& dir) {
  bool ok = true;
  for (const std::string& plain :
       {std::string(), std::string("hello, chunk"), std::string(20000, 'a')}) {
    auto chunk = ferry::seal::SealChunk(Key(), Hasher(), kCollectionId, plain);
    ok = ok && chunk.ok() &&
         Write(dir / ("sealed_" + std::to_string(plain.size())), chunk->id + chunk->data);
  }
  // Authentic-mode inputs: id, 6 header bytes, payload.
  std::string plain(3000, 'q');
  std::string z = Zstd(plain);
  std::string header = {
      1, 1, static_cast<char>(plain.size() & 0xff), static_cast<char>(plain.size() >> 8),
      0, 0};
  ok = ok && Write(dir / "payload_zstd", Hasher().ChunkId(plain) + header + z);
  header[1] = 0;
  ok = ok && Write(dir / "payload_raw", Hasher().ChunkId(plain) + header + plain);
  // Delta chunks against FuzzBase(): sealed for real, and in authentic mode (id, the
  // 6 header bytes of a block delta, its frame: one copy and a few new bytes).
  std::string edited = ferry::fuzz::FuzzBase();
  edited.replace(4000, 5, "fuzz!");
  auto delta = ferry::seal::SealChunkBlockDelta(
      Key(), Hasher(), kCollectionId, edited, Hasher().ChunkId(ferry::fuzz::FuzzBase()),
      Hasher().BlockSignatures(ferry::fuzz::FuzzBase()));
  ok = ok && delta.ok() && Write(dir / "sealed_block_delta", delta->id + delta->data);
  // copy 64 bytes from offset 0 (tag 64 << 1 | 1), then 10 new bytes (tag 10 << 1).
  std::string ops = {static_cast<char>(0x81), 0x01, 0x00, 0x14};
  ops += "0123456789";
  std::string copied = ferry::fuzz::FuzzBase().substr(0, 64) + "0123456789";
  std::string delta_header = {2, 3, static_cast<char>(copied.size()), 0, 0, 0};
  ok = ok && Write(dir / "payload_block_delta",
                   Hasher().ChunkId(copied) + delta_header + Zstd(ops));
  return ok;
}

ferry::v1::Item Item(const std::string& id, const std::string& body, size_t chunks) {
  ferry::v1::Item item;
  item.set_id(id);
  ferry::v1::Field* f = item.add_fields();
  f->set_name("body");
  f->set_bytes(body);
  if (chunks == 0) return item;
  ferry::v1::Field* c = item.add_fields();
  c->set_name("content");
  for (size_t i = 0; i < chunks; ++i) {
    ferry::v1::ChunkRef* ref = c->mutable_content()->add_chunks();
    ref->set_id(std::string(ferry::kChunkIdBytes, static_cast<char>('a' + i)));
    ref->set_size(static_cast<uint32_t>(100 + i));
    c->mutable_content()->set_size(c->content().size() + ref->size());
  }
  c->mutable_content()->set_digest(std::string(32, 'd'));
  return item;
}

bool TransactionSeeds(const fs::path& dir) {
  using ferry::v1::Op;
  auto put = [](const ferry::v1::Item& item) {
    Op op;
    *op.mutable_put()->mutable_item() = item;
    return op;
  };
  std::vector<std::vector<Op>> seeds;
  seeds.push_back({put(Item("a", "1", 0)), put(Item("b", "2", 3))});
  {
    Op patch;
    patch.mutable_patch()->set_id("b");
    patch.mutable_patch()->add_unset("body");
    ferry::v1::Field* set = patch.mutable_patch()->add_set();
    set->set_name("mode");
    set->set_bytes("420");
    ferry::v1::ContentPatch* splice = patch.mutable_patch()->add_splice();
    splice->set_field("content");
    ferry::v1::Splice* s = splice->add_splices();
    s->set_index(1);
    s->set_remove(1);
    ferry::v1::ChunkRef* ref = s->add_insert();
    ref->set_id(std::string(ferry::kChunkIdBytes, 'z'));
    ref->set_size(7);
    splice->set_size(100 + 7 + 102);
    seeds.push_back({put(Item("b", "2", 3)), patch});
  }
  {
    Op move, del;
    move.mutable_move()->set_from_id("a");
    move.mutable_move()->set_to_id("c");
    del.mutable_delete_()->set_id("b");
    seeds.push_back({put(Item("a", "1", 2)), put(Item("b", "2", 0)), move, del});
    Op absent;
    absent.mutable_move()->set_from_id("nothing");
    absent.mutable_move()->set_to_id("x");
    seeds.push_back({absent, put(Item("x", "", 1))});
  }
  {
    Op bad;  // a splice that does not fit its base
    bad.mutable_patch()->set_id("a");
    ferry::v1::ContentPatch* splice = bad.mutable_patch()->add_splice();
    splice->set_field("content");
    splice->add_splices()->set_index(5);
    seeds.push_back({put(Item("a", "1", 2)), bad});
  }
  {
    ferry::v1::Item twice = Item("d", "x", 1);
    *twice.add_fields() = twice.fields(0);  // a field name twice
    seeds.push_back({put(twice), put(Item("d", "y", 4)), put(Item("e", "", 0))});
  }
  bool ok = true;
  for (size_t i = 0; i < seeds.size(); ++i) {
    ferry::v1::Transaction tx = Transaction(0);
    tx.clear_ops();
    for (const Op& op : seeds[i]) *tx.add_ops() = op;
    ok = ok && Write(dir / ("tx_" + std::to_string(i)), tx.SerializeAsString());
  }
  return ok;
}

bool PathSeeds(const fs::path& dir) {
  const std::vector<std::string> paths = {"a/b/c.txt",
                                          "../x",
                                          "a/../../x",
                                          "/etc/passwd",
                                          "a//b",
                                          "C:\\x",
                                          "\\\\srv\\s",
                                          std::string("a\0b", 3),
                                          "\xc0\xae\xc0\xae/x",
                                          "\xed\xa0\x80",
                                          "caf\xc3\xa9",
                                          "cafe\xcc\x81",
                                          "\xe2\x80\x8b",
                                          "CON",
                                          "name. ",
                                          "\x1b[2J",
                                          "a\xc2\x85",
                                          std::string(255, 'n'),
                                          std::string(256, 'n'),
                                          "README\nreadme",
                                          "Docs/a\ndocs/b",
                                          "\xc3\x84\n\xc3\xa4\n\xce\xa3\n\xcf\x82"};
  bool ok = true;
  for (size_t i = 0; i < paths.size(); ++i) {
    ok = ok && Write(dir / ("path_" + std::to_string(i)), paths[i]);
  }
  return ok;
}

// A request seed: method byte, caller byte (0: the fuzzing device), message.
bool Request(const fs::path& path, int method, int caller,
             const google::protobuf::Message& message) {
  std::string bytes = {static_cast<char>(method), static_cast<char>(caller)};
  return Write(path, bytes + message.SerializeAsString());
}

bool StoreRequestSeeds(const fs::path& dir) {
  const std::string own = "00112233445566778899aabbccddeeff";
  const std::string other = "ffeeddccbbaa99887766554433221100";
  bool ok = true;
  for (uint64_t base : {uint64_t{0}, uint64_t{1}}) {
    ferry::v1::Transaction tx = Transaction(20);
    tx.set_device_id("DEVICE");  // the target puts the caller's device id here
    // No chunk refs: the server would refuse an append whose chunks it lacks.
    tx.mutable_ops(0)->mutable_put()->mutable_item()->mutable_fields()->RemoveLast();
    tx.set_base_seq(base);
    auto sealed = ferry::seal::SealTransaction(Key(), own, tx, {});
    ferry::v1::AppendRequest append;
    append.set_collection_id(own);
    append.set_envelope(sealed.ok() ? *sealed : "");
    ok = ok && sealed.ok() &&
         Request(dir / ("1_append_" + std::to_string(base)), 0, 0, append);
  }
  ferry::v1::PullRequest pull;
  pull.set_collection_id(own);
  ok = ok && Request(dir / "pull", 1, 0, pull);
  pull.set_collection_id(other);
  ok = ok && Request(dir / "pull_other", 1, 0, pull);
  ferry::v1::HeadRequest head;
  head.set_collection_id(own);
  ok = ok && Request(dir / "head", 2, 0, head);
  ok = ok && Request(dir / "head_no_token", 2, 1, head);
  ferry::v1::HasChunksRequest has;
  has.set_collection_id(own);
  ferry::v1::GetChunksRequest get;
  get.set_collection_id(own);
  std::string put_stream;
  for (const std::string plain : {"first chunk", "second chunk"}) {
    auto chunk = ferry::seal::SealChunk(Key(), Hasher(), own, plain);
    ok = ok && chunk.ok();
    if (!chunk.ok()) continue;
    has.add_ids(chunk->id);
    get.add_ids(chunk->id);
    ferry::v1::Chunk c;
    c.set_collection_id(own);
    c.set_id(chunk->id);
    c.set_data(chunk->data);
    std::string bytes = c.SerializeAsString();
    put_stream.push_back(static_cast<char>(bytes.size() & 0xff));
    put_stream.push_back(static_cast<char>(bytes.size() >> 8));
    put_stream += bytes;
  }
  ok = ok && Request(dir / "has_chunks", 3, 0, has);
  ok = ok && Write(dir / "0_put_chunks", std::string{4, 0} + put_stream);
  ok = ok && Request(dir / "get_chunks", 5, 0, get);
  ok = ok && Request(dir / "get_chunks_leaves", 6, 0, get);
  ferry::v1::WatchRequest watch;
  watch.add_collection_ids(own);
  ok = ok && Request(dir / "watch", 7, 0, watch);
  watch.add_collection_ids(other);
  ok = ok && Request(dir / "watch_other", 7, 0, watch);
  return ok;
}

bool ManageRequestSeeds(const fs::path& dir) {
  const std::string own = "00112233445566778899aabbccddeeff";
  bool ok = true;
  ferry::v1::CreateAccountRequest create;
  create.set_user("new user");
  create.mutable_kdf()->set_alg(1);
  create.mutable_kdf()->set_ops_limit(2);
  create.mutable_kdf()->set_mem_limit_bytes(1 << 20);
  create.mutable_kdf()->set_salt(std::string(16, 's'));
  create.set_auth_key(std::string(32, 'k'));
  create.set_device_name("sealed");
  ok = ok && Request(dir / "create_account", 0, 1, create);
  ferry::v1::LoginParamsRequest params;
  params.set_user("fuzz");
  ok = ok && Request(dir / "login_params", 1, 1, params);
  params.set_user("nobody");
  ok = ok && Request(dir / "login_params_unknown", 1, 1, params);
  ferry::v1::LoginRequest login;
  login.set_user("fuzz");
  login.set_auth_key(std::string(32, 'k'));
  login.set_device_name("sealed");
  ok = ok && Request(dir / "login", 2, 1, login);
  login.set_auth_key(std::string(32, 'w'));
  ok = ok && Request(dir / "login_wrong", 2, 1, login);
  ok = ok && Request(dir / "list_devices", 3, 0, ferry::v1::ListDevicesRequest());
  ferry::v1::RenameDeviceRequest rename;
  rename.set_device_id(std::string(32, '0'));
  rename.set_name("new sealed name");
  ok = ok && Request(dir / "rename_device", 4, 0, rename);
  ferry::v1::RevokeDeviceRequest revoke;
  revoke.set_device_id(std::string(32, '0'));
  ok = ok && Request(dir / "revoke_device", 5, 0, revoke);
  ferry::v1::CreateCollectionRequest collection;
  collection.mutable_collection()->set_collection_id("0123456789abcdef0123456789abcdef");
  collection.mutable_collection()->set_metadata("sealed");
  collection.mutable_collection()->set_wrapped_key("wrapped");
  collection.mutable_collection()->set_key_epoch(1);
  ok = ok && Request(dir / "create_collection", 6, 0, collection);
  ok = ok && Request(dir / "list_collections", 7, 0, ferry::v1::ListCollectionsRequest());
  ferry::v1::LeaseRequest lease;
  lease.set_collection_id(own);
  lease.set_ttl_ms(30000);
  ok = ok && Request(dir / "acquire_lease", 8, 0, lease);
  lease.set_fencing_token(1);
  ok = ok && Request(dir / "renew_lease", 9, 0, lease);
  ok = ok && Request(dir / "release_lease", 10, 0, lease);
  lease.set_collection_id("ffeeddccbbaa99887766554433221100");
  ok = ok && Request(dir / "acquire_other_lease", 8, 0, lease);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  ferry::seal::Init();
  fs::path root = argv[1];
  for (const char* name :
       {"envelope", "chunk", "transaction", "path", "store_request", "manage_request"}) {
    fs::create_directories(root / name);
  }
  if (!EnvelopeSeeds(root / "envelope") || !ChunkSeeds(root / "chunk") ||
      !TransactionSeeds(root / "transaction") || !PathSeeds(root / "path") ||
      !StoreRequestSeeds(root / "store_request") ||
      !ManageRequestSeeds(root / "manage_request")) {
    std::fprintf(stderr, "writing seeds failed\n");
    return 1;
  }
  return 0;
}
