#include "sim/sim.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "include/ferry/engine.h"
#include "src/client/device.h"
#include "src/connectors/files/files_connector.h"
#include "src/core/clock.h"
#include "src/core/strings.h"
#include "src/engine/chunk_cache.h"
#include "src/engine/shadow_store.h"
#include "src/seal/seal.h"
#include "src/server/server.h"

namespace ferry::sim {
namespace {

namespace fs = std::filesystem;
using Rng = std::mt19937_64;

// 2026-01-01T00:00:00Z: where every run's clock starts.
constexpr int64_t kStartMs = 1767225600000;
constexpr int64_t kDayMs = 24 * 3600 * 1000;
constexpr uint32_t kLeaseTtlMs = 60000;
// Rounds of the heal-and-drain phase before a run is declared not converging.
constexpr int kDrainRoundsMax = 12;
constexpr char kCrash[] = "simulated crash";

class SimClock final : public Clock {
 public:
  int64_t NowMs() override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_{kStartMs};
};

// The engine's randomness (tx ids), from the seed.
class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : rng_(seed ^ 0x9e3779b97f4a7c15ull) {}
  std::string Bytes(size_t n) {
    std::lock_guard lock(mu_);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng_());
    return out;
  }

 private:
  std::mutex mu_;
  Rng rng_;
};

class DeviceEnv final : public Env {
 public:
  DeviceEnv(SimClock* clock, SeededRandom* random) : clock_(clock), random_(random) {}
  int64_t NowMs() override { return clock_->NowMs() + skew_ms; }
  std::string RandomBytes(size_t n) override { return random_->Bytes(n); }
  int64_t skew_ms = 0;

 private:
  SimClock* clock_;
  SeededRandom* random_;
};

// One fault for one sync, drawn before it starts (on the simulation's thread, so a
// run stays a function of its seed even though the engine calls from several threads).
struct FaultPlan {
  enum Kind {
    kNone,
    kFailBefore,           // call `call` number `nth` fails without reaching the server
    kFailAfter,            // ... fails after the server did it
    kCrashAtCall,          // the device dies at that call (before it)
    kCrashBeforeApply,     // the device dies at apply `nth`, before doing it
    kCrashAfterApply,      // ... right after doing it
    kUserEditBeforeApply,  // the user changes the target of apply `nth` first
    kLeaseStolen,          // before the first Append, the lease expires and another
                           // device takes it
  } kind = kNone;
  std::string call;
  int nth = 1;
};

const char* KindName(FaultPlan::Kind kind) {
  switch (kind) {
    case FaultPlan::kNone:
      return "none";
    case FaultPlan::kFailBefore:
      return "fail-before";
    case FaultPlan::kFailAfter:
      return "fail-after";
    case FaultPlan::kCrashAtCall:
      return "crash-at-call";
    case FaultPlan::kCrashBeforeApply:
      return "crash-before-apply";
    case FaultPlan::kCrashAfterApply:
      return "crash-after-apply";
    case FaultPlan::kUserEditBeforeApply:
      return "user-edit-before-apply";
    case FaultPlan::kLeaseStolen:
      return "lease-stolen";
  }
  return "?";
}

// The real client, with the plan's fault injected at its call.
class FaultyClient final : public net::Client {
 public:
  // `steal` makes another device take the lease; `give_back` has it release the lease
  // again (that device's sync is over).
  FaultyClient(net::Client* real, const FaultPlan& plan, std::function<void()> steal,
               std::function<void()> give_back)
      : real_(real),
        plan_(plan),
        steal_(std::move(steal)),
        give_back_(std::move(give_back)) {}
  bool fired() const { return fired_; }

  const std::string& server_cert_pem() const override { return real_->server_cert_pem(); }
  const std::string& fingerprint() const override { return real_->fingerprint(); }
  void set_token(std::string token) override { real_->set_token(std::move(token)); }
  absl::StatusOr<v1::KdfParams> GetLoginParams(const std::string& user) override {
    return Call("GetLoginParams", [&] { return real_->GetLoginParams(user); });
  }
  absl::StatusOr<v1::LoginResponse> CreateAccount(
      const v1::CreateAccountRequest& request) override {
    return Call("CreateAccount", [&] { return real_->CreateAccount(request); });
  }
  absl::StatusOr<v1::LoginResponse> Login(const v1::LoginRequest& request) override {
    return Call("Login", [&] { return real_->Login(request); });
  }
  absl::StatusOr<std::vector<v1::Device>> ListDevices() override {
    return Call("ListDevices", [&] { return real_->ListDevices(); });
  }
  absl::Status RenameDevice(const std::string& id, const std::string& name) override {
    return Call("RenameDevice", [&] { return real_->RenameDevice(id, name); });
  }
  absl::Status RevokeDevice(const std::string& id) override {
    return Call("RevokeDevice", [&] { return real_->RevokeDevice(id); });
  }
  absl::StatusOr<v1::Collection> CreateCollection(const v1::Collection& c) override {
    return Call("CreateCollection", [&] { return real_->CreateCollection(c); });
  }
  absl::StatusOr<std::vector<v1::Collection>> ListCollections() override {
    return Call("ListCollections", [&] { return real_->ListCollections(); });
  }
  absl::StatusOr<v1::Lease> AcquireLease(const std::string& collection_id,
                                         uint32_t ttl_ms) override {
    return Call("AcquireLease",
                [&] { return real_->AcquireLease(collection_id, ttl_ms); });
  }
  absl::StatusOr<v1::Lease> RenewLease(const std::string& collection_id, uint64_t token,
                                       uint32_t ttl_ms) override {
    return Call("RenewLease",
                [&] { return real_->RenewLease(collection_id, token, ttl_ms); });
  }
  absl::Status ReleaseLease(const std::string& collection_id, uint64_t token) override {
    return Call("ReleaseLease",
                [&] { return real_->ReleaseLease(collection_id, token); });
  }
  absl::StatusOr<v1::AppendResponse> Append(const std::string& collection_id,
                                            const std::string& envelope,
                                            uint64_t token) override {
    bool steal = plan_.kind == FaultPlan::kLeaseStolen && !fired_;
    if (steal) {
      fired_ = true;
      steal_();
    }
    auto result =
        Call("Append", [&] { return real_->Append(collection_id, envelope, token); });
    if (steal) give_back_();
    return result;
  }
  absl::StatusOr<v1::PullResponse> Pull(const std::string& collection_id, uint64_t after,
                                        uint32_t limit) override {
    return Call("Pull", [&] { return real_->Pull(collection_id, after, limit); });
  }
  absl::StatusOr<uint64_t> Head(const std::string& collection_id) override {
    return Call("Head", [&] { return real_->Head(collection_id); });
  }
  absl::StatusOr<std::vector<bool>> HasChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) override {
    return Call("HasChunks", [&] { return real_->HasChunks(collection_id, ids); });
  }
  absl::StatusOr<v1::PutChunksResponse> PutChunks(
      const std::string& collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) override {
    return Call("PutChunks", [&] { return real_->PutChunks(collection_id, chunks); });
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) override {
    return Call("GetChunks", [&] { return real_->GetChunks(collection_id, ids); });
  }
  std::unique_ptr<net::WatchStream> Watch(const std::vector<std::string>& ids) override {
    return real_->Watch(ids);
  }

 private:
  template <typename F>
  auto Call(const char* name, F&& call) -> decltype(call()) {
    bool mine = false;
    {
      std::lock_guard lock(mu_);
      if (crashed_) return absl::CancelledError(kCrash);
      int n = ++calls_[name];
      mine =
          !fired_ && plan_.call == name && n == plan_.nth &&
          (plan_.kind == FaultPlan::kFailBefore || plan_.kind == FaultPlan::kFailAfter ||
           plan_.kind == FaultPlan::kCrashAtCall);
      if (mine) fired_ = true;
      if (mine && plan_.kind == FaultPlan::kCrashAtCall) {
        crashed_ = true;
        return absl::CancelledError(kCrash);
      }
      if (mine && plan_.kind == FaultPlan::kFailBefore) {
        return absl::UnavailableError("simulated network failure before the call");
      }
    }
    auto result = call();
    if (mine) return absl::UnavailableError("simulated network failure after the call");
    return result;
  }

  net::Client* real_;
  FaultPlan plan_;
  std::function<void()> steal_;
  std::function<void()> give_back_;
  std::mutex mu_;
  std::map<std::string, int> calls_;
  bool fired_ = false;
  bool crashed_ = false;
};

// The real connector, with the plan's apply fault.
class FaultyConnector final : public Connector {
 public:
  FaultyConnector(Connector* real, const FaultPlan& plan,
                  std::function<void(const std::string&)> user_edit)
      : real_(real), plan_(plan), user_edit_(std::move(user_edit)) {}
  bool fired() const { return fired_; }

  std::string_view Name() const override { return real_->Name(); }
  bool DataPresent() override { return real_->DataPresent(); }
  absl::StatusOr<ScanResult> Scan(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) override {
    if (crashed_) return absl::CancelledError(kCrash);
    return real_->Scan(synced, stamps);
  }
  absl::Status ReadContent(
      const v1::Item& item, const std::string& field,
      const std::function<absl::Status(const v1::ChunkRef&, std::string_view)>& sink)
      override {
    return real_->ReadContent(item, field, sink);
  }
  absl::StatusOr<std::string> ReadRange(const std::string& id, const std::string& field,
                                        uint64_t offset, uint32_t size) override {
    return real_->ReadRange(id, field, offset, size);
  }
  absl::StatusOr<std::string> Apply(const std::string& id, const std::string& expected,
                                    const v1::Item* after, ChunkSource* chunks) override {
    return std::move(ApplyBatch({{id, expected, after}}, chunks)[0]);
  }
  std::vector<absl::StatusOr<std::string>> ApplyBatch(
      const std::vector<ApplyRequest>& requests, ChunkSource* chunks) override {
    std::vector<absl::StatusOr<std::string>> crashed(requests.size(),
                                                     absl::CancelledError(kCrash));
    if (crashed_) return crashed;
    bool mine = !fired_ && ++applies_ == plan_.nth;
    if (mine && plan_.kind == FaultPlan::kCrashBeforeApply) {
      fired_ = crashed_ = true;
      return crashed;
    }
    if (mine && plan_.kind == FaultPlan::kUserEditBeforeApply && !requests.empty()) {
      fired_ = true;
      user_edit_(requests.front().id);
    }
    auto results = real_->ApplyBatch(requests, chunks);
    if (mine && plan_.kind == FaultPlan::kCrashAfterApply) {
      fired_ = crashed_ = true;
      return crashed;
    }
    return results;
  }
  absl::StatusOr<std::string> Move(const std::string& from, const std::string& stamp,
                                   const std::string& to) override {
    if (crashed_) return absl::CancelledError(kCrash);
    bool mine = !fired_ && ++applies_ == plan_.nth;
    if (mine && plan_.kind == FaultPlan::kCrashBeforeApply) {
      fired_ = crashed_ = true;
      return absl::CancelledError(kCrash);
    }
    auto result = real_->Move(from, stamp, to);
    if (mine && plan_.kind == FaultPlan::kCrashAfterApply) {
      fired_ = crashed_ = true;
      return absl::CancelledError(kCrash);
    }
    return result;
  }
  std::string ConflictCopyId(const std::string& id, const std::string& device,
                             int64_t time_ms) override {
    return real_->ConflictCopyId(id, device, time_ms);
  }
  int64_t EditTimeMs(const v1::Item& item) override { return real_->EditTimeMs(item); }

 private:
  Connector* real_;
  FaultPlan plan_;
  std::function<void(const std::string&)> user_edit_;
  int applies_ = 0;
  bool fired_ = false;
  bool crashed_ = false;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

void WriteAll(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

struct Device {
  int index = 0;
  fs::path home, root;
  std::unique_ptr<client::Device> device;
  client::CollectionInfo info;
  std::unique_ptr<DeviceEnv> env;
  int offline_until = -1;  // step
};

class Run {
 public:
  Run(const SimOptions& options)
      : options_(options), rng_(options.seed), random_(options.seed) {}

  SimResult Go() {
    // In memory where there is a tmpfs: the run's fsyncs then cost nothing, and what
    // the simulation checks does not depend on them (a crash here is a process dying,
    // which loses nothing a file system already has).
    std::error_code ec;
    std::string base = fs::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string pattern_text = base + "/ferry-sim-XXXXXX";
    std::vector<char> pattern(pattern_text.begin(), pattern_text.end());
    pattern.push_back('\0');
    if (::mkdtemp(pattern.data()) == nullptr) return Fail("cannot make a work folder");
    work_ = pattern.data();
    SimResult result = Body();
    std::error_code ignored;
    if (result.ok)
      fs::remove_all(work_, ignored);
    else
      result.failure += StrCat(" (work folder kept: ", work_.string(), ")");
    return result;
  }

 private:
  SimResult Fail(std::string why) {
    SimResult r = result_;
    r.ok = false;
    r.failure = StrCat("seed ", options_.seed, ": ", why);
    return r;
  }

  void Trace(const std::string& line) {
    trace_hash_ = Fnv1a64(line + "\n", trace_hash_);
    if (options_.verbose) {
      std::printf("  %s\n", line.c_str());
      std::fflush(stdout);
    }
  }

  // A path with every device id replaced by the device's number, so that traces of
  // two runs of one seed compare equal although the server draws new ids.
  std::string Canonical(std::string path) const {
    for (const auto& d : devices_) {
      std::string id8 = d.device->state().device_id.substr(0, 8);
      for (size_t at; (at = path.find(id8)) != std::string::npos;) {
        path.replace(at, id8.size(), StrCat("dev", d.index));
      }
    }
    return path;
  }

  uint64_t Pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // Files and directories of a root (relative, canonical order), ferry's own temporary
  // files left out.
  std::vector<std::pair<std::string, fs::path>> List(const Device& d, bool dirs) {
    std::vector<std::pair<std::string, fs::path>> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d.root, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      std::string rel = fs::relative(it->path(), d.root).string();
      if (rel.find(".ferry-tmp") != std::string::npos) continue;
      if (it->is_directory() != dirs || (!dirs && !it->is_regular_file())) continue;
      out.emplace_back(Canonical(rel), it->path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string NewContent(size_t size) {
    std::string marker = StrCat("<<", Hex64(rng_()), Hex64(rng_()), ">>");
    markers_.push_back(marker);
    std::string out;
    out.reserve(size + marker.size());
    bool text = Pick(2) == 0;
    for (size_t i = 0; i < size; ++i) {
      uint64_t r = rng_();
      out.push_back(text ? static_cast<char>('a' + r % 26) : static_cast<char>(r));
    }
    out.insert(Pick(out.size() + 1), marker);
    return out;
  }

  size_t NewSize() {
    uint64_t r = Pick(100);
    if (r < 70) return Pick(4096);
    if (r < 95) return Pick(65536);
    return 100000 + Pick(300000);
  }

  void Live(const std::string& content) {
    live_[std::hash<std::string>()(content)] = true;
  }
  void Supersede(const std::string& content) {
    live_[std::hash<std::string>()(content)] = false;
  }

  // Writes `content` as the user of device `d` would, at the device's time.
  void UserWrite(Device& d, const fs::path& path, const std::string& content) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) Supersede(ReadAll(path));
    fs::create_directories(path.parent_path(), ec);
    WriteAll(path, content);
    int64_t ms = d.env->NowMs();
    struct timespec times[2] = {{ms / 1000, (ms % 1000) * 1000000},
                                {ms / 1000, (ms % 1000) * 1000000}};
    ::utimensat(AT_FDCWD, path.c_str(), times, 0);
    Live(content);
  }

  std::string RandomPath() {
    static const char* kDirs[] = {"", "docs/", "docs/old/", "pics/", "src/"};
    static const char* kNames[] = {"a.txt", "b.txt", "notes.md",
                                   "todo",  "x.bin", "y.bin"};
    std::string name = Pick(4) == 0 ? StrCat("r", Hex64(rng_()).substr(0, 6), ".dat")
                                    : kNames[Pick(std::size(kNames))];
    if (name.size() >= 6) names_.insert(name);
    return StrCat(kDirs[Pick(std::size(kDirs))], name);
  }

  std::string UserAction(Device& d) {
    auto files = List(d, false);
    auto dirs = List(d, true);
    uint64_t r = Pick(100);
    std::error_code ec;
    if (r < 30 || files.empty()) {
      std::string rel = RandomPath();
      fs::path path = d.root / rel;
      if (fs::is_directory(path, ec)) return "create-skipped";
      UserWrite(d, path, NewContent(NewSize()));
      return StrCat("create ", rel);
    }
    auto& [name, path] = files[Pick(files.size())];
    if (r < 60) {
      std::string old = ReadAll(path);
      std::string piece = NewContent(Pick(3000));
      std::string edited;
      uint64_t how = Pick(3);
      if (how == 0) {
        edited = old + piece;
      } else if (how == 1) {
        size_t at = Pick(old.size() + 1);
        edited = old.substr(0, at) + piece +
                 old.substr(std::min(old.size(), at + piece.size()));
      } else {
        edited = piece + old;
      }
      UserWrite(d, path, edited);
      return StrCat("edit ", name);
    }
    if (r < 72) {
      Supersede(ReadAll(path));
      fs::remove(path, ec);
      return StrCat("delete ", name);
    }
    if (r < 84) {
      std::string to = RandomPath();
      fs::path target = d.root / to;
      if (fs::exists(target, ec)) return "rename-skipped";
      fs::create_directories(target.parent_path(), ec);
      fs::rename(path, target, ec);
      return StrCat("rename ", name, " ", to);
    }
    if (r < 90 && !dirs.empty()) {
      auto& [dname, dpath] = dirs[Pick(dirs.size())];
      for (auto& [fname, fpath] : files) {
        if (fname.starts_with(dname + "/")) Supersede(ReadAll(fpath));
      }
      fs::remove_all(dpath, ec);
      return StrCat("delete-dir ", dname);
    }
    if (r < 95 && !dirs.empty()) {
      auto& [dname, dpath] = dirs[Pick(dirs.size())];
      std::string to = StrCat("moved", Pick(3));
      if (fs::exists(d.root / to, ec)) return "move-dir-skipped";
      fs::rename(dpath, d.root / to, ec);
      return StrCat("move-dir ", dname, " ", to);
    }
    std::string dir = StrCat("empty", Pick(3));
    fs::create_directories(d.root / dir, ec);
    return StrCat("mkdir ", dir);
  }

  FaultPlan DrawFault() {
    FaultPlan plan;
    if (!faults_on_ || Pick(100) >= 35) return plan;
    static const char* kCalls[] = {"AcquireLease", "Pull",   "HasChunks",   "PutChunks",
                                   "GetChunks",    "Append", "ReleaseLease"};
    plan.kind = static_cast<FaultPlan::Kind>(1 + Pick(7));
    plan.call = kCalls[Pick(std::size(kCalls))];
    plan.nth = 1 + static_cast<int>(Pick(3) == 0 ? Pick(3) : 0);
    return plan;
  }

  // One sync of device `d`; the status code is the outcome.
  absl::Status Sync(Device& d, const FaultPlan& plan, bool allow_mass_delete,
                    SyncReport* report) {
    auto shadow = engine::ShadowStore::Open((d.home / "shadow.db").string());
    if (!shadow.ok()) return shadow.status();
    auto cache =
        engine::ChunkCache::Open((d.home / "cache.db").string(), 16u << 20, 8u << 20);
    if (!cache.ok()) return cache.status();
    seal::ContentHasher hasher(d.info.key);
    files::FilesOptions files_options;
    files_options.root = d.root.string();
    files_options.hash_threads = 2;
    files_options.case_insensitive = false;
    files::FilesConnector real(files_options, &hasher, files::ChunkerSeed(hasher));
    FaultyConnector connector(&real, plan, [&](const std::string& id) {
      fs::path path = d.root / id;
      std::error_code ec;
      if (fs::is_regular_file(path, ec))
        UserWrite(d, path, ReadAll(path) + NewContent(50));
    });
    int thief = (d.index + 1) % static_cast<int>(devices_.size());
    uint64_t thief_token = 0;
    FaultyClient client(
        &d.device->client(), plan,
        [&] {
          clock_.Advance(kLeaseTtlMs + 1000);
          auto lease = devices_[thief].device->client().AcquireLease(d.info.collection_id,
                                                                     kLeaseTtlMs);
          if (lease.ok()) thief_token = lease->fencing_token();
        },
        [&] {
          (void)devices_[thief].device->client().ReleaseLease(d.info.collection_id,
                                                              thief_token);
        });
    EngineConfig config;
    config.collection_id = d.info.collection_id;
    config.device_id = d.device->state().device_id;
    config.key = &d.info.key;
    config.client = &client;
    config.connector = &connector;
    config.shadow = shadow->get();
    config.cache = cache->get();
    config.env = d.env.get();
    SyncOptions options;
    options.allow_mass_delete = allow_mass_delete;
    options.lease_ttl_ms = kLeaseTtlMs;
    absl::StatusOr<SyncReport> got = ferry::Sync(config, options);
    bool faulted = client.fired() || connector.fired();
    if (faulted) result_.faults += 1;
    // A lease left behind (by a crash, a failed release or a thief) runs out before
    // anyone syncs again; otherwise the next device would wait for it in real time.
    if (!got.ok() || faulted) clock_.Advance(kLeaseTtlMs + 1000);
    if (!got.ok()) return got.status();
    *report = *got;
    result_.conflicts += static_cast<int>(got->conflicts);
    return absl::OkStatus();
  }

  // path -> what a person would compare, canonical.
  std::map<std::string, std::string> Describe(const Device& d) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d.root, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      std::string rel = Canonical(fs::relative(it->path(), d.root).string());
      struct stat st;
      ::lstat(it->path().c_str(), &st);
      if (S_ISDIR(st.st_mode)) {
        out[rel] = StrCat("dir ", st.st_mode & 0777);
      } else if (S_ISREG(st.st_mode)) {
        out[rel] = StrCat("file ", st.st_mode & 0777, " ", st.st_size, " ",
                          static_cast<int64_t>(st.st_mtim.tv_sec), ".",
                          static_cast<int64_t>(st.st_mtim.tv_nsec), " ",
                          Hex64(std::hash<std::string>()(ReadAll(it->path()))));
      } else {
        out[rel] = "other";
      }
    }
    return out;
  }

  SimResult Body() {
    seal::Init();
    fs::create_directories(work_ / "outside");
    WriteAll(work_ / "outside" / "sentinel", "keep me");
    server::ServerOptions server_options;
    server_options.data_dir = (work_ / "server").string();
    server_options.listen = "127.0.0.1:0";
    server_options.clock = &clock_;
    auto server = server::Ferryd::Start(server_options);
    if (!server.ok()) return Fail(StrCat("ferryd: ", server.status().message()));
    server_ = std::move(*server);

    int count = 3 + static_cast<int>(Pick(4));
    result_.devices = count;
    for (int i = 0; i < count; ++i) {
      Device d;
      d.index = i;
      d.home = work_ / StrCat("dev", i) / "home";
      d.root = work_ / StrCat("dev", i) / "root";
      fs::create_directories(d.root);
      d.env = std::make_unique<DeviceEnv>(&clock_, &random_);
      // A third of the devices run days off.
      if (Pick(3) == 0)
        d.env->skew_ms = static_cast<int64_t>(Pick(5 * kDayMs)) - 2 * kDayMs;
      client::LoginOptions login{
          d.home.string(),  server_->address(),     "sim", "sim passphrase",
          StrCat("dev", i), server_->fingerprint(), true};
      auto device =
          i == 0 ? client::Device::CreateAccount(login) : client::Device::Login(login);
      if (!device.ok()) return Fail(StrCat("login: ", device.status().message()));
      d.device = std::move(*device);
      auto info = i == 0 ? d.device->CreateCollection("Sim", "files")
                         : d.device->FindCollection("Sim");
      if (!info.ok()) return Fail(StrCat("collection: ", info.status().message()));
      d.info = *info;
      devices_.push_back(std::move(d));
    }

    faults_on_ = true;
    for (int step = 0; step < options_.steps; ++step) {
      clock_.Advance(1000 + static_cast<int64_t>(Pick(20000)));
      if (Pick(20) == 0) clock_.Advance(3600 * 1000);
      Device& d = devices_[Pick(devices_.size())];
      std::string line = StrCat("s", step, " d", d.index, " ");
      if (d.offline_until > step) {
        Trace(line + "offline");
        continue;
      }
      uint64_t r = Pick(100);
      if (r < 50) {
        line += UserAction(d);
      } else if (r < 92) {
        FaultPlan plan = DrawFault();
        SyncReport report;
        absl::Status s = Sync(d, plan, Pick(2) == 0, &report);
        result_.syncs += 1;
        line += StrCat("sync fault=", KindName(plan.kind), ":", plan.call, "#", plan.nth,
                       " -> ", absl::StatusCodeToString(s.code()));
        if (options_.verbose) {
          std::printf("    (pulled %llu, pushed %llu, seq %llu)\n",
                      static_cast<unsigned long long>(report.pulled_items),
                      static_cast<unsigned long long>(report.pushed_items),
                      static_cast<unsigned long long>(report.head_seq));
        }
      } else if (r < 97) {
        d.offline_until = step + 1 + static_cast<int>(Pick(15));
        line += StrCat("offline until s", d.offline_until);
      } else {
        d.env->skew_ms = static_cast<int64_t>(Pick(5 * kDayMs)) - 2 * kDayMs;
        line += "clock skewed";
      }
      Trace(line);
    }

    // Heal and drain: no faults, everyone online, syncs until a whole round moves
    // nothing.
    faults_on_ = false;
    bool quiet = false;
    for (int round = 0; round < kDrainRoundsMax && !quiet; ++round) {
      quiet = true;
      std::set<uint64_t> heads;  // quiet also means everyone saw the same head
      for (Device& d : devices_) {
        clock_.Advance(1000);
        SyncReport report;
        absl::Status s = Sync(d, FaultPlan(), true, &report);
        result_.syncs += 1;
        if (!s.ok()) {
          if (options_.verbose) PrintLog();
          return Fail(StrCat("drain sync of dev", d.index, ": ", s.ToString()));
        }
        if (report.pushed_items != 0 || report.pulled_items != 0) quiet = false;
        heads.insert(report.head_seq);
      }
      if (heads.size() > 1) quiet = false;
    }
    if (!quiet) return Fail(StrCat("no quiet round after ", kDrainRoundsMax, " rounds"));
    return Check();
  }

  // Every transaction of the log, for a person reading a failing seed.
  void PrintLog() {
    auto log = devices_[0].device->ReadLog(devices_[0].info, 0);
    if (!log.ok()) return;
    for (const auto& [seq, tx] : *log) {
      std::string line =
          StrCat("seq ", seq, " ", Canonical(tx.device_id().substr(0, 8)), ":");
      for (const v1::Op& op : tx.ops()) {
        if (op.has_put()) line += StrCat(" put ", Canonical(op.put().item().id()));
        if (op.has_patch()) line += StrCat(" patch ", Canonical(op.patch().id()));
        if (op.has_delete_()) line += StrCat(" delete ", Canonical(op.delete_().id()));
        if (op.has_move()) {
          line += StrCat(" move ", Canonical(op.move().from_id()), "->",
                         Canonical(op.move().to_id()));
        }
      }
      std::printf("  %s\n", line.c_str());
    }
  }

  SimResult Check() {
    if (options_.verbose) PrintLog();
    // 1. Every device holds the same tree.
    auto first = Describe(devices_[0]);
    for (const Device& d : devices_) {
      auto other = Describe(d);
      if (other == first) continue;
      std::string diff;
      for (const auto& [path, what] : first) {
        auto it = other.find(path);
        if (it == other.end()) {
          diff += StrCat(" missing on dev", d.index, ": ", path, ";");
        } else if (it->second != what) {
          diff += StrCat(" differs: ", path, ";");
        }
      }
      for (const auto& [path, what] : other) {
        if (!first.contains(path))
          diff += StrCat(" only on dev", d.index, ": ", path, ";");
      }
      return Fail(StrCat("dev0 and dev", d.index, " differ:", diff.substr(0, 600)));
    }
    // 2. No edit is lost: every content no user replaced knowingly is somewhere.
    std::set<size_t> present;
    for (const auto& [name, path] : List(devices_[0], false)) {
      present.insert(std::hash<std::string>()(ReadAll(path)));
    }
    int lost = 0;
    for (const auto& [hash, live] : live_) {
      if (live && !present.contains(hash)) ++lost;
    }
    if (lost > 0) return Fail(StrCat(lost, " edits are nowhere in the final state"));
    // 3. The log is linear: seqs 1..head, each an authentic transaction.
    auto log = devices_[0].device->ReadLog(devices_[0].info, 0);
    if (!log.ok()) return Fail(StrCat("log: ", log.status().message()));
    for (size_t i = 0; i < log->size(); ++i) {
      if ((*log)[i].first != i + 1) return Fail(StrCat("log gap at ", i + 1));
    }
    // 4. Nothing outside a root: the sandbox holds only what the run made.
    if (ReadAll(work_ / "outside" / "sentinel") != "keep me" ||
        std::distance(fs::directory_iterator(work_ / "outside"),
                      fs::directory_iterator()) != 1) {
      return Fail("something changed outside the roots");
    }
    for (const auto& entry : fs::directory_iterator(work_)) {
      std::string name = entry.path().filename().string();
      if (name != "outside" && name != "server" && !name.starts_with("dev")) {
        return Fail(StrCat("unexpected ", name, " in the sandbox"));
      }
    }
    // 5. No plaintext on the server: no content marker, no file name.
    std::string stored;
    for (const auto& entry : fs::recursive_directory_iterator(work_ / "server")) {
      if (entry.is_regular_file()) stored += ReadAll(entry.path());
    }
    for (const std::string& marker : markers_) {
      if (stored.find(marker) != std::string::npos)
        return Fail("plaintext on the server");
    }
    for (const std::string& name : names_) {
      if (stored.find(name) != std::string::npos) {
        return Fail(StrCat("file name ", name, " in plaintext on the server"));
      }
    }
    for (const auto& [path, what] : first) Trace(StrCat("final ", path, " ", what));
    Trace(StrCat("log ", log->size()));
    SimResult ok = result_;
    ok.ok = true;
    ok.trace_hash = trace_hash_;
    return ok;
  }

  SimOptions options_;
  Rng rng_;
  SeededRandom random_;
  SimClock clock_;
  fs::path work_;
  std::unique_ptr<server::Ferryd> server_;
  std::vector<Device> devices_;
  bool faults_on_ = false;
  std::map<size_t, bool> live_;
  std::vector<std::string> markers_;
  std::set<std::string> names_;
  uint64_t trace_hash_ = kFnv1aOffset;
  SimResult result_;
};

}  // namespace

SimResult RunSeed(const SimOptions& options) { return Run(options).Go(); }

}  // namespace ferry::sim
